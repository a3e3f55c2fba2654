// Crashes: a worker process killed with SIGKILL at random moments, many times, into the
// same directory. Every acknowledged save survives, the database stays intact, killed runs
// read as died and a stage begun by a killed process reads as incomplete.
// CHECKPOINT_TEST_SCALE (support/scale.hpp) scales the number of kills (the sanitizer runs
// of tools/test.sh); unset, 80 kills of a saving worker and 20 of a creating one.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "scale.hpp"
#include "temp_dir.hpp"
#include "test_location.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::Run;
using checkpoint::RunOutcome;
using checkpoint::Status;
using checkpoint::test::ChildProcess;
using checkpoint::test::query_value;
using checkpoint::test::RawDb;
using checkpoint::test::read_file;
using checkpoint::test::TempDir;
using checkpoint::test::TestLocation;
using checkpoint::test::with_stderr_to;
using namespace std::chrono_literals;

namespace {

constexpr int killed_status = 128 + SIGKILL;

// Checks that `line` is "ack <expected>".
void expect_ack(const std::string& line, long expected) {
    INFO("worker printed: " << line);
    REQUIRE(line == "ack " + std::to_string(expected));
}

const Run* find_run(const std::vector<Run>& runs, pid_t pid) {
    const Run* found = nullptr;
    for (const auto& run : runs) {
        if (run.pid == pid) found = &run;  // the latest, should a pid have been reused
    }
    return found;
}

// The outcome of the run of process `pid`, or nothing when it recorded no run.
std::optional<RunOutcome> outcome_of(const std::vector<Run>& runs, pid_t pid) {
    const Run* run = find_run(runs, pid);
    if (run == nullptr) return std::nullopt;
    return run->outcome;
}

std::string stage_name(const std::string& prefix, long index) {
    return prefix + "-" + std::to_string(index);
}

}  // namespace

