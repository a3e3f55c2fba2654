// checkpoint_bench — clearing 20,000 stages against the original design.
#include "scenario.hpp"

namespace bench {

namespace {

void run_original_clear(Context& ctx) {
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

const bool registered = register_scenario(
    {"original-clear",
     60,
     {{"clear_vs_original", "clearing stages vs original design made durable"},
      {"clear_vs_original_plain", "clearing stages vs original design as it was"}},
     run_original_clear});

}  // namespace

}  // namespace bench
