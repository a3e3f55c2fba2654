// checkpoint_bench — clear_checkpoints and checkpointctl dump (NDJSON) with 1,000,000
// checkpoints.
#include "scenario.hpp"

#include <algorithm>
#include <cmath>

#include <fcntl.h>
#include <unistd.h>

namespace bench {

namespace {

void run_clear_million(Context& ctx) {
    const Sizes& z = ctx.sizes;
    const fs::path dir = ctx.filled_database("million", z.clear_rows);
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

void run_dump(Context& ctx) {
    const Sizes& z = ctx.sizes;
    const fs::path dir = ctx.filled_database("million", z.clear_rows);
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

const bool registered_clear = register_scenario(
    {"clear",
     70,
     {{"clear_million", "clear_checkpoints with many checkpoints vs one durable save"}},
     run_clear_million});
const bool registered_dump = register_scenario(
    {"dump",
     80,
     {{"dump_rate", "checkpointctl dump rate"}, {"dump_memory", "checkpointctl dump peak memory"}},
     run_dump});

}  // namespace

}  // namespace bench
