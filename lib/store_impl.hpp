// Store's private parts, shared by the files that implement it (store.cpp: opening, writes
// and reads; store_outputs.cpp: staleness and outputs; store_prune.cpp: retention).
#pragma once

#include "identity.hpp"
#include "store.hpp"

#include <checkpoint/error.hpp>

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

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

// Caches process liveness for one read call.
class LivenessCache {
public:
    bool may_be_alive(const std::string& host, std::int64_t pid) {
        const auto key = std::make_pair(host, pid);
        auto found = alive_.find(key);
        if (found == alive_.end())
            found = alive_.emplace(key, process_may_be_alive(host, pid)).first;
        return found->second;
    }

private:
    std::map<std::pair<std::string, std::int64_t>, bool> alive_;
};

struct Store::Impl {
    StoreConfig config;
    RunIdentity run;
    std::filesystem::path path;
    std::filesystem::path outputs;  // <directory>/<database_file>-outputs
    bool run_recorded = false;
    std::set<std::string> failed_stages;  // failed in this run, not completed since
    std::unique_ptr<SQLite::Database> db;

    // Prepared once, reused for every call (writers only have the write statements).
    std::optional<SQLite::Statement> completed_head;
    std::optional<SQLite::Statement> row_outputs;
    std::optional<SQLite::Statement> input_states;
    std::optional<SQLite::Statement> current;
    std::optional<SQLite::Statement> append;
    std::optional<SQLite::Statement> move_head;
    std::optional<SQLite::Statement> append_pipeline_clear;
    std::optional<SQLite::Statement> mark_pipeline_cleared;
    std::optional<SQLite::Statement> find_import;
    std::optional<SQLite::Statement> insert_input;
    std::optional<SQLite::Statement> insert_output_data;

    [[noreturn]] void fail(const std::string& action) const {
        throw_translated(path, action, config.busy_timeout);
    }

    void open();
    void check_schema();
    void set_wal_mode();
    void reap_dead_runs();
    void record_run_if_needed();
    void apply(Write& write);
    std::string describe_write(const Write& write) const;
    std::exception_ptr translated_error(const Write& write) const;
    bool discard_failed_commit() noexcept;
    std::exception_ptr unknown_outcome_error(const Write& write) const;
    Appended append_row(const std::string& stage, Status status,
                        std::optional<std::int64_t> duration_ms, const std::string& message,
                        const std::string& timestamp, const Write* save = nullptr);
    void apply_completed(Write& write);
    void apply_clear_downstream(Write& write);

    // Staleness (store_outputs.cpp). What a row needs to be checked: its id, its output,
    // and whether it recorded inputs.
    struct RowOutputs {
        std::int64_t id = 0;
        std::optional<StoredOutput> output;
        std::int64_t input_count = 0;
        std::string fingerprint;
    };
    // The stage's current completed row, if it has one (see sql_completed_head).
    struct CompletedHead {
        std::int64_t id = 0;
        std::int64_t version = 0;
        bool checks = false;  // it has an output file or inputs: stale_reason() may say no
    };
    std::optional<CompletedHead> completed_head_of(const std::string& stage);
    // Rows already checked: id -> stale reason (empty: up to date).
    using StalenessCache = std::map<std::int64_t, std::string>;
    // Why the Completed row `row` is not up to date (empty when it is): its output file is
    // missing or has another size, or one of its inputs moved on or is not up to date
    // itself (checked transitively, each row once per `checked`).
    std::string stale_reason(const RowOutputs& row, StalenessCache& checked);
    std::string uncached_stale_reason(const RowOutputs& row, StalenessCache& checked);
    RowOutputs row_outputs_of(std::int64_t id);
    // Sets checkpoint.stale and stale_reason; `checked` may be shared across calls.
    void mark_stale(Checkpoint& checkpoint, StalenessCache& checked);

    void require_writable(const std::string& action) const {
        if (config.read_only) {
            throw Error(ErrorCode::ReadOnly,
                        describe(path) + ": " + action +
                            " refused: the manager was opened read-only (Options::read_only)");
        }
    }
};

}  // namespace checkpoint::detail
