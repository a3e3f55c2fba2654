// checkpoint_lease_bench — what leases cost and what they buy, on SQLite (--dir) and/or
// PostgreSQL (--url), each figure a ratio against a baseline measured in the same run
// (interleaved repetitions, median of the per-repetition ratios):
//
//   speed-up    tools/parallel_pipeline on a DAG whose stages each sleep --work-ms (20 ms),
//               --workers N (8) processes vs 1 (goal: at least 5x); with Durability::Full
//               (two fsyncs per stage, which the workers take in turn on SQLite) and with
//               Durability::Normal (the leases' own scaling)
//   claim cost  an uncontended claim_stage + release vs a durable save_checkpoint, in one
//               process (goal: at most 2x)
//
//   checkpoint_lease_bench --dir /var/tmp [--url postgresql://...] [--quick]
//
// Exit status: 0 when every measurement ran (goals met or not: timing never fails a run),
// 1 on a benchmark error, 2 on bad usage.
#include "harness.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>

namespace {

struct Settings {
    std::string dir;
    std::string url;
    bool quick = false;
    int workers = 8;
    int stages = 96;
    int width = 16;
    int work_ms = 20;
};

int counter = 0;

// A fresh location: a new directory under --dir (SQLite), or a new pipeline name in the
// database at --url (PostgreSQL). Returns {location, pipeline}.
std::pair<std::string, std::string> fresh(const std::string& base, bool postgres) {
    const std::string name =
        "lease_bench_" + std::to_string(::getpid()) + "_" + std::to_string(++counter);
    if (postgres) return {base, name};
    const std::filesystem::path dir = std::filesystem::path(base) / name;
    std::filesystem::create_directories(dir);
    return {dir.string(), "default"};
}

checkpoint::Options quiet(const std::string& pipeline) {
    checkpoint::Options options;
    options.pipeline = pipeline;
    options.logger = std::make_shared<spdlog::logger>(
        "lease_bench", std::make_shared<spdlog::sinks::null_sink_mt>());
    return options;
}

double run_pipeline(const Settings& settings, const std::string& base, bool postgres, int workers,
                    bool normal) {
    const auto [location, pipeline] = fresh(base, postgres);
    bench::Fd null = bench::open_dev_null(O_WRONLY);
    std::vector<std::string> argv{CHECKPOINT_PARALLEL_PIPELINE,
                                  "--workers",
                                  std::to_string(workers),
                                  "--stages",
                                  std::to_string(settings.stages),
                                  "--width",
                                  std::to_string(settings.width),
                                  "--work-ms",
                                  std::to_string(settings.work_ms),
                                  "--pipeline",
                                  pipeline,
                                  location};
    if (normal) argv.push_back("--normal");
    const bench::ChildOutcome outcome = bench::run_child(argv, -1, null.get());
    if (outcome.exit_code != 0)
        throw bench::Failure("parallel_pipeline --workers " + std::to_string(workers) + " on " +
                             (postgres ? "PostgreSQL" : location) + ": " +
                             bench::describe(outcome));
    if (!postgres) std::filesystem::remove_all(location);
    return outcome.wall_seconds;
}

void bench_backend(const Settings& settings, const std::string& base, bool postgres,
                   std::vector<bench::Row>& rows) {
    const std::string where = postgres ? "PostgreSQL" : "SQLite";
    const int repetitions = settings.quick ? 1 : 3;
    for (const bool normal : {false, true}) {
        const auto samples = bench::interleave(
            repetitions,
            {[&] { return run_pipeline(settings, base, postgres, 1, normal); },
             [&] { return run_pipeline(settings, base, postgres, settings.workers, normal); }});
        const double speedup = bench::paired_ratio(samples[0], samples[1]);
        rows.push_back({where + ": " + std::to_string(settings.stages) + "-stage DAG, " +
                            std::to_string(settings.work_ms) + " ms stages, " +
                            std::to_string(settings.workers) + " workers vs 1" +
                            (normal ? " (Durability::Normal)" : ""),
                        bench::format_duration(bench::median(samples[1])),
                        bench::format_duration(bench::median(samples[0])),
                        bench::format_ratio(speedup) + " faster",
                        ">= 5x faster",
                        speedup >= 5.0,
                        {}});
    }
    {
        const auto [location, pipeline] = fresh(base, postgres);
        checkpoint::CheckpointManager manager(location, quiet(pipeline));
        const int count = settings.quick ? 20 : 200;
        int next = 0;
        checkpoint::LeaseOptions lease;
        lease.wait = std::chrono::milliseconds(0);
        const auto samples = bench::interleave(
            repetitions * 3,
            {[&] {
                 const auto start = bench::Clock::now();
                 for (int i = 0; i < count; ++i) {
                     auto claimed = manager.claim_stage("claim-" + std::to_string(next++), lease);
                     if (!claimed) throw bench::Failure("an uncontended claim returned nothing");
                     claimed->release();
                 }
                 return bench::seconds_since(start) / count;
             },
             [&] {
                 const auto start = bench::Clock::now();
                 for (int i = 0; i < count; ++i)
                     manager.save_checkpoint("save-" + std::to_string(next++));
                 return bench::seconds_since(start) / count;
             }});
        const double ratio = bench::paired_ratio(samples[0], samples[1]);
        rows.push_back({where + ": uncontended claim_stage + release vs durable save",
                        bench::format_duration(bench::median(samples[0])),
                        bench::format_duration(bench::median(samples[1])),
                        bench::format_ratio(ratio),
                        "<= 2x",
                        ratio <= 2.0,
                        {}});
        if (!postgres) std::filesystem::remove_all(location);
    }
}

}  // namespace

