// A real child process for concurrency, crash and reader tests.
//
// DIR is what CheckpointManager takes: a checkpoint directory, or a postgresql:// URI (the
// conformance suite on PostgreSQL, tests/support/test_location.hpp). The worker does
// nothing with it but pass it on; its own files (--gate, --stop) are separate paths.
//
//   checkpoint_test_worker save DIR PREFIX COUNT [normal] [begin] [leak] [--gate FILE]
//                               [--stop FILE]
//       saves PREFIX-0 ... PREFIX-(COUNT-1); after each save returns, prints "ack N" and
//       flushes, so the parent knows which saves were acknowledged. Exits 0; on an error
//       prints "error: ..." on stderr and exits 1.
//         normal       use Durability::Normal instead of Durability::Full
//         begin        call begin_stage(PREFIX-N) before each save_checkpoint(PREFIX-N)
//         --gate FILE  print "ready" and flush, then wait (up to 60 s) until FILE exists
//                      before opening the database, so that several workers can be
//                      released at the same moment
//         --stop FILE  stop early, still exiting 0, once FILE exists (checked before each
//                      save)
//         leak         never destroy the manager: the process exits 0 without closing it
//                      (as a program that calls exit() with its manager still alive)
//
//   checkpoint_test_worker reopen DIR PREFIX COUNT [--stop FILE]
//       COUNT times (0: until FILE exists): opens a manager, saves PREFIX-N, destroys the
//       manager (closing its connection), then prints "ack N" and flushes. Exits 0; on an
//       error prints "error: ..." on stderr and exits 1.
//
//   checkpoint_test_worker begin DIR STAGE
//       calls begin_stage(STAGE), prints "begun" and flushes, then sleeps until killed.
//
//   checkpoint_test_worker fail DIR STAGE MESSAGE [--pipeline NAME]
//       calls begin_stage(STAGE) then fail_stage(STAGE, MESSAGE) in one run (MESSAGE is taken
//       verbatim from the command line: commas, quotes, newlines, any UTF-8), prints
//       "failed" and exits 0.
//
//   checkpoint_test_worker serve DIR [--pipeline NAME]
//       opens the database (holding it open until it exits), prints "ready" and flushes,
//       then runs one command per line read on stdin, printing "ok" and flushing after each:
//         save STAGE    save_checkpoint(STAGE)
//         begin STAGE   begin_stage(STAGE)
//         clear STAGE   clear_checkpoint(STAGE)
//         clear-all     clear_checkpoints()
//       Exits 0 at the end of stdin; on any other line prints "error: ..." on stderr and
//       exits 1.
//
//   checkpoint_test_worker mixed DIR SEED COUNT [normal] [--pipeline NAME]
//       performs COUNT operations (0: until killed) chosen by a random generator seeded with
//       SEED, on the stages s0 ... s5: save_checkpoint (40%), begin_stage (20%), fail_stage
//       (10%), clear_checkpoint (20%) and clear_checkpoints (10%). Prints "ready RUN_ID" once
//       the database is open, then, after each operation has returned, one line naming it and
//       the history row it wrote (read back by run id), and flushes:
//         ack save STAGE VERSION ID | ack begin STAGE ID | ack fail STAGE ID
//         ack clear STAGE ID        | ack clear-all ID
//       Exits 0 after COUNT operations; on an error prints "error: ..." on stderr and exits 1.
//         normal       use Durability::Normal instead of Durability::Full
//
//   checkpoint_test_worker save-output DIR PREFIX COUNT SIZE [--inline-limit N] [--dup K]
//                                       [--stages K]
//       saves PREFIX-0 ... PREFIX-(COUNT-1) (0: until killed), each with an output of SIZE
//       bytes: test_output(STAGE, SIZE) below (tests/outputs_crash_test.cpp has the same
//       function, to know the exact bytes); after each save returns, prints "ack N" and
//       flushes. Exits 0; on an error prints "error: ..." on stderr and exits 1.
//         --inline-limit N  Options::max_inline_output = N (default: the library's)
//         --dup K           the output of PREFIX-N is test_output(PREFIX-(N % K), SIZE), so
//                           that stages share outputs
//         --stages K        save the stage PREFIX-(N % K) instead of PREFIX-N, so that
//                           each stage gets several versions
//
//   checkpoint_test_worker prune DIR [--keep-last N] [--older-than SECONDS]
//                                    [--orphan-grace SECONDS]
//       opens the database, prints "ready" and flushes, calls prune() with those options
//       (unset ones keep their defaults), then prints "pruned ROWS RUNS FILES BYTES" (the
//       PruneResult) and exits 0; on an error prints "error: ..." on stderr and exits 1.
#include <checkpoint/checkpoint_manager.hpp>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

