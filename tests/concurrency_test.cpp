// Concurrency: threads sharing one CheckpointManager, processes sharing one directory
// (including the race on creating and migrating the database), and the busy timeout.
#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/fingerprint.hpp>

#include "child_process.hpp"
#include "fault_vfs.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"
#include "test_location.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::RunOutcome;
using checkpoint::Status;
using checkpoint::test::ChildProcess;
using checkpoint::test::FaultVfs;
using checkpoint::test::query_value;
using checkpoint::test::RawDb;
using checkpoint::test::read_file;
using checkpoint::test::TempDir;
using checkpoint::test::TestLocation;
using checkpoint::test::with_stderr_to;

namespace {

// Lets `count` threads start their work at the same moment.
class StartLine {
public:
    explicit StartLine(int count) : waiting_(count) {}
    void arrive_and_wait() {
        std::unique_lock lock(mutex_);
        if (--waiting_ == 0) {
            released_.notify_all();
            return;
        }
        released_.wait(lock, [this] { return waiting_ == 0; });
    }

private:
    std::mutex mutex_;
    std::condition_variable released_;
    int waiting_;
};

struct WorkerOutcome {
    pid_t pid = 0;
    std::vector<std::string> lines;  // every stdout line after "ready"
    int exit_code = -1;
    std::string err;
};

// Starts `prefixes.size()` workers that each save `count` stages into `dir`, all released
// at the same moment (before any of them opened the database: `untouched` checks that
// nothing exists yet), and collects what they did.
std::vector<WorkerOutcome> run_workers_together(const std::filesystem::path& dir,
                                                const std::filesystem::path& scratch,
                                                const std::vector<std::string>& prefixes, int count,
                                                const std::function<void()>& untouched) {
    const auto gate = scratch / "gate";
    std::vector<std::unique_ptr<ChildProcess>> children;
    for (const auto& prefix : prefixes) {
        children.push_back(std::make_unique<ChildProcess>(with_stderr_to(
            scratch / (prefix + ".err"), {CHECKPOINT_TEST_WORKER, "save", dir.string(), prefix,
                                          std::to_string(count), "--gate", gate.string()})));
    }
    // Every worker is waiting at the gate, none has touched the database yet.
    for (auto& child : children) {
        const auto ready = child->read_line(std::chrono::seconds(30));
        REQUIRE(ready);
        REQUIRE(*ready == "ready");
    }
    untouched();
    std::ofstream(gate).put('\n');

    std::vector<WorkerOutcome> outcomes(children.size());
    for (std::size_t i = 0; i < children.size(); ++i) {
        outcomes[i].pid = children[i]->pid();
        while (auto line = children[i]->read_line(std::chrono::seconds(120)))
            outcomes[i].lines.push_back(*line);
        outcomes[i].exit_code = children[i]->wait();
        outcomes[i].err = read_file(scratch / (prefixes[i] + ".err"));
    }
    return outcomes;
}

// Checks that the workers have not created the database yet: no file (SQLite), no table
// (PostgreSQL: the workers race to migrate a fresh, empty database).
std::function<void()> untouched(const TestLocation& location, const std::filesystem::path& dir) {
    return [&location, dir] {
        if (location.is_postgres()) {
            REQUIRE(location.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") ==
                    "0");
        } else {
            REQUIRE_FALSE(std::filesystem::exists(dir / "checkpoints.db"));
        }
    };
}

// The checks of a database the workers created: each migration applied exactly once,
// whoever won the race (and on SQLite, the file is sound and in WAL mode).
void check_created(const TestLocation& location, const std::filesystem::path& dir) {
    if (location.is_postgres()) {
        CHECK(location.query("SELECT count(*) FROM schema_migrations") ==
              location.query("SELECT version FROM checkpoint_schema"));
        CHECK(location.query("SELECT application FROM checkpoint_schema") == "checkpoint");
        return;
    }
    RawDb raw(dir / "checkpoints.db", SQLITE_OPEN_READONLY);
    CHECK(raw.value("PRAGMA integrity_check") == "ok");
    CHECK(raw.value("PRAGMA journal_mode") == "wal");
    CHECK(raw.value("PRAGMA user_version") == std::to_string(checkpoint::schema_version()));
    CHECK(raw.value("SELECT count(*) FROM schema_migrations") ==
          std::to_string(checkpoint::schema_version()));
}

std::vector<std::string> expected_acks(int count) {
    std::vector<std::string> acks;
    for (int i = 0; i < count; ++i) acks.push_back("ack " + std::to_string(i));
    return acks;
}

}  // namespace

