// Soak: several worker processes at once doing mixed operations (saves, begins, failures,
// clears of one stage, pipeline-wide clears) on ONE directory, each killed with SIGKILL at
// a random moment and replaced, hundreds of times. After every batch: the file is intact,
// verify() is clean, no acknowledged operation is lost, the derived state agrees with the
// history (no clear half-applied), and killed runs read as died with their begun stages
// incomplete. CHECKPOINT_TEST_SCALE (support/scale.hpp) scales the number of kills (the
// sanitizer runs of tools/test.sh); unset, 210 kills.
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
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::Options;
using checkpoint::Run;
using checkpoint::RunOutcome;
using checkpoint::Status;
using checkpoint::test::ChildProcess;
using checkpoint::test::RawDb;
using checkpoint::test::read_file;
using checkpoint::test::TempDir;
using checkpoint::test::TestLocation;
using checkpoint::test::with_stderr_to;
using namespace std::chrono_literals;

namespace {

constexpr int killed_status = 128 + SIGKILL;
const std::vector<std::string> pipelines{"p0", "p1"};
const std::vector<std::string> stage_names{"s0", "s1", "s2", "s3", "s4", "s5"};

// One acknowledged operation, as a worker printed it.
struct Ack {
    std::string pipeline;
    std::string run_id;
    std::string kind;  // save, begin, fail, clear, clear-all
    std::string stage;
    std::int64_t version = -1;  // save only
    std::int64_t id = 0;
    std::string line;
};

// Parses "ack ..." lines (complete lines only: a kill may cut the last one).
void parse_acks(const std::string& text, const std::string& pipeline, const std::string& run_id,
                std::vector<Ack>& acks) {
    std::size_t start = 0;
    for (std::size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1) {
        const std::string line = text.substr(start, end - start);
        std::istringstream in(line);
        std::string word;
        in >> word;
        if (word != "ack") {
            INFO("worker printed: " << line);
            FAIL("unexpected worker output");
        }
        Ack ack;
        ack.pipeline = pipeline;
        ack.run_id = run_id;
        ack.line = line;
        in >> ack.kind;
        if (ack.kind != "clear-all") in >> ack.stage;
        if (ack.kind == "save") in >> ack.version;
        in >> ack.id;
        INFO("worker printed: " << line);
        REQUIRE(in);
        REQUIRE((ack.kind == "save" || ack.kind == "begin" || ack.kind == "fail" ||
                 ack.kind == "clear" || ack.kind == "clear-all"));
        acks.push_back(ack);
    }
}

struct Worker {
    std::unique_ptr<ChildProcess> child;
    std::string pipeline;
    std::string run_id;
    std::string description;
    std::string pending;  // output already read, still to be parsed
    std::filesystem::path err_file;
};

std::string tail(const std::string& text, std::size_t bytes) {
    return text.size() <= bytes ? text : "..." + text.substr(text.size() - bytes);
}

// What the kernel says a process is doing (for a stalled worker).
std::string describe_process(pid_t pid) {
    const std::string proc = "/proc/" + std::to_string(pid) + "/";
    return "pid " + std::to_string(pid) + " stat: " + read_file(proc + "stat") +
           "\nwchan: " + read_file(proc + "wchan") + "\nsyscall: " + read_file(proc + "syscall") +
           "\n";
}

// True when the process has ended (a zombie not yet reaped).
bool has_exited(pid_t pid) {
    const std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
    const auto end_of_name = stat.rfind(')');
    return end_of_name == std::string::npos || stat.compare(end_of_name, 3, ") Z") == 0;
}

struct Totals {
    int kills = 0;
    std::size_t acked = 0;
    std::size_t lost = 0;
    int worker_errors = 0;  // workers that ended with an error instead of being killed
};

// Checks the whole directory (database) against everything acknowledged so far.
void check_directory(const TestLocation& location, const std::filesystem::path& dir,
                     const std::vector<Ack>& acks, const std::set<std::string>& killed_runs,
                     const std::set<std::string>& failed_runs, Totals& totals) {
    const auto db_path = dir / "checkpoints.db";  // SQLite
    location.settle();  // PostgreSQL: the server is done with the killed workers' sessions
    if (location.is_postgres()) {
        if (location.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND "
                           "tablename = 'checkpoint_schema'") == "0") {
            CHECK(acks.empty());  // every worker was killed before it migrated the database
            return;
        }
        CHECK(location.query("SELECT count(*) FROM schema_migrations") ==
              location.query("SELECT version FROM checkpoint_schema"));
    } else if (!std::filesystem::exists(db_path)) {
        CHECK(acks.empty());  // every worker was killed before it created the file
        return;
    } else {
        RawDb raw(db_path, SQLITE_OPEN_READONLY);
        REQUIRE(raw.value("PRAGMA integrity_check") == "ok");
        CHECK(raw.value("PRAGMA user_version") == std::to_string(checkpoint::schema_version()));
    }
    for (const auto& pipeline : pipelines) {
        INFO("pipeline " << pipeline);
        // A read-only manager first: it writes nothing, so killed runs read as died from
        // process liveness alone.
        Options read_only;
        read_only.read_only = true;
        read_only.pipeline = pipeline;
        std::optional<CheckpointManager> reader;
        REQUIRE_NOTHROW(reader.emplace(dir, read_only));
        if (pipeline == pipelines.front()) {
            const auto problems = reader->verify();
            INFO("verify():\n"
                 << [&] {
                        std::string all;
                        for (const auto& p : problems) all += p + "\n";
                        return all;
                    }());
            REQUIRE(problems.empty());
        }

        const auto history = reader->history();
        std::map<std::int64_t, Checkpoint> by_id;
        for (const auto& row : history) by_id[row.id] = row;
        REQUIRE(by_id.size() == history.size());

        // Every acknowledged operation's row is there, as acknowledged.
        for (const auto& ack : acks) {
            if (ack.pipeline != pipeline) continue;
            INFO("acknowledged: " << ack.line << " (run " << ack.run_id << ")");
            const auto found = by_id.find(ack.id);
            if (found == by_id.end()) {
                if (ack.kind == "save") ++totals.lost;
                FAIL_CHECK("acknowledged row missing from the history");
                continue;
            }
            const Checkpoint& row = found->second;
            CHECK(row.run_id == ack.run_id);
            CHECK(row.stage == ack.stage);
            if (ack.kind == "save") {
                CHECK(row.status == Status::Completed);
                CHECK(row.version == ack.version);
                if (row.status != Status::Completed || row.version != ack.version) ++totals.lost;
            } else if (ack.kind == "begin") {
                CHECK((row.status == Status::Started || row.status == Status::Incomplete));
            } else if (ack.kind == "fail") {
                CHECK(row.status == Status::Failed);
            } else {
                CHECK(row.status == Status::Cleared);
            }
        }

        // The model: the current state of each stage, derived from the history alone.
        std::int64_t last_clear = 0;
        std::map<std::string, const Checkpoint*> last_row;
        std::map<std::string, std::int64_t> last_version;
        for (const auto& row : history) {
            if (row.stage.empty()) {
                CHECK(row.status == Status::Cleared);
                last_clear = row.id;
                continue;
            }
            last_row[row.stage] = &row;
            if (row.status == Status::Completed) last_version[row.stage] = row.version;
        }
        // A started row reads incomplete exactly when its run (killed, all of them) did not
        // complete or fail the stage later.
        for (std::size_t i = 0; i < history.size(); ++i) {
            const auto& row = history[i];
            if (row.status != Status::Started && row.status != Status::Incomplete) continue;
            bool closed = false;
            for (std::size_t j = i + 1; j < history.size() && !closed; ++j) {
                closed =
                    history[j].stage == row.stage && history[j].run_id == row.run_id &&
                    (history[j].status == Status::Completed || history[j].status == Status::Failed);
            }
            INFO("history row " << row.id << " stage " << row.stage << " run " << row.run_id);
            CHECK(row.status == (closed ? Status::Started : Status::Incomplete));
        }

        const auto stages = reader->stages();
        CHECK(stages.size() == last_row.size());
        for (const auto& current : stages) {
            INFO("stage " << current.stage);
            const auto found = last_row.find(current.stage);
            REQUIRE(found != last_row.end());
            const Checkpoint& last = *found->second;
            const bool cleared_by_pipeline = last.id < last_clear;
            // No clear half-applied: every stage whose last row precedes the pipeline's last
            // clear reads cleared, with the clear's row id.
            const Status expected = cleared_by_pipeline ? Status::Cleared : last.status;
            CHECK(current.status == expected);
            CHECK(current.id == (cleared_by_pipeline ? last_clear : last.id));
            CHECK(current.version == last_version[current.stage]);
            CHECK(reader->has_checkpoint(current.stage) == (expected == Status::Completed));
            const auto latest = reader->latest(current.stage);
            REQUIRE(latest);
            CHECK(latest->status == expected);
            CHECK(latest->id == current.id);
        }
        for (const auto& stage : stage_names) {
            if (last_row.count(stage) == 0) CHECK_FALSE(reader->latest(stage));
        }

        // Runs: every run of the pipeline was killed; none ended.
        const auto runs = reader->runs();
        std::set<std::string> run_ids;
        for (const auto& run : runs) {
            INFO("run " << run.run_id << " pid " << run.pid);
            run_ids.insert(run.run_id);
            if (failed_runs.count(run.run_id) == 1) continue;  // reported when it failed
            CHECK(killed_runs.count(run.run_id) == 1);
            CHECK(run.outcome == RunOutcome::Died);
            CHECK_FALSE(run.ended_at.has_value());
        }
        for (const auto& row : history) CHECK(run_ids.count(row.run_id) == 1);
    }
    // A writer records the deaths in the database: plain SQL then sees them too.
    REQUIRE_NOTHROW(CheckpointManager(dir));
    const std::string not_died =
        "SELECT run_id FROM runs WHERE outcome <> 'died' OR ended_at IS NOT NULL";
    const auto run_ids = location.is_postgres()
                             ? location.rows(not_died)
                             : RawDb(db_path, SQLITE_OPEN_READONLY).rows(not_died);
    for (const auto& run_id : run_ids) {
        INFO("run " << run_id << " is not recorded as died");
        CHECK(failed_runs.count(run_id) == 1);
    }
}

}  // namespace