TEST_CASE("kill -9 at random moments loses no acknowledged save and corrupts nothing", "[crash]") {
    // The rounds cycle through every combination of their modes (see below) every 8 rounds:
    // at least 16 rounds, each combination twice.
    const int rounds = checkpoint::test::scaled(80, 16);
    checkpoint::test::announce_scale("crash_test: kill -9 at random moments",
                                     std::to_string(rounds) + " kills");
    const unsigned seed = std::random_device{}();
    INFO("random seed " << seed);
    std::mt19937 rng(seed);

    TestLocation scratch;
    // SQLite: a directory the first worker creates; PostgreSQL: an empty database.
    const auto dir = scratch.is_sqlite() ? scratch / "checkpoints" : scratch.location();
    const auto db_path = dir / "checkpoints.db";  // SQLite
    // One row of plain SQL, on the database file (SQLite) or through psql's eyes.
    const auto sql_value = [&](const std::string& sql) {
        if (scratch.is_postgres()) return scratch.query(sql);
        RawDb raw(db_path, SQLITE_OPEN_READONLY);
        return raw.value(sql);
    };

    struct Round {
        std::string prefix;
        long present = 0;  // stages prefix-0 .. prefix-(present-1) were found saved
    };
    std::vector<Round> done;
    std::size_t expected_rows = 0;  // history rows all rounds so far must have left
    std::size_t expected_runs = 0;  // runs that wrote at least one row

    for (int round = 0; round < rounds; ++round) {
        const std::string prefix = "r" + std::to_string(round);
        // Rounds alternate between killing after a random delay and killing right after a
        // random number of acknowledgements; every other pair of rounds also begins each
        // stage before saving it, so that some kills land between begin and save; every
        // other four rounds use Durability::Normal (which must survive kill -9 as well).
        const bool kill_after_delay = round % 2 == 0;
        const bool begin_first = round % 4 >= 2;
        const bool normal = round % 8 >= 4;
        std::vector<std::string> argv{CHECKPOINT_TEST_WORKER, "save", dir.string(), prefix,
                                      "1000000"};
        if (begin_first) argv.emplace_back("begin");
        if (normal) argv.emplace_back("normal");
        const auto err_file = scratch / (prefix + ".err");

        std::string how;
        long acked = 0;
        int exit_code = -1;
        pid_t pid = 0;
        {
            ChildProcess child(with_stderr_to(err_file, argv));
            pid = child.pid();
            if (kill_after_delay) {
                // Sometimes during start-up (opening, creating, migrating), usually later.
                // (Normal saves are fast: a shorter time keeps their number reasonable.)
                const int longest = normal ? 20'000 : 100'000;
                const auto delay = std::chrono::microseconds(
                    rng() % 2 == 0 ? std::uniform_int_distribution<int>(0, 8'000)(rng)
                                   : std::uniform_int_distribution<int>(0, longest)(rng));
                how = "after " + std::to_string(delay.count()) + " us";
                std::this_thread::sleep_for(delay);  // the random moment of the crash
            } else {
                const long wanted = std::uniform_int_distribution<long>(0, 25)(rng);
                how = "after " + std::to_string(wanted) + " acks";
                for (; acked < wanted; ++acked) {
                    const auto line = child.read_line(30s);
                    REQUIRE(line);
                    expect_ack(*line, acked);
                }
            }
            child.kill(SIGKILL);
            exit_code = child.wait();
            // Acks already in the pipe were printed after their save returned: they count.
            std::istringstream rest(child.read_rest());
            for (std::string line; std::getline(rest, line); ++acked) expect_ack(line, acked);
        }
        INFO("round " << round << ": pid " << pid << " killed " << how << ", " << acked
                      << " saves acknowledged" << (begin_first ? " (begin + save)" : "")
                      << (normal ? " (durability normal)" : ""));
        const std::string err = read_file(err_file);
        INFO("worker stderr:\n" << err);
        REQUIRE(exit_code == killed_status);
        CHECK(err.find("error") == std::string::npos);
        scratch.settle();  // PostgreSQL: the server is done with the killed connection

        // The database opens with a new manager after every kill.
        std::optional<CheckpointManager> checker;
        REQUIRE_NOTHROW(checker.emplace(dir));
        if (scratch.is_postgres()) {
            CHECK(scratch.query("SELECT count(*) FROM schema_migrations") ==
                  scratch.query("SELECT version FROM checkpoint_schema"));
        } else {
            RawDb raw(db_path);
            REQUIRE(raw.value("PRAGMA integrity_check") == "ok");
            CHECK(raw.value("PRAGMA user_version") == std::to_string(checkpoint::schema_version()));
        }

        // Every acknowledged save is there; at most the one in flight besides; no hole.
        long present = 0;
        while (checker->has_checkpoint(stage_name(prefix, present))) ++present;
        CHECK(present >= acked);
        CHECK(present <= acked + 1);
        CHECK_FALSE(checker->has_checkpoint(stage_name(prefix, present + 1)));
        for (long i = 0; i < present; ++i) {
            const auto latest = checker->latest(stage_name(prefix, i));
            REQUIRE(latest);
            CHECK(latest->status == Status::Completed);
            CHECK(latest->version == 1);
            if (begin_first) CHECK(latest->duration.has_value());
        }

        // The stage the worker was in when killed: nothing, or (begun) incomplete.
        const auto in_flight = checker->latest(stage_name(prefix, present));
        bool dangling = false;
        if (in_flight) {
            CHECK(begin_first);
            CHECK(in_flight->status == Status::Incomplete);
            CHECK(in_flight->version == 0);
            dangling = true;
            CHECK(sql_value("SELECT status FROM current_state WHERE stage = '" +
                            stage_name(prefix, present) + "'") == "incomplete");
        }

        // The killed run (if it wrote anything) reads as died, everywhere.
        const auto runs = checker->runs();
        const Run* run = find_run(runs, pid);
        if (present > 0 || dangling) {
            ++expected_runs;
            REQUIRE(run != nullptr);
            CHECK(run->outcome == RunOutcome::Died);
            CHECK_FALSE(run->ended_at.has_value());
        } else {
            CHECK(run == nullptr);
        }
        CHECK(runs.size() == expected_runs);
        for (const auto& each : runs) CHECK(each.outcome == RunOutcome::Died);

        // The whole history: nothing lost from earlier rounds, nothing invented.
        expected_rows +=
            static_cast<std::size_t>(present) * (begin_first ? 2 : 1) + (dangling ? 1 : 0);
        const auto history = checker->history();
        CHECK(history.size() == expected_rows);
        for (std::size_t i = 1; i < history.size(); ++i) CHECK(history[i - 1].id < history[i].id);
        for (const auto& earlier : done) {
            for (long i = 0; i < earlier.present; ++i)
                CHECK(checker->has_checkpoint(stage_name(earlier.prefix, i)));
        }
        checker.reset();
        // The library recorded the deaths in the database: plain SQL sees them too.
        CHECK(sql_value("SELECT count(*) FROM runs WHERE outcome <> 'died'") == "0");
        CHECK(sql_value("SELECT count(*) FROM runs WHERE ended_at IS NOT NULL") == "0");
        done.push_back({prefix, present});
    }
}

TEST_CASE("a process killed while it creates the database leaves one that opens and works",
          "[crash]") {
    // The first open of a directory creates the file, switches it to WAL and migrates it:
    // kill the first process at a random moment of that, in a fresh directory each round.
    const int rounds = checkpoint::test::scaled(20, 5);
    checkpoint::test::announce_scale("crash_test: killed while creating the database",
                                     std::to_string(rounds) + " kills");
    const unsigned seed = std::random_device{}();
    INFO("random seed " << seed);
    std::mt19937 rng(seed);
    for (int round = 0; round < rounds; ++round) {
        TestLocation location;  // PostgreSQL: a fresh, empty database each round
        const auto dir = location.is_sqlite() ? location / ("round-" + std::to_string(round))
                                              : location.location();
        const auto delay =
            std::chrono::microseconds(std::uniform_int_distribution<int>(0, 30'000)(rng));
        INFO("round " << round << ": killed after " << delay.count() << " us");
        long acked = 0;
        {
            ChildProcess child({CHECKPOINT_TEST_WORKER, "save", dir.string(), "p", "1000000"});
            std::this_thread::sleep_for(delay);  // the random moment of the crash
            child.kill(SIGKILL);
            REQUIRE(child.wait() == killed_status);
            std::istringstream rest(child.read_rest());
            for (std::string line; std::getline(rest, line); ++acked) expect_ack(line, acked);
        }
        location.settle();
        // Whatever the kill left (no directory, an empty file, a file in WAL mode but not
        // migrated, ...), the next manager opens it and works, and acknowledged saves stay.
        std::optional<CheckpointManager> manager;
        REQUIRE_NOTHROW(manager.emplace(dir));
        for (long i = 0; i < acked; ++i) CHECK(manager->has_checkpoint(stage_name("p", i)));
        manager->save_checkpoint("after");
        CHECK(manager->has_checkpoint("after"));
        manager.reset();
        if (location.is_postgres()) {
            CHECK(location.query("SELECT count(*) FROM schema_migrations") ==
                  location.query("SELECT version FROM checkpoint_schema"));
            continue;
        }
        RawDb raw(dir / "checkpoints.db", SQLITE_OPEN_READONLY);
        CHECK(raw.value("PRAGMA integrity_check") == "ok");
        CHECK(raw.value("PRAGMA user_version") == std::to_string(checkpoint::schema_version()));
        CHECK(raw.value("SELECT count(*) FROM schema_migrations") ==
              std::to_string(checkpoint::schema_version()));
    }
}

TEST_CASE("a stage begun by a killed process reads as incomplete", "[crash]") {
    TestLocation dir;

    // "load" completes once in a run that ends normally.
    const auto saved = checkpoint::test::run_command(
        {CHECKPOINT_TEST_WORKER, "save", dir.location().string(), "load", "1"});
    INFO("worker stderr:\n" << saved.err);
    REQUIRE(saved.exit_code == 0);
    REQUIRE(saved.out == "ack 0\n");
    const std::string load = "load-0";

    // Two processes begin a stage and stay in it: "load-0" again, and the new "train".
    ChildProcess reloading({CHECKPOINT_TEST_WORKER, "begin", dir.location().string(), load});
    ChildProcess training({CHECKPOINT_TEST_WORKER, "begin", dir.location().string(), "train"});
    for (auto* child : {&reloading, &training}) {
        const auto line = child->read_line(30s);
        REQUIRE(line);
        REQUIRE(*line == "begun");
    }

    {
        // While they live, the stages are started (running), not incomplete.
        CheckpointManager observer(dir.location());
        const auto running_load = observer.latest(load);
        REQUIRE(running_load);
        CHECK(running_load->status == Status::Started);
        CHECK(running_load->version == 1);
        CHECK_FALSE(observer.has_checkpoint(load));
        const auto running_train = observer.latest("train");
        REQUIRE(running_train);
        CHECK(running_train->status == Status::Started);
        CHECK(running_train->version == 0);
        const auto runs = observer.runs();
        REQUIRE(runs.size() == 3);
        CHECK(outcome_of(runs, reloading.pid()) == RunOutcome::Running);
        CHECK(outcome_of(runs, training.pid()) == RunOutcome::Running);
    }

    const pid_t reloading_pid = reloading.pid();
    const pid_t training_pid = training.pid();
    reloading.kill(SIGKILL);
    training.kill(SIGKILL);
    REQUIRE(reloading.wait() == killed_status);
    REQUIRE(training.wait() == killed_status);
    dir.settle();

    // What every reader must see after the kill, whether or not the deaths were written
    // to the file yet.
    auto check_after_kill = [&](const CheckpointManager& manager) {
        CHECK_FALSE(manager.has_checkpoint(load));
        CHECK_FALSE(manager.has_checkpoint("train"));

        const auto latest_load = manager.latest(load);
        REQUIRE(latest_load);
        CHECK(latest_load->status == Status::Incomplete);
        CHECK(latest_load->version == 1);
        const auto latest_train = manager.latest("train");
        REQUIRE(latest_train);
        CHECK(latest_train->status == Status::Incomplete);
        CHECK(latest_train->version == 0);

        HistoryFilter of_load;
        of_load.stage = load;
        const auto load_history = manager.history(of_load);
        REQUIRE(load_history.size() == 2);
        CHECK(load_history[0].status == Status::Completed);
        CHECK(load_history[1].status == Status::Incomplete);
        CHECK(load_history[1].version == 1);

        HistoryFilter incomplete;
        incomplete.status = Status::Incomplete;
        CHECK(manager.history(incomplete).size() == 2);
        HistoryFilter started;
        started.status = Status::Started;
        CHECK(manager.history(started).empty());

        const auto stages = manager.stages();
        REQUIRE(stages.size() == 2);
        CHECK(stages[0].stage == load);
        CHECK(stages[0].status == Status::Incomplete);
        CHECK(stages[1].stage == "train");
        CHECK(stages[1].status == Status::Incomplete);

        const auto runs = manager.runs();
        REQUIRE(runs.size() == 3);
        CHECK(runs[0].outcome == RunOutcome::Finished);
        CHECK(outcome_of(runs, reloading_pid) == RunOutcome::Died);
        CHECK(outcome_of(runs, training_pid) == RunOutcome::Died);
    };

    SECTION("a read-only manager (nothing written since the kill)") {
        Options read_only;
        read_only.read_only = true;
        const CheckpointManager reader(dir.location(), read_only);
        check_after_kill(reader);
    }

    SECTION("a new writer, the sqlite3 views, and resuming the stage") {
        CheckpointManager resumed(dir.location());
        check_after_kill(resumed);
        if (dir.is_sqlite()) {
            CHECK(query_value(dir.location() / "checkpoints.db", "PRAGMA integrity_check") == "ok");
        }
        CHECK(dir.rows("SELECT stage, status, version FROM current_state ORDER BY stage") ==
              std::vector<std::string>{"load-0|incomplete|1", "train|incomplete|0"});
        CHECK(dir.rows("SELECT status FROM history WHERE stage = 'train' ORDER BY id") ==
              std::vector<std::string>{"incomplete"});
        CHECK(dir.query("SELECT count(*) FROM runs WHERE outcome = 'died'") == "2");

        // The pipeline resumes: the incomplete stage runs again and completes.
        const bool ran = resumed.run_stage("train", [] {});
        CHECK(ran);
        CHECK(resumed.has_checkpoint("train"));
        HistoryFilter of_train;
        of_train.stage = "train";
        const auto train_history = resumed.history(of_train);
        REQUIRE(train_history.size() == 3);
        CHECK(train_history[0].status == Status::Incomplete);
        CHECK(train_history[1].status == Status::Started);
        CHECK(train_history[2].status == Status::Completed);
        CHECK(train_history[2].version == 1);
        CHECK(train_history[2].duration.has_value());
    }
}
