// checkpoint_bench — the profile mode: one operation in a loop, for perf stat and
// valgrind --tool=callgrind (`checkpoint_bench --profile OP [--count N] [--stages N]`).
#include "scenario.hpp"

#include <random>

namespace bench {

namespace {

// Not inlined, so that callgrind can collect only inside it:
//   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*profile_loop*' ...
[[gnu::noinline]] void profile_loop(long count, const std::function<void(long)>& operation) {
    for (long i = 0; i < count; ++i) operation(i);
}

}  // namespace

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
}  // namespace bench
