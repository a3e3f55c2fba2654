// checkpoint_bench — what every scenario file shares: the run's settings and sizes, the
// context a scenario fills its rows into, helpers, and the scenario table.
//
// A scenario is one file (scenario_<name>.cpp) that registers itself with one line:
//
//   const bool registered = register_scenario({"name", order, {{"row_key", "label"}}, run});
//
// and is listed in tools/CMakeLists.txt. `--only name` selects it; its rows go to the goals
// table when main.cpp lists their keys there (goal_rows), otherwise to the second table.
#pragma once

#include "baselines.hpp"
#include "harness.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#ifndef CHECKPOINT_BENCH_CHECKPOINTCTL
#define CHECKPOINT_BENCH_CHECKPOINTCTL ""
#endif
#ifndef CHECKPOINT_BENCH_OPEN
#define CHECKPOINT_BENCH_OPEN ""
#endif
#ifndef CHECKPOINT_BENCH_RAW_OPEN
#define CHECKPOINT_BENCH_RAW_OPEN ""
#endif

namespace bench {

using checkpoint::CheckpointManager;
using checkpoint::Durability;
namespace fs = std::filesystem;

constexpr int busy_timeout_ms = 30'000;  // the library's default Options::busy_timeout
constexpr int thread_count = 8;
constexpr int process_count = 8;

// ---- Sizes of the two modes ----

struct Sizes {
    int repetitions;          // of the in-process comparisons
    int durable_saves;        // per repetition, ours and raw SQLite (Full)
    int original_saves;       // per repetition, the original design made durable
    int normal_saves;         // per repetition, ours and raw SQLite (Normal)
    int has_stages;           // stages in the database / files in the directory
    int lookups;              // per repetition and variant
    int single_thread_saves;  // per repetition
    int saves_per_thread;     // per repetition, 8 threads
    int saves_per_process;    // per repetition, 8 processes
    int process_repetitions;
    int spawn_repetitions;  // processes per variant for "a new process checks one stage"
    int original_clear_stages;
    int original_clear_repetitions;
    int clear_rows;  // checkpoints in the database for clear_checkpoints and dump
    int clear_repetitions;
    int dump_repetitions;
    int csv_rows;  // checkpoints in the database for the CSV dump against sqlite3 -csv
    int csv_repetitions;
    int output_repetitions;
    long small_output_bytes;  // stored in the database (<= Options::max_inline_output)
    long large_output_bytes;  // stored as a file
};

// Full mode: a few minutes on a 2-core machine, most of it filling 1,000,000 checkpoints.
extern const Sizes full_sizes;
// Quick mode (CI): under 30 s; the same tables, small counts.
extern const Sizes quick_sizes;

// ---- The run: settings, directories, results ----

struct Settings {
    bool quick = false;
    fs::path parent = ".";  // --dir: where the fresh working directory is made
    std::string markdown;
    std::string checkpointctl = CHECKPOINT_BENCH_CHECKPOINTCTL;
    std::string sqlite3_shell = "sqlite3";  // --sqlite3: the shell for the CSV baseline
    // The two programs of the new-process row (built alongside).
    std::string open_program = CHECKPOINT_BENCH_OPEN;
    std::string raw_open_program = CHECKPOINT_BENCH_RAW_OPEN;
    std::set<std::string> only;
    bool keep = false;
    std::string profile;
    long count = 100'000;
    long stages = 100'000;
    std::optional<double> dump_deadline;  // seconds; default 30 (quick: 5)
    std::optional<int> clear_rows;        // overrides Sizes::clear_rows
};

struct Context {
    Settings settings;
    Sizes sizes{};
    fs::path root;  // the fresh working directory: everything is made in it
    std::string self;
    std::map<std::string, Row> rows;
    std::vector<std::string> errors;
    int next_directory = 0;
    // Databases filled once and shared by scenarios (see filled_database()).
    std::map<std::string, fs::path> filled;

