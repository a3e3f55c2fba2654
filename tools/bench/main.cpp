// checkpoint_bench — measures checkpoint against raw SQLite, the original file-based design
// and the disk itself, in one run, on one disk, and prints one table.
//
//   checkpoint_bench [--quick] [--dir DIR] [--markdown FILE] [--checkpointctl PATH]
//                    [--only LIST] [--keep] [--clear-rows N] [--dump-deadline S]
//   checkpoint_bench --profile OPERATION [--count N] [--stages N] [--dir DIR]
//   checkpoint_bench --worker MODE ARGS...      (internal: the child processes it starts)
//
// Every comparison runs ours and its baseline in the same run, on the same filesystem,
// interleaved repetition by repetition, and reports medians; a ratio is the median of the
// per-repetition ratios. See README.md for what each row compares. Exit status: 0 when every
// measurement ran and no data was lost or wrong, whether the goals were met or not; 1 on a
// benchmark error or lost data; 2 on bad usage. Timing never fails the run.
#include "baselines.hpp"
#include "harness.hpp"
#include "record_writer.hpp"

#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/keys.hpp>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <functional>
#include <iostream>
#include <latch>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#ifndef CHECKPOINT_BENCH_CHECKPOINTCTL
#define CHECKPOINT_BENCH_CHECKPOINTCTL ""
#endif

namespace {

using bench::Clock;
using bench::Failure;
using bench::Row;
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
    int output_repetitions;
    long small_output_bytes;  // stored in the database (<= Options::max_inline_output)
    long large_output_bytes;  // stored as a file
};

// Full mode: a few minutes on a 2-core machine, most of it filling 1,000,000 checkpoints.
// Many short repetitions: machine noise then hits ours and the baselines alike.
constexpr Sizes full_sizes{.repetitions = 15,
                           .durable_saves = 100,
                           .original_saves = 40,
                           .normal_saves = 1000,
                           .has_stages = 100'000,
                           .lookups = 10'000,
                           .single_thread_saves = 100,
                           .saves_per_thread = 40,
                           .saves_per_process = 100,
                           .process_repetitions = 7,
                           .spawn_repetitions = 60,
                           .original_clear_stages = 20'000,
                           .original_clear_repetitions = 3,
                           .clear_rows = 1'000'000,
                           .clear_repetitions = 15,
                           .dump_repetitions = 3,
                           .output_repetitions = 5,
                           .small_output_bytes = 1 << 20,
                           .large_output_bytes = 100 << 20};
// Quick mode (CI): under 30 s; the same table, small counts.
constexpr Sizes quick_sizes{.repetitions = 3,
                            .durable_saves = 20,
                            .original_saves = 5,
                            .normal_saves = 200,
                            .has_stages = 5'000,
                            .lookups = 2'000,
                            .single_thread_saves = 20,
                            .saves_per_thread = 5,
                            .saves_per_process = 10,
                            .process_repetitions = 1,
                            .spawn_repetitions = 5,
                            .original_clear_stages = 1'000,
                            .original_clear_repetitions = 1,
                            .clear_rows = 10'000,
                            .clear_repetitions = 3,
                            .dump_repetitions = 1,
                            .output_repetitions = 1,
                            .small_output_bytes = 64 << 10,
                            .large_output_bytes = 2 << 20};

// ---- Helpers ----

void note(const std::string& text) {
    static const auto started = Clock::now();
    std::fprintf(stderr, "[checkpoint_bench %6.1f s] %s\n", bench::seconds_since(started),
                 text.c_str());
}

// The library logs every save at info. The benchmark keeps that cost (the logger is at info
// level, so each message is formatted) but sends the lines nowhere.
std::shared_ptr<spdlog::logger> quiet_logger() {
    static const auto logger = [] {
        auto made = std::make_shared<spdlog::logger>(
            "checkpoint_bench", std::make_shared<spdlog::sinks::null_sink_mt>());
        made->set_level(spdlog::level::info);
        return made;
    }();
    return logger;
}

checkpoint::Options options(Durability durability) {
    checkpoint::Options result;
    result.durability = durability;
    result.logger = quiet_logger();
    return result;
}

// A stage name with the number `i`, in `buffer`: no allocation inside the timed loops.
struct StageName {
    char buffer[64];
    std::string_view operator()(const char* prefix, long i) {
        const int length = std::snprintf(buffer, sizeof buffer, "%s%07ld", prefix, i);
        return {buffer, static_cast<std::size_t>(length)};
    }
};

std::string stage_name(long i) {
    StageName name;
    return std::string(name("stage_", i));
}

// Seconds per operation of `count` calls of op(i).
template <typename Op>
double per_operation(long count, Op&& op) {
    const auto started = Clock::now();
    for (long i = 0; i < count; ++i) op(i);
    return bench::seconds_since(started) / static_cast<double>(count);
}

// Creates the checkpoint database of `directory` by opening a CheckpointManager once, and
// returns the database file. The manager only opens, so it records no run.
fs::path make_database(const fs::path& directory) {
    CheckpointManager creator(directory, options(Durability::Full));
    return creator.database_path();
}

std::int64_t query_int(const fs::path& database, const std::string& sql) {
    bench::RawDatabase raw(database, true, busy_timeout_ms);
    return raw.query_int(sql);
}

// Completed stages that are current (not cleared since): what has_checkpoint() says true for.
constexpr const char* sql_current_completed =
    "SELECT count(*) FROM stage_heads h JOIN pipelines p ON p.pipeline = h.pipeline "
    "WHERE h.status = 'completed' AND h.head_id > p.cleared_id";

void expect_count(const std::string& what, std::int64_t got, std::int64_t expected) {
    if (got != expected) {
        throw Failure(what + ": expected " + std::to_string(expected) + ", found " +
                      std::to_string(got) + " — data lost or wrong");
    }
}

std::size_t count_files(const fs::path& directory) {
    std::size_t count = 0;
    for (const auto& entry : fs::directory_iterator(directory)) {
        (void)entry;
        ++count;
    }
    return count;
}

std::string per_op_and_rate(double seconds, const char* unit) {
    return bench::format_duration(seconds) + " (" + bench::format_rate(1 / seconds, unit) + ")";
}

// ---- The run: settings, directories, results ----

struct Settings {
    bool quick = false;
    fs::path parent = ".";  // --dir: where the fresh working directory is made
    std::string markdown;
    std::string checkpointctl = CHECKPOINT_BENCH_CHECKPOINTCTL;
    std::set<std::string> only;
    bool keep = false;
    std::string profile;
    long count = 100'000;
    long stages = 100'000;
    std::optional<double> dump_deadline;  // seconds; default 30 (quick: 5)
    std::optional<int> clear_rows;        // overrides Sizes::clear_rows
};

const std::vector<std::string> scenario_names = {
    "saves",          "has",   "threads", "processes", "open",
    "original-clear", "clear", "dump",    "outputs",   "encryption"};

struct Context {
    Settings settings;
    Sizes sizes{};
    fs::path root;  // the fresh working directory: everything is made in it
    std::string self;
    std::map<std::string, Row> rows;
    std::vector<std::string> errors;
    int next_directory = 0;

    bool selected(const std::string& scenario) const {
        return settings.only.empty() || settings.only.count(scenario) != 0;
    }
    fs::path fresh(const std::string& name) {
        const fs::path made = root / (std::to_string(++next_directory) + "-" + name);
        fs::create_directories(made);
        return made;
    }
    // Flushes what the previous step left dirty, so the kernel's write-back does not land in
    // the next measurement. Skipped in quick mode, whose timing is not asserted: syncfs also
    // flushes everything else on the filesystem, which can take seconds on a busy machine.
    void settle() const {
        if (!settings.quick) bench::sync_filesystem(root);
    }
    Row& row(const std::string& key) { return rows[key]; }
};

