// PostgresBackend's private parts, shared by the files that implement it
// (postgres_backend.cpp: connecting and writes; postgres_reads.cpp: reads and the facts
// staleness is decided from; postgres_prune.cpp: retention; postgres_verify.cpp: verify).
#pragma once

#include "crypto/key_check.hpp"
#include "postgres/connection.hpp"
#include "postgres/location.hpp"
#include "postgres/postgres_backend.hpp"
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
    bool run_recorded = false;
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

    // The open connection, made (again, after a lost one) with every statement prepared.
    pqxx::connection_base& connection();
    // Call inside a catch block, when no transaction is alive: drops a connection that
    // broke (the next call reconnects) and throws the Error that describes the failure.
    [[noreturn]] void fail(const std::string& action);
    // Call inside a catch block: the Error that describes the failure (the connection is
    // left as it is: a transaction may still be using it).
    std::exception_ptr translated(const std::string& action) const;

    void open();
    void start_heartbeat();
    void stop_heartbeat() noexcept;
    void require_writable(const std::string& action) const;
    void reap_dead_runs(pqxx::transaction_base& tx);  // postgres_prune.cpp

    // Writes (postgres_backend.cpp), inside `tx`.
    void record_run(pqxx::transaction_base& tx);
    void apply(pqxx::transaction_base& tx, Write& write);
    Appended append_row(pqxx::transaction_base& tx, const std::string& stage, Status status,
                        std::optional<std::int64_t> duration_ms, const std::string& message,
                        const std::string& timestamp, const Write* save = nullptr);
    void apply_completed(pqxx::transaction_base& tx, Write& write);
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
