// checkpoint_save_bench — the SQLite save path against raw SQLite, with the defaults as
// shipped (default Options: Durability::Full, the default logger), interleaved repetition by
// repetition (issue 16 rows 1-3):
//   durable save      / raw SQLite WAL+FULL single-row insert       (goal ≤ 1.05×)
//   Normal save       / raw SQLite WAL+NORMAL single-row insert     (goal ≤ 1.3×)
//   8 threads sharing one manager / 1 thread, durable saves per second (goal ≥ 4×)
//
//   checkpoint_save_bench [--dir DIR] [--repetitions N] [--quick] [--only full,normal,threads]
//   checkpoint_save_bench --profile save-normal|save-full|raw-normal|raw-full [--count N]
//       runs one operation N times (default 20000) in profile_loop(), for perf or callgrind:
//       perf record -g build-rel/tools/checkpoint_save_bench --profile save-normal --dir D
//
// Prints one line per figure: the medians and the median of the per-repetition ratios.
// Exit status 1 when a save failed or a count is wrong (never on timing).
#include "baselines.hpp"
#include "harness.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <latch>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h>

namespace fs = std::filesystem;
using checkpoint::CheckpointManager;
using checkpoint::Durability;
using checkpoint::Options;

namespace {

constexpr int busy_timeout_ms = 30000;

struct Settings {
    fs::path dir = ".";
    int repetitions = 9;
    int full_saves = 200;
    int normal_saves = 2000;
    int single_thread_saves = 200;
    int saves_per_thread = 100;
    std::set<std::string> only;
    std::string profile;
    long count = 20000;
    bool wants(const std::string& what) const { return only.empty() || only.count(what) != 0; }
};

Options options_with(Durability durability) {
    Options options;  // the defaults as shipped: default logger, Durability::Full
    options.durability = durability;
    return options;
}

fs::path make_database(const fs::path& directory) {
    CheckpointManager creator(directory, Options{});
    return creator.database_path();
}

std::string stage(const char* prefix, long i) {
    return prefix + std::to_string(i);
}

template <typename Op>
double per_operation(long count, Op&& op) {
    const auto started = bench::Clock::now();
    for (long i = 0; i < count; ++i) op(i);
    return bench::seconds_since(started) / static_cast<double>(count);
}

void expect(std::int64_t got, std::int64_t expected, const std::string& what) {
    if (got != expected) {
        throw bench::Failure(what + ": expected " + std::to_string(expected) + ", found " +
                             std::to_string(got));
    }
}

std::int64_t completed_rows(const fs::path& database) {
    bench::RawDatabase raw(database, true, busy_timeout_ms);
    return raw.query_int("SELECT count(*) FROM checkpoints WHERE status = 'completed'");
}

void report(const std::string& what, const std::vector<double>& ours,
            const std::vector<double>& base, const std::string& goal, bool rate) {
    const double ratio = bench::paired_ratio(ours, base);
    std::cout << what << ": ours "
              << (rate ? bench::format_rate(bench::median(ours), "saves/s")
                       : bench::format_duration(bench::median(ours)))
              << ", baseline "
              << (rate ? bench::format_rate(bench::median(base), "saves/s")
                       : bench::format_duration(bench::median(base)))
              << ", ratio " << bench::format_ratio(ratio) << " (goal " << goal << ")" << std::endl;
}

void bench_single(const fs::path& work, const Settings& s, Durability durability) {
    const bool full = durability == Durability::Full;
    const int count = full ? s.full_saves : s.normal_saves;
    const std::string tag = full ? "full" : "normal";
    CheckpointManager ours(work / ("ours-" + tag), options_with(durability));
    bench::RawCheckpointWriter raw(make_database(work / ("raw-" + tag)), full, busy_timeout_ms);
    long ours_saved = 0, raw_saved = 0;
    // One warm-up save each (the run row, the first page allocations).
    ours.save_checkpoint(stage("warm_", 0));
    raw.save(stage("warm_", 0));
    const auto samples = bench::interleave(
        s.repetitions,
        {[&] {
             return per_operation(count,
                                  [&](long) { ours.save_checkpoint(stage("s_", ours_saved++)); });
         },
         [&] { return per_operation(count, [&](long) { raw.save(stage("s_", raw_saved++)); }); }},
        [&] { bench::sync_filesystem(work); });
    expect(completed_rows(ours.database_path()), ours_saved + 1, "ours: completed rows");
    expect(raw.database().query_int("SELECT count(*) FROM checkpoints"), raw_saved + 1,
           "raw: rows");
    report(full ? "durable save / raw SQLite WAL+FULL insert"
                : "Normal save / raw SQLite WAL+NORMAL insert",
           samples[0], samples[1], full ? "≤ 1.05×" : "≤ 1.3×", false);
}

void bench_threads(const fs::path& work, const Settings& s) {
    constexpr int thread_count = 8;
    CheckpointManager shared(work / "threads", Options{});
    std::atomic<long> next{0};
    auto save_next = [&] { shared.save_checkpoint(stage("t_", next.fetch_add(1))); };
    save_next();
    auto single = [&] {
        const auto started = bench::Clock::now();
        for (int i = 0; i < s.single_thread_saves; ++i) save_next();
        return s.single_thread_saves / bench::seconds_since(started);
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
                    for (int i = 0; i < s.saves_per_thread; ++i) save_next();
                } catch (...) {
                    failures[t] = std::current_exception();
                }
            });
        }
        ready.wait();
        const auto started = bench::Clock::now();
        go.count_down();
        for (auto& thread : threads) thread.join();
        const double seconds = bench::seconds_since(started);
        for (const auto& failure : failures)
            if (failure) std::rethrow_exception(failure);
        return thread_count * s.saves_per_thread / seconds;
    };
    const auto samples =
        bench::interleave(s.repetitions, {many, single}, [&] { bench::sync_filesystem(work); });
    expect(completed_rows(shared.database_path()), next.load(), "threads: completed rows");
    report("8 threads / 1 thread, durable saves per second", samples[0], samples[1], "≥ 4×", true);
}

