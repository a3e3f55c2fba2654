// SqliteBackend's private parts, shared by the files that implement it (sqlite_backend.cpp:
// opening, writes and reads; outputs.cpp: saves with outputs and inputs, staleness facts,
// loading outputs; prune.cpp: retention; errors.cpp: SQLite errors as checkpoint::Error).
#pragma once

#include "crypto/key_check.hpp"
#include "identity.hpp"
#include "run_rules.hpp"
#include "sqlite/chain.hpp"
#include "sqlite/head_cache.hpp"
#include "sqlite/sqlite_backend.hpp"
#include "staleness.hpp"
#include "stored_values.hpp"

#include <checkpoint/error.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

namespace checkpoint::detail {

inline std::string describe(const std::filesystem::path& path) {
    return "checkpoint database " + path.string();
}

// Translates the exception in flight (inside the store) into checkpoint::Error naming
// the file and saying what to do. `action` says what was being done ("saving stage 'x'").
[[noreturn]] void throw_translated(const std::filesystem::path& path, const std::string& action,
                                   std::chrono::milliseconds busy_timeout);

// The output described by columns first .. first + 2 of `row` (size, sha256, in_database);
// std::nullopt when the row has none.
inline std::optional<StoredOutput> stored_output(SQLite::Statement& row, int first) {
    if (row.getColumn(first).isNull()) return std::nullopt;
    StoredOutput output;
    output.size = row.getColumn(first).getInt64();
    output.sha256 = row.getColumn(first + 1).getString();
    output.in_database = row.getColumn(first + 2).getInt() != 0;
    return output;
}

// Resets a cached statement (and drops its bindings) when a use of it ends, however it ends.
class StatementUse {
public:
    explicit StatementUse(SQLite::Statement& statement) : statement_(statement) {}
    ~StatementUse() {
        statement_.tryReset();
        statement_.clearBindings();
    }
    StatementUse(const StatementUse&) = delete;
    StatementUse& operator=(const StatementUse&) = delete;

private:
    SQLite::Statement& statement_;
};

struct SqliteBackend::Impl final : StalenessFacts {
    BackendConfig config;
    RunIdentity run;
    std::filesystem::path path;
    std::string location;           // the path, as text
    std::string description;        // "checkpoint database <path>"
    std::filesystem::path outputs;  // <directory>/<database_file>-outputs
    bool run_recorded = false;
    bool counted_writer = false;       // counted in open_writers (sqlite_backend.cpp)
    std::optional<int> migrated_from;  // the schema version this open migrated from (0: new)
    KeyVerdict key_verdict = KeyVerdict::Plain;  // see check_key()
    std::unique_ptr<SQLite::Database> db;

    // Prepared once, reused for every call (writers only have the write statements).
    std::optional<SQLite::Statement> completed_head;
    std::optional<SQLite::Statement> row_outputs;
    std::optional<SQLite::Statement> input_states;
    std::optional<SQLite::Statement> current;
    std::optional<SQLite::Statement> append;
    std::optional<SQLite::Statement> stage_version;
    std::optional<SqliteChainWriter> chain_writer;
    std::optional<SQLite::Statement> move_head;
    std::optional<SQLite::Statement> mark_pipeline_cleared;
    std::optional<SQLite::Statement> find_import;
    std::optional<SQLite::Statement> insert_input;
    std::optional<SQLite::Statement> insert_output_data;
    // The write transaction's own statements, parsed once (write_batch).
    std::optional<SQLite::Statement> begin_immediate;
    std::optional<SQLite::Statement> commit;
    std::optional<SQLite::Statement> rollback;
    std::optional<SQLite::Statement> savepoint;
    std::optional<SQLite::Statement> release_savepoint;
    std::optional<SQLite::Statement> rollback_to_savepoint;

    [[noreturn]] void fail(const std::string& action) const {
        throw_translated(path, action, config.busy_timeout);
    }

    void open();
    void checkpoint_if_last() noexcept;
    bool sibling_exists(const char* suffix) const {
        std::error_code ignored;
        return std::filesystem::exists(path.string() + suffix, ignored);
    }
    void check_schema();
    void set_wal_mode();
    void reap_dead_runs();
    void check_key();
    // The chain's key: the key file's when the database records it; nullptr otherwise.
    const SecretKey* chain_key() const noexcept {
        return key_verdict == KeyVerdict::Keyed ? &config.key->chain : nullptr;
    }
    // The key that encrypts what users put in (crypto/field_cipher.hpp), or nullptr.
    const DatabaseKey* data_key() const noexcept {
        return key_verdict == KeyVerdict::Keyed ? config.key.get() : nullptr;
    }
    // Refuses `action` (an output or metadata read, a write) with Error(KeyRequired) when the
    // database records a key and none was given.
    void require_key(const std::string& action) const {
        if (key_verdict == KeyVerdict::KeyMissing) throw_key_required(description, action);
    }
    // At the start of a write transaction: refuses it when the database's key changed since
    // the open (another process recorded one), and brings the history chain's tail up to
    // date (SqliteChainWriter::begin), so that each row is hashed before its INSERT.
    void begin_chain();
    void record_run_if_needed();
    void apply(Write& write);
    std::string describe_write(const Write& write) const;
    std::exception_ptr translated_error(const Write& write) const;
    bool discard_failed_commit() noexcept;
    std::exception_ptr unknown_outcome_error(const Write& write) const;
    // A checkpoint_inputs row of a save: the input's completed row and its version.
    struct InputUse {
        std::int64_t id;
        std::int64_t version;
    };
    // Inside a write transaction (after begin_chain()): appends one row for `stage`, hashed
    // into the chain (with its inputs `used`, which the caller inserts after), and moves
    // the stage's head to it.
    Appended append_row(const std::string& stage, Status status,
                        std::optional<std::int64_t> duration_ms, const std::string& message,
                        const std::string& timestamp, const Write* save = nullptr,
                        std::optional<std::int64_t> lease_token = std::nullopt,
                        const std::vector<InputUse>& used = {});
    // The same for a pipeline-wide clear (no stage, version 0).
    Appended append_pipeline_clear(const std::string& timestamp);
    // Inside a write transaction (leases.cpp): throws Error(LeaseLost) unless
    // write.lease_token is the stage's live claim, held by this run.
    void check_lease(const Write& write);
    void apply_completed(Write& write);
    void apply_clear_downstream(Write& write);

    // The stage's current completed row, if it has one (see sql_completed_head).
    struct CompletedHead {
        std::int64_t id = 0;
        std::int64_t version = 0;
        bool checks = false;  // it has an output file or inputs: StalenessCheck may say no
    };
    // Cached while the database is unchanged (head_cache.hpp); read_head() always queries.
    std::optional<CompletedHead> completed_head_of(const std::string& stage);
    std::optional<CompletedHead> read_head(const std::string& stage);
    std::optional<StageCache<CompletedHead>> head_cache;  // made on first use

    // StalenessFacts (outputs.cpp), read through this connection.
    RowFacts row_facts(std::int64_t id) override;
    std::vector<InputFacts> input_facts(std::int64_t id) override;
    std::optional<std::uint64_t> output_file_size(const std::string& sha256) override;
    std::string output_file_name(const std::string& sha256) override;

    void require_writable(const std::string& action) const {
        if (config.read_only) {
            throw Error(ErrorCode::ReadOnly,
                        describe(path) + ": " + action +
                            " refused: the manager was opened read-only (Options::read_only)");
        }
    }
};

}  // namespace checkpoint::detail
