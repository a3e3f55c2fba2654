// PostgresBackend's private parts, shared by the files that implement it
// (postgres_backend.cpp: connecting and writes; postgres_reads.cpp: reads and the facts
// staleness is decided from; postgres_prune.cpp: retention; postgres_verify.cpp: verify).
#pragma once

#include "crypto/key_check.hpp"
#include "postgres/connection.hpp"
#include "postgres/location.hpp"
#include "postgres/postgres_backend.hpp"
#include "postgres/reconnect_policy.hpp"
#include "postgres/statements.hpp"
#include "run_rules.hpp"
#include "staleness.hpp"

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

namespace checkpoint::detail {

// Outputs are stored in chunks of this many bytes (output_chunks).
inline constexpr std::size_t output_chunk_bytes = 1024 * 1024;

// Statement parameters whose number and nullness are known only at run time: each is text
// (PostgreSQL converts it to the column's type) or NULL.
class PgParams {
public:
    PgParams& text(std::string value) {
        storage_.push_back(std::move(value));
        return *this;
    }
    PgParams& null() {
        storage_.emplace_back(std::nullopt);
        return *this;
    }
    PgParams& integer(std::int64_t value) { return text(std::to_string(value)); }
    PgParams& boolean(bool value) { return text(value ? "true" : "false"); }
    template <typename T>
    PgParams& optional_text(const std::optional<T>& value) {
        return value ? text(std::string(*value)) : null();
    }
    PgParams& optional_integer(const std::optional<std::int64_t>& value) {
        return value ? integer(*value) : null();
    }
    PgParams& text_or_null(const std::string& value) {
        return value.empty() ? null() : text(value);
    }

    // Runs prepared statement `name` with these parameters in `tx`.
    pqxx::result exec(pqxx::transaction_base& tx, const char* name) const;
    // Runs `sql` (not prepared) with these parameters in `tx`.
    pqxx::result exec_sql(pqxx::transaction_base& tx, const std::string& sql) const;
    // "EXECUTE name(...);" with these parameters quoted as literals (NULL for null), for a
    // statement prepared on `connection`, to send several in one simple query.
    std::string execute_sql(pqxx::connection_base& connection, const char* name) const;

private:
    std::vector<const char*> values() const;

    std::vector<std::optional<std::string>> storage_;
};

struct PostgresBackend::Impl final : StalenessFacts {
    BackendConfig config;
    RunIdentity run;
    ServerLocation server;
    std::string location;           // the redacted URI
    std::string description;        // describe_location(server)
    std::filesystem::path no_path;  // path() and outputs_directory(): none
    std::optional<PgConnection> connection_;
    bool connected_before = false;  // a connection was open once: a new one is a reconnect
    // pg_sql::executed_as_sql are prepared on the server (on a connection's first stage
    // write: the tables they name may not exist before the opening migration).
    bool sql_statements_ready = false;
    bool run_recorded = false;
    std::optional<int> migrated_from;  // the schema version this open migrated from (0: new)
    KeyVerdict key_verdict = KeyVerdict::Plain;  // see check_key()
    const SecretKey* chain_key() const noexcept {
        return key_verdict == KeyVerdict::Keyed ? &config.key->chain : nullptr;
    }
    // The key that encrypts what users put in (crypto/field_cipher.hpp), or nullptr.
    const DatabaseKey* data_key() const noexcept {
        return key_verdict == KeyVerdict::Keyed ? config.key.get() : nullptr;
    }
    void require_key(const std::string& action) const {
        if (key_verdict == KeyVerdict::KeyMissing) throw_key_required(description, action);
    }
    // Inside a write transaction, first thing after its pipeline lock: locks the chain
    // head (postgres_chain.hpp) and refuses the write when the database's key changed since
    // the open.
    void lock_chain(pqxx::transaction_base& tx);
    void check_key();

    // The transaction the StalenessFacts queries run in (a read's or a write's), set for a
    // scope by FactsScope.
    pqxx::transaction_base* facts_tx = nullptr;
    class FactsScope {
    public:
        FactsScope(Impl& impl, pqxx::transaction_base& tx) : impl_(impl) { impl_.facts_tx = &tx; }
        ~FactsScope() { impl_.facts_tx = nullptr; }
        FactsScope(const FactsScope&) = delete;
        FactsScope& operator=(const FactsScope&) = delete;

    private:
        Impl& impl_;
    };

    // The heartbeat: a thread with its own connection touches the run every
    // heartbeat_interval once it is recorded, until close_run.
    std::mutex heartbeat_mutex;
    std::condition_variable heartbeat_wake;
    bool heartbeat_stop = false;
    std::thread heartbeat;

    // The open connection, made (again, after a lost one) with every statement prepared; a
    // reconnect is logged (warning, with the host reached). A failure to connect is thrown
    // untranslated (libpqxx's exception): call it inside a catch that calls fail().
    pqxx::connection_base& connection();

