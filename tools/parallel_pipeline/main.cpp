// parallel_pipeline — the lease example: a DAG of stages (fan-out and fan-in) run by
// --workers N worker processes that share one checkpoint database (a directory, or a
// postgresql:// URL: then workers on several hosts may join with the same command). Each
// worker claims a stage whose inputs are completed, runs it, saves it with its inputs, and
// repeats until the pipeline is complete; every stage runs once.
//
//   parallel_pipeline --workers 8 build/parallel-checkpoints
//   parallel_pipeline --workers 4 --stages 60 --work-ms 50 postgresql://user@host/db
//
// Run it again once complete: nothing runs. Kill a worker (or all of them) mid-way and run
// it again: the stages completed are kept, a killed worker's stage is taken over once its
// claim lapses (--ttl-ms), and the rest runs.
#include "worker_loop.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace {

struct Settings {
    std::string location;
    int workers = 4;
    int stages = 48;
    int width = 8;
    int work_ms = 20;
    int ttl_ms = 5000;
    std::string pipeline = "parallel_example";
    bool verbose = false;
    bool normal = false;  // Durability::Normal
};

checkpoint::Options manager_options(const Settings& settings, const std::string& logger_name) {
    checkpoint::Options options;
    options.pipeline = settings.pipeline;
    if (settings.normal) options.durability = checkpoint::Durability::Normal;
    options.logger = spdlog::stderr_color_mt(logger_name);  // _mt: the heartbeat logs too
    options.logger->set_level(settings.verbose ? spdlog::level::info : spdlog::level::warn);
    return options;
}

// One worker process: returns its exit status.
int worker_main(const Settings& settings, int number) {
    try {
        checkpoint::CheckpointManager manager(settings.location,
                                              manager_options(settings, "worker"));
        const parallel_pipeline::Dag dag =
            parallel_pipeline::make_dag(settings.stages, settings.width);
        checkpoint::LeaseOptions lease;
        lease.ttl = std::chrono::milliseconds(settings.ttl_ms);
        parallel_pipeline::WorkerHooks hooks;
        hooks.work = [&](const std::string&, const checkpoint::Lease&) {
            // The stage's work: here, only time passing.
            std::this_thread::sleep_for(std::chrono::milliseconds(settings.work_ms));
        };
        const int ran = parallel_pipeline::run_worker(manager, dag, lease, hooks);
        std::printf("worker %d (pid %d) ran %d stages\n", number, static_cast<int>(::getpid()),
                    ran);
        std::fflush(stdout);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "worker %d: %s\n", number, e.what());
        return 1;
    }
}

}  // namespace

int main(int argc, char** argv) {
    Settings settings;
    CLI::App app{"Runs a DAG of stages with N worker processes sharing one checkpoint database"};
    app.add_option("location", settings.location, "checkpoint directory, or postgresql:// URL")
        ->required();
    app.add_option("--workers", settings.workers, "worker processes (default 4)")
        ->check(CLI::Range(1, 256));
    app.add_option("--stages", settings.stages, "stages in the DAG (default 48)")
        ->check(CLI::Range(2, 100000));
    app.add_option("--width", settings.width, "stages per layer of the DAG (default 8)")
        ->check(CLI::Range(1, 10000));
    app.add_option("--work-ms", settings.work_ms, "each stage's work, in ms (default 20)")
        ->check(CLI::Range(0, 3600000));
    app.add_option("--ttl-ms", settings.ttl_ms,
                   "lease time-to-live, in ms (default 5000): how soon a dead worker's stage "
                   "is taken over")
        ->check(CLI::Range(10, 86400000));
    app.add_option("--pipeline", settings.pipeline, "pipeline name (default parallel_example)");
    app.add_flag("--verbose", settings.verbose, "log every claim and save");
    app.add_flag("--normal", settings.normal,
                 "Durability::Normal: no fsync per write (a power loss may lose the last ones)");
    CLI11_PARSE(app, argc, argv);

    std::fflush(stdout);
    const auto started = std::chrono::steady_clock::now();
    std::vector<pid_t> children;
    for (int i = 0; i < settings.workers; ++i) {
        const pid_t pid = ::fork();
        if (pid < 0) {
            std::perror("parallel_pipeline: fork");
            return 1;
        }
        if (pid == 0) ::_exit(worker_main(settings, i + 1));
        children.push_back(pid);
    }
    int failed = 0;
    for (const pid_t pid : children) {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    try {
        checkpoint::Options options = manager_options(settings, "parallel_pipeline");
        options.read_only = true;
        checkpoint::CheckpointManager manager(settings.location, options);
        const parallel_pipeline::Dag dag =
            parallel_pipeline::make_dag(settings.stages, settings.width);
        int completed = 0;
        for (const std::string& stage : dag.stages) completed += manager.has_checkpoint(stage);
        std::printf("%d of %zu stages completed by %d workers in %.2f s%s\n", completed,
                    dag.stages.size(), settings.workers, seconds,
                    failed ? " (some workers failed: see above)" : "");
        return failed == 0 && completed == static_cast<int>(dag.stages.size()) ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "parallel_pipeline: %s\n", e.what());
        return 1;
    }
}