// What each row measures, for a row whose measurement failed before it was labelled.
const std::map<std::string, std::string> default_labels = {
    {"save_full", "durable save (Full), 1 thread vs raw SQLite WAL/FULL"},
    {"save_normal", "save with Durability::Normal vs raw SQLite WAL/NORMAL"},
    {"save_vs_original", "durable save vs original design made durable"},
    {"save_vs_original_plain", "durable save vs original design as it was"},
    {"save_vs_fdatasync", "durable save vs raw write+fdatasync"},
    {"has_hit_raw", "has_checkpoint hit vs raw prepared point lookup"},
    {"has_miss_raw", "has_checkpoint miss vs raw prepared point lookup"},
    {"has_hit_original", "has_checkpoint hit vs original design file-exists check"},
    {"has_miss_original", "has_checkpoint miss vs original design file-exists check"},
    {"threads", "durable saves, 8 threads sharing one manager vs 1 thread"},
    {"processes", "8 processes saving durably into one directory vs raw SQLite"},
    {"open", "new process: open dir, check one stage, exit vs raw SQLite"},
    {"open_persist", "new process vs raw SQLite with PERSIST_WAL"},
    {"clear_vs_original", "clearing stages vs original design made durable"},
    {"clear_vs_original_plain", "clearing stages vs original design as it was"},
    {"clear_million", "clear_checkpoints with many checkpoints vs one durable save"},
    {"dump_rate", "checkpointctl dump rate"},
    {"dump_memory", "checkpointctl dump peak memory"},
    {"output_small", "save with a 1 MiB output vs writing it to a file durably"},
    {"output_large", "save with a 100 MiB output vs writing it to a file durably"},
    {"load_large", "load_output of 100 MiB vs reading the file"},
    {"output_large_key", "save with a 100 MiB output, with a key vs without"},
    {"load_large_key", "load_output of 100 MiB, with a key vs without"},
    {"save_normal_key", "save with Durability::Normal, with a key vs without"}};

// Records `failure` on each row of `keys` that has no figures yet, and in the error list.
void record_failure(Context& ctx, const std::vector<std::string>& keys, const std::string& what) {
    ctx.errors.push_back(what);
    note("ERROR: " + what);
    for (const std::string& key : keys) {
        Row& row = ctx.row(key);
        if (row.operation.empty()) row.operation = default_labels.at(key);
        if (row.ours.empty()) row.error = what;
    }
}

using Samples = std::vector<double>;

// Fills a row comparing per-operation times: the medians of ours and of the baseline, and the
// median of the paired ratios ours / baseline; met when that ratio is <= goal_max.
void fill_time_ratio(Row& row, const Samples& ours, const Samples& baseline, const char* unit,
                     std::optional<double> goal_max = {}) {
    row.ours = per_op_and_rate(bench::median(ours), unit);
    row.baseline = per_op_and_rate(bench::median(baseline), unit);
    const double ratio = bench::paired_ratio(ours, baseline);
    row.ratio = bench::format_ratio(ratio);
    if (goal_max) row.met = ratio <= *goal_max;
}

// Fills a row where ours (times) must be `min_speedup` times faster than the baseline.
void fill_speedup(Row& row, const Samples& ours, const Samples& baseline, const char* unit,
                  double min_speedup) {
    row.ours = unit ? per_op_and_rate(bench::median(ours), unit)
                    : bench::format_duration(bench::median(ours));
    row.baseline = unit ? per_op_and_rate(bench::median(baseline), unit)
                        : bench::format_duration(bench::median(baseline));
    const double speedup = bench::paired_ratio(baseline, ours);
    row.ratio = bench::format_ratio(speedup) + " faster";
    row.goal = "≥ " + bench::format_count(min_speedup) + "× faster";
    row.met = speedup >= min_speedup;
}

// ---- Scenario: single-thread saves (Full and Normal) against raw SQLite, the original
// design and the disk ----

void bench_saves(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("saves: durable (Full) saves against raw SQLite, the original design and fdatasync");
    CheckpointManager ours(ctx.fresh("saves-ours-full"), options(Durability::Full));
    bench::RawCheckpointWriter raw(make_database(ctx.fresh("saves-raw-full")), true,
                                   busy_timeout_ms);
    bench::OriginalCheckpointManager durable(ctx.fresh("saves-original-durable"), true);
    bench::OriginalCheckpointManager plain(ctx.fresh("saves-original-plain"), false);
    bench::FdatasyncLoop disk(ctx.fresh("saves-fdatasync") / "record");
    long ours_saved = 0, raw_saved = 0, durable_saved = 0, plain_saved = 0;
    StageName name;
    const auto full = bench::interleave(
        z.repetitions,
        {[&] {
             return per_operation(z.durable_saves, [&](long) {
                 ours.save_checkpoint(name("stage_", ours_saved++));
             });
         },
         [&] {
             return per_operation(z.durable_saves,
                                  [&](long) { raw.save(name("stage_", raw_saved++)); });
         },
         [&] {
             return per_operation(z.original_saves, [&](long) {
                 durable.save_checkpoint(name("stage_", durable_saved++));
             });
         },
         [&] {
             return per_operation(z.durable_saves, [&](long) {
                 plain.save_checkpoint(name("stage_", plain_saved++));
             });
         },
         [&] { return per_operation(z.durable_saves, [&](long) { disk.write_and_sync(); }); }},
        [&] { ctx.settle(); });

    expect_count("ours (Full): completed rows",
                 query_int(ours.database_path(),
                           "SELECT count(*) FROM checkpoints WHERE status = 'completed'"),
                 ours_saved);
    expect_count("ours (Full): completed stages",
                 query_int(ours.database_path(), sql_current_completed), ours_saved);
    expect_count("raw SQLite (FULL): rows",
                 raw.database().query_int("SELECT count(*) FROM checkpoints"), raw_saved);
    expect_count("original design (durable): files",
                 static_cast<std::int64_t>(count_files(durable.directory())), durable_saved);
    expect_count("original design (as it was): files",
                 static_cast<std::int64_t>(count_files(plain.directory())), plain_saved);

    Row& save = ctx.row("save_full");
    save.operation = "durable save (Full), 1 thread vs raw SQLite insert+commit WAL/FULL";
    fill_time_ratio(save, full[0], full[1], "saves/s", 1.10);
    save.goal = "≤ 1.10×";

    Row& original = ctx.row("save_vs_original");
    original.operation = "durable save vs original design made durable (file+dir fsync)";
    fill_speedup(original, full[0], full[2], "saves/s", 4);

    Row& as_it_was = ctx.row("save_vs_original_plain");
    as_it_was.operation = "durable save vs original design as it was (no fsync, not durable)";
    fill_time_ratio(as_it_was, full[0], full[3], "saves/s");
    as_it_was.goal = "— (info)";

    Row& limit = ctx.row("save_vs_fdatasync");
    limit.operation = "durable save vs raw 100-byte write+fdatasync (the disk's limit)";
    fill_time_ratio(limit, full[0], full[4], "syncs/s");
    limit.goal = "— (info)";

    note("saves: Durability::Normal against raw SQLite WAL/NORMAL");
    ctx.settle();
    CheckpointManager ours_normal(ctx.fresh("saves-ours-normal"), options(Durability::Normal));
    bench::RawCheckpointWriter raw_normal(make_database(ctx.fresh("saves-raw-normal")), false,
                                          busy_timeout_ms);
    long ours_normal_saved = 0, raw_normal_saved = 0;
    const auto normal =
        bench::interleave(z.repetitions,
                          {[&] {
                               return per_operation(z.normal_saves, [&](long) {
                                   ours_normal.save_checkpoint(name("stage_", ours_normal_saved++));
                               });
                           },
                           [&] {
                               return per_operation(z.normal_saves, [&](long) {
                                   raw_normal.save(name("stage_", raw_normal_saved++));
                               });
                           }},
                          [&] { ctx.settle(); });
    expect_count("ours (Normal): completed stages",
                 query_int(ours_normal.database_path(), sql_current_completed), ours_normal_saved);
    expect_count("raw SQLite (NORMAL): rows",
                 raw_normal.database().query_int("SELECT count(*) FROM checkpoints"),
                 raw_normal_saved);
    Row& save_normal = ctx.row("save_normal");
    save_normal.operation = "save with Durability::Normal vs raw SQLite WAL/NORMAL";
    fill_time_ratio(save_normal, normal[0], normal[1], "saves/s", 1.5);
    save_normal.goal = "≤ 1.5×";
}

// ---- Scenario: has_checkpoint hit and miss against the raw point lookup and the original
// design's file-exists check ----