[[gnu::noinline]] void profile_loop(long count, const std::function<void(long)>& operation) {
    for (long i = 0; i < count; ++i) operation(i);
}

int profile_main(const fs::path& work, const Settings& s) {
    const bool full = s.profile.find("full") != std::string::npos;
    const Durability durability = full ? Durability::Full : Durability::Normal;
    if (s.profile == "save-normal" || s.profile == "save-full") {
        CheckpointManager ours(work / "profile", options_with(durability));
        profile_loop(s.count, [&](long i) { ours.save_checkpoint(stage("p_", i)); });
        expect(completed_rows(ours.database_path()), s.count, "profile: completed rows");
    } else if (s.profile == "raw-normal" || s.profile == "raw-full") {
        bench::RawCheckpointWriter raw(make_database(work / "profile-raw"), full, busy_timeout_ms);
        profile_loop(s.count, [&](long i) { raw.save(stage("p_", i)); });
    } else {
        std::cerr << "checkpoint_save_bench: --profile takes save-normal, save-full, raw-normal "
                     "or raw-full\n";
        return 2;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Settings s;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) throw std::invalid_argument(arg + " needs a value");
                return argv[++i];
            };
            if (arg == "--dir") {
                s.dir = value();
            } else if (arg == "--repetitions") {
                s.repetitions = std::stoi(value());
            } else if (arg == "--quick") {
                s.repetitions = 3;
                s.full_saves = 20;
                s.normal_saves = 200;
                s.single_thread_saves = 20;
                s.saves_per_thread = 10;
            } else if (arg == "--profile") {
                s.profile = value();
            } else if (arg == "--count") {
                s.count = std::stol(value());
            } else if (arg == "--only") {
                std::stringstream list(value());
                for (std::string item; std::getline(list, item, ',');) s.only.insert(item);
            } else {
                throw std::invalid_argument("unknown argument " + arg);
            }
        }
    } catch (const std::exception& e) {
        std::cerr << "checkpoint_save_bench: " << e.what()
                  << "\nusage: checkpoint_save_bench [--dir DIR] [--repetitions N] [--quick] "
                     "[--only full,normal,threads]\n";
        return 2;
    }
    std::string pattern = (s.dir / "save_bench.XXXXXX").string();
    if (!::mkdtemp(pattern.data())) {
        std::perror("mkdtemp");
        return 1;
    }
    const fs::path work = pattern;
    const auto fs_info = bench::filesystem_of(work);
    std::cout << "filesystem: " << fs_info.type
              << (fs_info.memory_backed ? " (memory-backed: fsync costs nothing)" : "")
              << std::endl;
    int status = 0;
    try {
        if (!s.profile.empty()) {
            status = profile_main(work, s);
        } else {
            if (s.wants("full")) bench_single(work, s, Durability::Full);
            if (s.wants("normal")) bench_single(work, s, Durability::Normal);
            if (s.wants("threads")) bench_threads(work, s);
        }
    } catch (const std::exception& e) {
        std::cerr << "checkpoint_save_bench: " << e.what() << std::endl;
        status = 1;
    }
    std::error_code ignored;
    fs::remove_all(work, ignored);
    return status;
}
