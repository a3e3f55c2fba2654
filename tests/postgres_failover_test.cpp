// Failover on PostgreSQL with real servers (issue 11): a primary and a synchronous streaming
// standby (tools/pg_cluster.sh, started by the test itself on private ports), a writer
// process saving continuously from several threads through a multi-host URI
// (target_session_attrs=read-write), the primary's postmaster killed with SIGKILL at a
// random moment (every other time all its processes at once), the standby promoted. Afterwards
// every acknowledged save is in the new primary's history exactly once, each stage's versions are
// 1, 2, 3, ... without a repeat or a gap, and verify() is clean. The roles alternate (the old
// primary comes back as the standby: pg_rewind, else a fresh base backup), and the primary is also
// crashed and restarted in place (crash recovery) while the writer runs.
//
// Every wait is on a condition (acknowledged saves counted from the writer's output, the
// servers' state through pg_cluster.sh), bounded by a generous timeout that fails the test
// with what it waited for. The number of failovers follows CHECKPOINT_TEST_SCALE (5 in
// full; at least 1).
#include "child_process.hpp"
#include "pg_cluster.hpp"
#include "scale.hpp"
#include "temp_dir.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using checkpoint::test::ChildProcess;
using checkpoint::test::CommandResult;
using checkpoint::test::PgCluster;

// One acknowledged save: the writer's thread (its stage) and the save's sequence number.
struct Ack {
    std::string stage;
    long long seq = 0;
};

// The writer process (tests/ha_writer.cpp), its output read by a thread of ours.
class Writer {
public:
    Writer(const std::string& url, int threads, const std::string& stop_file)
        : stop_file_(stop_file),
          child_({CHECKPOINT_TEST_HA_WRITER, url, std::to_string(threads), "--stop", stop_file}),
          threads_(threads) {
        reader_ = std::thread([this] { read(); });
    }
    ~Writer() {
        { std::ofstream stop(stop_file_); }
        if (reader_.joinable()) {
            child_.kill(SIGKILL);
            reader_.join();
        }
    }
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    std::size_t acks() {
        std::lock_guard lock(mutex_);
        return acks_.size();
    }

    // Waits until `count` saves have been acknowledged in all; fails the test (saying
    // `what`) when that takes longer than `timeout`, or the writer reported an error.
    void wait_for_acks(std::size_t count, const std::string& what,
                       std::chrono::seconds timeout = 120s) {
        std::unique_lock lock(mutex_);
        const bool reached = changed_.wait_for(
            lock, timeout, [&] { return acks_.size() >= count || !errors_.empty() || ended_; });
        INFO("waiting for " << what << ": " << acks_.size() << " of " << count
                            << " saves acknowledged; writer errors: "
                            << (errors_.empty() ? std::string("none") : errors_.front()));
        REQUIRE(errors_.empty());
        REQUIRE(reached);
        REQUIRE(acks_.size() >= count);
    }

    // Stops the writer (the stop file), waits for it to end; returns every acknowledged
    // save. Fails the test when it reported any error or did not end cleanly.
    std::vector<Ack> stop() {
        { std::ofstream stop(stop_file_); }
        reader_.join();
        const int status = child_.wait();
        std::lock_guard lock(mutex_);
        INFO("writer errors: " << errors_.size() << (errors_.empty() ? "" : ", the first: ")
                               << (errors_.empty() ? std::string() : errors_.front()));
        CHECK(errors_.empty());
        CHECK(done_);
        CHECK(status == 0);
        return acks_;
    }

private:
    void read() {
        for (;;) {
            const auto line = child_.read_line(600s);
            std::lock_guard lock(mutex_);
            if (!line) {
                ended_ = true;
                changed_.notify_all();
                return;
            }
            std::istringstream words(*line);
            std::string kind;
            words >> kind;
            if (kind == "ack") {
                Ack ack;
                words >> ack.stage >> ack.seq;
                acks_.push_back(ack);
            } else if (kind == "error") {
                errors_.push_back(*line);
            } else if (kind == "done") {
                done_ = true;
            }
            changed_.notify_all();
        }
    }

    std::string stop_file_;
    ChildProcess child_;
    int threads_;
    std::thread reader_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Ack> acks_;
    std::vector<std::string> errors_;
    bool done_ = false;
    bool ended_ = false;
};