#include <unistd.h>

namespace {

constexpr const char* usage =
    "usage: checkpoint_test_worker save DIR PREFIX COUNT [normal] [begin] [leak] [--gate FILE] "
    "[--stop FILE]\n"
    "       checkpoint_test_worker reopen DIR PREFIX COUNT [--stop FILE]\n"
    "       checkpoint_test_worker begin DIR STAGE\n"
    "       checkpoint_test_worker fail DIR STAGE MESSAGE [--pipeline NAME]\n"
    "       checkpoint_test_worker serve DIR [--pipeline NAME]\n"
    "       checkpoint_test_worker mixed DIR SEED COUNT [normal] [--pipeline NAME]\n"
    "       checkpoint_test_worker save-output DIR PREFIX COUNT SIZE [--inline-limit N] "
    "[--dup K] [--stages K]\n"
    "       checkpoint_test_worker prune DIR [--keep-last N] [--older-than SECONDS] "
    "[--orphan-grace SECONDS]\n";

void say(const std::string& line) {
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

// Waits until `file` exists: a start line shared by several workers.
void wait_for_gate(const std::filesystem::path& file) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!std::filesystem::exists(file)) {
        if (std::chrono::steady_clock::now() > deadline)
            throw std::runtime_error("gate " + file.string() + " never opened");
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
}

int save(int argc, char** argv) {
    checkpoint::Options options;
    bool begin_first = false;
    bool leak = false;
    std::filesystem::path gate;
    std::filesystem::path stop;
    for (int i = 5; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "normal") {
            options.durability = checkpoint::Durability::Normal;
        } else if (arg == "begin") {
            begin_first = true;
        } else if (arg == "leak") {
            leak = true;
        } else if (arg == "--gate" && i + 1 < argc) {
            gate = argv[++i];
        } else if (arg == "--stop" && i + 1 < argc) {
            stop = argv[++i];
        } else {
            std::cerr << usage;
            return 2;
        }
    }
    if (!gate.empty()) {
        say("ready");
        wait_for_gate(gate);
    }
    auto owned = std::make_unique<checkpoint::CheckpointManager>(argv[2], options);
    checkpoint::CheckpointManager& manager = *owned;
    const std::string prefix = argv[3];
    const long count = std::strtol(argv[4], nullptr, 10);
    for (long i = 0; i < count; ++i) {
        if (!stop.empty() && std::filesystem::exists(stop)) break;
        const std::string stage = prefix + "-" + std::to_string(i);
        if (begin_first) manager.begin_stage(stage);
        manager.save_checkpoint(stage);
        say("ack " + std::to_string(i));
    }
    if (leak) {
        // Never closed: the process ends as one that calls _exit() (or crashes) with its
        // manager alive; no destructor, no atexit handler (nor a leak report) runs.
        (void)owned.release();
        std::fflush(stdout);
        std::_Exit(0);
    }
    return 0;
}

int reopen(int argc, char** argv) {
    std::filesystem::path stop;
    if (argc == 7 && std::string(argv[5]) == "--stop") {
        stop = argv[6];
    } else if (argc != 5) {
        std::cerr << usage;
        return 2;
    }
    const long count = std::strtol(argv[4], nullptr, 10);
    for (long i = 0; count == 0 || i < count; ++i) {
        if (!stop.empty() && std::filesystem::exists(stop)) break;
        {
            checkpoint::CheckpointManager manager(argv[2]);
            manager.save_checkpoint(std::string(argv[3]) + "-" + std::to_string(i));
        }
        say("ack " + std::to_string(i));
    }
    return 0;
}

