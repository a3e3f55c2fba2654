// Independent readers: the sqlite3 shell and Python's sqlite3 module read the database
// while the library writes to it from another process, and afterwards answer the plain-SQL
// questions an operator asks.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "scale.hpp"
#include "temp_dir.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using checkpoint::test::ChildProcess;
using checkpoint::test::CommandResult;
using checkpoint::test::read_file;
using checkpoint::test::run_command;
using checkpoint::test::TempDir;
using checkpoint::test::with_stderr_to;
using namespace std::chrono_literals;

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
    std::vector<std::string> parts;
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, separator)) parts.push_back(part);
    return parts;
}

std::vector<long long> numbers(const std::string& line, char separator) {
    std::vector<long long> result;
    for (const auto& part : split(line, separator)) result.push_back(std::stoll(part));
    return result;
}

// Runs the sqlite3 shell on `db` with `sql`, as an operator would (no busy timeout).
CommandResult shell(const std::filesystem::path& db, const std::string& sql,
                    bool read_only = false) {
    std::vector<std::string> argv{CHECKPOINT_SQLITE3_SHELL, "-bail", "-batch"};
    if (read_only) argv.emplace_back("-readonly");
    argv.push_back(db.string());
    argv.push_back(sql);
    return run_command(argv);
}

// Runs a Python script with the database path as sys.argv[1] (and `args` after it).
CommandResult python(const std::string& script, const std::filesystem::path& db,
                     const std::vector<std::string>& args = {}) {
    std::vector<std::string> argv{CHECKPOINT_PYTHON3, "-c", script, db.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
}

// Python: one read transaction, three views of the same snapshot.
constexpr const char* python_snapshot = R"(
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute('BEGIN')
n = c.execute('SELECT count(*) FROM checkpoints').fetchone()[0]
h = c.execute('SELECT count(*) FROM history WHERE status = ?', ('completed',)).fetchone()[0]
s = c.execute("SELECT count(*) FROM current_state WHERE status = 'completed'").fetchone()[0]
c.execute('COMMIT')
print(n, h, s)
)";

// Python, a reader of its own that runs beside the test: 40 fresh connections, each one
// read transaction over three counts ("snapshot N H S": rows, stage heads, completed stages
// in current_state); once, a long read transaction that keeps its snapshot while the writer
// goes on ("long A B D"). Its connections are read-only: closing a read-write connection
// briefly takes the database file's PENDING lock (SQLite's checkpoint-on-close), which fails
// the sqlite3 shell readers (no busy timeout) that start at that instant, whatever the
// library does.
constexpr const char* python_reader_loop = R"(
import sqlite3, sys, time
db = 'file:' + sys.argv[1] + '?mode=ro'
for i in range(40):
    c = sqlite3.connect(db, uri=True, isolation_level=None)
    c.execute('BEGIN')
    n = c.execute('SELECT count(*) FROM checkpoints').fetchone()[0]
    h = c.execute('SELECT count(*) FROM stage_heads').fetchone()[0]
    s = c.execute("SELECT count(*) FROM current_state WHERE status = 'completed'").fetchone()[0]
    c.execute('COMMIT')
    c.close()
    print('snapshot', n, h, s, flush=True)
    if i == 20:
        c = sqlite3.connect(db, uri=True, isolation_level=None)
        c.execute('BEGIN')
        a = c.execute('SELECT count(*) FROM checkpoints').fetchone()[0]
        time.sleep(0.4)
        b = c.execute('SELECT count(*) FROM checkpoints').fetchone()[0]
        c.execute('COMMIT')
        time.sleep(0.1)
        d = c.execute('SELECT count(*) FROM checkpoints').fetchone()[0]
        c.close()
        print('long', a, b, d, flush=True)
    time.sleep(0.02)
)";

// Reads the writer's "ack N" lines on a thread of its own, as they come, so that the
// writer's stdout pipe never fills up (which would stop the writer) while the test waits for
// a reader. acked() is how many saves the writer has acknowledged so far.
class AckReader {
public:
    explicit AckReader(ChildProcess& writer)
        : writer_(writer), thread_([this] {
              while (const auto line = writer_.read_line(60s)) {
                  std::lock_guard lock(mutex_);
                  if (*line != "ack " + std::to_string(acked_)) {
                      bad_line_ = *line;
                      break;
                  }
                  ++acked_;
                  changed_.notify_all();
              }
          }) {}
    // On an early exit of the test, stops the writer so that the thread sees the end.
    ~AckReader() {
        if (thread_.joinable()) {
            writer_.kill(SIGKILL);
            thread_.join();
        }
    }
    AckReader(const AckReader&) = delete;
    AckReader& operator=(const AckReader&) = delete;

