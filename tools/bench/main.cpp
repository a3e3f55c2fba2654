// checkpoint_bench — measures checkpoint against raw SQLite, the sqlite3 shell, the original
// file-based design and the disk itself, in one run, on one disk, and prints two tables: the
// goals of issue 16, then the other comparisons.
//
//   checkpoint_bench [--quick] [--dir DIR] [--markdown FILE] [--checkpointctl PATH]
//                    [--sqlite3 PATH] [--only LIST] [--keep] [--clear-rows N]
//                    [--dump-deadline S]
//   checkpoint_bench --profile OPERATION [--count N] [--stages N] [--dir DIR]
//   checkpoint_bench --worker MODE ARGS...      (internal: the child processes it starts)
//
// This file: the argument parser and the tables. Each scenario is a file of its own
// (scenario_*.cpp, registered in the scenario table: scenario.hpp); the child processes are
// workers.cpp, the profile mode profile.cpp.
//
// Every comparison runs ours and its baseline in the same run, on the same filesystem,
// interleaved repetition by repetition, and reports medians; a ratio is the median of the
// per-repetition ratios. See README.md for what each row compares. Exit status: 0 when every
// measurement ran and no data was lost or wrong, whether the goals were met or not; 1 on a
// benchmark error or lost data; 2 on bad usage. Timing never fails the run.
#include "scenario.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <exception>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sqlite3.h>
#include <stdlib.h>

