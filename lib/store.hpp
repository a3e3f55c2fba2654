// The SQLite store: the one place (with migrations/) that holds SQL. One Store is one
// connection; it is not thread-safe — CheckpointManager serializes calls to it.
#pragma once

#include "identity.hpp"

#include <checkpoint/options.hpp>
#include <checkpoint/prune.hpp>
#include <checkpoint/records.hpp>

#include <cstdint>
#include <exception>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace checkpoint::detail {

struct StoreConfig {
    std::filesystem::path directory;               // the checkpoint directory
    std::string database_file = "checkpoints.db";  // a plain name inside `directory`
    std::string pipeline;
    Durability durability = Durability::Full;
    std::chrono::milliseconds busy_timeout{30'000};
    bool read_only = false;
    unsigned file_mode = 0600;  // of a database file (and output files) created here
};

// The run this store records on its first write.
struct RunIdentity {
    std::string run_id;
    ProcessIdentity process;
};

// What a write appended.
struct Appended {
    std::int64_t id = 0;
    std::int64_t version = 0;
};

// One write, applied with others in a batch (see Store::write_batch).
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
    bool output_in_database = true;       // false: the file <outputs>/<output_sha256>, which
                                          // the caller wrote (rewritten here if it vanished)
    std::vector<std::string> inputs;      // upstream stages, checked here

    // Results, set by write_batch.
    std::optional<Appended> appended;
    std::vector<std::string> cleared;  // ClearDownstream: the stages cleared, `stage` first
    std::exception_ptr error;          // an Error; nothing of this write was written
};

class Store {
public:
    // Opens (and, unless read-only, creates and migrates) <directory>/checkpoints.db.
    // Throws Error as documented on the CheckpointManager constructor.
    Store(const StoreConfig& config, RunIdentity run);
    ~Store();
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;

    const std::filesystem::path& path() const noexcept;

    // ---- Writes ----

    // Applies `writes` in one BEGIN IMMEDIATE transaction, so that they share one commit
    // (and one fsync); the run row is written with the run's first write. Each write gets
    // its result or its own error: a write that fails is rolled back alone (savepoints),
    // and when the transaction as a whole fails, every write gets the error and nothing
    // was written. Never throws for a write's failure.
    void write_batch(const std::vector<Write*>& writes);

    // Records the end of the run (if it was recorded at all). Throws Error.
    void close_run();

    // Deletes history rows as PruneOptions says (one transaction), then, in a second one
    // that holds the write lock, the output files that no row names any more. Throws Error.
    PruneResult prune(const PruneOptions& options);

    // ---- Reads ----

    // The stage's current state as has_checkpoint() sees it (the fingerprint is read only
    // when `with_fingerprint`).
    struct HeadState {
        bool completed = false;    // the last row is Completed, and no clear came after it
        std::string fingerprint;   // of that row
        std::string stale_reason;  // why the completed row is not up to date; empty if it is
    };
    HeadState head_state(const std::string& stage, bool with_fingerprint);

    // Where a stored output is. `data` holds the bytes when they are in the database.
    struct OutputLocation {
        StoredOutput output;
        std::string data;
    };
    // The output of the stage's current completed version (no `version`), or of completed
    // version `version`; std::nullopt when there is no such row or it has no output.
    // Throws Error(OutputDamaged) when the database lacks the bytes it promises.
    std::optional<OutputLocation> output_of(const std::string& stage,
                                            std::optional<std::int64_t> version);
    const std::filesystem::path& outputs_directory() const noexcept;

    std::optional<Checkpoint> current(const std::string& stage);
    std::vector<Checkpoint> current_all();
    void for_each_history(const HistoryFilter& filter,
                          const std::function<void(const Checkpoint&)>& visit);
    std::vector<Run> runs();
    std::vector<std::string> pipelines();  // every pipeline of the file, by name
    std::vector<std::string> verify();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace checkpoint::detail
