// Stage leases with real worker processes (checkpoint_lease_worker, tests/lease_worker.cpp)
// on both backends (a conformance program): N workers run a DAG once between them; workers
// killed with SIGKILL mid-stage have their stages taken over once the claim lapses; a worker
// stopped past its ttl (SIGSTOP) cannot save when it comes back.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "dag.hpp"
#include "scale.hpp"
#include "test_location.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::HistoryFilter;
using checkpoint::LeaseOptions;
using checkpoint::Status;
using checkpoint::test::ChildProcess;
using checkpoint::test::TestLocation;
using checkpoint::test::with_stderr_to;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> read_lines(const std::filesystem::path& path) {
    std::vector<std::string> lines;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

std::unique_ptr<ChildProcess> start_worker(const TestLocation& location, int stages, int width,
                                           int ttl_ms, int work_ms, int hang_after = 0) {
    std::vector<std::string> argv{CHECKPOINT_LEASE_WORKER,      "run",
                                  location.location().string(), std::to_string(stages),
                                  std::to_string(width),        std::to_string(ttl_ms),
                                  std::to_string(work_ms),      (location / "work.log").string()};
    if (hang_after > 0) {
        argv.push_back("--hang-after");
        argv.push_back(std::to_string(hang_after));
        argv.push_back((location / "events").string());
    }
    return std::make_unique<ChildProcess>(
        with_stderr_to((location / "workers.err").string(), argv));
}

// True when process `pid` (our child, not yet reaped) has ended: a zombie.
bool has_exited(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto paren = text.rfind(')');
    return paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
}

void require_exit_0(ChildProcess& worker, const TestLocation& location) {
    const std::string out = worker.read_rest();
    const int status = worker.wait();
    INFO("worker " << worker.pid() << " stdout: " << out << "\nstderr of the workers:\n"
                   << [&] {
                          std::ifstream in(location / "workers.err");
                          std::stringstream text;
                          text << in.rdbuf();
                          return text.str();
                      }());
    REQUIRE(status == 0);
    CHECK(out.rfind("done ", 0) == 0);
}

// Every stage of the DAG completed, once: one Completed row per stage, under a lease; within
// a stage the tokens of its rows never go down, and the Completed row carries the stage's
// last token (so no completion came from a claim that another had overtaken). Returns each
// stage's Completed token.
std::map<std::string, std::int64_t> check_completed_once(const TestLocation& location,
                                                         const parallel_pipeline::Dag& dag) {
    CheckpointManager manager(location.location());
    std::map<std::string, std::vector<Checkpoint>> rows;
    for (const Checkpoint& row : manager.history()) rows[row.stage].push_back(row);
    std::map<std::string, std::int64_t> completed_token;
    for (const std::string& stage : dag.stages) {
        INFO("stage " << stage);
        CHECK(manager.has_checkpoint(stage));
        std::int64_t last_token = 0;
        int completed = 0;
        for (const Checkpoint& row : rows[stage]) {
            REQUIRE(row.lease_token.has_value());
            CHECK(*row.lease_token >= last_token);
            last_token = *row.lease_token;
            if (row.status == Status::Completed) {
                ++completed;
                completed_token[stage] = *row.lease_token;
            }
        }
        CHECK(completed == 1);
        CHECK(completed_token[stage] == last_token);
    }
    CHECK(rows.size() == dag.stages.size());
    for (const checkpoint::StageLease& lease : manager.leases()) {
        // Every claim was released, but those of killed workers: lapsed and then taken over
        // (so released by the taker) unless the stage was completed meanwhile.
        INFO("unreleased claim on " << lease.stage << ", token " << lease.token << ", run "
                                    << lease.run_id << ", pid " << lease.pid);
        CHECK_FALSE(lease.live);
    }
    return completed_token;
}

void check_status_shows_claim(const TestLocation& location, pid_t pid, std::int64_t token) {
    const auto status = checkpoint::test::run_command(
        {CHECKPOINT_CTL, "status", location.is_postgres() ? "--url" : "--dir",
         location.location().string(), "--format", "csv"});
    INFO("checkpointctl status: " << status.out << status.err);
    REQUIRE(status.exit_code == 0);
    CHECK(status.out.find("stage,running,") != std::string::npos);
    CHECK(status.out.find("pid " + std::to_string(pid)) != std::string::npos);
    CHECK(status.out.find("(lease token " + std::to_string(token) + ") until ") !=
          std::string::npos);
}

}  // namespace

TEST_CASE("8 worker processes run a 200-stage DAG: every stage's work runs exactly once",
          "[lease][workers]") {
    const int stages = checkpoint::test::scaled(200, 40);
    checkpoint::test::announce_scale("lease_workers_test", std::to_string(stages) + " stages");
    TestLocation location;
    const parallel_pipeline::Dag dag = parallel_pipeline::make_dag(stages, 16);
    std::vector<std::unique_ptr<ChildProcess>> workers;
    // A ttl far above any pause here: a claim that lapsed while its holder worked would let
    // a second worker run the stage's work (the save of the first is then refused, but its
    // work was done). That is what the ttl is for: see the README on choosing it.
    for (int i = 0; i < 8; ++i) workers.push_back(start_worker(location, stages, 16, 20000, 1));
    for (auto& worker : workers) require_exit_0(*worker, location);

    std::map<std::string, int> runs;
    for (const std::string& line : read_lines(location / "work.log")) ++runs[line];
    CHECK(runs.size() == dag.stages.size());
    for (const std::string& stage : dag.stages) {
        INFO("stage " << stage);
        CHECK(runs[stage] == 1);
    }
    check_completed_once(location, dag);
}

