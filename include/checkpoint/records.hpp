// checkpoint — what the history holds: checkpoints (history rows) and runs.
#pragma once

#include <checkpoint/export.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace checkpoint {

// The status of a history row. Started, Completed, Failed and Cleared are stored (as the
// lower-case text of to_string, a frozen on-disk value); Incomplete is derived when read.
enum class Status {
    Started,     // begin_stage(): the stage began running
    Completed,   // save_checkpoint(): the stage finished; it will be skipped on resume
    Failed,      // fail_stage(): the stage failed; message says why
    Cleared,     // clear_checkpoint() / clear_checkpoints(): the stage must run again
    Incomplete,  // a Started row never followed by Completed or Failed in its run, whose run
                 // has ended or died: the process stopped in the middle of the stage
};

// "started", "completed", "failed", "cleared", "incomplete".
CHECKPOINT_EXPORT std::string_view to_string(Status status) noexcept;
// The inverse of to_string(Status); std::nullopt for any other text.
CHECKPOINT_EXPORT std::optional<Status> status_from_string(std::string_view text) noexcept;

// An upstream stage's version that a checkpoint consumed (SaveOptions::inputs).
struct InputVersion {
    std::string stage;
    std::int64_t version = 0;  // the upstream's completed version at the time of the save
    std::int64_t id = 0;       // the history row id of that version
};

// Where and what a stage's stored output is.
struct StoredOutput {
    std::int64_t size = 0;  // bytes
    std::string sha256;     // 64 lower-case hexadecimal digits
    // True when the bytes are in the database; false when they are in the file
    // <outputs directory>/<sha256>.
    bool in_database = true;
};

// One row of the history, or (from CheckpointManager::latest) the current state of a stage.
struct Checkpoint {
    std::int64_t id = 0;   // the history row's id; increases with every row written
    std::string pipeline;  // the pipeline the row belongs to
    std::string stage;     // the stage; empty only for a pipeline-wide clear
    Status status = Status::Completed;
    // For Completed: the version this save created (1, 2, 3, ... per stage; never reused,
    // even across clears). For other rows: the stage's latest completed version at the
    // time of the row (0 if it had never completed; 0 for a pipeline-wide clear).
    std::int64_t version = 0;
    std::string timestamp;  // ISO-8601 UTC with milliseconds: "2026-11-27T06:37:48.123Z"
    std::string run_id;     // the run that wrote the row (see Run)
    // How long the stage ran: set on Completed and Failed rows when the stage was begun in
    // the same run (begin_stage or run_stage); otherwise empty.
    std::optional<std::chrono::milliseconds> duration;
    std::string message;  // for Failed: the failure message; otherwise empty
    // The fencing token of the lease (CheckpointManager::claim_stage) the row was written
    // under; empty for rows written without a lease.
    std::optional<std::int64_t> lease_token;

    // The rest is set on Completed rows saved with SaveOptions (empty otherwise).
    nlohmann::json metadata = nlohmann::json::object();  // the user's JSON object
    std::string fingerprint;                             // SaveOptions::fingerprint
    std::vector<InputVersion> inputs;    // the upstream versions it used, in SaveOptions order
    std::optional<StoredOutput> output;  // the stored output, when there is one

    // latest() and stages() only: true when the stage's last row is Completed but it is
    // not up to date, so has_checkpoint() is false — an input was saved again, cleared or
    // is stale itself, or the output file is missing or truncated. stale_reason says which.
    bool stale = false;
    std::string stale_reason;
};

// How a run ended, as far as the database knows.
enum class RunOutcome {
    Running,   // the run has not ended and its process is alive (or on another host)
    Finished,  // the manager was destroyed normally and no stage was left failed
    Failed,    // the manager was destroyed normally, and a stage it ran failed last
    Died,      // the process ended without closing the run (crash, kill -9, power loss)
};

// "running", "finished", "failed", "died".
CHECKPOINT_EXPORT std::string_view to_string(RunOutcome outcome) noexcept;

// One run: the life of one CheckpointManager instance that wrote at least one row.
struct Run {
    std::string run_id;  // unique, time-ordered (a UUID version 7 in text form)
    std::string pipeline;
    std::string host;                     // gethostname() of the process
    std::int64_t pid = 0;                 // the process id
    std::string user;                     // the user name of the effective uid (or the uid as text)
    std::string started_at;               // ISO-8601 UTC: when the run wrote its first row
    std::optional<std::string> ended_at;  // ISO-8601 UTC: when the run was closed, if it was
    RunOutcome outcome = RunOutcome::Running;
    std::int64_t stages_completed = 0;  // Completed rows the run wrote
    std::int64_t stages_failed = 0;     // Failed rows the run wrote
};

// Which history rows to read. Empty fields do not filter.
struct HistoryFilter {
    std::optional<std::string> stage{};   // only this stage (and the pipeline-wide clears)
    std::optional<std::string> run_id{};  // only rows written by this run
    std::optional<Status> status{};       // only rows with this (reported) status
    // Only rows whose timestamp is >= since / < until. ISO-8601 UTC text, a prefix of the
    // stored form: "2026-11-27", "2026-11-27T06:37", "2026-11-27T06:37:48.123Z", ...
    std::optional<std::string> since{};
    std::optional<std::string> until{};
    std::optional<std::int64_t> limit{};  // at most this many rows (the oldest first)
    // Rows of every pipeline in the database, not only the manager's (for archiving).
    bool all_pipelines = false;
    // Only rows whose id is below this (for paging backwards: pass the smallest id of the
    // previous page). Default: no bound.
    std::optional<std::int64_t> before_id{};
    // Rows newest first (id descending) instead of oldest first; `limit` then keeps the
    // newest. With `before_id`, a page of the newest rows costs the same however long the
    // history is (no filter on status or time: those may scan). Default: false.
    bool newest_first = false;
};

}  // namespace checkpoint