void bench_has(Context& ctx) {
    const Sizes& z = ctx.sizes;
    const std::string stages = bench::format_count(z.has_stages);
    note("has: filling " + stages + " stages (library, Durability::Normal) and " + stages +
         " files (original design)");
    const fs::path dir = ctx.fresh("has-ours");
    {
        CheckpointManager filler(dir, options(Durability::Normal));
        for (long i = 0; i < z.has_stages; ++i) filler.save_checkpoint(stage_name(i));
    }
    bench::OriginalCheckpointManager original(ctx.fresh("has-original"), false);
    for (long i = 0; i < z.has_stages; ++i) original.save_checkpoint(stage_name(i));
    ctx.settle();

    const CheckpointManager ours(dir, options(Durability::Full));
    bench::RawLookup raw(ours.database_path());
    std::mt19937_64 random(20261127);
    std::vector<std::string> hits, misses;
    for (int i = 0; i < z.lookups; ++i) {
        hits.push_back(stage_name(static_cast<long>(random() % z.has_stages)));
        // Same shape, never saved: the index is searched just as deep.
        misses.push_back(stage_name(z.has_stages + static_cast<long>(random() % z.has_stages)));
    }
    auto lookups = [&](const std::vector<std::string>& keys, bool expected, const char* who,
                       auto&& has) {
        return [&keys, expected, who, has] {
            const auto started = Clock::now();
            long wrong = 0;
            for (const std::string& key : keys) wrong += has(key) != expected;
            const double seconds = bench::seconds_since(started) / static_cast<double>(keys.size());
            if (wrong != 0) {
                throw Failure(
                    std::string(who) + ": " + std::to_string(wrong) + " lookups said " +
                    (expected ? "missing for a saved stage" : "found for a missing stage"));
            }
            return seconds;
        };
    };
    auto ours_has = [&](const std::string& key) { return ours.has_checkpoint(key); };
    auto raw_has = [&](const std::string& key) { return raw.has(key); };
    auto file_has = [&](const std::string& key) { return original.has_checkpoint(key); };
    const std::vector<std::function<double()>> variants = {
        lookups(hits, true, "ours (hit)", ours_has),
        lookups(hits, true, "raw SQLite (hit)", raw_has),
        lookups(hits, true, "original design (hit)", file_has),
        lookups(misses, false, "ours (miss)", ours_has),
        lookups(misses, false, "raw SQLite (miss)", raw_has),
        lookups(misses, false, "original design (miss)", file_has)};
    note("has: " + bench::format_count(z.lookups) + " lookups per variant and repetition");
    for (const auto& variant : variants) variant();  // warm-up: caches as a resumed run sees them
    const auto samples = bench::interleave(z.repetitions, variants);

    const char* kinds[] = {"hit", "miss"};
    for (int kind = 0; kind < 2; ++kind) {
        const Samples& ours_s = samples[kind * 3];
        const Samples& raw_s = samples[kind * 3 + 1];
        const Samples& file_s = samples[kind * 3 + 2];
        Row& vs_raw = ctx.row(std::string("has_") + kinds[kind] + "_raw");
        vs_raw.operation = "has_checkpoint " + std::string(kinds[kind]) + ", " + stages +
                           " stages vs raw prepared point lookup";
        fill_time_ratio(vs_raw, ours_s, raw_s, "lookups/s", 1.5);
        vs_raw.goal = "≤ 1.5×";
        Row& vs_file = ctx.row(std::string("has_") + kinds[kind] + "_original");
        vs_file.operation = "has_checkpoint " + std::string(kinds[kind]) + ", " + stages +
                            " stages vs original design file-exists check";
        fill_time_ratio(vs_file, ours_s, file_s, "lookups/s", 1.0);
        vs_file.goal = "≤ 1.00×";
    }
}

// ---- Scenario: 8 threads sharing one manager ----

void bench_threads(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("threads: durable saves from 1 thread and from 8 threads sharing one manager");
    CheckpointManager shared(ctx.fresh("threads"), options(Durability::Full));
    std::atomic<long> next{0};
    auto save_next = [&] {
        StageName name;
        shared.save_checkpoint(name("stage_", next.fetch_add(1)));
    };
    auto single = [&] {
        const auto started = Clock::now();
        for (int i = 0; i < z.single_thread_saves; ++i) save_next();
        return z.single_thread_saves / bench::seconds_since(started);
    };
    auto many = [&] {
        std::latch ready(thread_count), go(1);
        std::vector<std::exception_ptr> failures(thread_count);
        std::vector<std::thread> threads;
        for (int t = 0; t < thread_count; ++t) {
            threads.emplace_back([&, t] {
                ready.count_down();
                go.wait();
                try {
                    for (int i = 0; i < z.saves_per_thread; ++i) save_next();
                } catch (...) {
                    failures[t] = std::current_exception();
                }
            });
        }
        ready.wait();
        const auto started = Clock::now();
        go.count_down();
        for (auto& thread : threads) thread.join();
        const double seconds = bench::seconds_since(started);
        for (const auto& failure : failures) {
            if (failure) std::rethrow_exception(failure);
        }
        return thread_count * z.saves_per_thread / seconds;
    };
    const auto samples = bench::interleave(z.repetitions, {single, many}, [&] { ctx.settle(); });
    expect_count("ours (8 threads): completed stages",
                 query_int(shared.database_path(), sql_current_completed), next.load());
    Row& row = ctx.row("threads");
    const double one = bench::median(samples[0]);
    const double eight = bench::median(samples[1]);
    const double ratio = bench::paired_ratio(samples[1], samples[0]);
    row.operation = "durable saves, 8 threads sharing one manager vs 1 thread";
    row.ours = bench::format_rate(eight, "saves/s");
    row.baseline = bench::format_rate(one, "saves/s");
    row.ratio = bench::format_ratio(ratio);
    row.goal = "≥ 3×";
    row.met = ratio >= 3;
}

// ---- Scenario: 8 processes saving into one directory ----

// Starts one worker per argv, waits until all have opened their database, releases them at
// once and returns the total rate: saves / (last "done" - release). Throws Failure when a
// worker fails or reports a wrong count.
double run_workers(const std::vector<std::vector<std::string>>& argvs, long saves_per_worker) {
    int ready_pipe[2], go_pipe[2];
    if (::pipe2(ready_pipe, O_CLOEXEC) != 0 || ::pipe2(go_pipe, O_CLOEXEC) != 0)
        throw Failure(std::string("pipe2: ") + std::strerror(errno));
    bench::Fd ready_read(ready_pipe[0]), ready_write(ready_pipe[1]);
    bench::Fd go_read(go_pipe[0]), go_write(go_pipe[1]);
    std::vector<pid_t> pids;
    for (const auto& argv : argvs)
        pids.push_back(bench::spawn(argv, go_read.get(), ready_write.get()));
    const auto spawned = Clock::now();
    go_read.reset();
    ready_write.reset();

    FILE* lines = ::fdopen(ready_read.release(), "r");
    std::size_t ready = 0, done = 0;
    std::vector<std::string> failures;
    Clock::time_point released{}, last_done{};
    char* line = nullptr;
    std::size_t capacity = 0;
    while (::getline(&line, &capacity, lines) > 0) {
        const std::string text(line);
        if (text.rfind("ready", 0) == 0) {
            if (++ready == argvs.size()) {
                released = Clock::now();
                go_write.reset();  // every worker reads EOF: go
            }
        } else if (text.rfind("done ", 0) == 0) {
            ++done;
            last_done = Clock::now();
            if (std::stol(text.substr(5)) != saves_per_worker)
                failures.push_back("a worker reported " + text);
        } else {
            failures.push_back("worker: " + text);
            go_write.reset();  // let the others finish
        }
    }
    std::free(line);
    std::fclose(lines);
    for (const pid_t pid : pids) {
        const auto outcome = bench::wait_for(pid, spawned);
        if (outcome.exit_code != 0)
            failures.push_back("a worker ended with " + bench::describe(outcome));
    }
    if (done != argvs.size())
        failures.push_back(std::to_string(done) + " of " + std::to_string(argvs.size()) +
                           " workers finished");
    if (!failures.empty()) {
        std::string all;
        for (const auto& failure : failures) all += (all.empty() ? "" : "; ") + failure;
        while (!all.empty() && all.back() == '\n') all.pop_back();
        throw Failure(all);
    }
    const double seconds = std::chrono::duration<double>(last_done - released).count();
    return static_cast<double>(argvs.size() * saves_per_worker) / seconds;
}