int begin(char** argv) {
    checkpoint::CheckpointManager manager(argv[2]);
    manager.begin_stage(argv[3]);
    say("begun");
    for (;;) ::pause();
}

// Options for fail and serve: [--pipeline NAME] from argv[first] on; false on anything else.
bool pipeline_option(int argc, char** argv, int first, checkpoint::Options& options) {
    for (int i = first; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--pipeline" && i + 1 < argc) {
            options.pipeline = argv[++i];
        } else {
            return false;
        }
    }
    return true;
}

int fail(int argc, char** argv) {
    checkpoint::Options options;
    if (!pipeline_option(argc, argv, 5, options)) {
        std::cerr << usage;
        return 2;
    }
    checkpoint::CheckpointManager manager(argv[2], options);
    manager.begin_stage(argv[3]);
    manager.fail_stage(argv[3], argv[4]);
    say("failed");
    return 0;
}

int serve(int argc, char** argv) {
    checkpoint::Options options;
    if (!pipeline_option(argc, argv, 3, options)) {
        std::cerr << usage;
        return 2;
    }
    checkpoint::CheckpointManager manager(argv[2], options);
    say("ready");
    for (std::string line; std::getline(std::cin, line);) {
        const auto space = line.find(' ');
        const std::string command = line.substr(0, space);
        const std::string stage = space == std::string::npos ? "" : line.substr(space + 1);
        if (command == "save" && space != std::string::npos) {
            manager.save_checkpoint(stage);
        } else if (command == "begin" && space != std::string::npos) {
            manager.begin_stage(stage);
        } else if (command == "clear" && space != std::string::npos) {
            manager.clear_checkpoint(stage);
        } else if (line == "clear-all") {
            manager.clear_checkpoints();
        } else {
            throw std::runtime_error("serve: unknown command '" + line + "'");
        }
        say("ok");
    }
    return 0;
}

int mixed(int argc, char** argv) {
    checkpoint::Options options;
    for (int i = 5; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "normal") {
            options.durability = checkpoint::Durability::Normal;
        } else if (arg == "--pipeline" && i + 1 < argc) {
            options.pipeline = argv[++i];
        } else {
            std::cerr << usage;
            return 2;
        }
    }
    std::mt19937_64 rng(std::strtoull(argv[3], nullptr, 10));
    const long count = std::strtol(argv[4], nullptr, 10);
    checkpoint::CheckpointManager manager(argv[2], options);
    say("ready " + manager.run_id());
    // The last history row this run wrote: the one the operation just appended (each
    // operation appends exactly one row, and only this run writes rows with its id).
    auto own_last_row = [&manager](checkpoint::Status expected, const std::string& stage) {
        checkpoint::HistoryFilter mine;
        mine.run_id = manager.run_id();
        std::optional<checkpoint::Checkpoint> last;
        manager.for_each_history(mine, [&last](const checkpoint::Checkpoint& row) { last = row; });
        if (!last || last->status != expected || last->stage != stage) {
            throw std::runtime_error("mixed: the row just written (" +
                                     std::string(checkpoint::to_string(expected)) + " '" + stage +
                                     "') is not this run's last history row");
        }
        return *last;
    };
    for (long done = 0; count == 0 || done < count; ++done) {
        const std::string stage = "s" + std::to_string(rng() % 6);
        const auto pick = rng() % 100;
        if (pick < 40) {
            manager.save_checkpoint(stage);
            const auto row = own_last_row(checkpoint::Status::Completed, stage);
            say("ack save " + stage + " " + std::to_string(row.version) + " " +
                std::to_string(row.id));
        } else if (pick < 60) {
            manager.begin_stage(stage);
            const auto row = own_last_row(checkpoint::Status::Started, stage);
            say("ack begin " + stage + " " + std::to_string(row.id));
        } else if (pick < 70) {
            manager.fail_stage(stage, "mixed failure " + std::to_string(done));
            const auto row = own_last_row(checkpoint::Status::Failed, stage);
            say("ack fail " + stage + " " + std::to_string(row.id));
        } else if (pick < 90) {
            manager.clear_checkpoint(stage);
            const auto row = own_last_row(checkpoint::Status::Cleared, stage);
            say("ack clear " + stage + " " + std::to_string(row.id));
        } else {
            manager.clear_checkpoints();
            const auto row = own_last_row(checkpoint::Status::Cleared, "");
            say("ack clear-all " + std::to_string(row.id));
        }
    }
    return 0;
}

