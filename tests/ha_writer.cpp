// The writer of the failover test and benchmark: a real child process that saves
// continuously through one CheckpointManager, from several threads (so that saves share
// commits: group commit), while the servers behind the URI fail over.
//
//   checkpoint_test_ha_writer URL THREADS --stop FILE [--reconnect-timeout-ms N] [--normal]
//       opens CheckpointManager(URL) (pipeline "ha"), prints "ready RUN_ID", then each
//       thread T (0 .. THREADS-1) saves the stage "wT" again and again, with the metadata
//       {"seq": N} (N = 0, 1, 2, ... per thread). After each save returns, it prints, under
//       one lock, and flushes before the next save:
//         ack wT N MONOTONIC_NS        (the save is acknowledged)
//         error wT N MESSAGE           (the save threw; the thread goes on with N + 1)
//       The library's warnings (a line per reconnect) and errors go to stderr.
//       MONOTONIC_NS is CLOCK_MONOTONIC (std::chrono::steady_clock) in nanoseconds, which
//       another process on the machine can compare with its own. Once FILE exists (checked
//       before each save) the threads stop; the writer prints "done" and exits 0.
//         --reconnect-timeout-ms N  Options::reconnect_timeout (default: the library's)
//         --normal                  Durability::Normal
//   Exits 2 on bad arguments, 1 when the database cannot be opened (on stderr).
#include <checkpoint/checkpoint_manager.hpp>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

int usage() {
    std::cerr << "usage: checkpoint_test_ha_writer URL THREADS --stop FILE "
                 "[--reconnect-timeout-ms N] [--normal]\n";
    return 2;
}

std::mutex out_mutex;

void print_line(const std::string& line) {
    std::lock_guard lock(out_mutex);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

long long monotonic_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

std::string one_line(std::string text) {
    for (char& c : text)
        if (c == '\n' || c == '\r') c = ' ';
    return text;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) return usage();
    const std::string url = argv[1];
    const int threads = std::atoi(argv[2]);
    if (threads < 1 || threads > 64) return usage();
    std::string stop_file;
    checkpoint::Options options;
    options.pipeline = "ha";
    // Warnings (each reconnect, with the host reached) and errors on stderr; not a line
    // per save.
    options.logger = spdlog::stderr_color_mt("ha_writer");
    options.logger->set_level(spdlog::level::warn);
    for (int i = 3; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--stop" && i + 1 < argc) {
            stop_file = argv[++i];
        } else if (arg == "--reconnect-timeout-ms" && i + 1 < argc) {
            options.reconnect_timeout = std::chrono::milliseconds(std::atoll(argv[++i]));
        } else if (arg == "--normal") {
            options.durability = checkpoint::Durability::Normal;
        } else {
            return usage();
        }
    }
    if (stop_file.empty()) return usage();
    try {
        checkpoint::CheckpointManager manager(url, options);
        print_line("ready " + manager.run_id());
        std::vector<std::thread> workers;
        for (int t = 0; t < threads; ++t) {
            workers.emplace_back([&, t] {
                const std::string stage = "w" + std::to_string(t);
                for (long long seq = 0; !std::filesystem::exists(stop_file); ++seq) {
                    checkpoint::SaveOptions save;
                    save.metadata = {{"seq", seq}};
                    try {
                        manager.save_checkpoint(stage, save);
                        print_line("ack " + stage + " " + std::to_string(seq) + " " +
                                   std::to_string(monotonic_ns()));
                    } catch (const checkpoint::Error& e) {
                        print_line("error " + stage + " " + std::to_string(seq) + " " +
                                   one_line(e.what()));
                    }
                }
            });
        }
        for (std::thread& worker : workers) worker.join();
        print_line("done");
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