void bench_processes(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("processes: 8 processes saving durably into one directory, ours and raw SQLite");
    const fs::path ours_dir = ctx.fresh("processes-ours");
    const fs::path ours_db = make_database(ours_dir);
    const fs::path raw_db = make_database(ctx.fresh("processes-raw"));
    std::int64_t ours_expected = 0, raw_expected = 0;
    int repetition = 0;
    auto argvs = [&](const char* mode, const fs::path& target, const char* who) {
        std::vector<std::vector<std::string>> result;
        for (int p = 0; p < process_count; ++p) {
            result.push_back({ctx.self, "--worker", mode, target.string(),
                              std::to_string(z.saves_per_process),
                              std::string(who) + "_r" + std::to_string(repetition) + "_p" +
                                  std::to_string(p) + "_"});
        }
        return result;
    };
    const auto samples = bench::interleave(
        z.process_repetitions,
        {[&] {
             const double rate = run_workers(argvs("save", ours_dir, "ours"), z.saves_per_process);
             ours_expected += process_count * z.saves_per_process;
             expect_count(
                 "ours (8 processes): completed rows",
                 query_int(ours_db, "SELECT count(*) FROM checkpoints WHERE status = 'completed'"),
                 ours_expected);
             expect_count("ours (8 processes): completed stages",
                          query_int(ours_db, sql_current_completed), ours_expected);
             ++repetition;
             return rate;
         },
         [&] {
             const double rate = run_workers(argvs("raw-save", raw_db, "raw"), z.saves_per_process);
             raw_expected += process_count * z.saves_per_process;
             expect_count("raw SQLite (8 processes): rows",
                          query_int(raw_db, "SELECT count(*) FROM checkpoints"), raw_expected);
             ++repetition;
             return rate;
         }},
        [&] { ctx.settle(); });
    Row& row = ctx.row("processes");
    const double ours = bench::median(samples[0]);
    const double raw = bench::median(samples[1]);
    const double ratio = bench::paired_ratio(samples[0], samples[1]);
    row.operation = "8 processes saving durably into one directory vs raw SQLite BEGIN IMMEDIATE";
    row.ours = bench::format_rate(ours, "saves/s") + ", " + bench::format_count(ours_expected) +
               "/" + bench::format_count(ours_expected) + " rows";
    row.baseline = bench::format_rate(raw, "saves/s");
    row.ratio = bench::format_ratio(ratio);
    row.goal = "no error, nothing lost, ≥ 0.9×";
    row.met = ratio >= 0.9;
}

// ---- Scenario: a new process opens the directory, checks one stage and exits ----

void bench_open(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("open: a new process that opens the directory, checks one stage and exits");
    auto prepared = [&](const char* name) {
        const fs::path dir = ctx.fresh(name);
        CheckpointManager maker(dir, options(Durability::Full));
        maker.save_checkpoint("ingest");
        return dir;
    };
    const fs::path ours_dir = prepared("open-ours");
    const fs::path raw_db = prepared("open-raw") / "checkpoints.db";
    const fs::path persist_db = prepared("open-raw-persist") / "checkpoints.db";
    const bench::Fd null_in = bench::open_dev_null(O_RDONLY);
    const bench::Fd null_out = bench::open_dev_null(O_WRONLY);
    auto process = [&](std::vector<std::string> argv, const char* who) {
        return [&null_in, &null_out, argv = std::move(argv), who] {
            const auto outcome = bench::run_child(argv, null_in.get(), null_out.get());
            if (outcome.exit_code != 0) {
                throw Failure(std::string(who) + ": the checking process ended with " +
                              bench::describe(outcome) + " (0 = stage found)");
            }
            return outcome.wall_seconds;
        };
    };
    const std::vector<std::function<double()>> variants = {
        process({ctx.self, "--worker", "open-check", ours_dir.string(), "ingest"}, "ours"),
        process({ctx.self, "--worker", "raw-open-check", raw_db.string(), "ingest", "0"},
                "raw SQLite"),
        process({ctx.self, "--worker", "raw-open-check", persist_db.string(), "ingest", "1"},
                "raw SQLite with PERSIST_WAL")};
    for (const auto& variant : variants) variant();  // warm-up: page cache, dynamic loader
    const auto samples = bench::interleave(z.spawn_repetitions, variants);
    const double ours = bench::median(samples[0]);
    const double raw = bench::median(samples[1]);
    const double persist = bench::median(samples[2]);
    Row& row = ctx.row("open");
    row.operation = "new process: open dir, check one stage, exit vs raw SQLite C program";
    row.ours = bench::format_duration(ours) + "/process";
    row.baseline = bench::format_duration(raw) + "/process";
    const double ratio = bench::paired_ratio(samples[0], samples[1]);
    row.ratio = bench::format_ratio(ratio);
    row.goal = "≤ 1.3×";
    row.met = ratio <= 1.3;
    Row& info = ctx.row("open_persist");
    info.operation = "new process: same vs raw SQLite C program with SQLITE_FCNTL_PERSIST_WAL";
    info.ours = row.ours;
    info.baseline = bench::format_duration(persist) + "/process";
    info.ratio = bench::format_ratio(bench::paired_ratio(samples[0], samples[2]));
    info.goal = "— (info)";
}

// ---- Scenario: clearing 20,000 stages against the original design ----

void bench_original_clear(Context& ctx) {
    const Sizes& z = ctx.sizes;
    const long stages = z.original_clear_stages;
    note("original-clear: clearing " + bench::format_count(stages) +
         " stages, ours and the original design");
    const fs::path ours_dir = ctx.fresh("clear-ours");
    CheckpointManager filler(ours_dir, options(Durability::Normal));
    CheckpointManager ours(ours_dir, options(Durability::Full));
    const fs::path durable_dir = ctx.fresh("clear-original-durable");
    const fs::path plain_dir = ctx.fresh("clear-original-plain");
    auto original_clear = [&](const fs::path& dir, bool durable) {
        return [&ctx, &dir, durable, stages] {
            {  // untimed: the files to delete, flushed to disk
                bench::OriginalCheckpointManager maker(dir, false);
                for (long i = 0; i < stages; ++i) maker.save_checkpoint(stage_name(i));
            }
            ctx.settle();
            bench::OriginalCheckpointManager original(dir, durable);
            const auto started = Clock::now();
            original.clear_checkpoints();
            const double seconds = bench::seconds_since(started);
            expect_count("original design: files left after clear",
                         static_cast<std::int64_t>(count_files(dir)), 0);
            return seconds;
        };
    };
    const auto samples = bench::interleave(
        z.original_clear_repetitions,
        {[&] {
             for (long i = 0; i < stages; ++i) filler.save_checkpoint(stage_name(i));
             expect_count("ours: completed stages before clear",
                          query_int(ours.database_path(), sql_current_completed), stages);
             ctx.settle();
             const auto started = Clock::now();
             ours.clear_checkpoints();
             const double seconds = bench::seconds_since(started);
             expect_count("ours: completed stages after clear",
                          query_int(ours.database_path(), sql_current_completed), 0);
             if (ours.has_checkpoint(stage_name(0)))
                 throw Failure("ours: has_checkpoint is true after clear_checkpoints");
             return seconds;
         },
         original_clear(durable_dir, true), original_clear(plain_dir, false)},
        [&] { ctx.settle(); });
    const std::string count = bench::format_count(stages);
    Row& row = ctx.row("clear_vs_original");
    row.operation = "clearing " + count + " stages vs original design made durable";
    fill_speedup(row, samples[0], samples[1], nullptr, 1000);
    Row& info = ctx.row("clear_vs_original_plain");
    info.operation = "clearing " + count + " stages vs original design as it was (no fsync)";
    info.ours = bench::format_duration(bench::median(samples[0]));
    info.baseline = bench::format_duration(bench::median(samples[2]));
    info.ratio = bench::format_ratio(bench::paired_ratio(samples[2], samples[0])) + " faster";
    info.goal = "— (info)";
}

// ---- Scenario: saves that store an output, and loading it back ----

std::string size_label(long bytes) {
    return bytes >= (1 << 20) ? std::to_string(bytes >> 20) + " MiB"
                              : std::to_string(bytes >> 10) + " KiB";
}

