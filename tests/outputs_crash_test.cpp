// Crashes with stored outputs: real worker processes killed with SIGKILL at random moments.
// (1) While saving file-backed outputs: every committed checkpoint loads its exact bytes, a
//     file whose row never committed is never used, and prune() removes it.
// (2) While pruning: no current checkpoint loses its output, the database stays sound, and
//     a second prune finishes the job.
// (3) Not a crash, a race: processes saving outputs that earlier (prunable) rows used too,
//     while another prunes them: no current checkpoint ever misses its output.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <atomic>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using checkpoint::CheckpointManager;
using checkpoint::fingerprint_of;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::PruneOptions;
using checkpoint::SaveOptions;
using checkpoint::Status;
using checkpoint::test::ChildProcess;
using checkpoint::test::RawDb;
using checkpoint::test::read_file;
using checkpoint::test::run_command;
using checkpoint::test::TempDir;
using checkpoint::test::with_stderr_to;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

constexpr int killed_status = 128 + SIGKILL;
constexpr std::size_t inline_limit = 1024;

// The output `checkpoint_test_worker save-output` stores for `key` (the same function as in
// tests/worker.cpp): `size` bytes, the key then pseudo-random bytes derived from it.
std::string test_output(const std::string& key, std::size_t size) {
    std::string bytes = key + "\n";
    std::uint64_t x = 1469598103934665603ull;
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

std::string stage_name(const std::string& prefix, long index) {
    return prefix + "-" + std::to_string(index);
}

// Options of a manager that reads and checks (and prunes) between kills.
Options checker_options() {
    Options options;
    options.max_inline_output = inline_limit;
    return options;
}

struct OutputsDirectory {
    std::set<std::string> outputs;    // 64-hex names
    std::set<std::string> temporary;  // *.tmp
    std::set<std::string> other;
};

OutputsDirectory list_outputs(const fs::path& directory) {
    OutputsDirectory result;
    if (!fs::exists(directory)) return result;
    for (const auto& entry : fs::directory_iterator(directory)) {
        const std::string name = entry.path().filename().string();
        if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0) {
            result.temporary.insert(name);
        } else if (name.size() == 64 &&
                   name.find_first_not_of("0123456789abcdef") == std::string::npos) {
            result.outputs.insert(name);
        } else {
            result.other.insert(name);
        }
    }
    return result;
}

std::string describe(const std::vector<std::string>& lines) {
    std::string all;
    for (const auto& line : lines) all += line + "\n";
    return all;
}

void expect_ack(const std::string& line, long expected) {
    INFO("worker printed: " << line);
    REQUIRE(line == "ack " + std::to_string(expected));
}

}  // namespace

