// SqliteBackend: stage leases (Backend::claim_lease and friends) and the fencing check of
// writes made under one. Each is one BEGIN IMMEDIATE transaction, so that the process that
// decides whether a claim has lapsed holds the write lock meanwhile, and its clock decides
// (the processes of one host share one clock).
#include "clock.hpp"
#include "sqlite/sqlite_backend_impl.hpp"

#include <SQLiteCpp/Transaction.h>

namespace checkpoint::detail {

namespace {

constexpr const char* sql_lease_of =
    "SELECT token, run_id, host, pid, claimed_at, expires_at FROM stage_leases "
    "WHERE pipeline = ?1 AND stage = ?2";

constexpr const char* sql_take_lease =
    "INSERT INTO stage_leases (pipeline, stage, token, run_id, host, pid, claimed_at, "
    "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (pipeline, stage) DO "
    "UPDATE SET token = excluded.token, run_id = excluded.run_id, host = excluded.host, "
    "pid = excluded.pid, claimed_at = excluded.claimed_at, expires_at = excluded.expires_at";

// The claim `token` of run ?4, if it is the stage's live claim at ?5 (now).
constexpr const char* sql_renew_lease =
    "UPDATE stage_leases SET expires_at = ?6 WHERE pipeline = ?1 AND stage = ?2 AND token = ?3 "
    "AND run_id = ?4 AND expires_at > ?5";

constexpr const char* sql_check_lease =
    "SELECT 1 FROM stage_leases WHERE pipeline = ?1 AND stage = ?2 AND token = ?3 "
    "AND run_id = ?4 AND expires_at > ?5";

constexpr const char* sql_release_lease =
    "UPDATE stage_leases SET run_id = NULL, host = NULL, pid = NULL, claimed_at = NULL, "
    "expires_at = NULL WHERE pipeline = ?1 AND stage = ?2 AND token = ?3 AND run_id = ?4";

constexpr const char* sql_leases =
    "SELECT stage, token, run_id, host, pid, claimed_at, expires_at FROM stage_leases "
    "WHERE pipeline = ?1 AND run_id IS NOT NULL ORDER BY stage";

using Clock = std::chrono::system_clock;

// A lease transaction need not be durable here. Durability::Full databases commit it with
// synchronous = NORMAL: no fsync, and the next durable commit makes it durable too (WAL
// frames are ordered). What a crash may lose: a renewal or a release (the claim then only
// lapses sooner, or later by its ttl), or a claim. Every process that can use this file is
// on this host, so a crash that loses a commit (the OS or the power failed) has killed every
// holder too; and no row carries the lost claim's token, since any durable write under it
// would have made the claim durable first. So the next claim may hand the same token out
// again without two rows ever sharing it. (PostgreSQL's claims are durable: a server crash
// does not end the holders, which live on other hosts.)
class RelaxedSync {
public:
    RelaxedSync(SQLite::Database& db, Durability durability)
        : db_(db), relax_(durability == Durability::Full) {
        if (relax_) db_.exec("PRAGMA synchronous = NORMAL");
    }
    ~RelaxedSync() {
        if (!relax_) return;
        try {
            db_.exec("PRAGMA synchronous = FULL");
        } catch (...) {  // cannot fail outside a transaction; nothing more to do
        }
    }
    RelaxedSync(const RelaxedSync&) = delete;
    RelaxedSync& operator=(const RelaxedSync&) = delete;

private:
    SQLite::Database& db_;
    bool relax_;
};

StageLease read_lease(SQLite::Statement& row, int first, const std::string& stage) {
    StageLease lease;
    lease.stage = stage;
    lease.token = row.getColumn(first).getInt64();
    lease.run_id = row.getColumn(first + 1).getString();
    lease.host = row.getColumn(first + 2).getString();
    lease.pid = row.getColumn(first + 3).getInt64();
    lease.claimed_at = row.getColumn(first + 4).getString();
    lease.expires_at = row.getColumn(first + 5).getString();
    return lease;
}

}  // namespace

LeaseClaim SqliteBackend::claim_lease(const std::string& stage, std::chrono::milliseconds ttl) {
    Impl& s = *impl_;
    const std::string action = "claiming stage '" + stage + "'";
    s.require_writable(action);
    try {
        RelaxedSync relaxed(*s.db, s.config.durability);
        SQLite::Transaction transaction(*s.db, SQLite::TransactionBehavior::IMMEDIATE);
        const Clock::time_point now = Clock::now();
        const std::string now_text = format_timestamp(now);
        std::int64_t last_token = 0;
        {
            SQLite::Statement current(*s.db, sql_lease_of);
            current.bind(1, s.config.pipeline);
            current.bind(2, stage);
            if (current.executeStep()) {
                last_token = current.getColumn(0).getInt64();
                if (!current.getColumn(1).isNull() && current.getColumn(5).getString() > now_text) {
                    LeaseClaim busy;
                    busy.holder = read_lease(current, 0, stage);
                    busy.holder.live = true;
                    return busy;  // the transaction rolls back: nothing written
                }
            }
        }
        s.record_run_if_needed();
        LeaseClaim claim;
        claim.token = last_token + 1;
        SQLite::Statement take(*s.db, sql_take_lease);
        take.bind(1, s.config.pipeline);
        take.bind(2, stage);
        take.bind(3, *claim.token);
        take.bind(4, s.run.run_id);
        take.bind(5, s.run.process.host);
        take.bind(6, static_cast<std::int64_t>(s.run.process.pid));
        take.bind(7, now_text);
        take.bind(8, format_timestamp(now + ttl));
        take.exec();
        transaction.commit();
        s.run_recorded = true;
        return claim;
    } catch (...) {
        s.fail(action);
    }
}

bool SqliteBackend::renew_lease(const std::string& stage, std::int64_t token,
                                std::chrono::milliseconds ttl) {
    Impl& s = *impl_;
    try {
        RelaxedSync relaxed(*s.db, s.config.durability);
        SQLite::Transaction transaction(*s.db, SQLite::TransactionBehavior::IMMEDIATE);
        const Clock::time_point now = Clock::now();
        SQLite::Statement renew(*s.db, sql_renew_lease);
        renew.bind(1, s.config.pipeline);
        renew.bind(2, stage);
        renew.bind(3, token);
        renew.bind(4, s.run.run_id);
        renew.bind(5, format_timestamp(now));
        renew.bind(6, format_timestamp(now + ttl));
        const bool renewed = renew.exec() == 1;
        transaction.commit();
        return renewed;
    } catch (...) {
        s.fail("renewing the lease on stage '" + stage + "'");
    }
}

void SqliteBackend::release_lease(const std::string& stage, std::int64_t token) {
    Impl& s = *impl_;
    try {
        RelaxedSync relaxed(*s.db, s.config.durability);
        SQLite::Transaction transaction(*s.db, SQLite::TransactionBehavior::IMMEDIATE);
        SQLite::Statement release(*s.db, sql_release_lease);
        release.bind(1, s.config.pipeline);
        release.bind(2, stage);
        release.bind(3, token);
        release.bind(4, s.run.run_id);
        release.exec();
        transaction.commit();
    } catch (...) {
        s.fail("releasing the lease on stage '" + stage + "'");
    }
}

std::vector<StageLease> SqliteBackend::leases() {
    Impl& s = *impl_;
    try {
        const std::string now_text = utc_now();
        SQLite::Statement query(*s.db, sql_leases);
        query.bind(1, s.config.pipeline);
        std::vector<StageLease> result;
        while (query.executeStep()) {
            StageLease lease = read_lease(query, 1, query.getColumn(0).getString());
            lease.live = lease.expires_at > now_text;
            result.push_back(std::move(lease));
        }
        return result;
    } catch (...) {
        s.fail("reading the leases");
    }
}

void SqliteBackend::Impl::check_lease(const Write& write) {
    SQLite::Statement check(*db, sql_check_lease);
    check.bind(1, config.pipeline);
    check.bind(2, write.stage);
    check.bind(3, *write.lease_token);
    check.bind(4, run.run_id);
    check.bind(5, utc_now());
    if (!check.executeStep())
        throw lease_lost_error(description, describe_write(write), write.stage, *write.lease_token);
}

}  // namespace checkpoint::detail