void bench_outputs(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("outputs: saves with a " + size_label(z.small_output_bytes) + " and a " +
         size_label(z.large_output_bytes) + " output, against writing the bytes durably");
    // Default options: the small output fits the database (1 MiB limit), the large does not.
    CheckpointManager ours(ctx.fresh("outputs-ours"), options(Durability::Full));
    const fs::path files = ctx.fresh("outputs-files");
    long saves = 0;
    // Each save stores other bytes (its number in the first 8), as a real stage would.
    auto payload = [](long bytes) {
        std::string data(static_cast<std::size_t>(bytes), '\0');
        std::uint64_t state = 7;
        for (char& c : data)
            c = static_cast<char>((state = state * 6364136223846793005ULL + 1) >> 56);
        return data;
    };
    std::string small = payload(z.small_output_bytes);
    std::string large = payload(z.large_output_bytes);
    auto stamp = [&saves](std::string& data) { std::memcpy(data.data(), &saves, sizeof saves); };
    auto compare = [&](std::string& data, const char* key, const std::string& label) {
        const auto samples =
            bench::interleave(z.output_repetitions,
                              {[&] {
                                   stamp(data);
                                   checkpoint::SaveOptions save;
                                   save.output = data;
                                   const auto started = Clock::now();
                                   ours.save_checkpoint("output_" + label, save);
                                   const double seconds = bench::seconds_since(started);
                                   ++saves;
                                   return seconds;
                               },
                               [&] {
                                   stamp(data);
                                   const auto started = Clock::now();
                                   bench::write_file_durably(files, "output_" + label, data);
                                   const double seconds = bench::seconds_since(started);
                                   ++saves;
                                   return seconds;
                               }},
                              [&] { ctx.settle(); });
        Row& row = ctx.row(key);
        row.operation = "save with a " + label + " output (" +
                        (data.size() <= (1u << 20) ? "in the database" : "as a file") +
                        ") vs writing it to a file durably";
        fill_time_ratio(row, samples[0], samples[1], "saves/s");
        row.goal = "— (info)";
    };
    compare(small, "output_small", size_label(z.small_output_bytes));
    compare(large, "output_large", size_label(z.large_output_bytes));
    const std::string label = size_label(z.large_output_bytes);
    const auto loads = bench::interleave(
        z.output_repetitions,
        {[&] {
             const auto started = Clock::now();
             const std::optional<std::string> loaded = ours.load_output("output_" + label);
             const double seconds = bench::seconds_since(started);
             if (!loaded || loaded->size() != large.size())
                 throw Failure("load_output returned the wrong size");
             return seconds;
         },
         [&] {
             const auto started = Clock::now();
             const std::string loaded = bench::read_file(files / ("output_" + label));
             const double seconds = bench::seconds_since(started);
             if (loaded.size() != large.size()) throw Failure("read_file returned the wrong size");
             return seconds;
         }});
    Row& row = ctx.row("load_large");
    row.operation = "load_output of " + label + " (SHA-256 checked) vs reading the file";
    fill_time_ratio(row, loads[0], loads[1], "loads/s");
    row.goal = "— (info)";
}

// ---- Scenario: encryption at rest (Options::key_file) against the same without a key ----

void bench_encryption(Context& ctx) {
    const Sizes& z = ctx.sizes;
    note("encryption: " + size_label(z.large_output_bytes) +
         " outputs and Normal saves, with a key file against without");
    const fs::path key = ctx.fresh("encryption-key") / "bench.key";
    checkpoint::generate_key_file(key);
    checkpoint::Options keyed = options(Durability::Full);
    keyed.key_file = key;
    CheckpointManager plain(ctx.fresh("encryption-plain"), options(Durability::Full));
    CheckpointManager sealed(ctx.fresh("encryption-keyed"), keyed);
    std::string data(static_cast<std::size_t>(z.large_output_bytes), '\0');
    std::uint64_t state = 11;
    for (char& c : data) c = static_cast<char>((state = state * 6364136223846793005ULL + 1) >> 56);
    long saves = 0;
    auto save_with = [&](CheckpointManager& manager) {
        return [&] {
            std::memcpy(data.data(), &saves, sizeof saves);
            ++saves;
            checkpoint::SaveOptions save;
            save.output = data;
            const auto started = Clock::now();
            manager.save_checkpoint("large", save);
            return bench::seconds_since(started);
        };
    };
    const auto saved = bench::interleave(
        z.output_repetitions, {save_with(sealed), save_with(plain)}, [&] { ctx.settle(); });
    Row& save_row = ctx.row("output_large_key");
    save_row.operation = "save with a " + size_label(z.large_output_bytes) +
                         " output (a file): with a key (encrypted) vs without";
    fill_time_ratio(save_row, saved[0], saved[1], "saves/s");
    save_row.goal = "— (info)";
    auto load_with = [&](CheckpointManager& manager) {
        return [&] {
            const auto started = Clock::now();
            const std::optional<std::string> loaded = manager.load_output("large");
            const double seconds = bench::seconds_since(started);
            if (!loaded || loaded->size() != data.size())
                throw Failure("load_output returned the wrong size");
            return seconds;
        };
    };
    const auto loaded =
        bench::interleave(z.output_repetitions, {load_with(sealed), load_with(plain)});
    Row& load_row = ctx.row("load_large_key");
    load_row.operation = "load_output of " + size_label(z.large_output_bytes) +
                         " (SHA-256 checked): with a key (decrypted) vs without";
    fill_time_ratio(load_row, loaded[0], loaded[1], "loads/s");
    load_row.goal = "— (info)";
    // Normal saves with metadata and a message-free row: the keyed chain and two encrypted
    // fields against the unkeyed chain.
    checkpoint::Options keyed_normal = options(Durability::Normal);
    keyed_normal.key_file = key;
    CheckpointManager plain_normal(ctx.fresh("encryption-plain-normal"),
                                   options(Durability::Normal));
    CheckpointManager sealed_normal(ctx.fresh("encryption-keyed-normal"), keyed_normal);
    StageName name;
    long plain_saved = 0, sealed_saved = 0;
    const auto normal = bench::interleave(
        z.repetitions,
        {[&] {
             return per_operation(z.normal_saves, [&](long) {
                 checkpoint::SaveOptions save;
                 save.metadata = {{"rows", sealed_saved}};
                 sealed_normal.save_checkpoint(name("stage_", sealed_saved++), save);
             });
         },
         [&] {
             return per_operation(z.normal_saves, [&](long) {
                 checkpoint::SaveOptions save;
                 save.metadata = {{"rows", plain_saved}};
                 plain_normal.save_checkpoint(name("stage_", plain_saved++), save);
             });
         }},
        [&] { ctx.settle(); });
    Row& normal_row = ctx.row("save_normal_key");
    normal_row.operation = "save with metadata, Durability::Normal: with a key vs without";
    fill_time_ratio(normal_row, normal[0], normal[1], "saves/s");
    normal_row.goal = "— (info)";
}

// ---- Scenarios: clear_checkpoints with 1,000,000 checkpoints, and checkpointctl dump ----

fs::path fill_million(Context& ctx) {
    const long rows = ctx.sizes.clear_rows;
    note("clear/dump: filling " + bench::format_count(rows) +
         " checkpoints through the library (save_checkpoint, Durability::Normal)");
    const fs::path dir = ctx.fresh("million");
    const auto started = Clock::now();
    Clock::time_point saved;
    {
        CheckpointManager filler(dir, options(Durability::Normal));
        StageName name;
        for (long i = 0; i < rows; ++i) filler.save_checkpoint(name("stage_", i));
        saved = Clock::now();
    }
    const double fill_s = std::chrono::duration<double>(saved - started).count();
    note("clear/dump: filled in " + bench::format_duration(fill_s) + " (" +
         bench::format_rate(rows / fill_s, "saves/s") + "); closing the run took " +
         bench::format_duration(bench::seconds_since(saved)));
    ctx.settle();
    return dir;
}