TEST_CASE("threads sharing one manager lose no save and see every save", "[concurrency]") {
    constexpr int thread_count = 8;
    constexpr int saves_per_thread = 200;
    TestLocation dir;
    CheckpointManager manager(dir.location());

    std::atomic<int> failures{0};
    std::mutex errors_mutex;
    std::vector<std::string> errors;  // Catch2 assertions are not thread-safe: collect here
    auto report = [&](const std::string& what) {
        ++failures;
        std::lock_guard lock(errors_mutex);
        if (errors.size() < 20) errors.push_back(what);
    };

    StartLine start(thread_count);
    std::vector<std::thread> threads;
    for (int t = 0; t < thread_count; ++t) {
        threads.emplace_back([&, t] {
            start.arrive_and_wait();
            try {
                for (int i = 0; i < saves_per_thread; ++i) {
                    const std::string stage = "t" + std::to_string(t) + "-s" + std::to_string(i);
                    if (manager.has_checkpoint(stage)) report(stage + " present before its save");
                    manager.save_checkpoint(stage);
                    // Read-your-writes through the shared manager, while others write.
                    if (!manager.has_checkpoint(stage)) report(stage + " missing after its save");
                    const auto latest = manager.latest(stage);
                    if (!latest || latest->status != Status::Completed || latest->version != 1 ||
                        latest->stage != stage || latest->run_id != manager.run_id())
                        report(stage + ": latest() is not completed version 1 of this run");
                    if (i % 10 == 0) {
                        HistoryFilter filter;
                        filter.stage = stage;
                        const auto rows = manager.history(filter);
                        if (rows.size() != 1 || rows[0].stage != stage)
                            report(stage + ": history(stage) has " + std::to_string(rows.size()) +
                                   " rows");
                    }
                    if (i % 25 == 0) {
                        // A whole-history read in the middle of the other threads' writes:
                        // ids strictly increase, and it holds every save of this thread.
                        const auto all = manager.history();
                        const std::string own = "t" + std::to_string(t) + "-";
                        int own_rows = 0;
                        for (std::size_t k = 0; k < all.size(); ++k) {
                            if (k > 0 && all[k].id <= all[k - 1].id)
                                report("history() ids not increasing");
                            if (all[k].stage.rfind(own, 0) == 0) ++own_rows;
                        }
                        if (own_rows != i + 1)
                            report(stage + ": history() holds " + std::to_string(own_rows) +
                                   " saves of this thread");
                        // Another thread's earlier stage, read while it writes.
                        const int other = (t + 1) % thread_count;
                        (void)manager.has_checkpoint("t" + std::to_string(other) + "-s0");
                    }
                }
            } catch (const std::exception& e) {
                report(std::string("thread ") + std::to_string(t) + " threw: " + e.what());
            }
        });
    }
    for (auto& thread : threads) thread.join();

    for (const auto& error : errors) UNSCOPED_INFO(error);
    REQUIRE(failures.load() == 0);

    const int total = thread_count * saves_per_thread;
    int missing = 0;
    for (int t = 0; t < thread_count; ++t) {
        for (int i = 0; i < saves_per_thread; ++i) {
            if (!manager.has_checkpoint("t" + std::to_string(t) + "-s" + std::to_string(i)))
                ++missing;
        }
    }
    CHECK(missing == 0);

    const auto history = manager.history();
    REQUIRE(history.size() == static_cast<std::size_t>(total));
    std::set<std::string> stages;
    std::set<std::int64_t> ids;
    for (const auto& row : history) {
        CHECK(row.status == Status::Completed);
        CHECK(row.version == 1);
        CHECK(row.run_id == manager.run_id());
        stages.insert(row.stage);
        ids.insert(row.id);
    }
    CHECK(stages.size() == static_cast<std::size_t>(total));
    CHECK(ids.size() == static_cast<std::size_t>(total));
    CHECK(manager.stages().size() == static_cast<std::size_t>(total));

    const auto runs = manager.runs();
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].run_id == manager.run_id());
    CHECK(runs[0].outcome == RunOutcome::Running);

    // Another connection (a second manager) sees the same, and the run closes normally.
    const std::string run_id = manager.run_id();
    { CheckpointManager closing(std::move(manager)); }
    CheckpointManager reader(dir.location());
    CHECK(reader.history().size() == static_cast<std::size_t>(total));
    const auto closed = reader.runs();
    REQUIRE(closed.size() == 1);
    CHECK(closed[0].run_id == run_id);
    CHECK(closed[0].outcome == RunOutcome::Finished);
    CHECK(closed[0].ended_at.has_value());
}

