// checkpoint_failover_bench — high availability on PostgreSQL, measured (issue 11) on two
// real servers started for the run (tools/pg_cluster.sh: a primary and a streaming standby
// on private ports), with a writer process saving continuously from several threads through
// a multi-host URI:
//   - failover time: from the kill -9 of the primary's postmaster to the first save
//     acknowledged by the promoted standby, with the promotion (pg_ctl promote, until it
//     accepts writes) given separately; synchronous replication;
//   - saves per second with synchronous replication (synchronous_standby_names = '*',
//     synchronous_commit = on) against asynchronous (none), alternating windows on the
//     same servers so that the machine's noise hits both alike (ratio of medians);
//   - with asynchronous replication, how many acknowledged saves a failover lost (the
//     primary killed while the writer runs; the saves missing on the promoted standby).
//
//   checkpoint_failover_bench [--rounds N] [--window SECONDS] [--threads N] [--quick]
//
// Errors (a save that threw, a server command that failed, a lost save with synchronous
// replication) fail the run (exit 1); timings never do. The machine may be shared and
// noisy: read the figures with that in mind.
#include "harness.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <postgresql/libpq-fe.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using bench::Failure;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

const std::string cluster_script = std::string(CHECKPOINT_SOURCE_DIR) + "/tools/pg_cluster.sh";

// Runs a shell command line; returns its stdout; throws Failure when it fails.
std::string shell(const std::string& command) {
    std::unique_ptr<FILE, decltype(&pclose)> pipe(popen(command.c_str(), "r"), pclose);
    if (!pipe) throw Failure("cannot run: " + command);
    std::string out;
    char buffer[4096];
    std::size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, pipe.get())) > 0) out.append(buffer, n);
    const int status = pclose(pipe.release());
    if (status != 0) throw Failure("failed (status " + std::to_string(status) + "): " + command);
    return out;
}

std::string trimmed(std::string text) {
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    return text;
}

class Cluster {
public:
    Cluster() {
        std::istringstream lines(
            shell("bash -c 'eval \"$(bash \"$0\" start)\" && printf "
                  "\"%s\\n\" \"$CHECKPOINT_HA_DIR\" \"$CHECKPOINT_HA_URL\" "
                  "\"$CHECKPOINT_HA_PORT_A\" \"$CHECKPOINT_HA_PORT_B\"' " +
                  cluster_script));
        std::getline(lines, dir_);
        std::getline(lines, url_);
        std::getline(lines, port_a_);
        std::getline(lines, port_b_);
        if (port_b_.empty()) throw Failure("pg_cluster.sh start printed no cluster");
    }
    ~Cluster() {
        try {
            shell("bash " + cluster_script + " stop " + dir_ + " >/dev/null 2>&1");
        } catch (...) {
        }
    }
    const std::string& url() const { return url_; }
    void run(const std::string& command, const std::string& node) const {
        shell("bash " + cluster_script + " " + command + " " + dir_ + " " + node);
    }
    std::string primary() const {
        return trimmed(shell("bash " + cluster_script + " primary " + dir_));
    }
    std::string conninfo(const std::string& node) const {
        return "host=127.0.0.1 port=" + (node == "a" ? port_a_ : port_b_) +
               " user=postgres dbname=postgres";
    }

private:
    std::string dir_, url_, port_a_, port_b_;
};

// Runs `sql` on a node; returns every row's first column.
std::vector<std::string> node_sql(const std::string& conninfo, const std::string& sql) {
    PGconn* conn = PQconnectdb(conninfo.c_str());
    std::unique_ptr<PGconn, decltype(&PQfinish)> guard(conn, PQfinish);
    if (PQstatus(conn) != CONNECTION_OK)
        throw Failure(std::string("libpq: ") + PQerrorMessage(conn));
    std::unique_ptr<PGresult, decltype(&PQclear)> result(PQexec(conn, sql.c_str()), PQclear);
    const auto status = PQresultStatus(result.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK)
        throw Failure(sql + ": " + PQerrorMessage(conn));
    std::vector<std::string> rows;
    for (int i = 0; i < PQntuples(result.get()); ++i)
        rows.emplace_back(PQgetvalue(result.get(), i, 0));
    return rows;
}