TEST_CASE("hundreds of kill -9 of concurrent mixed writers lose nothing acknowledged", "[soak]") {
    // At least two batches of kills at any scale; 210 at full scale, of which 200 must be
    // kills (a worker that ended with an error instead is a failure, not a kill).
    const int total_kills = checkpoint::test::scaled(210, 30);
    const int required_kills = checkpoint::test::scaled(200, 30);
    constexpr int concurrent = 3;
    constexpr int kills_per_batch = 15;
    checkpoint::test::announce_scale("soak_test", std::to_string(total_kills) + " kills");
    const unsigned seed = std::random_device{}();
    std::cout << "soak_test: random seed " << seed << std::endl;
    INFO("random seed " << seed);
    std::mt19937 rng(seed);
    const auto started = std::chrono::steady_clock::now();

    TestLocation scratch;
    // SQLite: a directory the first worker creates; PostgreSQL: an empty database.
    const auto dir = scratch.is_sqlite() ? scratch / "checkpoints" : scratch.location();

    std::vector<Ack> acks;
    std::set<std::string> killed_runs;
    std::set<std::string> failed_runs;  // of workers that ended with an error (a failure)
    Totals totals;
    std::vector<Worker> workers;
    int started_workers = 0;

    auto start_worker = [&] {
        Worker worker;
        worker.pipeline = pipelines[rng() % pipelines.size()];
        const std::string worker_seed = std::to_string(rng());
        std::vector<std::string> argv{
            CHECKPOINT_TEST_WORKER, "mixed",        dir.string(), worker_seed, "0",
            "--pipeline",           worker.pipeline};
        if (rng() % 3 == 0) argv.emplace_back("normal");
        worker.description = "worker " + std::to_string(started_workers) + " (seed " + worker_seed +
                             ", pipeline " + worker.pipeline +
                             (argv.back() == "normal" ? ", durability normal)" : ")");
        worker.err_file = scratch / ("worker-" + std::to_string(started_workers) + ".err");
        worker.child =
            std::make_unique<ChildProcess>(with_stderr_to(worker.err_file.string(), argv));
        ++started_workers;
        workers.push_back(std::move(worker));
    };

    // Kills one worker (its acks, all printed after the operation returned, count).
    auto kill_worker = [&](std::size_t index) {
        Worker worker = std::move(workers[index]);
        workers.erase(workers.begin() + static_cast<std::ptrdiff_t>(index));
        INFO(worker.description);
        worker.child->kill(SIGKILL);
        const int status = worker.child->wait();
        ++totals.kills;
        const std::string out = worker.pending + worker.child->read_rest();
        const std::string err = read_file(worker.err_file);
        INFO("its stderr ends with:\n" << tail(err, 3000));
        // A worker ends only when killed: any other end is an error it reported on stderr.
        CHECK(status == killed_status);
        CHECK(err.find("\nerror") == std::string::npos);
        CHECK(err.rfind("error", 0) != 0);
        if (status != killed_status) {
            ++totals.worker_errors;
            --totals.kills;
        }
        std::filesystem::remove(worker.err_file);
        // The first line, "ready RUN_ID", unless the kill came before the open finished.
        std::string rest = out;
        const auto newline = out.find('\n');
        if (out.rfind("ready ", 0) == 0 && newline != std::string::npos) {
            worker.run_id = out.substr(6, newline - 6);
            rest = out.substr(newline + 1);
            (status == killed_status ? killed_runs : failed_runs).insert(worker.run_id);
        } else {
            REQUIRE(out.find('\n') == std::string::npos);
        }
        const std::size_t before = acks.size();
        parse_acks(rest, worker.pipeline, worker.run_id, acks);
        totals.acked += acks.size() - before;
    };

    while (totals.kills < total_kills) {
        // One batch: keep `concurrent` workers running, killing one at a random moment and
        // starting another, until the batch's kills are done; then kill the rest and check.
        const int batch_end = std::min(total_kills, totals.kills + kills_per_batch);
        while (static_cast<int>(workers.size()) < concurrent) start_worker();
        while (totals.kills < batch_end) {
            const std::size_t victim = rng() % workers.size();
            switch (rng() % 4) {
                case 0:  // early: often while opening, creating or migrating
                    std::this_thread::sleep_for(std::chrono::microseconds(
                        std::uniform_int_distribution<int>(0, 5'000)(rng)));
                    break;
                case 1: {  // right after a number of acknowledgements
                    const int wanted = std::uniform_int_distribution<int>(1, 12)(rng);
                    Worker& worker = workers[victim];
                    for (int lines = 0; lines <= wanted; ++lines) {  // "ready", then acks
                        const auto line = worker.child->read_line(20s);
                        if (!line && has_exited(worker.child->pid())) break;  // see kill_worker
                        if (!line) {
                            INFO(worker.description << " printed nothing for 20 s after:\n"
                                                    << worker.pending << "\n"
                                                    << describe_process(worker.child->pid())
                                                    << "its stderr ends with:\n"
                                                    << tail(read_file(worker.err_file), 3000));
                            FAIL("a worker stalled");
                        }
                        worker.pending += *line + "\n";  // parsed by kill_worker
                    }
                    break;
                }
                default:
                    std::this_thread::sleep_for(std::chrono::microseconds(
                        std::uniform_int_distribution<int>(0, 60'000)(rng)));
                    break;
            }
            kill_worker(victim);
            if (totals.kills < batch_end) start_worker();
        }
        while (!workers.empty()) kill_worker(workers.size() - 1);

        INFO("after " << totals.kills << " kills, " << acks.size() << " acknowledged operations");
        check_directory(scratch, dir, acks, killed_runs, failed_runs, totals);
    }

    const auto seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::size_t saves = 0, clears_all = 0;
    for (const auto& ack : acks) {
        saves += ack.kind == "save";
        clears_all += ack.kind == "clear-all";
    }
    std::cout << "soak_test: " << totals.kills << " kills, " << totals.acked
              << " acknowledged operations (" << saves << " saves, " << clears_all
              << " pipeline-wide clears), " << totals.lost << " lost, " << totals.worker_errors
              << " workers failed with an error, " << killed_runs.size() << " runs, " << seconds
              << " s (seed " << seed << ")" << std::endl;
    CHECK(totals.lost == 0);
    CHECK(totals.worker_errors == 0);
    CHECK(totals.kills >= required_kills);
    CHECK(saves > 0);
    CHECK(clears_all > 0);
}