TEST_CASE("processes saving into one new directory at the same moment lose nothing",
          "[concurrency]") {
    constexpr int saves_per_child = 200;
    const std::vector<std::string> prefixes{"alpha", "bravo", "charlie", "delta"};
    TestLocation scratch;
    // Does not exist yet: the workers create it (PostgreSQL: an empty database they migrate).
    const auto dir = scratch.is_sqlite() ? scratch / "checkpoints" : scratch.location();

    const auto outcomes = run_workers_together(dir, scratch.scratch(), prefixes, saves_per_child,
                                               untouched(scratch, dir));

    std::set<std::int64_t> pids;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        INFO("worker " << prefixes[i] << " (pid " << outcomes[i].pid << ") stderr:\n"
                       << outcomes[i].err);
        CHECK(outcomes[i].exit_code == 0);
        CHECK(outcomes[i].err.find("error") == std::string::npos);
        CHECK(outcomes[i].lines == expected_acks(saves_per_child));
        pids.insert(outcomes[i].pid);
    }

    check_created(scratch, dir);
    if (scratch.is_sqlite()) {
        CHECK(query_value(dir / "checkpoints.db", "SELECT count(*) FROM checkpoints") ==
              std::to_string(prefixes.size() * saves_per_child));
    } else {
        CHECK(scratch.query("SELECT count(*) FROM checkpoints") ==
              std::to_string(prefixes.size() * saves_per_child));
    }

    CheckpointManager manager(dir);
    int missing = 0;
    for (const auto& prefix : prefixes) {
        for (int i = 0; i < saves_per_child; ++i) {
            if (!manager.has_checkpoint(prefix + "-" + std::to_string(i))) ++missing;
        }
    }
    CHECK(missing == 0);

    const auto history = manager.history();
    CHECK(history.size() == prefixes.size() * saves_per_child);
    std::map<std::string, int> rows_per_run;
    for (const auto& row : history) {
        CHECK(row.status == Status::Completed);
        CHECK(row.version == 1);
        ++rows_per_run[row.run_id];
    }

    const auto runs = manager.runs();
    REQUIRE(runs.size() == prefixes.size());
    for (const auto& run : runs) {
        INFO("run " << run.run_id << " pid " << run.pid);
        CHECK(run.outcome == RunOutcome::Finished);
        CHECK(run.ended_at.has_value());
        CHECK(pids.count(run.pid) == 1);
        CHECK(rows_per_run[run.run_id] == saves_per_child);
    }
}

