// A real worker process for the lease tests (lease_workers_test.cpp). DIR is what
// CheckpointManager takes: a checkpoint directory, or a postgresql:// URI.
//
//   checkpoint_lease_worker run DIR STAGES WIDTH TTL_MS WORK_MS LOG [--hang-after K EVENTS]
//       runs the DAG parallel_pipeline::make_dag(STAGES, WIDTH) with the example's worker
//       loop (tools/parallel_pipeline/worker_loop.hpp), leases of TTL_MS (heartbeat on),
//       until every stage is completed. Each stage's work appends one line, the stage's
//       name, to LOG (one write, O_APPEND), then sleeps WORK_MS. Prints "done N" (the
//       stages it ran) and exits 0; on an error prints "error: ..." on stderr and exits 1.
//         --hang-after K EVENTS  inside its K-th stage (after begin_stage, before the work)
//                                append "hang PID STAGE TOKEN" to EVENTS and sleep until
//                                killed
//
//   checkpoint_lease_worker zombie DIR STAGE TTL_MS GATE
//       claims STAGE (TTL_MS, no heartbeat, no waiting), calls begin_stage, prints "holding
//       TOKEN" and flushes, waits (up to 120 s) until the file GATE exists, then saves the
//       stage: prints "lease-lost" when the save threw LeaseLost, "saved" when it was
//       recorded, and exits 0.
#include "worker_loop.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

namespace {

void append_line(const std::string& path, const std::string& line) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("cannot open " + path);
    const std::string text = line + "\n";
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (!written) throw std::runtime_error("cannot append to " + path);
}

checkpoint::Options quiet_options() {
    checkpoint::Options options;
    options.logger = spdlog::stderr_color_mt("lease_worker");
    options.logger->set_level(spdlog::level::warn);
    return options;
}

int run(int argc, char** argv) {
    if (argc != 8 && argc != 11) throw std::runtime_error("run: wrong arguments");
    const std::string dir = argv[2];
    const int stages = std::stoi(argv[3]);
    const int width = std::stoi(argv[4]);
    checkpoint::LeaseOptions lease;
    lease.ttl = std::chrono::milliseconds(std::stoi(argv[5]));
    const auto work = std::chrono::milliseconds(std::stoi(argv[6]));
    const std::string log = argv[7];
    int hang_after = 0;
    std::string events;
    if (argc == 11) {
        if (std::string(argv[8]) != "--hang-after") throw std::runtime_error("run: bad option");
        hang_after = std::stoi(argv[9]);
        events = argv[10];
    }
    checkpoint::CheckpointManager manager(dir, quiet_options());
    const parallel_pipeline::Dag dag = parallel_pipeline::make_dag(stages, width);
    int started = 0;
    parallel_pipeline::WorkerHooks hooks;
    hooks.work = [&](const std::string& stage, const checkpoint::Lease& held) {
        if (++started == hang_after) {
            append_line(events, "hang " + std::to_string(::getpid()) + " " + stage + " " +
                                    std::to_string(held.token()));
            for (;;) ::pause();  // until killed
        }
        append_line(log, stage);
        std::this_thread::sleep_for(work);
    };
    const int ran = parallel_pipeline::run_worker(manager, dag, lease, hooks);
    std::cout << "done " << ran << std::endl;
    return 0;
}

int zombie(int argc, char** argv) {
    if (argc != 6) throw std::runtime_error("zombie: wrong arguments");
    const std::string stage = argv[3];
    checkpoint::LeaseOptions options;
    options.ttl = std::chrono::milliseconds(std::stoi(argv[4]));
    options.wait = std::chrono::milliseconds(0);
    options.heartbeat = false;  // a stopped heartbeat must not hold the database's lock
    const std::filesystem::path gate = argv[5];
    checkpoint::CheckpointManager manager(argv[2], quiet_options());
    auto lease = manager.claim_stage(stage, options);
    if (!lease) throw std::runtime_error("zombie: the stage is completed already");
    manager.begin_stage(stage);
    std::cout << "holding " << lease->token() << std::endl;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!std::filesystem::exists(gate)) {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("zombie: no gate file after 120 s");
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    try {
        manager.save_checkpoint(stage);
        std::cout << "saved" << std::endl;
    } catch (const checkpoint::Error& e) {
        if (e.code() != checkpoint::ErrorCode::LeaseLost) throw;
        std::cout << "lease-lost" << std::endl;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string mode = argc > 1 ? argv[1] : "";
        if (mode == "run") return run(argc, argv);
        if (mode == "zombie") return zombie(argc, argv);
        std::cerr << "usage: see tests/lease_worker.cpp\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << std::endl;
        return 1;
    }
}