    long acked() {
        std::lock_guard lock(mutex_);
        return acked_;
    }
    // Waits (up to `timeout`) until at least `count` saves were acknowledged.
    bool wait_for(long count, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return acked_ >= count; });
    }
    // Waits until the writer closed its stdout (it has exited).
    void join() { thread_.join(); }
    std::string bad_line() {
        std::lock_guard lock(mutex_);
        return bad_line_;
    }

private:
    ChildProcess& writer_;
    std::mutex mutex_;
    std::condition_variable changed_;
    long acked_ = 0;
    std::string bad_line_;  // the first line that was not the next "ack N"
    std::thread thread_;    // last: starts once everything above exists
};

}  // namespace

TEST_CASE("the sqlite3 shell and Python read a consistent, growing history while it is written",
          "[reader]") {
    TempDir scratch;
    const auto dir = scratch / "checkpoints";
    const auto db = dir / "checkpoints.db";
    const auto stop = scratch / "stop";
    const auto err_file = scratch / "writer.err";

    ChildProcess writer(with_stderr_to(err_file, {CHECKPOINT_TEST_WORKER, "save", dir.string(), "w",
                                                  "1000000", "--stop", stop.string()}));
    AckReader acks(writer);
    // The database exists and holds a first save.
    REQUIRE(acks.wait_for(1, 30s));

    // A Python reader runs beside the test's own reads.
    const auto python_err = scratch / "python.err";
    ChildProcess python_reader(
        with_stderr_to(python_err, {CHECKPOINT_PYTHON3, "-c", python_reader_loop, db.string()}));

    long long last_seen = 0;
    for (int round = 0; round < 30; ++round) {
        INFO("round " << round);
        // sqlite3 shell, one statement (one snapshot): every count agrees, and covers every
        // save acknowledged before the query began.
        {
            const long acked_before = acks.acked();
            const auto result = shell(db,
                                      "SELECT count(*), max(id), "
                                      "(SELECT count(*) FROM stage_heads), "
                                      "(SELECT count(*) FROM current_state "
                                      " WHERE status = 'completed') FROM checkpoints;",
                                      round % 2 == 1);
            INFO("sqlite3 stdout: " << result.out << "\nsqlite3 stderr: " << result.err);
            REQUIRE(result.exit_code == 0);
            CHECK(result.err.empty());
            const auto counts = numbers(result.out, '|');
            REQUIRE(counts.size() == 4);
            CHECK(counts[1] == counts[0]);
            CHECK(counts[2] == counts[0]);
            CHECK(counts[3] == counts[0]);
            CHECK(counts[0] >= acked_before);
            CHECK(counts[0] >= last_seen);
            last_seen = counts[0];
        }
        // Python's sqlite3 module, one read transaction over three queries.
        if (round % 10 == 0) {
            const long acked_before = acks.acked();
            const auto result = python(python_snapshot, db);
            INFO("python stdout: " << result.out << "\npython stderr: " << result.err);
            REQUIRE(result.exit_code == 0);
            CHECK(result.err.empty());
            const auto counts = numbers(result.out, ' ');
            REQUIRE(counts.size() == 3);
            CHECK(counts[1] == counts[0]);
            CHECK(counts[2] == counts[0]);
            CHECK(counts[0] >= acked_before);
            CHECK(counts[0] >= last_seen);
            last_seen = counts[0];
        }
    }

    // The Python reader saw consistent snapshots that only grew, and a long transaction
    // that kept its snapshot without stopping the writer.
    {
        std::vector<std::string> lines;
        const auto deadline = std::chrono::steady_clock::now() + 120s;
        while (lines.size() < 41 && std::chrono::steady_clock::now() < deadline) {
            if (const auto line = python_reader.read_line(100ms)) lines.push_back(*line);
        }
        CHECK(lines.size() == 41);  // 40 snapshots and one long read
        CHECK(python_reader.read_rest().empty());
        const int python_exit = python_reader.wait();
        const std::string err = read_file(python_err);
        INFO("python reader stderr:\n" << err);
        CHECK(python_exit == 0);
        CHECK(err.empty());
        long long previous = 0;
        int snapshots = 0;
        int long_reads = 0;
        for (const auto& line : lines) {
            INFO("python reader printed: " << line);
            auto words = split(line, ' ');
            REQUIRE(words.size() == 4);
            const std::vector<long long> counts{std::stoll(words[1]), std::stoll(words[2]),
                                                std::stoll(words[3])};
            if (words[0] == "snapshot") {
                ++snapshots;
                CHECK(counts[1] == counts[0]);
                CHECK(counts[2] == counts[0]);
                CHECK(counts[0] >= previous);
                previous = counts[0];
            } else {
                REQUIRE(words[0] == "long");
                ++long_reads;
                CHECK(counts[0] >= previous);
                CHECK(counts[1] == counts[0]);  // the same snapshot, 0.4 s later
                CHECK(counts[2] > counts[1]);   // the writer went on meanwhile
                previous = counts[2];
            }
        }
        CHECK(snapshots == 40);
        CHECK(long_reads == 1);
        REQUIRE_FALSE(lines.empty());
        CHECK(previous > std::stoll(split(lines.front(), ' ')[1]));  // it grew
    }

    // The writer stops, exits 0, and never reported an error.
    std::ofstream(stop).put('\n');
    acks.join();
    CHECK(acks.bad_line().empty());
    const long acked = acks.acked();
    const int writer_exit = writer.wait();
    const std::string writer_err = read_file(err_file);
    INFO("writer stderr:\n" << writer_err);
    CHECK(writer_exit == 0);
    CHECK(writer_err.find("error") == std::string::npos);
    // The history grew while it was read.
    CHECK(acked > 100);
    CHECK(last_seen <= acked);
    const std::string total = std::to_string(acked);

    // Afterwards, the questions an operator asks, in plain SQL: with the sqlite3 shell...
    {
        auto ask = [&](const std::string& sql) {
            const auto result = shell(db, sql, true);
            INFO(sql << "\nsqlite3 stderr: " << result.err);
            REQUIRE(result.exit_code == 0);
            CHECK(result.err.empty());
            return result.out;
        };
        CHECK(ask("PRAGMA integrity_check;") == "ok\n");
        CHECK(ask("SELECT stage, status, version FROM current_state ORDER BY id LIMIT 3;") ==
              "w-0|completed|1\nw-1|completed|1\nw-2|completed|1\n");
        CHECK(ask("SELECT count(*) FROM current_state WHERE status = 'completed';") ==
              total + "\n");
        const auto run = split(ask("SELECT run_id, pid, outcome, ended_at IS NOT NULL, "
                                   "started_at <= ended_at FROM runs;"),
                               '|');
        REQUIRE(run.size() == 5);
        CHECK(run[1] == std::to_string(writer.pid()));
        CHECK(run[2] == "finished");
        CHECK(run[3] == "1");
        CHECK(run[4] == "1\n");
        const std::string run_id = run[0];
        CHECK(ask("SELECT count(*), min(version), max(version) FROM history "
                  "WHERE run_id = '" +
                  run_id + "' AND status = 'completed';") == total + "|1|1\n");
        CHECK(ask("SELECT count(*) FROM history WHERE run_id <> '" + run_id + "';") == "0\n");
        // Timestamps are ISO-8601 UTC with milliseconds, and sort as text in id order.
        CHECK(ask("SELECT count(*) FROM checkpoints WHERE timestamp GLOB "
                  "'[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T"
                  "[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z';") == total + "\n");
        CHECK(ask("SELECT count(*) FROM checkpoints a JOIN checkpoints b ON b.id = a.id + 1 "
                  "WHERE b.timestamp < a.timestamp;") == "0\n");
        CHECK(ask("SELECT stage, status, version FROM history WHERE stage = 'w-1';") ==
              "w-1|completed|1\n");

        // The README's audit queries, as written there, and how many rows each finds.
        const std::string day = ask("SELECT substr(min(timestamp), 1, 10) FROM checkpoints;");
        const std::string next_day =
            ask("SELECT date(substr(min(timestamp), 1, 10), '+1 day') FROM checkpoints;");
        const std::vector<std::pair<std::string, std::string>> readme{
            {"SELECT pipeline, stage, status, version, timestamp FROM current_state", total},
            {"SELECT run_id, host, pid, user, started_at, ended_at, outcome FROM runs ORDER BY "
             "started_at",
             "1"},
            {"SELECT stage, version, timestamp FROM history WHERE status = 'completed' AND "
             "run_id = (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)",
             total},
            {"SELECT stage, count(*) AS runs, avg(duration_ms) AS avg_ms, max(duration_ms) AS "
             "max_ms FROM checkpoints WHERE status = 'completed' AND duration_ms IS NOT NULL "
             "GROUP BY stage",
             "0"},  // no stage was begun, so no durations
            {"SELECT timestamp, stage, message, host, pid FROM history WHERE status = 'failed'",
             "0"},
            {"SELECT timestamp, stage, run_id FROM history WHERE status = 'incomplete'", "0"},
            {"SELECT id, stage, status, version, timestamp FROM history WHERE timestamp >= '" +
                 day.substr(0, 10) + "' AND timestamp < '" + next_day.substr(0, 10) +
                 "' ORDER BY id",
             ""},  // the writer may have run across midnight: checked below
        };
        for (const auto& [query, expected] : readme) {
            INFO("README query: " << query);
            const auto result =
                run_command({CHECKPOINT_SQLITE3_SHELL, "-header", "-column", db.string(), query});
            CHECK(result.exit_code == 0);
            CHECK(result.err.empty());
            const std::string count = ask("SELECT count(*) FROM (" + query + ");");
            if (!expected.empty()) {
                CHECK(count == expected + "\n");
            } else {
                CHECK(std::stoll(count) > 0);
                CHECK(std::stoll(count) <= acked);
            }
        }
    }

    // ... and with Python's sqlite3 module.
    {
        const auto result = python(R"(
import sqlite3, sys
c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)
print(c.execute('PRAGMA integrity_check').fetchone()[0])
(run_id, pid, outcome), = c.execute('SELECT run_id, pid, outcome FROM runs').fetchall()
rows = c.execute('SELECT stage, status, version FROM history WHERE run_id = ? ORDER BY id',
                 (run_id,)).fetchall()
print(pid, outcome, len(rows))
print(*rows[0], sep='|')
print(*rows[-1], sep='|')
done = c.execute("SELECT count(*) FROM current_state WHERE status = 'completed'").fetchone()[0]
print(done)
)",
                                   db);
        INFO("python stderr: " << result.err);
        REQUIRE(result.exit_code == 0);
        CHECK(result.err.empty());
        const auto lines = split(result.out, '\n');
        REQUIRE(lines.size() == 5);
        CHECK(lines[0] == "ok");
        CHECK(lines[1] == std::to_string(writer.pid()) + " finished " + total);
        CHECK(lines[2] == "w-0|completed|1");
        CHECK(lines[3] == "w-" + std::to_string(acked - 1) + "|completed|1");
        CHECK(lines[4] == total);
    }
}