TEST_CASE("processes racing to create the same database all succeed", "[concurrency]") {
    // The first open of a directory creates the file, switches it to WAL and migrates it.
    // Many rounds of many processes doing that at the same moment, with few saves each.
    constexpr int rounds = 8;
    constexpr int saves_per_child = 3;
    const std::vector<std::string> prefixes{"a", "b", "c", "d", "e", "f"};
    for (int round = 0; round < rounds; ++round) {
        INFO("round " << round);
        TestLocation location;  // PostgreSQL: a fresh, empty database each round
        const auto round_dir = location.scratch();
        const auto dir =
            location.is_sqlite() ? round_dir / "deep" / "checkpoints" : location.location();
        const auto outcomes = run_workers_together(dir, round_dir, prefixes, saves_per_child,
                                                   untouched(location, dir));
        for (std::size_t i = 0; i < outcomes.size(); ++i) {
            INFO("worker " << prefixes[i] << " stderr:\n" << outcomes[i].err);
            CHECK(outcomes[i].exit_code == 0);
            CHECK(outcomes[i].err.find("error") == std::string::npos);
            CHECK(outcomes[i].lines == expected_acks(saves_per_child));
        }
        check_created(location, dir);
        const auto value = [&](const std::string& sql) {
            return location.is_sqlite() ? query_value(dir / "checkpoints.db", sql)
                                        : location.query(sql);
        };
        CHECK(value("SELECT count(*) FROM checkpoints WHERE version = 1") ==
              std::to_string(prefixes.size() * saves_per_child));
        CHECK(value("SELECT count(*) FROM runs WHERE outcome = 'finished'") ==
              std::to_string(prefixes.size()));
    }
}

TEST_CASE("a save blocked past the busy timeout throws Busy and writes nothing",
          "[concurrency][sqlite]") {
    using namespace std::chrono_literals;
    TempDir dir;
    Options options;
    options.busy_timeout = 300ms;
    CheckpointManager manager(dir.path(), options);
    const auto db_path = manager.database_path();

    // The first save of the run writes the run row too: it must roll back with it.
    // A later save (the run already recorded) must roll back on its own.
    const bool run_recorded_before = GENERATE(false, true);
    INFO("run recorded before the lock: " << run_recorded_before);
    if (run_recorded_before) manager.save_checkpoint("before");
    const std::size_t rows_before = manager.history().size();
    const std::size_t runs_before = manager.runs().size();

    RawDb locker(db_path);
    REQUIRE(locker.exec("BEGIN IMMEDIATE") == SQLITE_OK);

    const auto started = std::chrono::steady_clock::now();
    try {
        manager.save_checkpoint("blocked");
        FAIL("save_checkpoint returned while another connection held the write lock");
    } catch (const Error& e) {
        const auto waited = std::chrono::steady_clock::now() - started;
        INFO(e.what());
        CHECK(e.code() == ErrorCode::Busy);
        CHECK(std::string(e.what()).find(db_path.string()) != std::string::npos);
        // It waited for the timeout: neither for ever nor not at all.
        CHECK(waited >= 250ms);
        CHECK(waited < 10s);
    }

    // Reads do not wait for the writer (WAL), and see nothing of the failed save.
    const auto read_started = std::chrono::steady_clock::now();
    CHECK_FALSE(manager.has_checkpoint("blocked"));
    CHECK_FALSE(manager.latest("blocked").has_value());
    CHECK(std::chrono::steady_clock::now() - read_started < 250ms);

    // Opening a second manager meanwhile either works (reading needs no lock) or throws
    // Busy naming the file after the timeout: never another error, never a longer wait.
    {
        const auto open_started = std::chrono::steady_clock::now();
        try {
            CheckpointManager second(dir.path(), options);
            CHECK_FALSE(second.has_checkpoint("blocked"));
        } catch (const Error& e) {
            INFO(e.what());
            CHECK(e.code() == ErrorCode::Busy);
            CHECK(std::string(e.what()).find(db_path.string()) != std::string::npos);
        }
        CHECK(std::chrono::steady_clock::now() - open_started < 10s);
    }

    REQUIRE(locker.exec("ROLLBACK") == SQLITE_OK);

    // Nothing half-written: no row, no run, no head for the failed save.
    CHECK(manager.history().size() == rows_before);
    CHECK(manager.runs().size() == runs_before);
    {
        RawDb raw(db_path, SQLITE_OPEN_READONLY);
        CHECK(raw.value("SELECT count(*) FROM checkpoints WHERE stage = 'blocked'") == "0");
        CHECK(raw.value("SELECT count(*) FROM stage_heads WHERE stage = 'blocked'") == "0");
        CHECK(raw.value("SELECT count(*) FROM runs") == std::to_string(runs_before));
        CHECK(raw.value("PRAGMA integrity_check") == "ok");
    }

    // Once the lock is gone the same manager saves normally.
    manager.save_checkpoint("blocked");
    CHECK(manager.has_checkpoint("blocked"));
    const auto latest = manager.latest("blocked");
    REQUIRE(latest);
    CHECK(latest->status == Status::Completed);
    CHECK(latest->version == 1);
    CHECK(manager.history().size() == rows_before + 1);
    const auto runs = manager.runs();
    REQUIRE(runs.size() == 1);
    CHECK(runs[0].run_id == manager.run_id());
}

