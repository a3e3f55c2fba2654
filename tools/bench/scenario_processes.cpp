// checkpoint_bench — 8 processes saving into one directory, ours and raw SQLite.
#include "scenario.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fcntl.h>
#include <unistd.h>

namespace bench {

namespace {

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

void run_processes(Context& ctx) {
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

const bool registered = register_scenario(
    {"processes",
     40,
     {{"processes", "8 processes saving durably into one directory vs raw SQLite"}},
     run_processes});

}  // namespace

}  // namespace bench