void bench_clear_million(Context& ctx, const fs::path& dir) {
    const Sizes& z = ctx.sizes;
    note("clear: clear_checkpoints against one durable save, " + bench::format_count(z.clear_rows) +
         " checkpoints");
    CheckpointManager ours(dir, options(Durability::Full));
    long saved = 0;
    const auto samples = bench::interleave(
        z.clear_repetitions,
        {[&] {
             const auto started = Clock::now();
             ours.clear_checkpoints();
             const double seconds = bench::seconds_since(started);
             if (ours.has_checkpoint(stage_name(0)))
                 throw Failure("ours: has_checkpoint is true after clear_checkpoints");
             return seconds;
         },
         [&] {
             StageName name;
             const std::string_view stage = name("after_clear_", saved++);
             const auto started = Clock::now();
             ours.save_checkpoint(stage);
             const double seconds = bench::seconds_since(started);
             if (!ours.has_checkpoint(stage)) throw Failure("ours: a saved stage is missing");
             return seconds;
         }},
        [&] { ctx.settle(); });
    const double clear_s = bench::median(samples[0]);
    const double save_s = bench::median(samples[1]);
    Row& row = ctx.row("clear_million");
    row.operation = "clear_checkpoints, " + bench::format_count(z.clear_rows) +
                    " checkpoints vs one durable save";
    row.ours = bench::format_duration(clear_s);
    row.baseline = bench::format_duration(save_s);
    const double ratio = bench::paired_ratio(samples[0], samples[1]);
    row.ratio = bench::format_ratio(ratio);
    row.goal = "≤ 2×";
    row.met = ratio <= 2;
}

void bench_dump(Context& ctx, const fs::path& dir) {
    const Sizes& z = ctx.sizes;
    const std::string& tool = ctx.settings.checkpointctl;
    if (tool.empty() || ::access(tool.c_str(), X_OK) != 0)
        throw Failure("checkpointctl not found at '" + tool + "': give --checkpointctl PATH");
    const fs::path db = dir / "checkpoints.db";
    const std::int64_t rows = query_int(db, "SELECT count(*) FROM checkpoints");
    const std::string count = bench::format_count(static_cast<double>(rows));
    const double deadline = ctx.settings.dump_deadline.value_or(ctx.settings.quick ? 5 : 30);
    note("dump: checkpointctl dump of " + count + " rows (each run killed after " +
         bench::format_duration(deadline) + ")");
    const std::vector<std::string> ours_argv = {tool, "dump", "--dir", dir.string()};
    const std::vector<std::string> raw_argv = {ctx.self, "--worker", "raw-dump", db.string()};
    const bench::Fd null_in = bench::open_dev_null(O_RDONLY);
    const bench::Fd null_out = bench::open_dev_null(O_WRONLY);

    Row& rate = ctx.row("dump_rate");
    rate.operation =
        "checkpointctl dump, " + count + " rows to /dev/null (baseline: raw SQLite NDJSON dump)";
    rate.goal = "≥ 500,000 rows/s";
    Row& memory = ctx.row("dump_memory");
    memory.operation = "checkpointctl dump, " + count + " rows: peak memory (ru_maxrss)";
    memory.goal = "≤ 32 MB";
    auto megabytes = [](long kb) {
        char text[64];
        std::snprintf(text, sizeof text, "%.1f MB", kb / 1024.0);
        return std::string(text);
    };

    // Untimed, once each, through a pipe: every row must come out (and the caches are warm
    // afterwards). A run that does not finish by the deadline is killed: that is a result
    // (too slow), not an error.
    std::int64_t ours_lines = 0, raw_lines = 0;
    const auto ours_checked =
        bench::run_child_with_deadline(ours_argv, null_in.get(), -1, deadline, &ours_lines);
    if (!ours_checked.timed_out) {
        if (ours_checked.exit_code != 0)
            throw Failure("checkpointctl dump ended with " + bench::describe(ours_checked));
        expect_count("checkpointctl dump: NDJSON lines", ours_lines, rows);
    }
    const auto raw_checked =
        bench::run_child_with_deadline(raw_argv, null_in.get(), -1, deadline, &raw_lines);
    if (raw_checked.exit_code != 0)
        throw Failure("raw SQLite dump ended with " + bench::describe(raw_checked));
    expect_count("raw SQLite dump: NDJSON lines", raw_lines, rows);

    std::vector<long> ours_rss, raw_rss;
    bool ours_timed_out = ours_checked.timed_out;
    auto timed = [&](const std::vector<std::string>& argv, std::vector<long>& rss, bool ours) {
        return [&, ours] {
            if (ours && ours_timed_out) return std::nan("");
            const auto outcome =
                bench::run_child_with_deadline(argv, null_in.get(), null_out.get(), deadline);
            rss.push_back(outcome.max_rss_kb);
            if (outcome.timed_out && ours) {
                ours_timed_out = true;
                return std::nan("");
            }
            if (outcome.exit_code != 0)
                throw Failure(argv[0] + " ended with " + bench::describe(outcome));
            return outcome.wall_seconds;
        };
    };
    const auto samples = bench::interleave(
        z.dump_repetitions, {timed(ours_argv, ours_rss, true), timed(raw_argv, raw_rss, false)});
    const double raw_seconds = bench::median(samples[1]);
    const double raw_rate = rows / raw_seconds;
    const long raw_peak = *std::max_element(raw_rss.begin(), raw_rss.end());
    rate.baseline =
        bench::format_rate(raw_rate, "rows/s") + " (" + bench::format_duration(raw_seconds) + ")";
    memory.baseline = megabytes(raw_peak);
    if (ours_timed_out) {
        // Rows per second while it ran: an upper bound of what a complete dump would reach.
        // (Lines received: checkpointctl's stdout buffer may hold a few more.)
        const double reached = ours_lines / ours_checked.wall_seconds;
        const std::string killed =
            "killed after " + bench::format_duration(ours_checked.wall_seconds) + " at " +
            bench::format_count(static_cast<double>(ours_lines)) + " of " + count + " rows";
        if (ours_lines == 0) {
            rate.ours = "no row out: " + killed;
            rate.ratio = "≈ 0×";
        } else {
            rate.ours = "< " + bench::format_rate(reached, "rows/s") + ": " + killed;
            rate.ratio = "< " + bench::format_ratio(reached / raw_rate);
        }
        rate.met = false;
        memory.ours = megabytes(ours_checked.max_rss_kb) + " when killed";
        memory.ratio = bench::format_ratio(static_cast<double>(ours_checked.max_rss_kb) / raw_peak);
        memory.met = ours_checked.max_rss_kb <= 32 * 1024;
        note("dump: checkpointctl did not finish within " + bench::format_duration(deadline) +
             " (" + bench::format_count(static_cast<double>(ours_lines)) + " of " + count +
             " rows)");
        return;
    }
    const double ours_seconds = bench::median(samples[0]);
    const double ours_rate = rows / ours_seconds;
    const long ours_peak = *std::max_element(ours_rss.begin(), ours_rss.end());
    rate.ours =
        bench::format_rate(ours_rate, "rows/s") + " (" + bench::format_duration(ours_seconds) + ")";
    rate.ratio = bench::format_ratio(bench::paired_ratio(samples[1], samples[0]));
    rate.met = ours_rate >= 500'000;
    memory.ours = megabytes(ours_peak);
    memory.ratio = bench::format_ratio(static_cast<double>(ours_peak) / raw_peak);
    memory.met = ours_peak <= 32 * 1024;
}

// ---- Workers: the child processes (fork + exec of this binary) ----

void say(const std::string& line) {
    const std::string text = line + "\n";
    if (::write(STDOUT_FILENO, text.data(), text.size()) < 0) std::_Exit(1);
}

void wait_for_go() {
    char byte;
    while (::read(STDIN_FILENO, &byte, 1) > 0) {
    }
}