    bool selected(const std::string& scenario) const {
        return settings.only.empty() || settings.only.count(scenario) != 0;
    }
    fs::path fresh(const std::string& name);
    // Flushes what the previous step left dirty, so the kernel's write-back does not land in
    // the next measurement. Skipped in quick mode, whose timing is not asserted: syncfs also
    // flushes everything else on the filesystem, which can take seconds on a busy machine.
    void settle() const;
    Row& row(const std::string& key) { return rows[key]; }
    // A directory whose database holds `rows` checkpoints (stage_0000000 ...), saved through
    // the library (Durability::Normal, one manager); filled on the first call for that name.
    fs::path filled_database(const std::string& name, long rows);
};

// ---- The scenario table ----

struct Scenario {
    std::string name;  // for --only
    int order;         // scenarios run in increasing order
    // The rows it fills: key and the label shown when the measurement fails before it is
    // labelled.
    std::vector<std::pair<std::string, std::string>> rows;
    std::function<void(Context&)> run;
};

// Adds `scenario` to the table (call from a namespace-scope initializer); returns true.
bool register_scenario(Scenario scenario);
// Every registered scenario, in order.
const std::vector<Scenario>& scenarios();

// ---- Helpers ----

// A progress line on stderr, with the seconds since the start.
void note(const std::string& text);

// The defaults as shipped (default Options: its logger too), with `durability`.
checkpoint::Options options(Durability durability);

// A stage name with the number `i`, in `buffer`: no allocation inside the timed loops.
struct StageName {
    char buffer[64];
    std::string_view operator()(const char* prefix, long i) {
        const int length = std::snprintf(buffer, sizeof buffer, "%s%07ld", prefix, i);
        return {buffer, static_cast<std::size_t>(length)};
    }
};

std::string stage_name(long i);

// Seconds per operation of `count` calls of op(i).
template <typename Op>
double per_operation(long count, Op&& op) {
    const auto started = Clock::now();
    for (long i = 0; i < count; ++i) op(i);
    return seconds_since(started) / static_cast<double>(count);
}

// Creates the checkpoint database of `directory` by opening a CheckpointManager once, and
// returns the database file. The manager only opens, so it records no run.
fs::path make_database(const fs::path& directory);

std::int64_t query_int(const fs::path& database, const std::string& sql);

// Completed stages that are current (not cleared since): what has_checkpoint() says true for.
constexpr const char* sql_current_completed =
    "SELECT count(*) FROM stage_heads h JOIN pipelines p ON p.pipeline = h.pipeline "
    "WHERE h.status = 'completed' AND h.head_id > p.cleared_id";

// Throws Failure ("data lost or wrong") unless got == expected.
void expect_count(const std::string& what, std::int64_t got, std::int64_t expected);

std::size_t count_files(const fs::path& directory);

std::string per_op_and_rate(double seconds, const char* unit);

// "1 MiB", "64 KiB".
std::string size_label(long bytes);

using Samples = std::vector<double>;

// Fills a row comparing per-operation times: the medians of ours and of the baseline, and the
// median of the paired ratios ours / baseline; with goal_max, the goal "≤ goal_max×", met
// when that ratio is <= goal_max.
void fill_time_ratio(Row& row, const Samples& ours, const Samples& baseline, const char* unit,
                     std::optional<double> goal_max = {});

// Fills a row where ours (times) must be `min_speedup` times faster than the baseline.
void fill_speedup(Row& row, const Samples& ours, const Samples& baseline, const char* unit,
                  double min_speedup);

// "≤ 1.05×".
std::string at_most(double ratio);

// ---- Worker and profile modes (workers.cpp, profile.cpp) ----

// checkpoint_bench --worker MODE ARGS...: the child processes the scenarios start.
int worker_main(int argc, char** argv);
// checkpoint_bench --profile OP: one operation in a loop.
int profile_main(Context& ctx);

}  // namespace bench