namespace bench {

namespace {

// The rows of the goals table, in its order: the first table. Every other row goes
// to the second table, in the order of `other_rows`, then in the order of the scenarios.
const std::vector<std::string> goal_rows = {
    "save_full",    "save_normal", "threads",      "open",         "has_hit_raw",
    "has_miss_raw", "dump_csv",    "output_small", "output_large", "load_large"};
const std::vector<std::string> other_rows = {"has_hit_original",
                                             "has_miss_original",
                                             "processes",
                                             "clear_million",
                                             "dump_rate",
                                             "dump_memory",
                                             "save_vs_original",
                                             "clear_vs_original",
                                             "save_vs_fdatasync",
                                             "save_vs_original_plain",
                                             "clear_vs_original_plain",
                                             "open_loaded",
                                             "output_large_key",
                                             "load_large_key",
                                             "save_normal_key"};

std::string scenario_list() {
    std::string list;
    for (const Scenario& scenario : scenarios()) list += (list.empty() ? "" : ",") + scenario.name;
    return list;
}

// Records `failure` on each row of `scenario` that has no figures yet, and in the error list.
void record_failure(Context& ctx, const Scenario& scenario, const std::string& what) {
    ctx.errors.push_back(what);
    note("ERROR: " + what);
    for (const auto& [key, label] : scenario.rows) {
        Row& row = ctx.row(key);
        if (row.operation.empty()) row.operation = label;
        if (row.ours.empty()) row.error = what;
    }
}

void usage(std::FILE* out) {
    std::fprintf(
        out,
        "usage: checkpoint_bench [--quick] [--dir DIR] [--markdown FILE]\n"
        "                        [--checkpointctl PATH] [--sqlite3 PATH] [--only LIST]\n"
        "                        [--keep] [--dump-deadline S] [--clear-rows N]\n"
        "       checkpoint_bench --profile OPERATION [--count N] [--stages N] [--dir "
        "DIR]\n"
        "\n"
        "  --quick          small counts (< 30 s), the same tables; for CI\n"
        "  --dir DIR        make the fresh working directory inside DIR (default: .);\n"
        "                   it must be on the disk to measure, not tmpfs\n"
        "  --markdown FILE  also write the table (and its setting) as Markdown\n"
        "  --checkpointctl PATH   the checkpointctl binary for the dump measurements\n"
        "  --sqlite3 PATH   the sqlite3 shell, baseline of the CSV dump (default: sqlite3)\n"
        "  --only LIST      comma-separated scenarios (default: all):\n"
        "                   %s\n"
        "  --keep           keep the working directory\n"
        "  --dump-deadline S  kill a dump still running after S seconds (default 30,\n"
        "                   quick 5); reported as not met, not as an error\n"
        "  --clear-rows N   checkpoints to fill for clear and dump (default 1,000,000;\n"
        "                   quick 10,000)\n"
        "  --profile OP     run one operation COUNT times (for perf / callgrind):\n"
        "                   save-full, save-normal, has-hit, has-miss, or raw-<OP>\n",
        scenario_list().c_str());
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
    for (const Scenario& scenario : scenarios()) {
        if (!ctx.selected(scenario.name)) continue;
        try {
            scenario.run(ctx);
        } catch (const std::exception& e) {
            record_failure(ctx, scenario, scenario.name + ": " + e.what());
        }
    }

    std::vector<Row> goals, others;
    std::set<std::string> placed;
    auto take = [&](const std::string& key, std::vector<Row>& into) {
        const auto found = ctx.rows.find(key);
        if (found == ctx.rows.end() || !placed.insert(key).second) return;
        into.push_back(found->second);
    };
    for (const std::string& key : goal_rows) take(key, goals);
    for (const std::string& key : other_rows) take(key, others);
    for (const Scenario& scenario : scenarios()) {
        for (const auto& row : scenario.rows) take(row.first, others);
    }
    for (const auto& [key, row] : ctx.rows) take(key, others);
    int met = 0, missed = 0;
    for (const auto* table : {&goals, &others}) {
        for (const Row& row : *table) {
            if (!row.error.empty() || !row.met) continue;
            (*row.met ? met : missed) += 1;
        }
    }
    const FilesystemInfo fs_info = filesystem_of(ctx.root);
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
           << ", CSV dump: " << z.csv_repetitions
           << "), ours and baselines interleaved; ratio = median of the per-repetition ratios\n"
           << "the library as shipped: default Options, default logger\n"
           << "load average (1/5/15 min) before: " << load_before << "; after: " << load_average()
           << "\n";
    std::ostringstream summary;
    summary << "goals met: " << met << ", not met: " << missed << ", errors: " << ctx.errors.size()
            << (ctx.settings.quick ? " (quick mode: small counts, timing is not asserted)" : "")
            << "\n";
    const std::string goals_table = goals.empty() ? "" : render_table(goals);
    const std::string others_table = others.empty() ? "" : render_table(others);
    std::cout << "\n" << header.str();
    if (!goals.empty()) std::cout << "\nThe goals of issue 16:\n\n" << goals_table;
    if (!others.empty()) std::cout << "\nOther comparisons:\n\n" << others_table;
    std::cout << "\n" << summary.str();
    for (const std::string& error : ctx.errors) std::cout << "ERROR: " << error << "\n";
    std::cout << std::flush;

    if (!ctx.settings.markdown.empty()) {
        std::ofstream md(ctx.settings.markdown);
        md << "# checkpoint_bench results\n\n";
        std::istringstream lines(header.str());
        for (std::string line; std::getline(lines, line);) md << "- " << line << "\n";
        if (!goals.empty()) md << "\n## The goals of issue 16\n\n" << goals_table;
        if (!others.empty()) md << "\n## Other comparisons\n\n" << others_table;
        md << "\n" << summary.str() << "\n";
        for (const std::string& error : ctx.errors) md << "- ERROR: " << error << "\n";
        md << "Baselines: raw SQLite = the SQLite C API on a database with the library's "
              "schema (created by opening a CheckpointManager once), WAL, same synchronous "
              "setting, prepared BEGIN IMMEDIATE + single-row INSERT INTO checkpoints + COMMIT; "
              "lookup = prepared SELECT 1 FROM stage_heads WHERE pipeline=? AND stage=? AND "
              "status='completed'; CSV dump = the sqlite3 shell's -csv output of the same "
              "columns of the same table. Original design = <dir>/<stage>.checkpoint files "
              "containing COMPLETED (durable: fsync of the file and of the directory; its clear "
              "fsyncs the directory once at the end). Processes are fork+exec of "
              "checkpoint_bench itself. Ours: default Options, default logger.\n";
        if (!md) {
            std::cerr << "checkpoint_bench: cannot write " << ctx.settings.markdown << "\n";
            return 1;
        }
    }
    return ctx.errors.empty() ? 0 : 1;
}

}  // namespace

}  // namespace bench

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "--worker") return bench::worker_main(argc, argv);
    bench::Context ctx;
    bench::Settings& s = ctx.settings;
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
            } else if (arg == "--sqlite3") {
                s.sqlite3_shell = value();
            } else if (arg == "--keep") {
                s.keep = true;
            } else if (arg == "--only") {
                std::istringstream list(value());
                for (std::string item; std::getline(list, item, ',');) {
                    const auto& all = bench::scenarios();
                    if (std::none_of(all.begin(), all.end(),
                                     [&](const bench::Scenario& one) { return one.name == item; }))
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
                bench::usage(stdout);
                return 0;
            } else {
                throw std::invalid_argument("unknown option '" + arg + "'");
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "checkpoint_bench: %s\n", e.what());
        bench::usage(stderr);
        return 2;
    }
    ctx.sizes = s.quick ? bench::quick_sizes : bench::full_sizes;
    if (s.clear_rows) ctx.sizes.clear_rows = *s.clear_rows;

    int status = 1;
    try {
        ctx.self = bench::self_executable();
        std::filesystem::create_directories(s.parent);
        std::string pattern =
            (std::filesystem::absolute(s.parent) / "checkpoint_bench.XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr)
            throw bench::Failure("mkdtemp in " + s.parent.string() + ": " + std::strerror(errno));
        ctx.root = std::filesystem::canonical(pattern);
        const bench::FilesystemInfo info = bench::filesystem_of(ctx.root);
        bench::note("working directory " + ctx.root.string() + " on " + info.type);
        if (info.memory_backed)
            bench::note("WARNING: a memory filesystem: give --dir on the disk you want to measure");
        status = s.profile.empty() ? bench::bench_main(ctx) : bench::profile_main(ctx);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "checkpoint_bench: %s\n", e.what());
        status = 1;
    }
    if (!ctx.root.empty()) {
        if (s.keep) {
            bench::note("kept " + ctx.root.string());
        } else {
            std::error_code ignored;
            std::filesystem::remove_all(ctx.root, ignored);
        }
    }
    return status;
}