TEST_CASE(
    "kill -9 while saving file-backed outputs: committed outputs load exactly, orphans "
    "are never used and are pruned",
    "[crash][outputs]") {
    constexpr int rounds = 40;
    const unsigned seed = std::random_device{}();
    std::cout << "outputs_crash_test: saving, random seed " << seed << std::endl;
    INFO("random seed " << seed);
    std::mt19937 rng(seed);

    TempDir scratch;
    const auto dir = scratch / "checkpoints";
    const auto outputs = dir / "checkpoints.db-outputs";

    // Every committed stage of every round, with the SHA-256 of its output.
    std::map<std::string, std::string> committed;
    int rounds_with_orphan_file = 0;
    int rounds_with_temporary = 0;
    std::size_t acked_total = 0;

    for (int round = 0; round < rounds; ++round) {
        const std::string prefix = "r" + std::to_string(round);
        // Mostly 256 KiB outputs (long enough to write for a kill to land in), sometimes
        // small files; every third round stages share outputs (the same file again).
        const std::size_t size = round % 4 == 3 ? 4096 : 256 * 1024;
        const long dup = round % 3 == 2 ? 3 : 0;
        auto output_of = [&](long index) {
            return test_output(stage_name(prefix, dup > 0 ? index % dup : index), size);
        };
        std::vector<std::string> argv{CHECKPOINT_TEST_WORKER,
                                      "save-output",
                                      dir.string(),
                                      prefix,
                                      "0",
                                      std::to_string(size),
                                      "--inline-limit",
                                      std::to_string(inline_limit)};
        if (dup > 0) {
            argv.emplace_back("--dup");
            argv.emplace_back(std::to_string(dup));
        }
        const auto err_file = scratch / (prefix + ".err");

        long acked = 0;
        std::string how;
        {
            ChildProcess child(with_stderr_to(err_file.string(), argv));
            if (round % 2 == 0) {
                const auto delay =
                    std::chrono::microseconds(std::uniform_int_distribution<int>(0, 120'000)(rng));
                how = "after " + std::to_string(delay.count()) + " us";
                std::this_thread::sleep_for(delay);
            } else {
                // Right after some acknowledgements, then a little later: inside the next save.
                const long wanted = std::uniform_int_distribution<long>(0, 6)(rng);
                const auto extra =
                    std::chrono::microseconds(std::uniform_int_distribution<int>(0, 4'000)(rng));
                how = "after " + std::to_string(wanted) + " acks + " +
                      std::to_string(extra.count()) + " us";
                for (; acked < wanted; ++acked) {
                    const auto line = child.read_line(30s);
                    REQUIRE(line);
                    expect_ack(*line, acked);
                }
                std::this_thread::sleep_for(extra);
            }
            child.kill(SIGKILL);
            const int status = child.wait();
            std::istringstream rest(child.read_rest());
            for (std::string line; std::getline(rest, line); ++acked) expect_ack(line, acked);
            INFO("round " << round << " killed " << how);
            INFO("worker stderr:\n" << read_file(err_file));
            REQUIRE(status == killed_status);
        }
        acked_total += static_cast<std::size_t>(acked);
        INFO("round " << round << " (" << size << " bytes, dup " << dup << "): killed " << how
                      << ", " << acked << " saves acknowledged");

        CheckpointManager checker(dir, checker_options());
        REQUIRE(checker.outputs_directory() == outputs);

        // Every acknowledged save is there with its exact output; at most the one in flight
        // besides; nothing after it.
        long present = 0;
        while (checker.has_checkpoint(stage_name(prefix, present))) ++present;
        CHECK(present >= acked);
        CHECK(present <= acked + 1);
        for (long i = 0; i < present; ++i) {
            const std::string stage = stage_name(prefix, i);
            INFO("stage " << stage);
            const std::string expected = output_of(i);
            const auto loaded = checker.load_output(stage);
            REQUIRE(loaded);
            CHECK(loaded->size() == expected.size());
            CHECK(*loaded == expected);
            const auto latest = checker.latest(stage);
            REQUIRE(latest);
            REQUIRE(latest->output);
            CHECK_FALSE(latest->output->in_database);
            CHECK(latest->output->sha256 == fingerprint_of(expected));
            committed[stage] = fingerprint_of(expected);
        }

        // The save in flight left no checkpoint; whatever file it left is not used.
        const std::string in_flight = stage_name(prefix, present);
        const std::string in_flight_sha = fingerprint_of(output_of(present));
        CHECK_FALSE(checker.has_checkpoint(in_flight));
        CHECK_FALSE(checker.latest(in_flight));
        CHECK_FALSE(checker.load_output(in_flight));
        CHECK_FALSE(checker.load_output(in_flight, 1));

        std::set<std::string> referenced;
        for (const auto& [stage, sha] : committed) referenced.insert(sha);
        const auto listed = list_outputs(outputs);
        CHECK(listed.other.empty());
        CHECK(listed.temporary.size() <= 1);  // one save was in flight
        std::set<std::string> orphans;
        for (const auto& name : listed.outputs) {
            if (referenced.count(name) == 0) orphans.insert(name);
        }
        CHECK(orphans.size() <= 1);
        for (const auto& orphan : orphans) {
            INFO("orphan " << orphan);
            CHECK(orphan == in_flight_sha);  // only the save in flight can leave one
        }
        for (const auto& sha : referenced) {
            INFO("referenced output " << sha);
            CHECK(listed.outputs.count(sha) == 1);
        }
        rounds_with_orphan_file += orphans.empty() ? 0 : 1;
        rounds_with_temporary += listed.temporary.empty() ? 0 : 1;

        // Pruning with no grace removes what the kill left, and nothing else.
        PruneOptions orphans_only;
        orphans_only.orphan_grace = 0s;
        const auto pruned = checker.prune(orphans_only);
        CHECK(pruned.rows_deleted == 0);
        CHECK(pruned.files_deleted ==
              static_cast<std::int64_t>(orphans.size() + listed.temporary.size()));
        const auto after = list_outputs(outputs);
        CHECK(after.outputs == referenced);
        CHECK(after.temporary.empty());
        const auto problems = checker.verify();
        INFO("verify():\n" << describe(problems));
        CHECK(problems.empty());
        {
            RawDb raw(dir / "checkpoints.db", SQLITE_OPEN_READONLY);
            CHECK(raw.value("PRAGMA integrity_check") == "ok");
        }
        // The stage in flight can be saved now, and then loads.
        SaveOptions again;
        again.output = output_of(present);
        checker.save_checkpoint(in_flight, again);
        CHECK(checker.load_output(in_flight) == again.output);
        committed[in_flight] = in_flight_sha;
    }

    // At the end, every checkpoint of every round still loads exactly.
    CheckpointManager checker(dir, checker_options());
    for (const auto& [stage, sha] : committed) {
        INFO("stage " << stage);
        const auto loaded = checker.load_output(stage);
        REQUIRE(loaded);
        CHECK(fingerprint_of(*loaded) == sha);
    }
    std::cout << "outputs_crash_test: " << rounds << " kills while saving, " << acked_total
              << " saves acknowledged, " << committed.size() << " checkpoints; "
              << rounds_with_orphan_file << " kills left a complete orphan file, "
              << rounds_with_temporary << " a temporary file" << std::endl;
    // The kills did land between writing an output file and committing its row.
    CHECK(rounds_with_orphan_file + rounds_with_temporary >= 1);
}

TEST_CASE(
    "kill -9 while pruning: current checkpoints keep their outputs and a second prune "
    "finishes",
    "[crash][prune]") {
    constexpr int rounds = 30;
    constexpr int stages = 25;
    constexpr int versions = 8;
    constexpr std::int64_t keep = 2;
    const unsigned seed = std::random_device{}();
    std::cout << "outputs_crash_test: pruning, random seed " << seed << std::endl;
    INFO("random seed " << seed);
    std::mt19937 rng(seed);

    TempDir scratch;
    const auto template_dir = scratch / "template";
    auto output_of = [](int stage, int version) {
        // Files (over the inline limit) except every fourth version, inline.
        return test_output("s" + std::to_string(stage) + "/v" + std::to_string(version),
                           version % 4 == 3 ? 200 : 2048 + static_cast<std::size_t>(stage));
    };
    {
        Options options = checker_options();
        options.durability = checkpoint::Durability::Normal;  // faster to set up
        CheckpointManager writer(template_dir, options);
        for (int version = 1; version <= versions; ++version) {
            for (int stage = 0; stage < stages; ++stage) {
                SaveOptions save;
                save.output = output_of(stage, version);
                writer.save_checkpoint("s" + std::to_string(stage), save);
            }
        }
    }
    const std::size_t template_rows = stages * versions;
    const std::size_t template_files =
        list_outputs(template_dir / "checkpoints.db-outputs").outputs.size();
    REQUIRE(template_files == static_cast<std::size_t>(stages * 6));

    std::chrono::microseconds full_prune{0};
    int killed_before_done = 0;
    int killed_between_rows_and_files = 0;
    for (int round = 0; round < rounds; ++round) {
        const auto dir = scratch / ("round-" + std::to_string(round));
        fs::copy(template_dir, dir, fs::copy_options::recursive);
        const auto outputs = dir / "checkpoints.db-outputs";
        const auto err_file = scratch / ("round-" + std::to_string(round) + ".err");

        // Round 0 runs to the end, to time a whole prune; the others are killed within that.
        std::string how = "not killed";
        std::string printed;
        {
            ChildProcess child(with_stderr_to(
                err_file.string(), {CHECKPOINT_TEST_WORKER, "prune", dir.string(), "--keep-last",
                                    std::to_string(keep), "--orphan-grace", "0"}));
            const auto ready = child.read_line(30s);
            INFO("worker stderr:\n" << read_file(err_file));
            REQUIRE(ready);
            REQUIRE(*ready == "ready");
            const auto started = std::chrono::steady_clock::now();
            if (round == 0) {
                const auto line = child.read_line(60s);
                REQUIRE(line);
                printed = *line;
                full_prune = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - started);
                REQUIRE(child.wait() == 0);
            } else {
                const auto delay = std::chrono::microseconds(std::uniform_int_distribution<long>(
                    0, std::max<long>(1, full_prune.count() * 6 / 5))(rng));
                how = "killed " + std::to_string(delay.count()) + " us after ready";
                std::this_thread::sleep_for(delay);
                child.kill(SIGKILL);
                const int status = child.wait();
                printed = child.read_rest();
                if (status != killed_status) how += " (it had ended)";
            }
        }
        const bool finished = printed.rfind("pruned ", 0) == 0;
        if (!finished) ++killed_before_done;
        INFO("round " << round << ": " << how << (finished ? ", prune finished" : "")
                      << " (a whole prune took " << full_prune.count() << " us)");

        CheckpointManager checker(dir, checker_options());
        // Every stage is current, with its output, whatever the kill interrupted.
        for (int stage = 0; stage < stages; ++stage) {
            const std::string name = "s" + std::to_string(stage);
            INFO("stage " << name);
            CHECK(checker.has_checkpoint(name));
            const auto loaded = checker.load_output(name);
            REQUIRE(loaded);
            CHECK(*loaded == output_of(stage, versions));
        }
        const auto problems = checker.verify();
        INFO("verify():\n" << describe(problems));
        REQUIRE(problems.empty());
        {
            RawDb raw(dir / "checkpoints.db", SQLITE_OPEN_READONLY);
            CHECK(raw.value("PRAGMA integrity_check") == "ok");
        }
        // Rows go in one transaction: all of them or none.
        const auto rows = checker.history().size();
        const std::size_t kept_rows = stages * keep;
        CHECK((rows == template_rows || rows == kept_rows));
        const auto files = list_outputs(outputs).outputs.size();
        if (rows == kept_rows && files > static_cast<std::size_t>(stages * keep)) {
            ++killed_between_rows_and_files;  // rows gone, files not all yet
        }
        if (rows == template_rows) CHECK(files == template_files);  // no file before the rows

        // A second prune finishes the job.
        PruneOptions again;
        again.keep_last = keep;
        again.orphan_grace = 0s;
        checker.prune(again);
        CHECK(checker.history().size() == kept_rows);
        std::set<std::string> referenced;
        for (int stage = 0; stage < stages; ++stage) {
            const std::string name = "s" + std::to_string(stage);
            for (int version = versions - static_cast<int>(keep) + 1; version <= versions;
                 ++version) {
                const std::string expected = output_of(stage, version);
                CHECK(checker.load_output(name, version) == expected);
                if (expected.size() > inline_limit) referenced.insert(fingerprint_of(expected));
            }
            CHECK_FALSE(checker.load_output(name, versions - keep));
        }
        const auto after = list_outputs(outputs);
        CHECK(after.outputs == referenced);
        CHECK(after.temporary.empty());
        CHECK(checker.verify().empty());
        if (round > 0) fs::remove_all(dir);
    }
    std::cout << "outputs_crash_test: " << rounds - 1 << " kills while pruning (a whole prune took "
              << full_prune.count() << " us): " << killed_before_done << " before it finished, "
              << killed_between_rows_and_files
              << " after its rows were deleted and before all its files were" << std::endl;
    CHECK(killed_before_done >= 1);
}

TEST_CASE(
    "saves that reuse outputs while another thread prunes: current outputs never go "
    "missing",
    "[prune][concurrency]") {
    // Worker processes run one after another, each saving p-0 and p-1 alternately (three
    // versions each), with outputs cycling through five contents: a save often reuses the
    // file of a row that only older, prunable versions (of ended runs) still name. Meanwhile
    // a thread prunes to keep_last 1 in a loop.
    constexpr int workers = 30;
    constexpr std::size_t size = 8192;
    TempDir scratch;
    const auto dir = scratch / "checkpoints";
    auto content = [](int key) { return test_output("p-" + std::to_string(key), size); };
    // What each worker leaves current: p-0 from its save 4 (content 4), p-1 from save 5
    // (content 0).
    const std::string current0 = content(4);
    const std::string current1 = content(0);
    {
        CheckpointManager create(dir, checker_options());  // the database exists from here
    }

    std::atomic<bool> stop{false};
    std::atomic<long> prunes{0};
    std::atomic<long> rows_pruned{0};
    std::atomic<long> files_pruned{0};
    std::string pruner_error;
    std::thread pruner([&] {
        try {
            CheckpointManager manager(dir, checker_options());
            PruneOptions options;
            options.keep_last = 1;
            while (!stop) {
                const auto result = manager.prune(options);
                ++prunes;
                rows_pruned += result.rows_deleted;
                files_pruned += result.files_deleted;
                std::this_thread::sleep_for(1ms);
            }
        } catch (const std::exception& e) {
            pruner_error = e.what();
        }
    });

    std::vector<std::string> problems;
    for (int worker = 0; worker < workers && problems.empty(); ++worker) {
        const auto result = run_command(
            {CHECKPOINT_TEST_WORKER, "save-output", dir.string(), "p", "6", std::to_string(size),
             "--inline-limit", std::to_string(inline_limit), "--dup", "5", "--stages", "2"});
        if (result.exit_code != 0) {
            problems.push_back("worker " + std::to_string(worker) + " failed: " + result.err);
            break;
        }
        Options read_only = checker_options();
        read_only.read_only = true;
        const CheckpointManager checker(dir, read_only);
        for (const auto& [stage, expected] :
             {std::pair<std::string, std::string>{"p-0", current0}, {"p-1", current1}}) {
            if (!checker.has_checkpoint(stage)) {
                const auto latest = checker.latest(stage);
                problems.push_back("after worker " + std::to_string(worker) + ": " + stage +
                                   " has no checkpoint" +
                                   (latest ? " (stale: " + latest->stale_reason + ")" : ""));
                continue;
            }
            try {
                if (checker.load_output(stage) != expected)
                    problems.push_back(stage + " loads other bytes");
            } catch (const std::exception& e) {
                problems.push_back("after worker " + std::to_string(worker) + ": " + stage + ": " +
                                   e.what());
            }
        }
    }
    stop = true;
    pruner.join();
    std::cout << "outputs_crash_test: " << workers << " workers saving while " << prunes
              << " prunes deleted " << rows_pruned << " rows and " << files_pruned << " files"
              << std::endl;
    CHECK(pruner_error.empty());
    for (const auto& problem : problems) FAIL_CHECK(problem);
    CHECK(prunes > 0);
    CHECK(rows_pruned > 0);
    CHECK(files_pruned > 0);

    CheckpointManager checker(dir, checker_options());
    CHECK(checker.load_output("p-0") == current0);
    CHECK(checker.load_output("p-1") == current1);
    const auto verified = checker.verify();
    INFO("verify():\n" << describe(verified));
    CHECK(verified.empty());
}