// Synchronous replication on or off on the primary (the standby stays attached).
void set_sync(const Cluster& cluster, bool sync) {
    const std::string node = cluster.conninfo(cluster.primary());
    node_sql(node, std::string("ALTER SYSTEM SET synchronous_standby_names = '") +
                       (sync ? "*" : "") + "'");
    node_sql(node, "SELECT pg_reload_conf()");
    // Wait (bounded) until the setting is in force.
    const auto deadline = Clock::now() + 30s;
    while (node_sql(node, "SHOW synchronous_standby_names").at(0) != (sync ? "*" : "")) {
        if (Clock::now() > deadline) throw Failure("synchronous_standby_names not reloaded");
        std::this_thread::sleep_for(10ms);
    }
}

// ---- The writer: this program again, with --writer ----

int writer_main(const std::string& url, int threads, const std::string& stop_file) {
    checkpoint::Options options;
    options.pipeline = "ha";
    options.logger = spdlog::stderr_color_mt("failover_bench_writer");
    options.logger->set_level(spdlog::level::err);
    checkpoint::CheckpointManager manager(url, options);
    std::mutex out;
    std::vector<std::thread> workers;
    std::atomic<bool> failed{false};
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            const std::string stage = "w" + std::to_string(t);
            for (long long seq = 0; !std::filesystem::exists(stop_file); ++seq) {
                checkpoint::SaveOptions save;
                save.metadata = {{"seq", seq}};
                try {
                    manager.save_checkpoint(stage, save);
                } catch (const std::exception& e) {
                    std::lock_guard lock(out);
                    std::cerr << "failover_bench writer: " << e.what() << "\n";
                    failed = true;
                    return;
                }
                std::lock_guard lock(out);
                std::printf("ack %s %lld %lld\n", stage.c_str(), seq,
                            static_cast<long long>(Clock::now().time_since_epoch().count()));
                std::fflush(stdout);
            }
        });
    }
    for (auto& worker : workers) worker.join();
    return failed ? 1 : 0;
}

struct Ack {
    std::string stage;
    long long seq;
    Clock::time_point at;
};

class Writer {
public:
    Writer(const std::string& url, int threads) {
        stop_file_ = (std::filesystem::temp_directory_path() /
                      ("failover-bench-stop-" + std::to_string(::getpid())))
                         .string();
        std::filesystem::remove(stop_file_);
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) throw Failure("pipe failed");
        pid_ = bench::spawn(
            {bench::self_executable(), "--writer", url, std::to_string(threads), stop_file_}, -1,
            fds[1]);
        ::close(fds[1]);
        reader_ = std::thread([this, fd = fds[0]] {
            FILE* in = ::fdopen(fd, "r");
            char line[256];
            while (std::fgets(line, sizeof line, in)) {
                char stage[32];
                long long seq = 0, at = 0;
                if (std::sscanf(line, "ack %31s %lld %lld", stage, &seq, &at) != 3) continue;
                std::lock_guard lock(mutex_);
                acks_.push_back({stage, seq, Clock::time_point(Clock::duration(at))});
                changed_.notify_all();
            }
            std::fclose(in);
            std::lock_guard lock(mutex_);
            ended_ = true;
            changed_.notify_all();
        });
    }
    ~Writer() {
        if (reader_.joinable()) {
            ::kill(pid_, SIGKILL);
            reader_.join();
            ::waitpid(pid_, nullptr, 0);
        }
        std::filesystem::remove(stop_file_);
    }
    std::size_t count() {
        std::lock_guard lock(mutex_);
        return acks_.size();
    }
    // Waits until `n` saves were acknowledged in all (bounded: 120 s).
    void wait_for(std::size_t n, const std::string& what) {
        std::unique_lock lock(mutex_);
        if (!changed_.wait_for(lock, 120s, [&] { return acks_.size() >= n || ended_; }) ||
            acks_.size() < n)
            throw Failure("timed out or the writer ended waiting for " + what);
    }
    // The first acknowledgement at or after `t` (waits for it, bounded).
    Clock::time_point first_after(Clock::time_point t) {
        std::unique_lock lock(mutex_);
        Clock::time_point found{};
        if (!changed_.wait_for(lock, 120s,
                               [&] {
                                   for (auto it = acks_.rbegin(); it != acks_.rend(); ++it)
                                       if (it->at >= t) found = it->at;
                                   return found != Clock::time_point{} || ended_;
                               }) ||
            found == Clock::time_point{})
            throw Failure("no save acknowledged after the failover");
        return found;
    }
    std::vector<Ack> stop() {
        { std::ofstream touch(stop_file_); }
        reader_.join();
        int status = 0;
        ::waitpid(pid_, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw Failure("the writer failed");
        return acks_;
    }

private:
    std::string stop_file_;
    pid_t pid_ = -1;
    std::thread reader_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<Ack> acks_;
    bool ended_ = false;
};

