// PostgresBackend: stage leases (Backend::claim_lease and friends) and the fencing check of
// writes made under one. Expiry is decided by the server's clock (clock_timestamp(), read
// once the lease row is locked), never by comparing two workers' clocks.
#include "clock.hpp"
#include "postgres/postgres_backend_impl.hpp"

namespace checkpoint::detail {

namespace {

// How often a claim that met a deadlock or a serialization failure is tried again.
constexpr int max_claim_attempts = 20;

StageLease read_lease(const pqxx::row& row, int first, const std::string& stage) {
    StageLease lease;
    lease.stage = stage;
    lease.token = row[first].as<std::int64_t>();
    lease.run_id = row[first + 1].as<std::string>();
    lease.host = row[first + 2].as<std::string>();
    lease.pid = row[first + 3].as<std::int64_t>();
    lease.claimed_at = row[first + 4].as<std::string>();
    lease.expires_at = row[first + 5].as<std::string>();
    return lease;
}

}  // namespace

LeaseClaim PostgresBackend::claim_lease(const std::string& stage, std::chrono::milliseconds ttl) {
    Impl& s = *impl_;
    const std::string action = "claiming stage '" + stage + "'";
    s.require_writable(action);
    for (int attempt = 1;; ++attempt) {
        try {
            LeaseClaim claim;
            pqxx::work tx(s.connection());
            if (!s.run_recorded) s.record_run(tx);
            PgParams().text(s.config.pipeline).text(stage).exec(tx, pg_sql::create_lease.name);
            const pqxx::result taken = PgParams()
                                           .text(s.config.pipeline)
                                           .text(stage)
                                           .text(s.run.run_id)
                                           .text(s.run.process.host)
                                           .integer(s.run.process.pid)
                                           .integer(ttl.count())
                                           .exec(tx, pg_sql::take_lease.name);
            if (taken.empty()) {
                const pqxx::result holder = PgParams()
                                                .text(s.config.pipeline)
                                                .text(stage)
                                                .exec(tx, pg_sql::lease_holder.name);
                if (holder.empty()) continue;  // released meanwhile: try again at once
                claim.holder = read_lease(holder[0], 0, stage);
                claim.holder.live = true;
                return claim;  // the transaction rolls back: nothing written
            }
            claim.token = taken[0][0].as<std::int64_t>();
            tx.commit();
            if (!s.run_recorded) {
                s.run_recorded = true;
                s.start_heartbeat();
            }
            return claim;
        } catch (const pqxx::sql_error& e) {
            const bool retry = (e.sqlstate() == "40001" || e.sqlstate() == "40P01") &&
                               attempt < max_claim_attempts;
            if (!retry) s.fail(action);
        } catch (...) {
            s.fail(action);
        }
    }
}

bool PostgresBackend::renew_lease(const std::string& stage, std::int64_t token,
                                  std::chrono::milliseconds ttl) {
    Impl& s = *impl_;
    try {
        pqxx::work tx(s.connection());
        tx.exec0("SET LOCAL synchronous_commit TO off");  // see release_lease
        const bool renewed = PgParams()
                                 .text(s.config.pipeline)
                                 .text(stage)
                                 .integer(token)
                                 .text(s.run.run_id)
                                 .integer(ttl.count())
                                 .exec(tx, pg_sql::renew_lease.name)
                                 .size() == 1;
        tx.commit();
        return renewed;
    } catch (...) {
        s.fail("renewing the lease on stage '" + stage + "'");
    }
}

void PostgresBackend::release_lease(const std::string& stage, std::int64_t token) {
    Impl& s = *impl_;
    try {
        // Not waiting for the WAL flush: a release (or renewal) lost in a server crash only
        // lets the claim lapse by its ttl (or sooner). Claims are durable: the holders live
        // on after a server crash, and a token must never be handed out twice.
        pqxx::work tx(s.connection());
        tx.exec0("SET LOCAL synchronous_commit TO off");
        PgParams()
            .text(s.config.pipeline)
            .text(stage)
            .integer(token)
            .text(s.run.run_id)
            .exec(tx, pg_sql::release_lease.name);
        tx.commit();
    } catch (...) {
        s.fail("releasing the lease on stage '" + stage + "'");
    }
}

std::vector<StageLease> PostgresBackend::leases() {
    Impl& s = *impl_;
    try {
        pqxx::nontransaction tx(s.connection());
        const pqxx::result rows = PgParams().text(s.config.pipeline).exec(tx, pg_sql::leases.name);
        std::vector<StageLease> result;
        for (const auto& row : rows) {
            StageLease lease = read_lease(row, 1, row[0].as<std::string>());
            lease.live = row[7].as<bool>();
            result.push_back(std::move(lease));
        }
        return result;
    } catch (...) {
        s.fail("reading the leases");
    }
}

void PostgresBackend::Impl::check_lease(pqxx::transaction_base& tx, const Write& write) {
    const pqxx::result found = PgParams()
                                   .text(config.pipeline)
                                   .text(write.stage)
                                   .integer(*write.lease_token)
                                   .text(run.run_id)
                                   .exec(tx, pg_sql::check_lease.name);
    if (found.empty())
        throw lease_lost_error(description, describe_write(write), write.stage, *write.lease_token);
}

}  // namespace checkpoint::detail