TEST_CASE("a save waits for a lock another process holds for less than the busy timeout",
          "[concurrency][sqlite]") {
    // The lock is held by another process (Python's sqlite3 module) for less than the busy
    // timeout: the save waits for it instead of failing.
    using namespace std::chrono_literals;
    TempDir dir;
    Options options;
    options.busy_timeout = 5s;
    CheckpointManager manager(dir.path(), options);
    manager.save_checkpoint("first");

    // The other process holds the write lock for about 300 ms, then commits.
    ChildProcess locker({CHECKPOINT_PYTHON3, "-c",
                         "import sqlite3, sys, time\n"
                         "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                         "c.execute('BEGIN IMMEDIATE')\n"
                         "print('locked', flush=True)\n"
                         "time.sleep(0.3)\n"
                         "c.execute('COMMIT')\n",
                         manager.database_path().string()});
    const auto locked = locker.read_line(30s);
    REQUIRE(locked);
    REQUIRE(*locked == "locked");
    const auto started = std::chrono::steady_clock::now();
    manager.save_checkpoint("second");  // waits for the lock instead of failing
    const auto waited = std::chrono::steady_clock::now() - started;
    CHECK(locker.wait() == 0);
    CHECK(waited >= 100ms);
    CHECK(manager.has_checkpoint("second"));
    CHECK(manager.history().size() == 2);
}

TEST_CASE("threads whose saves meet a held write lock all fail or all succeed together",
          "[concurrency][sqlite]") {
    // Saves from several threads share one transaction (group commit): each call must still
    // report its own outcome. Against a lock held past the timeout, every save throws Busy
    // and none is written; against a lock released within the timeout, every save succeeds.
    using namespace std::chrono_literals;
    constexpr int thread_count = 6;
    TempDir dir;
    Options options;
    const bool released_in_time = GENERATE(false, true);
    INFO("lock released within the timeout: " << released_in_time);
    options.busy_timeout = released_in_time ? 10s : 300ms;
    CheckpointManager manager(dir.path(), options);
    manager.save_checkpoint("before");

    RawDb locker(manager.database_path());
    REQUIRE(locker.exec("BEGIN IMMEDIATE") == SQLITE_OK);

    std::vector<std::optional<ErrorCode>> outcomes(thread_count);  // nullopt: returned normally
    std::vector<std::string> unexpected(thread_count);
    StartLine start(thread_count + 1);
    std::vector<std::thread> threads;
    for (int t = 0; t < thread_count; ++t) {
        threads.emplace_back([&, t] {
            start.arrive_and_wait();
            try {
                manager.save_checkpoint("stage-" + std::to_string(t));
            } catch (const Error& e) {
                outcomes[t] = e.code();
            } catch (const std::exception& e) {
                unexpected[t] = e.what();
            }
        });
    }
    start.arrive_and_wait();
    if (released_in_time) {
        std::this_thread::sleep_for(200ms);  // how long the lock is held, not a synchronization
        REQUIRE(locker.exec("COMMIT") == SQLITE_OK);
    }
    for (auto& thread : threads) thread.join();
    if (!released_in_time) REQUIRE(locker.exec("ROLLBACK") == SQLITE_OK);

    for (int t = 0; t < thread_count; ++t) {
        INFO("thread " << t);
        CHECK(unexpected[t].empty());
        if (released_in_time) {
            CHECK_FALSE(outcomes[t].has_value());
            CHECK(manager.has_checkpoint("stage-" + std::to_string(t)));
        } else {
            CHECK(outcomes[t] == ErrorCode::Busy);
            CHECK_FALSE(manager.has_checkpoint("stage-" + std::to_string(t)));
        }
    }
    const auto history = manager.history();
    CHECK(history.size() == (released_in_time ? 1 + thread_count : 1));

    // Afterwards, every thread's save works (again).
    for (int t = 0; t < thread_count; ++t) manager.save_checkpoint("stage-" + std::to_string(t));
    for (int t = 0; t < thread_count; ++t) {
        const auto latest = manager.latest("stage-" + std::to_string(t));
        REQUIRE(latest);
        CHECK(latest->status == Status::Completed);
        CHECK(latest->version == (released_in_time ? 2 : 1));
    }
    RawDb raw(manager.database_path(), SQLITE_OPEN_READONLY);
    CHECK(raw.value("PRAGMA integrity_check") == "ok");
}