double ms(Clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

// The acknowledged saves missing from the primary's history.
std::size_t lost(const Cluster& cluster, const std::vector<Ack>& acks) {
    std::set<std::string> stored;
    for (const std::string& row : node_sql(
             cluster.conninfo(cluster.primary()),
             "SELECT stage || ' ' || (metadata->>'seq') FROM checkpoints WHERE pipeline = 'ha'"))
        stored.insert(row);
    std::size_t missing = 0;
    for (const Ack& ack : acks)
        if (!stored.count(ack.stage + " " + std::to_string(ack.seq))) ++missing;
    return missing;
}

struct FailoverTimes {
    double down = 0;       // kill -9 until every process of the old primary has gone
    double promotion = 0;  // pg_ctl promote until the standby accepts writes
    double total = 0;      // kill -9 until the first save acknowledged by the new primary
};

// Kills the primary (`how`: kill = its postmaster, crash = all its processes at once),
// promotes the standby, rejoins the old primary (when `rejoin`).
FailoverTimes failover(Cluster& cluster, Writer& writer, const std::string& how, bool rejoin) {
    const std::string primary = cluster.primary();
    const std::string standby = primary == "a" ? "b" : "a";
    writer.wait_for(writer.count() + 200, "saves before the failover");
    const auto killed = Clock::now();
    cluster.run(how, primary);
    const auto dead = Clock::now();  // no primary from here until the promotion
    cluster.run("promote", standby);
    const auto promoted = Clock::now();
    const auto first = writer.first_after(dead);
    writer.wait_for(writer.count() + 50, "saves after the failover");
    if (rejoin) cluster.run("rejoin", primary);
    return {ms(dead - killed), ms(promoted - dead), ms(first - killed)};
}

int run(int rounds, double window, int threads) {
    std::cout << "checkpoint_failover_bench: " << rounds << " failovers per mode, " << threads
              << " writer threads, " << window << " s windows (a shared machine: noisy)\n";
    Cluster cluster;  // synchronous
    // 1. Throughput, sync against async, alternating windows.
    std::vector<double> sync_rates, async_rates;
    {
        Writer writer(cluster.url(), threads);
        writer.wait_for(100, "the first saves");
        for (int i = 0; i < 3; ++i) {
            for (bool sync : {true, false}) {
                set_sync(cluster, sync);
                const std::size_t before = writer.count();
                const auto start = Clock::now();
                std::this_thread::sleep_for(std::chrono::duration<double>(window));
                const double rate = static_cast<double>(writer.count() - before) /
                                    std::chrono::duration<double>(Clock::now() - start).count();
                (sync ? sync_rates : async_rates).push_back(rate);
            }
        }
        set_sync(cluster, true);
        writer.stop();
    }
    const double sync_rate = bench::median(sync_rates), async_rate = bench::median(async_rates);
    std::cout << "saves/s, synchronous replication:  " << bench::format_rate(sync_rate, "saves/s")
              << "\nsaves/s, asynchronous replication: "
              << bench::format_rate(async_rate, "saves/s")
              << "\nsynchronous / asynchronous:        "
              << bench::format_ratio(sync_rate / async_rate) << std::endl;

    // 2. Failover time, synchronous: nothing acknowledged may be lost.
    std::vector<double> downs, promotions, failovers;
    {
        Writer writer(cluster.url(), threads);
        writer.wait_for(100, "the first saves");
        for (int i = 0; i < rounds; ++i) {
            const FailoverTimes times = failover(cluster, writer, "kill", true);
            downs.push_back(times.down);
            promotions.push_back(times.promotion);
            failovers.push_back(times.total);
            std::cout << "failover " << i + 1 << " (synchronous): old primary gone " << times.down
                      << " ms after the kill, promotion " << times.promotion
                      << " ms, kill to first acknowledged save " << times.total << " ms"
                      << std::endl;
        }
        const auto acks = writer.stop();
        const std::size_t missing = lost(cluster, acks);
        std::cout << "synchronous: " << acks.size() << " acknowledged saves, " << missing << " lost"
                  << std::endl;
        if (missing != 0) throw Failure("acknowledged saves lost with synchronous replication");
    }
    std::cout << "failover time (median of " << rounds << "): old primary gone "
              << bench::median(downs) << " ms, promotion " << bench::median(promotions)
              << " ms, kill to first acknowledged save " << bench::median(failovers) << " ms"
              << std::endl;

    // 3. Asynchronous replication: what a failover loses, the postmaster killed alone (its
    // walsender may still send what it has) and the whole server killed at once (a machine
    // that dies).
    for (const std::string how : {"kill", "crash"}) {
        std::size_t total_lost = 0, total_acks = 0;
        for (int i = 0; i < rounds; ++i) {
            set_sync(cluster, false);
            Writer writer(cluster.url(), threads);
            writer.wait_for(100, "the first saves");
            failover(cluster, writer, how, false);
            const auto acks = writer.stop();
            const std::size_t missing = lost(cluster, acks);
            total_lost += missing;
            total_acks += acks.size();
            std::cout << "failover " << i + 1 << " (asynchronous, " << how << "): " << missing
                      << " of " << acks.size() << " acknowledged saves lost" << std::endl;
            const std::string primary = cluster.primary();
            cluster.run("rejoin", primary == "a" ? "b" : "a");
        }
        std::cout << "asynchronous, " << how << ": " << total_lost << " acknowledged saves lost in "
                  << rounds << " failovers (" << total_acks << " acknowledged)" << std::endl;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc == 5 && std::string(argv[1]) == "--writer")
            return writer_main(argv[2], std::atoi(argv[3]), argv[4]);
        int rounds = 3, threads = 4;
        double window = 3;
        for (int i = 1; i < argc; ++i) {
            const std::string arg = argv[i];
            if (arg == "--rounds" && i + 1 < argc) {
                rounds = std::max(1, std::atoi(argv[++i]));
            } else if (arg == "--window" && i + 1 < argc) {
                window = std::max(0.5, std::atof(argv[++i]));
            } else if (arg == "--threads" && i + 1 < argc) {
                threads = std::max(1, std::atoi(argv[++i]));
            } else if (arg == "--quick") {
                rounds = 1;
                window = 1;
            } else {
                std::cerr << "usage: checkpoint_failover_bench [--rounds N] [--window SECONDS] "
                             "[--threads N] [--quick]\n";
                return 2;
            }
        }
        return run(rounds, window, threads);
    } catch (const std::exception& e) {
        std::cerr << "checkpoint_failover_bench: " << e.what() << "\n";
        return 1;
    }
}