TEST_CASE(
    "workers killed with SIGKILL mid-stage: their stages are taken over, every stage "
    "completes once",
    "[lease][workers][crash]") {
    const int kills = checkpoint::test::scaled(50, 5);
    const int stages = 200;
    checkpoint::test::announce_scale("lease_workers_test", std::to_string(kills) + " kills, " +
                                                               std::to_string(stages) + " stages");
    TestLocation location;
    const parallel_pipeline::Dag dag = parallel_pipeline::make_dag(stages, 16);
    const int ttl_ms = 300;
    std::mt19937 rng(std::random_device{}());
    std::map<pid_t, std::unique_ptr<ChildProcess>> workers;
    int hangers = 0;  // workers started to hang (and be killed)
    const auto spawn = [&] {
        const int hang_after = hangers < kills ? 1 + static_cast<int>(rng() % 2) : 0;
        if (hang_after) ++hangers;
        auto worker = start_worker(location, stages, 16, ttl_ms, 1, hang_after);
        const pid_t pid = worker->pid();
        workers[pid] = std::move(worker);
    };
    for (int i = 0; i < 8; ++i) spawn();

    struct Hung {
        std::string stage;
        std::int64_t token;
    };
    std::vector<Hung> hung;
    std::size_t seen = 0;
    const auto deadline = std::chrono::steady_clock::now() + 300s;
    while (static_cast<int>(hung.size()) < kills) {
        REQUIRE(std::chrono::steady_clock::now() < deadline);
        const std::vector<std::string> events = read_lines(location / "events");
        if (events.size() == seen) {
            // A worker that ended before it hung (an error, or nothing left to run) would
            // never send its event: look for one, rather than wait for the deadline.
            for (auto& [pid, worker] : workers) {
                if (!has_exited(pid)) continue;
                require_exit_0(*worker, location);
                FAIL("worker " << pid << " ended before it hung: the pipeline completed after "
                               << hung.size() << " of " << kills << " kills");
            }
            std::this_thread::sleep_for(2ms);
            continue;
        }
        for (; seen < events.size(); ++seen) {
            std::istringstream event(events[seen]);
            std::string word, stage;
            pid_t pid = 0;
            std::int64_t token = 0;
            event >> word >> pid >> stage >> token;
            REQUIRE(word == "hang");
            REQUIRE(workers.count(pid) == 1);
            workers[pid]->kill(SIGKILL);  // mid-stage: begun, claim held, work not done
            CHECK(workers[pid]->wait() == 128 + SIGKILL);
            workers.erase(pid);
            hung.push_back({stage, token});
            spawn();
        }
    }
    location.settle();
    for (auto& [pid, worker] : workers) require_exit_0(*worker, location);

    const auto completed_token = check_completed_once(location, dag);
    // Each killed worker's stage was taken over: completed under a later claim.
    for (const Hung& h : hung) {
        INFO("stage " << h.stage << ", killed holding token " << h.token);
        REQUIRE(completed_token.count(h.stage) == 1);
        CHECK(completed_token.at(h.stage) > h.token);
    }
    CHECK(static_cast<int>(hung.size()) == kills);
}

TEST_CASE("a worker stopped past its ttl cannot save when it comes back (zombie)",
          "[lease][workers]") {
    TestLocation location;
    const std::string gate = (location / "gate").string();
    ChildProcess zombie(with_stderr_to(
        (location / "zombie.err").string(),
        {CHECKPOINT_LEASE_WORKER, "zombie", location.location().string(), "stage", "1000", gate}));
    const auto holding = zombie.read_line();
    REQUIRE(holding);
    REQUIRE(holding->rfind("holding ", 0) == 0);
    const std::int64_t zombie_token = std::stoll(holding->substr(8));

    // checkpointctl status shows the stage running, with its holder and expiry.
    if (std::string(CHECKPOINT_CTL).empty()) {
        WARN(
            "checkpointctl status not checked: the tools are not built "
            "(CHECKPOINT_BUILD_TOOLS=OFF)");
    } else {
        check_status_shows_claim(location, zombie.pid(), zombie_token);
    }
    zombie.kill(SIGSTOP);

    // Another worker waits for the claim to lapse, takes the stage over and finishes it.
    CheckpointManager other(location.location());
    LeaseOptions options;
    options.ttl = 60s;  // wait: for ever (the default)
    {
        auto lease = other.claim_stage("stage", options);
        REQUIRE(lease);
        CHECK(lease->token() > zombie_token);
        other.begin_stage("stage");
        other.save_checkpoint("stage");
    }
    const std::size_t rows = other.history().size();

    std::ofstream(gate).put('x');
    zombie.kill(SIGCONT);
    const auto answer = zombie.read_line();
    REQUIRE(answer);
    CHECK(*answer == "lease-lost");
    CHECK(zombie.wait() == 0);

    CHECK(other.history().size() == rows);  // the zombie added no row
    HistoryFilter completed;
    completed.stage = "stage";
    completed.status = Status::Completed;
    const auto saves = other.history(completed);
    REQUIRE(saves.size() == 1);
    CHECK(saves[0].run_id == other.run_id());
    CHECK(saves[0].lease_token > zombie_token);
}
