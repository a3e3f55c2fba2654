// checkpoint_bench — a new process opens the directory, checks one stage and exits
// (checkpoint_bench_open: a program that links the library alone), against the same in a C
// program that links SQLite alone (checkpoint_bench_raw_open).
#include "scenario.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace bench {

namespace {

void run_open(Context& ctx) {
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
    const fs::path loaded_db = prepared("open-raw-loaded") / "checkpoints.db";
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
    for (const std::string* program :
         {&ctx.settings.open_program, &ctx.settings.raw_open_program}) {
        if (program->empty() || ::access(program->c_str(), X_OK) != 0)
            throw Failure("the new-process programs are not built: '" + *program + "'");
    }
    const std::vector<std::function<double()>> variants = {
        process({ctx.settings.open_program, ours_dir.string(), "ingest"}, "ours"),
        process({ctx.settings.raw_open_program, raw_db.string(), "ingest", "0"}, "raw SQLite"),
        process({ctx.self, "--worker", "raw-open-check", loaded_db.string(), "ingest", "0"},
                "raw SQLite, with the library's shared libraries loaded")};
    for (const auto& variant : variants) variant();  // warm-up: page cache, dynamic loader
    const auto samples = bench::interleave(z.spawn_repetitions, variants);
    const double ours = bench::median(samples[0]);
    const double raw = bench::median(samples[1]);
    const double loaded = bench::median(samples[2]);
    Row& row = ctx.row("open");
    row.operation = "new process: open dir, check one stage, exit vs raw SQLite C program";
    row.ours = bench::format_duration(ours) + "/process";
    row.baseline = bench::format_duration(raw) + "/process";
    const double ratio = bench::paired_ratio(samples[0], samples[1]);
    row.ratio = bench::format_ratio(ratio);
    row.goal = at_most(1.2);
    row.met = ratio <= 1.2;
    // What is left once the loading of the shared libraries is set aside: the same raw lookup
    // in a process that loads everything libcheckpoint links (libpqxx, libpq and its TLS,
    // Kerberos and LDAP libraries, libsodium, spdlog, fmt...).
    Row& info = ctx.row("open_loaded");
    info.operation =
        "new process: same vs raw SQLite in a process loading the library's shared libraries";
    info.ours = row.ours;
    info.baseline = bench::format_duration(loaded) + "/process";
    info.ratio = bench::format_ratio(bench::paired_ratio(samples[0], samples[2]));
    info.goal = "— (info)";
}

const bool registered = register_scenario(
    {"open",
     50,
     {{"open", "new process: open dir, check one stage, exit vs raw SQLite"},
      {"open_loaded", "new process vs raw SQLite with the library's libraries loaded"}},
     run_open});

}  // namespace

}  // namespace bench
