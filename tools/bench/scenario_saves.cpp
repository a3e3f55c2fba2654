// checkpoint_bench — single-thread saves (Full and Normal) against raw SQLite, the original
// design and the disk.
#include "scenario.hpp"

namespace bench {

namespace {

void run_saves(Context& ctx) {
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
    fill_time_ratio(save, full[0], full[1], "saves/s", 1.05);

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
    fill_time_ratio(save_normal, normal[0], normal[1], "saves/s", 1.3);
}

const bool registered =
    register_scenario({"saves",
                       10,
                       {{"save_full", "durable save (Full), 1 thread vs raw SQLite WAL/FULL"},
                        {"save_normal", "save with Durability::Normal vs raw SQLite WAL/NORMAL"},
                        {"save_vs_original", "durable save vs original design made durable"},
                        {"save_vs_original_plain", "durable save vs original design as it was"},
                        {"save_vs_fdatasync", "durable save vs raw write+fdatasync"}},
                       run_saves});

}  // namespace

}  // namespace bench