TEST_CASE("reading the history of a long run costs the same per row whatever its length",
          "[reader]") {
    // One run that saved many stages: its history is read by the library (history(), which
    // reads the history view) and by an operator (SELECT ... FROM history). The work per row
    // must not grow with the run's length. Counted in SQLite virtual-machine steps, which
    // are exact and do not depend on how busy the machine is.
    constexpr int saves = 4'000;
    TempDir dir;
    checkpoint::Options options;
    options.durability = checkpoint::Durability::Normal;  // the disk is not what is measured
    options.logger = std::make_shared<spdlog::logger>(
        "reader_test", std::make_shared<spdlog::sinks::null_sink_mt>());
    checkpoint::CheckpointManager manager(dir.path(), options);
    const auto steps_per_row = [&](int rows_expected) {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open_v2(manager.database_path().c_str(), &db, SQLITE_OPEN_READONLY,
                                nullptr) == SQLITE_OK);
        sqlite3_stmt* statement = nullptr;
        REQUIRE(sqlite3_prepare_v2(db, "SELECT count(*) FROM history WHERE status = 'completed'",
                                   -1, &statement, nullptr) == SQLITE_OK);
        REQUIRE(sqlite3_step(statement) == SQLITE_ROW);
        CHECK(sqlite3_column_int(statement, 0) == rows_expected);
        const int steps = sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_VM_STEP, 0);
        sqlite3_finalize(statement);
        sqlite3_close(db);
        return static_cast<double>(steps) / rows_expected;
    };
    for (int i = 0; i < saves / 4; ++i) manager.save_checkpoint("s-" + std::to_string(i));
    const double short_run = steps_per_row(saves / 4);
    for (int i = saves / 4; i < saves; ++i) manager.save_checkpoint("s-" + std::to_string(i));
    const double long_run = steps_per_row(saves);
    INFO("VM steps per row: " << short_run << " for " << saves / 4 << " rows, " << long_run
                              << " for " << saves);
    // Linear: the same per row (a scan of the rest of the run per row would be 4x more).
    CHECK(long_run < short_run * 1.5);
    CHECK(manager.history().size() == static_cast<std::size_t>(saves));
    CommandResult result = shell(manager.database_path(),
                                 "SELECT count(*) FROM history WHERE status = 'completed';", true);
    INFO("sqlite3 stderr: " << result.err);
    CHECK(result.exit_code == 0);
    CHECK(result.out == std::to_string(saves) + "\n");
}