int main(int argc, char** argv) {
    Settings settings;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::cerr << arg << " needs a value\n";
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--dir") {
            settings.dir = value();
        } else if (arg == "--url") {
            settings.url = value();
        } else if (arg == "--quick") {
            settings.quick = true;
        } else if (arg == "--workers") {
            settings.workers = std::stoi(value());
        } else if (arg == "--stages") {
            settings.stages = std::stoi(value());
        } else if (arg == "--work-ms") {
            settings.work_ms = std::stoi(value());
        } else {
            std::cerr << "usage: checkpoint_lease_bench [--dir DIR] [--url URL] [--quick] "
                         "[--workers N] [--stages N] [--work-ms MS]\n";
            return 2;
        }
    }
    if (settings.quick) settings.stages = std::min(settings.stages, 32);
    if (settings.dir.empty() && settings.url.empty()) settings.dir = ".";
    std::vector<bench::Row> rows;
    try {
        if (!settings.dir.empty()) {
            char pattern[] = "lease_bench.XXXXXX";
            const std::filesystem::path work = std::filesystem::path(settings.dir) / pattern;
            std::string templ = work.string();
            if (::mkdtemp(templ.data()) == nullptr) throw bench::Failure("mkdtemp " + templ);
            const auto fs = bench::filesystem_of(templ);
            std::cout << "SQLite in " << templ << " (" << fs.type << ")"
                      << (fs.memory_backed ? ": memory-backed, fsync costs nothing here" : "")
                      << "\n";
            try {
                bench_backend(settings, templ, false, rows);
            } catch (...) {
                std::filesystem::remove_all(templ);
                throw;
            }
            std::filesystem::remove_all(templ);
        }
        if (!settings.url.empty()) bench_backend(settings, settings.url, true, rows);
    } catch (const std::exception& e) {
        std::cout << bench::render_table(rows);
        std::cerr << "checkpoint_lease_bench: " << e.what() << "\n";
        return 1;
    }
    std::cout << bench::render_table(rows)
              << "(ours | baseline: medians; ratio: median of per-repetition ratios. A shared, "
                 "noisy machine moves these figures: compare ratios, not times.)\n";
    return 0;
}