// The output save-output stores for `key`: `size` bytes, the key then pseudo-random bytes
// (NUL included) derived from it. tests/outputs_crash_test.cpp has the same function.
std::string test_output(const std::string& key, std::size_t size) {
    std::string bytes = key + "\n";
    std::uint64_t x = 1469598103934665603ull;  // FNV-1a of the key, then xorshift
    for (const char c : key) x = (x ^ static_cast<unsigned char>(c)) * 1099511628211ull;
    while (bytes.size() < size) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.push_back(static_cast<char>(x & 0xff));
    }
    bytes.resize(size);
    return bytes;
}

int save_output(int argc, char** argv) {
    checkpoint::Options options;
    long dup = 0;
    long stages = 0;
    for (int i = 6; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--inline-limit" && i + 1 < argc) {
            options.max_inline_output = std::strtoull(argv[++i], nullptr, 10);
        } else if (arg == "--dup" && i + 1 < argc) {
            dup = std::strtol(argv[++i], nullptr, 10);
        } else if (arg == "--stages" && i + 1 < argc) {
            stages = std::strtol(argv[++i], nullptr, 10);
        } else {
            std::cerr << usage;
            return 2;
        }
    }
    const std::string prefix = argv[3];
    const long count = std::strtol(argv[4], nullptr, 10);
    const std::size_t size = std::strtoull(argv[5], nullptr, 10);
    checkpoint::CheckpointManager manager(argv[2], options);
    for (long i = 0; count == 0 || i < count; ++i) {
        const std::string stage = prefix + "-" + std::to_string(stages > 0 ? i % stages : i);
        checkpoint::SaveOptions save;
        save.output = test_output(dup > 0 ? prefix + "-" + std::to_string(i % dup) : stage, size);
        manager.save_checkpoint(stage, save);
        say("ack " + std::to_string(i));
    }
    return 0;
}

int prune(int argc, char** argv) {
    checkpoint::PruneOptions prune_options;
    for (int i = 3; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--keep-last" && i + 1 < argc) {
            prune_options.keep_last = std::strtoll(argv[++i], nullptr, 10);
        } else if (arg == "--older-than" && i + 1 < argc) {
            prune_options.older_than = std::chrono::seconds(std::strtoll(argv[++i], nullptr, 10));
        } else if (arg == "--orphan-grace" && i + 1 < argc) {
            prune_options.orphan_grace = std::chrono::seconds(std::strtoll(argv[++i], nullptr, 10));
        } else {
            std::cerr << usage;
            return 2;
        }
    }
    checkpoint::CheckpointManager manager(argv[2]);
    say("ready");
    const auto result = manager.prune(prune_options);
    say("pruned " + std::to_string(result.rows_deleted) + " " +
        std::to_string(result.runs_deleted) + " " + std::to_string(result.files_deleted) + " " +
        std::to_string(result.bytes_freed));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const std::string command = argc > 1 ? argv[1] : "";
        if (command == "save" && argc >= 5) return save(argc, argv);
        if (command == "begin" && argc == 4) return begin(argv);
        if (command == "reopen" && argc >= 5) return reopen(argc, argv);
        if (command == "fail" && argc >= 5) return fail(argc, argv);
        if (command == "serve" && argc >= 3) return serve(argc, argv);
        if (command == "mixed" && argc >= 5) return mixed(argc, argv);
        if (command == "save-output" && argc >= 6) return save_output(argc, argv);
        if (command == "prune" && argc >= 3) return prune(argc, argv);
        std::cerr << usage;
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return 1;
    }
}
