// checkpoint_bench — has_checkpoint hit and miss against the raw point lookup and the original
// design's file-exists check.
#include "scenario.hpp"

#include <random>

namespace bench {

namespace {

void run_has(Context& ctx) {
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
        fill_time_ratio(vs_raw, ours_s, raw_s, "lookups/s", 1.1);
        Row& vs_file = ctx.row(std::string("has_") + kinds[kind] + "_original");
        vs_file.operation = "has_checkpoint " + std::string(kinds[kind]) + ", " + stages +
                            " stages vs original design file-exists check";
        fill_time_ratio(vs_file, ours_s, file_s, "lookups/s", 1.0);
    }
}

const bool registered = register_scenario(
    {"has",
     20,
     {{"has_hit_raw", "has_checkpoint hit vs raw prepared point lookup"},
      {"has_miss_raw", "has_checkpoint miss vs raw prepared point lookup"},
      {"has_hit_original", "has_checkpoint hit vs original design file-exists check"},
      {"has_miss_original", "has_checkpoint miss vs original design file-exists check"}},
     run_has});

}  // namespace

}  // namespace bench