// The history of pipeline "ha" on the cluster's primary checked against the acknowledged
// saves: each acknowledged (stage, seq) once, versions 1..n per stage in id order, seqs
// increasing with the versions, verify() clean.
void check_history(const std::string& url, const std::vector<Ack>& acks) {
    checkpoint::Options options;
    options.pipeline = "ha";
    options.read_only = true;
    checkpoint::CheckpointManager manager(url, options);
    std::map<std::string, std::vector<std::pair<std::int64_t, long long>>> rows;  // version, seq
    std::map<std::pair<std::string, long long>, int> copies;
    manager.for_each_history({}, [&](const checkpoint::Checkpoint& row) {
        REQUIRE(row.status == checkpoint::Status::Completed);
        const long long seq = row.metadata.at("seq").get<long long>();
        rows[row.stage].emplace_back(row.version, seq);
        ++copies[{row.stage, seq}];
    });
    std::size_t saved = 0;
    for (const auto& [stage, list] : rows) {
        saved += list.size();
        for (std::size_t i = 0; i < list.size(); ++i) {
            INFO("stage " << stage << ", row " << i << ": version " << list[i].first << ", seq "
                          << list[i].second);
            REQUIRE(list[i].first == static_cast<std::int64_t>(i + 1));  // no repeat, no gap
            if (i > 0) REQUIRE(list[i].second > list[i - 1].second);
        }
    }
    for (const auto& [key, count] : copies) {
        INFO("stage " << key.first << " seq " << key.second << " saved " << count << " times");
        REQUIRE(count == 1);
    }
    std::size_t missing = 0;
    for (const Ack& ack : acks) {
        if (copies.count({ack.stage, ack.seq}) == 0) {
            ++missing;
            UNSCOPED_INFO("acknowledged save lost: stage " << ack.stage << " seq " << ack.seq);
        }
    }
    std::cout << "postgres_failover_test: " << acks.size() << " acknowledged saves, " << saved
              << " in the history, " << missing << " lost, 0 duplicated" << std::endl;
    REQUIRE(missing == 0);
    REQUIRE(saved >= acks.size());
    const std::vector<std::string> problems = manager.verify();
    INFO("verify: " << (problems.empty() ? std::string() : problems.front()));
    REQUIRE(problems.empty());
}

}  // namespace

TEST_CASE(
    "failover: no acknowledged save is lost or repeated across kills, promotions and a "
    "crash restart") {
    const int failovers = checkpoint::test::scaled(5, 1);
    checkpoint::test::announce_scale(
        "postgres_failover_test",
        std::to_string(failovers) + " failovers and 1 restart in place, 4 writer threads");
    checkpoint::test::TempDir temp;
    PgCluster cluster;
    std::mt19937 rng(std::random_device{}());
    Writer writer(cluster.url(), 4, (temp.path() / "stop").string());
    std::string primary = "a";
    REQUIRE(cluster.primary() == primary);
    writer.wait_for_acks(50, "the first saves");

    const auto after = [&](int least, int most) {
        return writer.acks() + std::uniform_int_distribution<int>(least, most)(rng);
    };
    for (int round = 1; round <= failovers; ++round) {
        const std::string standby = primary == "a" ? "b" : "a";
        // A random moment: after a random number of further saves.
        writer.wait_for_acks(after(1, 200), "saves before failover " + std::to_string(round));
        const auto killed = std::chrono::steady_clock::now();
        // Odd rounds: kill -9 of the postmaster alone; even rounds: of all the primary's
        // processes at once (the machine dies).
        cluster.run(round % 2 == 1 ? "kill" : "crash", primary);
        cluster.run("promote", standby);
        const auto promoted = std::chrono::steady_clock::now();
        writer.wait_for_acks(writer.acks() + 20, "saves on the promoted node " + standby +
                                                     " (failover " + std::to_string(round) + ")");
        const auto resumed = std::chrono::steady_clock::now();
        std::cout
            << "postgres_failover_test: failover " << round << ": " << primary << " -> " << standby
            << ", promotion "
            << std::chrono::duration_cast<std::chrono::milliseconds>(promoted - killed).count()
            << " ms, 20 saves acknowledged "
            << std::chrono::duration_cast<std::chrono::milliseconds>(resumed - killed).count()
            << " ms after the kill" << std::endl;
        REQUIRE(cluster.primary() == standby);
        // The old primary comes back as the synchronous standby of the new one.
        cluster.run("rejoin", primary);
        primary = standby;
        writer.wait_for_acks(writer.acks() + 20, "saves with the rejoined standby");
    }

    // The primary crashes and restarts in place (crash recovery) while the writer runs.
    writer.wait_for_acks(after(1, 200), "saves before the crash restart");
    cluster.run("kill", primary);
    cluster.run("restart", primary);
    writer.wait_for_acks(writer.acks() + 20, "saves after the crash restart of " + primary);
    REQUIRE(cluster.primary() == primary);

    const std::vector<Ack> acks = writer.stop();
    check_history(cluster.url(), acks);
}
