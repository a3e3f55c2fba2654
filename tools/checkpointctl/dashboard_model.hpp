// What the dashboard and the HTML report show, read through the library's public API only
// (so it works on every backend): pipeline summaries, stages with their last duration, a
// run's timeline, a page of the history.
#pragma once

#include <checkpoint/checkpoint_manager.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace checkpointctl::dashboard {

// Milliseconds since the epoch of a stored timestamp ("2026-11-27T06:37:48.123Z", or a
// prefix of it down to the second); std::nullopt when it is not one.
std::optional<std::int64_t> epoch_ms(std::string_view timestamp);
// Now, in the stored form.
std::string now_timestamp();
// `ms` since the epoch in the stored form.
std::string timestamp_of(std::int64_t ms);

// A stage's current state, and how long its last completed or failed attempt took.
struct StageView {
    checkpoint::Checkpoint state;  // CheckpointManager::stages()
    std::optional<std::int64_t> last_duration_ms;
};
std::vector<StageView> stage_views(const checkpoint::CheckpointManager& manager);

// One pipeline at a glance.
struct PipelineSummary {
    std::string pipeline;
    std::int64_t stage_count = 0;
    std::map<std::string, std::int64_t> stages_by_status;  // reported status ("stale" too)
    std::map<std::string, std::int64_t> runs_by_outcome;
    std::optional<checkpoint::Run> last_run;
    std::optional<std::string> last_completed_at;  // the timestamp of its last Completed row
    std::vector<StageView> stages;
};
PipelineSummary summarize(const checkpoint::CheckpointManager& manager);

// The newest Completed row of the pipeline, if any.
std::optional<std::string> last_completed_at(const checkpoint::CheckpointManager& manager);

// One bar of a run's timeline: a stage's last attempt in the run.
struct TimelineBar {
    std::string stage;
    std::string status;         // completed, failed, started (still running), incomplete
    std::int64_t start_ms = 0;  // since the run started
    std::int64_t end_ms = 0;    // since the run started; now for a running stage
    std::string start;          // timestamps of both ends
    std::string end;
    std::optional<std::int64_t> duration_ms;  // as recorded (or elapsed, while running)
    std::int64_t attempts = 0;                // attempts of the stage in this run
    std::string message;                      // a failure's message
};

struct Timeline {
    checkpoint::Run run;
    std::int64_t length_ms = 0;     // from the run's start to its end (or now, or its last row)
    std::vector<TimelineBar> bars;  // in the order the stages first appear in the run
    std::int64_t rows = 0;          // history rows the run wrote
    std::vector<checkpoint::Checkpoint> failures;  // its Failed rows (at most max_failures)
    std::vector<checkpoint::Checkpoint> recent;    // its last rows (at most `keep_rows`)
};
inline constexpr std::size_t max_failures = 1000;

// The run's timeline, streaming its rows once (constant memory but for the bars and the
// rows kept). std::nullopt when the pipeline has no such run.
std::optional<Timeline> run_timeline(const checkpoint::CheckpointManager& manager,
                                     const std::string& run_id, std::size_t keep_rows = 0);

// A page of the history, newest first.
struct HistoryQuery {
    std::optional<std::string> stage;
    std::optional<checkpoint::Status> status;
    std::optional<std::string> run_id;
    std::optional<std::int64_t> before_id;
    std::int64_t limit = 50;
};
inline constexpr std::int64_t max_history_limit = 1000;

struct HistoryPage {
    std::vector<checkpoint::Checkpoint> rows;
    std::optional<std::int64_t> next_before;  // pass as before_id for the next page
};
HistoryPage history_page(const checkpoint::CheckpointManager& manager, const HistoryQuery& query);

}  // namespace checkpointctl::dashboard