    // Runs `body`, a call that uses connection() and is safe to run again (a read, a
    // retention pass, the opening migration); when the connection was lost (FailureKind
    // ConnectionLost or OutcomeUnknown) after it had been connected once, reconnects and
    // runs it again, for up to config.reconnect_timeout. Any failure leaves as fail(action)
    // translates it.
    template <class Body>
    auto retrying(const std::string& action, Body&& body) -> decltype(body()) {
        ReconnectDeadline deadline(config.reconnect_timeout);
        for (;;) {
            try {
                return body();
            } catch (...) {
                const std::exception_ptr failure = std::current_exception();
                // A manager's first connection is not retried: a wrong URI fails at once.
                if (classify_failure(failure) == FailureKind::Other || !connected_before)
                    fail(action);
                reconnect(action, deadline, failure);
            }
        }
    }
    // After `failure` (a lost connection): drops the connection and connects again, trying
    // every host of the URI, waiting the deadline's back-off between attempts. Throws
    // Error(Unavailable) naming the server once the deadline has passed, or the translated
    // error of an attempt that failed for another reason (a login refused).
    void reconnect(const std::string& action, ReconnectDeadline& deadline,
                   std::exception_ptr failure);
    // After a write transaction's commit outcome was unknown and the connection is back:
    // true when it committed (a row holds one of the writes' client ids; a write whose
    // result was not received yet gets it from that row; and a commit of its own has waited
    // for the synchronous standby, if any, so that the write is replicated before it is
    // acknowledged), false when nothing of it did.
    bool committed(const std::vector<Write*>& writes, const std::string& action,
                   ReconnectDeadline& deadline);
    // One attempt at writing `writes` in one transaction (or one autocommit statement);
    // throws the failure untranslated when the transaction fails as a whole.
    void attempt_batch(const std::vector<Write*>& writes);
    // After a committed write: the run is recorded, its heartbeat runs.
    void note_committed();
    // Call inside a catch block, when no transaction is alive: drops a connection that
    // broke (the next call reconnects) and throws the Error that describes the failure.
    [[noreturn]] void fail(const std::string& action);
    // Call inside a catch block: the Error that describes the failure (the connection is
    // left as it is: a transaction may still be using it).
    std::exception_ptr translated(const std::string& action) const;

    // config.logger, else the default logger.
    spdlog::logger& log() const;

    void open();
    void start_heartbeat();
    void stop_heartbeat() noexcept;
    void require_writable(const std::string& action) const;
    void reap_dead_runs(pqxx::transaction_base& tx);  // postgres_prune.cpp

    // Writes (postgres_backend.cpp), inside `tx`.
    void record_run(pqxx::transaction_base& tx);
    void apply(pqxx::transaction_base& tx, Write& write);
    // `write_id`: the client id of the write this row is the first row of; empty: none.
    Appended append_row(pqxx::transaction_base& tx, const std::string& stage, Status status,
                        std::optional<std::int64_t> duration_ms, const std::string& message,
                        const std::string& timestamp, const std::string& write_id,
                        const Write* save = nullptr,
                        std::optional<std::int64_t> lease_token = std::nullopt);
    // Inside a write transaction (postgres_leases.cpp): throws Error(LeaseLost) unless
    // write.lease_token is the stage's live claim, held by this run; locks the lease row
    // until the transaction ends.
    void check_lease(pqxx::transaction_base& tx, const Write& write);
    void apply_completed(pqxx::transaction_base& tx, Write& write);
    struct UsedInput {
        std::int64_t id;
        std::int64_t version;
    };
    std::vector<UsedInput> check_inputs(pqxx::transaction_base& tx, const Write& write);
    // The output's chunks (sealed first when there is a key), for row `id`.
    void insert_output_chunks(pqxx::transaction_base& tx, const std::string& stage, std::int64_t id,
                              std::int64_t version, const std::string& output);
    // A single stage write (Started, Completed, Failed) in two round trips
    // (postgres_stage_write.cpp); throws the failure untranslated, as attempt_batch.
    bool stage_write_fits(const Write& write) const;
    void write_stage(Write& write);
    void settle_commit(pqxx::transaction_base& tx, std::exception_ptr failure, std::int64_t id);
    void apply_clear_downstream(pqxx::transaction_base& tx, Write& write);
    std::string describe_write(const Write& write) const;

    // Reads (postgres_reads.cpp).
    struct CompletedHead {
        std::int64_t id = 0;
        std::int64_t version = 0;
        bool checks = false;
    };
    std::optional<CompletedHead> completed_head_of(pqxx::transaction_base& tx,
                                                   const std::string& stage, bool lock);
    Checkpoint read_checkpoint(const pqxx::row& row, LivenessCache& liveness,
                               bool open_attempt) const;

    // StalenessFacts, through facts_tx.
    RowFacts row_facts(std::int64_t id) override;
    std::vector<InputFacts> input_facts(std::int64_t id) override;
    std::optional<std::uint64_t> output_file_size(const std::string& sha256) override;
    std::string output_file_name(const std::string& sha256) override;
};

}  // namespace checkpoint::detail