TEST_CASE("a save checks its output file only once it holds the write lock",
          "[concurrency][sqlite]") {
    // A save writes its output file, then takes the write lock (BEGIN IMMEDIATE), and only
    // then checks that the file is still there (a prune may have deleted it meanwhile: it
    // had no row yet) and writes it again if not. Here the file disappears while the save
    // waits for the lock. With the check made before the lock is taken (a deferred BEGIN),
    // the save either fails at once with Busy or commits a row whose file is missing.
    // Deterministic: the test waits for the save to sleep in SQLite's busy handler (the
    // VFS counts the sleeps), not for some time to pass.
    using namespace std::chrono_literals;
    FaultVfs vfs;  // counts sleeps; registered before any connection is opened
    TempDir dir;
    Options options;
    options.busy_timeout = 600s;    // far longer than the test: the save never times out
    options.max_inline_output = 0;  // every non-empty output in a file
    CheckpointManager manager(dir.path(), options);
    manager.save_checkpoint("first");  // the run is recorded: the next save only appends

    const std::string bytes = "the output of stage 'second'";
    const auto file = manager.outputs_directory() / checkpoint::fingerprint_of(bytes);
    RawDb holder(manager.database_path());
    REQUIRE(holder.exec("BEGIN IMMEDIATE") == SQLITE_OK);
    const std::int64_t sleeps_before = vfs.sleeps();

    std::atomic<bool> finished{false};
    std::exception_ptr error;
    std::thread saver([&] {
        try {
            checkpoint::SaveOptions save;
            save.output = bytes;
            manager.save_checkpoint("second", save);
        } catch (...) {
            error = std::current_exception();
        }
        finished = true;
    });
    // Until the save sleeps on the lock, or ends without waiting for it (bounded, so that
    // a save that neither waits nor ends fails the test instead of hanging it).
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (vfs.sleeps() == sleeps_before && !finished &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
    }
    const bool blocked = vfs.sleeps() > sleeps_before && !finished;
    bool removed = false;
    if (blocked) removed = std::filesystem::remove(file);
    CHECK(holder.exec("ROLLBACK") == SQLITE_OK);
    saver.join();

    std::string failure;
    try {
        if (error) std::rethrow_exception(error);
    } catch (const std::exception& e) {
        failure = e.what();
    }
    {
        INFO("the save must wait for the write lock another connection holds; it "
             << (finished ? "ended without waiting: " + failure : "never slept"));
        REQUIRE(blocked);
    }
    {
        INFO("the save writes its output file before it waits for the lock");
        CHECK(removed);
    }
    {
        INFO("the save failed: " << failure);
        REQUIRE_FALSE(error);
    }
    // The save wrote the file again under the lock: the row and its file agree.
    CHECK(manager.has_checkpoint("second"));
    CHECK(manager.load_output("second") == bytes);
    CHECK(read_file(file) == bytes);
}