// The raw dump: every history row as one NDJSON object, written with the C API and stdio.
int raw_dump(const char* database) {
    bench::RawDatabase db(database, true, busy_timeout_ms);
    bench::RawStatement rows(db,
                             "SELECT id, pipeline, stage, status, version, timestamp, run_id, "
                             "duration_ms, message FROM checkpoints ORDER BY id");
    static const char* names[] = {"id",        "pipeline", "stage",       "status", "version",
                                  "timestamp", "run_id",   "duration_ms", "message"};
    std::string line;
    while (rows.step()) {
        line.clear();
        line += '{';
        for (int column = 0; column < 9; ++column) {
            if (column > 0) line += ',';
            line += '"';
            line += names[column];
            line += "\":";
            sqlite3_stmt* row = rows.get();
            switch (sqlite3_column_type(row, column)) {
                case SQLITE_NULL:
                    line += "null";
                    break;
                case SQLITE_INTEGER:
                    line += std::to_string(sqlite3_column_int64(row, column));
                    break;
                default:
                    // The same JSON text as checkpointctl writes: only the reads differ.
                    checkpointctl::append_json_string(
                        line, std::string_view(
                                  reinterpret_cast<const char*>(sqlite3_column_text(row, column)),
                                  static_cast<std::size_t>(sqlite3_column_bytes(row, column))));
            }
        }
        line += "}\n";
        std::fwrite(line.data(), 1, line.size(), stdout);
    }
    return std::fflush(stdout) == 0 ? 0 : 1;
}