// Issue 15: the database file alone holds every committed row once the last connection of
// the writing process has closed (a PASSIVE checkpoint), and that checkpoint never makes a
// sqlite3 shell reader (no busy timeout) see "database is locked".
TEST_CASE(
    "the sqlite3 shell never sees a lock while writers open and save and close and the file "
    "alone then holds every row",
    "[reader][sqlite]") {
    TempDir scratch;
    const auto dir = scratch / "checkpoints";
    const auto db = dir / "checkpoints.db";
    const auto stop = scratch / "stop";
    const auto err_file = scratch / "writer.err";
    // Each cycle opens a manager, saves, and closes it (checkpointing on close).
    ChildProcess writer(with_stderr_to(err_file, {CHECKPOINT_TEST_WORKER, "reopen", dir.string(),
                                                  "r", "0", "--stop", stop.string()}));
    AckReader acks(writer);
    REQUIRE(acks.wait_for(1, 30s));
    // A process that opens the database while no other connection has it open rebuilds
    // SQLite's shared-memory index (WAL recovery, under an exclusive lock): a shell starting
    // at that instant sees "database is locked", with or without the checkpoint on close
    // (SQLite's unix VFS; as before issue 15). An idle read-only connection held open for
    // the whole test keeps the index alive, so that what is measured is the writer's close.
    ChildProcess holder({CHECKPOINT_PYTHON3, "-c",
                         "import sqlite3, sys, time\n"
                         "c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n"
                         "c.execute('SELECT count(*) FROM checkpoints').fetchall()\n"
                         "print('holding', flush=True)\n"
                         "time.sleep(3600)\n",
                         db.string()});
    REQUIRE(holder.read_line(30s) == std::optional<std::string>("holding"));
    const int cycles = checkpoint::test::scaled(40, 10);
    int reads = 0;
    long long last_seen = 0;
    // Reads go on until the writer has closed `cycles` more connections meanwhile.
    const long target = acks.acked() + cycles;
    const auto deadline = std::chrono::steady_clock::now() + 180s;
    while (acks.acked() < target || reads < 2 * cycles) {
        INFO("read " << reads);
        const long acked_before = acks.acked();
        const auto result = shell(db, "SELECT count(*) FROM checkpoints;", reads % 2 == 1);
        INFO("sqlite3 stdout: " << result.out << "\nsqlite3 stderr: " << result.err);
        REQUIRE(result.exit_code == 0);
        REQUIRE(result.err.empty());
        const long long count = std::stoll(result.out);
        CHECK(count >= acked_before);
        CHECK(count >= last_seen);
        last_seen = count;
        ++reads;
        REQUIRE(acks.bad_line().empty());
        REQUIRE(std::chrono::steady_clock::now() < deadline);  // the writer went on
    }
    std::ofstream(stop).put('\n');
    acks.join();
    CHECK(acks.bad_line().empty());
    const int writer_exit = writer.wait();
    INFO("writer stderr:\n" << read_file(err_file));
    CHECK(writer_exit == 0);
    const long acked = acks.acked();

    // The file alone, copied elsewhere, as an operator would: every row.
    const auto elsewhere = scratch / "elsewhere";
    std::filesystem::create_directory(elsewhere);
    std::filesystem::copy_file(db, elsewhere / "checkpoints.db");
    const auto copy = shell(elsewhere / "checkpoints.db", "SELECT count(*) FROM checkpoints;");
    INFO("sqlite3 stderr: " << copy.err);
    REQUIRE(copy.exit_code == 0);
    CHECK(copy.out == std::to_string(acked) + "\n");
}

TEST_CASE(
    "a process that exits without closing its manager leaves every row in the file and "
    "its -wal together",
    "[reader][sqlite]") {
    // What is guaranteed then: the database (the file with its -wal, as SQLite reads it)
    // holds every acknowledged save; the file alone is complete only after a clean close.
    TempDir scratch;
    const auto dir = scratch / "checkpoints";
    const auto result =
        run_command({CHECKPOINT_TEST_WORKER, "save", dir.string(), "leak", "25", "leak"});
    INFO("worker stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    const auto copy = scratch / "copy";
    std::filesystem::create_directory(copy);
    for (const char* suffix : {"", "-wal"}) {
        std::filesystem::copy_file(dir / ("checkpoints.db" + std::string(suffix)),
                                   copy / ("checkpoints.db" + std::string(suffix)));
    }
    const auto count = shell(copy / "checkpoints.db", "SELECT count(*) FROM checkpoints;");
    INFO("sqlite3 stderr: " << count.err);
    REQUIRE(count.exit_code == 0);
    CHECK(count.out == "25\n");
}
