// The backend seam: what CheckpointManager needs from a database, in domain terms. One
// implementation per kind of database (lib/sqlite/: an SQLite file). The rules that are not
// SQL — staleness (staleness.hpp), incomplete stages and run outcomes (run_rules.hpp), the
// validation of names, options and filters (checkpoint_manager.cpp, names.hpp) — live once,
// above the seam: a backend returns facts and calls those rules, so that every backend gives
// the same answers.
//
// A Backend is one connection; it is not thread-safe: CheckpointManager serializes calls
// (read_output_file excepted, see there). Every call throws checkpoint::Error only.
#pragma once

#include "identity.hpp"

#include <checkpoint/options.hpp>
#include <checkpoint/prune.hpp>
#include <checkpoint/records.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace checkpoint::detail {

// Where and how to open the database, validated by the caller (CheckpointManager).
struct BackendConfig {
    std::filesystem::path directory;               // the checkpoint directory
    std::string database_file = "checkpoints.db";  // a plain name inside `directory`
    std::string pipeline;
    Durability durability = Durability::Full;
    std::chrono::milliseconds busy_timeout{30'000};
    bool read_only = false;
    unsigned file_mode = 0600;          // of a database file (and output files) created here
    std::size_t max_inline_output = 0;  // outputs larger than this go to files (SQLite)
};

// The run this backend records on its first write.
struct RunIdentity {
    std::string run_id;
    ProcessIdentity process;
};

// What a write appended.
struct Appended {
    std::int64_t id = 0;
    std::int64_t version = 0;
};

// One write, applied with others in a batch (see Backend::write_batch).
struct Write {
    enum class Kind {
        Stage,            // a row for `stage` with `status`; Completed rows get the next version
        PipelineClear,    // a pipeline-wide Cleared row: every stage before it is cleared
        Import,           // a Completed row stamped `timestamp`, unless one with the same
                          // stage, timestamp and message exists (then `appended` stays empty)
        ClearDownstream,  // Cleared rows for `stage` and every stage downstream of it
    };
    Kind kind = Kind::Stage;
    std::string stage;
    Status status = Status::Completed;
    std::optional<std::int64_t> duration_ms;
    std::string message;
    std::string timestamp;  // Import only

    // Completed Stage writes only (SaveOptions), already validated:
    std::string metadata;                 // compact JSON object text; empty: none
    std::string fingerprint;              // empty: none
    const std::string* output = nullptr;  // the output's bytes (the caller's), or none
    std::string output_sha256;            // its SHA-256, hex
    bool output_in_database = true;       // set by Backend::prepare_output
    std::vector<std::string> inputs;      // upstream stages, checked by the backend

    // Results, set by write_batch.
    std::optional<Appended> appended;
    std::vector<std::string> cleared;  // ClearDownstream: the stages cleared, `stage` first
    std::exception_ptr error;          // an Error; nothing of this write was written
};

// The stage's current state as has_checkpoint() sees it.
struct HeadState {
    bool completed = false;    // the last row is Completed, and no clear came after it
    std::string fingerprint;   // of that row (read only when asked for)
    std::string stale_reason;  // why the completed row is not up to date; empty if it is
};

// Where a stored output is. `data` holds the bytes when they are in the database.
struct OutputLocation {
    StoredOutput output;
    std::string data;
};

class Backend {
public:
    virtual ~Backend() = default;

    // Where the database is, for log lines: the file's path, or a server's address (never
    // a password).
    virtual const std::string& location() const noexcept = 0;
    // "checkpoint database <location>", for messages.
    virtual const std::string& description() const noexcept = 0;
    // The database file; empty for a backend that has none.
    virtual const std::filesystem::path& path() const noexcept = 0;
    // Where outputs stored outside the database go; empty for a backend that keeps every
    // output in the database.
    virtual const std::filesystem::path& outputs_directory() const noexcept = 0;

    // ---- Writes ----

    // Called before the save is queued, without the connection: decides where the output
    // goes (sets write.output_in_database) and stores what must be stored outside the
    // transaction (SQLite: a file too large for the database, written and fsynced here;
    // the transaction writes it again if it vanished meanwhile). Thread-safe. Throws Error.
    virtual void prepare_output(Write& write) const = 0;

    // Applies `writes` in one transaction, so that they share one commit; the run is
    // recorded with its first write. Each write gets its result or its own error: a write
    // that fails is rolled back alone, and when the transaction as a whole fails every
    // write gets the error and nothing was written. Never throws for a write's failure.
    virtual void write_batch(const std::vector<Write*>& writes) = 0;

    // Records the end of the run (if it was recorded at all), "failed" when `failed`.
    virtual void close_run(bool failed) = 0;

    // Deletes history rows as PruneOptions (already validated) says. Throws Error.
    virtual PruneResult prune(const PruneOptions& options) = 0;

    // ---- Reads ----

    // The stage's current state (the fingerprint is read only when `with_fingerprint`).
    virtual HeadState head_state(const std::string& stage, bool with_fingerprint) = 0;

    // The output of the stage's current completed version (no `version`), or of completed
    // version `version`; std::nullopt when there is no such row or it has no output.
    // Throws Error(OutputDamaged) when the database lacks the bytes it promises.
    virtual std::optional<OutputLocation> output_of(const std::string& stage,
                                                    std::optional<std::int64_t> version) = 0;
    // The bytes of an output that output_of() located outside the database, checked against
    // its size and SHA-256 (Error(OutputDamaged) otherwise). Thread-safe: it does not use
    // the connection, so it runs without the manager's lock.
    virtual std::string read_output_file(const StoredOutput& output) const = 0;

    virtual std::optional<Checkpoint> current(const std::string& stage) = 0;
    virtual std::vector<Checkpoint> current_all() = 0;
    // `filter` is validated, its time bounds in the stored form (normalize_time_bound).
    // Rows in id order, or newest first with filter.newest_first; with filter.before_id only
    // rows below it. A page of newest-first rows (with a stage or not) must cost the same
    // however long the history is: CheckpointManager::history's contract.
    virtual void for_each_history(const HistoryFilter& filter,
                                  const std::function<void(const Checkpoint&)>& visit) = 0;
    virtual std::vector<Run> runs() = 0;
    // Every pipeline that has written to the database (any pipeline), sorted by its bytes.
    virtual std::vector<std::string> pipelines() = 0;
    virtual std::vector<std::string> verify() = 0;
};

// Opens (and, unless read-only, creates and migrates) the database `config` names.
// Throws Error as documented on the CheckpointManager constructor.
std::unique_ptr<Backend> open_backend(const BackendConfig& config, RunIdentity run);

}  // namespace checkpoint::detail