// The raw "new process" program: open, one prepared lookup, close. Exit 0 when found.
int raw_open_check(const char* database, const char* stage, bool persist_wal) {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(database, &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
        std::fprintf(stderr, "raw-open-check: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_busy_timeout(db, busy_timeout_ms);
    if (persist_wal) {
        int persist = 1;
        sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
    }
    sqlite3_stmt* lookup = nullptr;
    int result = sqlite3_prepare_v2(db,
                                    "SELECT 1 FROM stage_heads WHERE pipeline = 'default' AND "
                                    "stage = ?1 AND status = 'completed'",
                                    -1, &lookup, nullptr);
    if (result == SQLITE_OK) {
        sqlite3_bind_text(lookup, 1, stage, -1, SQLITE_STATIC);
        result = sqlite3_step(lookup);
    }
    if (result != SQLITE_ROW && result != SQLITE_DONE)
        std::fprintf(stderr, "raw-open-check: %s\n", sqlite3_errmsg(db));
    sqlite3_finalize(lookup);
    sqlite3_close(db);
    return result == SQLITE_ROW ? 0 : (result == SQLITE_DONE ? 3 : 1);
}

int worker_main(int argc, char** argv) {
    const std::string mode = argc > 2 ? argv[2] : "";
    try {
        if (mode == "save" && argc == 6) {  // DIR COUNT PREFIX
            CheckpointManager manager(argv[3], options(Durability::Full));
            const long count = std::stol(argv[4]);
            say("ready");
            wait_for_go();
            StageName name;
            for (long i = 0; i < count; ++i) manager.save_checkpoint(name(argv[5], i));
            say("done " + std::to_string(count));
            return 0;
        }
        if (mode == "raw-save" && argc == 6) {  // DATABASE COUNT PREFIX
            bench::RawCheckpointWriter writer(argv[3], true, busy_timeout_ms);
            const long count = std::stol(argv[4]);
            say("ready");
            wait_for_go();
            StageName name;
            for (long i = 0; i < count; ++i) writer.save(name(argv[5], i));
            say("done " + std::to_string(count));
            return 0;
        }
        if (mode == "open-check" && argc == 5) {  // DIR STAGE: as a user's program would
            CheckpointManager manager(argv[3]);
            return manager.has_checkpoint(argv[4]) ? 0 : 3;
        }
        if (mode == "raw-open-check" && argc == 6) {  // DATABASE STAGE PERSIST
            return raw_open_check(argv[3], argv[4], std::string(argv[5]) == "1");
        }
        if (mode == "raw-dump" && argc == 4) return raw_dump(argv[3]);
        std::fprintf(stderr, "checkpoint_bench: unknown worker invocation '%s'\n", mode.c_str());
        return 2;
    } catch (const std::exception& e) {
        std::string text = e.what();
        for (char& c : text) {
            if (c == '\n') c = ' ';
        }
        say("error " + mode + ": " + text);
        std::fprintf(stderr, "checkpoint_bench worker %s: %s\n", mode.c_str(), e.what());
        return 1;
    }
}

// ---- Profile mode: one operation in a loop, for perf stat / valgrind --tool=callgrind ----

// Not inlined, so that callgrind can collect only inside it:
//   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile_loop*' ...
[[gnu::noinline]] void profile_loop(long count, const std::function<void(long)>& operation) {
    for (long i = 0; i < count; ++i) operation(i);
}

int profile_main(Context& ctx) {
    const std::string& what = ctx.settings.profile;
    const long count = ctx.settings.count;
    const long stages = ctx.settings.stages;
    const bool raw = what.rfind("raw-", 0) == 0;
    const std::string op = raw ? what.substr(4) : what;
    StageName name;
    auto timed = [&](const std::function<void(long)>& operation) {
        const auto started = Clock::now();
        profile_loop(count, operation);
        const double seconds = bench::seconds_since(started);
        std::printf("%s: %ld operations, %s each\n", what.c_str(), count,
                    bench::format_duration(seconds / count).c_str());
    };
    if (op == "save-full" || op == "save-normal") {
        const bool full = op == "save-full";
        const fs::path dir = ctx.fresh("profile-" + op);
        if (raw) {
            bench::RawCheckpointWriter writer(make_database(dir), full, busy_timeout_ms);
            timed([&](long i) { writer.save(name("stage_", i)); });
        } else {
            CheckpointManager manager(dir, options(full ? Durability::Full : Durability::Normal));
            timed([&](long i) { manager.save_checkpoint(name("stage_", i)); });
        }
        return 0;
    }
    if (op == "has-hit" || op == "has-miss") {
        const fs::path dir = ctx.fresh("profile-has");
        {
            CheckpointManager filler(dir, options(Durability::Normal));
            for (long i = 0; i < stages; ++i) filler.save_checkpoint(name("stage_", i));
        }
        const long offset = op == "has-hit" ? 0 : stages;
        std::vector<std::string> keys;
        std::mt19937_64 random(1);
        for (int i = 0; i < 4096; ++i)
            keys.push_back(stage_name(offset + static_cast<long>(random() % stages)));
        if (raw) {
            bench::RawLookup lookup(dir / "checkpoints.db");
            timed([&](long i) { lookup.has(keys[static_cast<std::size_t>(i) % keys.size()]); });
        } else {
            const CheckpointManager manager(dir, options(Durability::Full));
            timed([&](long i) {
                manager.has_checkpoint(keys[static_cast<std::size_t>(i) % keys.size()]);
            });
        }
        return 0;
    }
    std::fprintf(stderr,
                 "checkpoint_bench: --profile takes save-full, save-normal, has-hit, has-miss, "
                 "or the same with a raw- prefix (raw SQLite)\n");
    return 2;
}

// ---- Main ----

void usage(std::FILE* out) {
    std::fprintf(out,
                 "usage: checkpoint_bench [--quick] [--dir DIR] [--markdown FILE]\n"
                 "                        [--checkpointctl PATH] [--only LIST] [--keep]\n"
                 "       checkpoint_bench --profile OPERATION [--count N] [--stages N] [--dir "
                 "DIR]\n"
                 "\n"
                 "  --quick          small counts (< 30 s), the same table; for CI\n"
                 "  --dir DIR        make the fresh working directory inside DIR (default: .);\n"
                 "                   it must be on the disk to measure, not tmpfs\n"
                 "  --markdown FILE  also write the table (and its setting) as Markdown\n"
                 "  --checkpointctl PATH   the checkpointctl binary for the dump measurement\n"
                 "  --only LIST      comma-separated scenarios: saves,has,threads,processes,\n"
                 "                   open,original-clear,clear,dump,outputs\n"
                 "  --keep           keep the working directory\n"
                 "  --dump-deadline S  kill a dump still running after S seconds (default 30,\n"
                 "                   quick 5); reported as not met, not as an error\n"
                 "  --clear-rows N   checkpoints to fill for clear and dump (default 1,000,000;\n"
                 "                   quick 10,000)\n"
                 "  --profile OP     run one operation COUNT times (for perf / callgrind):\n"
                 "                   save-full, save-normal, has-hit, has-miss, or raw-<OP>\n");
}

std::string load_average() {
    std::ifstream file("/proc/loadavg");
    std::string one, five, fifteen;
    file >> one >> five >> fifteen;
    return one + " " + five + " " + fifteen;
}

std::string now_utc() {
    const std::time_t now = std::time(nullptr);
    std::tm utc{};
    gmtime_r(&now, &utc);
    char text[64];
    std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
    return text;
}

int bench_main(Context& ctx) {
    const Sizes& z = ctx.sizes;
    const std::string load_before = load_average();
    auto attempt = [&](const std::string& scenario, const std::vector<std::string>& keys,
                       const std::function<void()>& body) {
        if (!ctx.selected(scenario)) return;
        try {
            body();
        } catch (const std::exception& e) {
            record_failure(ctx, keys, scenario + ": " + e.what());
        }
    };
    attempt("saves",
            {"save_full", "save_normal", "save_vs_original", "save_vs_original_plain",
             "save_vs_fdatasync"},
            [&] { bench_saves(ctx); });
    attempt("has", {"has_hit_raw", "has_miss_raw", "has_hit_original", "has_miss_original"},
            [&] { bench_has(ctx); });
    attempt("threads", {"threads"}, [&] { bench_threads(ctx); });
    attempt("processes", {"processes"}, [&] { bench_processes(ctx); });
    attempt("open", {"open", "open_persist"}, [&] { bench_open(ctx); });
    attempt("original-clear", {"clear_vs_original", "clear_vs_original_plain"},
            [&] { bench_original_clear(ctx); });
    if (ctx.selected("clear") || ctx.selected("dump")) {
        std::optional<fs::path> million;
        attempt(ctx.selected("clear") ? "clear" : "dump",
                {"clear_million", "dump_rate", "dump_memory"},
                [&] { million = fill_million(ctx); });
        if (million) {
            attempt("clear", {"clear_million"}, [&] { bench_clear_million(ctx, *million); });
            attempt("dump", {"dump_rate", "dump_memory"}, [&] { bench_dump(ctx, *million); });
        }
    }
    attempt("outputs", {"output_small", "output_large", "load_large"}, [&] { bench_outputs(ctx); });
    attempt("encryption", {"output_large_key", "load_large_key", "save_normal_key"},
            [&] { bench_encryption(ctx); });

    // The table, in the order of the goals; informational rows last.
    const std::vector<std::string> order = {"save_full",
                                            "save_normal",
                                            "has_hit_raw",
                                            "has_miss_raw",
                                            "has_hit_original",
                                            "has_miss_original",
                                            "threads",
                                            "processes",
                                            "clear_million",
                                            "open",
                                            "dump_rate",
                                            "dump_memory",
                                            "save_vs_original",
                                            "clear_vs_original",
                                            "save_vs_fdatasync",
                                            "save_vs_original_plain",
                                            "clear_vs_original_plain",
                                            "open_persist",
                                            "output_small",
                                            "output_large",
                                            "load_large",
                                            "output_large_key",
                                            "load_large_key",
                                            "save_normal_key"};
    std::vector<Row> table;
    for (const std::string& key : order) {
        const auto found = ctx.rows.find(key);
        if (found != ctx.rows.end()) table.push_back(found->second);
    }
    int met = 0, missed = 0;
    for (const Row& row : table) {
        if (!row.error.empty() || !row.met) continue;
        (*row.met ? met : missed) += 1;
    }
    const bench::FilesystemInfo fs_info = bench::filesystem_of(ctx.root);
    std::ostringstream header;
    header << "checkpoint_bench, " << (ctx.settings.quick ? "quick" : "full") << " mode, "
           << now_utc() << "\n"
           << "directory: " << ctx.root.string() << "\n"
           << "filesystem: " << fs_info.type << "\n"
           << "SQLite " << sqlite3_libversion() << ", checkpoint schema "
           << checkpoint::schema_version() << ", " << std::thread::hardware_concurrency()
           << " CPUs; medians of " << z.repetitions
           << " repetitions (processes: " << z.process_repetitions
           << ", new-process: " << z.spawn_repetitions
           << " per variant, clear: " << z.clear_repetitions << ", dump: " << z.dump_repetitions
           << "), ours and baselines interleaved; ratio = median of the per-repetition ratios\n"
           << "load average (1/5/15 min) before: " << load_before << "; after: " << load_average()
           << "\n";
    std::ostringstream summary;
    summary << "goals met: " << met << ", not met: " << missed << ", errors: " << ctx.errors.size()
            << (ctx.settings.quick ? " (quick mode: small counts, timing is not asserted)" : "")
            << "\n";
    const std::string rendered = bench::render_table(table);
    std::cout << "\n" << header.str() << "\n" << rendered << "\n" << summary.str();
    for (const std::string& error : ctx.errors) std::cout << "ERROR: " << error << "\n";
    std::cout << std::flush;

    if (!ctx.settings.markdown.empty()) {
        std::ofstream md(ctx.settings.markdown);
        md << "# checkpoint_bench results\n\n";
        std::istringstream lines(header.str());
        for (std::string line; std::getline(lines, line);) md << "- " << line << "\n";
        md << "\n" << rendered << "\n" << summary.str() << "\n";
        for (const std::string& error : ctx.errors) md << "- ERROR: " << error << "\n";
        md << "Baselines: raw SQLite = the SQLite C API on a database with the library's "
              "schema (created by opening a CheckpointManager once), WAL, same synchronous "
              "setting, prepared BEGIN IMMEDIATE + single-row INSERT INTO checkpoints + COMMIT; "
              "lookup = prepared SELECT 1 FROM stage_heads WHERE pipeline=? AND stage=? AND "
              "status='completed'. Original design = <dir>/<stage>.checkpoint files containing "
              "COMPLETED (durable: fsync of the file and of the directory; its clear fsyncs the "
              "directory once at the end). Processes are fork+exec of checkpoint_bench itself. "
              "Ours logs at info level into a null sink (messages formatted, not written).\n";
        if (!md) {
            std::cerr << "checkpoint_bench: cannot write " << ctx.settings.markdown << "\n";
            return 1;
        }
    }
    return ctx.errors.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "--worker") return worker_main(argc, argv);
    Context ctx;
    Settings& s = ctx.settings;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
                return argv[++i];
            };
            if (arg == "--quick") {
                s.quick = true;
            } else if (arg == "--dir") {
                s.parent = value();
            } else if (arg == "--markdown") {
                s.markdown = value();
            } else if (arg == "--checkpointctl") {
                s.checkpointctl = value();
            } else if (arg == "--keep") {
                s.keep = true;
            } else if (arg == "--only") {
                std::istringstream list(value());
                for (std::string item; std::getline(list, item, ',');) {
                    if (std::find(scenario_names.begin(), scenario_names.end(), item) ==
                        scenario_names.end())
                        throw std::invalid_argument("unknown scenario '" + item + "'");
                    s.only.insert(item);
                }
            } else if (arg == "--profile") {
                s.profile = value();
            } else if (arg == "--count") {
                s.count = std::stol(value());
            } else if (arg == "--clear-rows") {
                s.clear_rows = std::stoi(value());
            } else if (arg == "--dump-deadline") {
                s.dump_deadline = std::stod(value());
            } else if (arg == "--stages") {
                s.stages = std::stol(value());
            } else if (arg == "--help" || arg == "-h") {
                usage(stdout);
                return 0;
            } else {
                throw std::invalid_argument("unknown option '" + arg + "'");
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "checkpoint_bench: %s\n", e.what());
        usage(stderr);
        return 2;
    }
    ctx.sizes = s.quick ? quick_sizes : full_sizes;
    if (s.clear_rows) ctx.sizes.clear_rows = *s.clear_rows;

    int status = 1;
    try {
        ctx.self = bench::self_executable();
        fs::create_directories(s.parent);
        std::string pattern = (fs::absolute(s.parent) / "checkpoint_bench.XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw Failure("mkdtemp in " + s.parent.string() + ": " + std::strerror(errno));
        ctx.root = fs::canonical(pattern);
        const bench::FilesystemInfo info = bench::filesystem_of(ctx.root);
        note("working directory " + ctx.root.string() + " on " + info.type);
        if (info.memory_backed)
            note("WARNING: a memory filesystem: give --dir on the disk you want to measure");
        status = s.profile.empty() ? bench_main(ctx) : profile_main(ctx);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "checkpoint_bench: %s\n", e.what());
        status = 1;
    }
    if (!ctx.root.empty()) {
        if (s.keep) {
            note("kept " + ctx.root.string());
        } else {
            std::error_code ignored;
            fs::remove_all(ctx.root, ignored);
        }
    }
    return status;
}
