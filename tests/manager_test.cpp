// CheckpointManager: saves, versions, clears, the stage lifecycle, reads and runs.
#include <checkpoint/checkpoint_manager.hpp>

#include "raw_db.hpp"
#include "test_location.hpp"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <unistd.h>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::RunOutcome;
using checkpoint::Status;
using checkpoint::test::TempDir;
using checkpoint::test::TestLocation;

namespace {

std::vector<Status> statuses(const std::vector<Checkpoint>& rows) {
    std::vector<Status> result;
    for (const auto& row : rows) result.push_back(row.status);
    return result;
}

}  // namespace

TEST_CASE("a saved stage is found, by this manager and by a new one", "[save]") {
    TestLocation dir;
    {
        CheckpointManager manager(dir.location());
        CHECK_FALSE(manager.has_checkpoint("data_ingestion"));
        CHECK_FALSE(manager.latest("data_ingestion"));
        manager.save_checkpoint("data_ingestion");
        CHECK(manager.has_checkpoint("data_ingestion"));
        CHECK_FALSE(manager.has_checkpoint("data_preprocessing"));
    }
    CheckpointManager reopened(dir.location());
    CHECK(reopened.has_checkpoint("data_ingestion"));
    if (dir.is_sqlite()) {
        CHECK(reopened.database_path() == dir.location() / "checkpoints.db");
        CHECK(std::filesystem::exists(dir.location() / "checkpoints.db"));
    } else {
        CHECK(dir.query("SELECT count(*) FROM checkpoints WHERE stage = 'data_ingestion'") == "1");
    }
}

TEST_CASE("the default constructor uses ./checkpoints", "[save][sqlite]") {
    TempDir dir;
    const auto previous = std::filesystem::current_path();
    std::filesystem::current_path(dir.path());
    {
        CheckpointManager manager;
        manager.save_checkpoint("stage");
        CHECK(manager.database_path() == std::filesystem::path("checkpoints") / "checkpoints.db");
    }
    std::filesystem::current_path(previous);
    CHECK(std::filesystem::exists(dir.path() / "checkpoints" / "checkpoints.db"));
}

TEST_CASE("a missing directory is created with its parents", "[save][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path() / "a" / "b" / "c");
    manager.save_checkpoint("s");
    CHECK(std::filesystem::exists(dir.path() / "a" / "b" / "c" / "checkpoints.db"));
}

TEST_CASE("each save is a new version, and versions survive clears and never repeat", "[save]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("s");
    manager.save_checkpoint("s");
    CHECK(manager.latest("s")->version == 2);
    manager.clear_checkpoint("s");
    CHECK(manager.latest("s")->version == 2);  // a clear reports the last version
    manager.save_checkpoint("s");
    CHECK(manager.latest("s")->version == 3);
    manager.clear_checkpoints();
    manager.save_checkpoint("s");
    manager.save_checkpoint("other");
    CHECK(manager.latest("s")->version == 4);
    CHECK(manager.latest("other")->version == 1);

    std::vector<std::int64_t> versions;
    for (const auto& row : manager.history({"s"}))
        if (row.status == Status::Completed) versions.push_back(row.version);
    CHECK(versions == std::vector<std::int64_t>{1, 2, 3, 4});
}

TEST_CASE("a saved row records stage, status, version, timestamp and run", "[save]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    const auto before = std::chrono::system_clock::now();
    manager.save_checkpoint("s");
    const auto row = manager.latest("s");
    REQUIRE(row);
    CHECK(row->stage == "s");
    CHECK(row->pipeline == "default");
    CHECK(row->status == Status::Completed);
    CHECK(row->version == 1);
    CHECK(row->run_id == manager.run_id());
    CHECK(row->message.empty());
    CHECK_FALSE(row->duration);  // not begun in this run
    // ISO-8601 UTC with milliseconds, and close to now.
    REQUIRE(row->timestamp.size() == 24);
    CHECK(row->timestamp[10] == 'T');
    CHECK(row->timestamp[19] == '.');
    CHECK(row->timestamp.back() == 'Z');
    std::tm parsed{};
    REQUIRE(strptime(row->timestamp.c_str(), "%Y-%m-%dT%H:%M:%S", &parsed) != nullptr);
    const auto stored = std::chrono::system_clock::from_time_t(timegm(&parsed));
    CHECK(std::chrono::abs(stored - before) < std::chrono::seconds(5));
}

TEST_CASE("clear_checkpoints resets every stage atomically and is recorded", "[clear]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    for (int i = 0; i < 50; ++i) manager.save_checkpoint("stage-" + std::to_string(i));
    const auto rows_before = manager.history().size();
    manager.clear_checkpoints();
    for (int i = 0; i < 50; ++i) CHECK_FALSE(manager.has_checkpoint("stage-" + std::to_string(i)));
    const auto history = manager.history();
    // One row records the clear, whatever the number of stages; earlier rows are kept.
    REQUIRE(history.size() == rows_before + 1);
    CHECK(history.back().status == Status::Cleared);
    CHECK(history.back().stage.empty());
    CHECK(history.back().run_id == manager.run_id());
    // Every stage now reads as cleared, as of the clear.
    const auto latest = manager.latest("stage-7");
    REQUIRE(latest);
    CHECK(latest->status == Status::Cleared);
    CHECK(latest->id == history.back().id);
    CHECK(latest->version == 1);
    CHECK(latest->stage == "stage-7");
    // A stage saved after the clear is completed again.
    manager.save_checkpoint("stage-7");
    CHECK(manager.has_checkpoint("stage-7"));
    CHECK_FALSE(manager.has_checkpoint("stage-8"));
}

TEST_CASE("clear_checkpoint resets one stage only", "[clear]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("a");
    manager.save_checkpoint("b");
    manager.clear_checkpoint("a");
    CHECK_FALSE(manager.has_checkpoint("a"));
    CHECK(manager.has_checkpoint("b"));
    CHECK(manager.latest("a")->status == Status::Cleared);
    manager.clear_checkpoint("never-saved");
    CHECK(manager.latest("never-saved")->status == Status::Cleared);
    CHECK(manager.latest("never-saved")->version == 0);
}

TEST_CASE("pipelines sharing a database see only their own stages and clears", "[clear]") {
    TestLocation dir;
    Options etl;
    etl.pipeline = "etl";
    Options training;
    training.pipeline = "training";
    CheckpointManager first(dir.location(), etl);
    CheckpointManager second(dir.location(), training);
    first.save_checkpoint("load");
    second.save_checkpoint("load");
    second.save_checkpoint("fit");
    CHECK_FALSE(first.has_checkpoint("fit"));
    first.clear_checkpoints();
    CHECK_FALSE(first.has_checkpoint("load"));
    CHECK(second.has_checkpoint("load"));
    CHECK(second.has_checkpoint("fit"));
    CHECK(first.history().size() == 2);
    CHECK(second.history().size() == 2);
    CHECK(first.runs().size() == 1);
    CHECK(second.stages().size() == 2);
}

TEST_CASE("begin_stage and fail_stage record the lifecycle", "[lifecycle]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("s");
    manager.begin_stage("s");
    CHECK_FALSE(manager.has_checkpoint("s"));  // being rerun: not completed meanwhile
    CHECK(manager.latest("s")->status == Status::Started);
    manager.fail_stage("s", "disk quota exceeded");
    CHECK_FALSE(manager.has_checkpoint("s"));
    const auto failed = manager.latest("s");
    CHECK(failed->status == Status::Failed);
    CHECK(failed->message == "disk quota exceeded");
    CHECK(failed->version == 1);
    REQUIRE(failed->duration);
    manager.begin_stage("s");
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    manager.save_checkpoint("s");
    const auto completed = manager.latest("s");
    CHECK(completed->version == 2);
    REQUIRE(completed->duration);
    CHECK(completed->duration->count() >= 30);
    CHECK(statuses(manager.history()) == std::vector<Status>{Status::Completed, Status::Started,
                                                             Status::Failed, Status::Started,
                                                             Status::Completed});
}

TEST_CASE("run_stage skips completed stages, records duration, and failures", "[lifecycle]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    int calls = 0;
    CHECK(manager.run_stage("work", [&] {
        ++calls;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }));
    CHECK(calls == 1);
    CHECK(manager.has_checkpoint("work"));
    REQUIRE(manager.latest("work")->duration);
    CHECK(manager.latest("work")->duration->count() >= 20);
    CHECK_FALSE(manager.run_stage("work", [&] { ++calls; }));
    CHECK(calls == 1);

    struct Custom : std::runtime_error {
        using std::runtime_error::runtime_error;
    };
    CHECK_THROWS_AS(manager.run_stage("broken", [] { throw Custom("out of memory in step 3"); }),
                    Custom);
    const auto failed = manager.latest("broken");
    REQUIRE(failed);
    CHECK(failed->status == Status::Failed);
    CHECK(failed->message == "out of memory in step 3");
    CHECK_FALSE(manager.has_checkpoint("broken"));
    CHECK_THROWS_AS(manager.run_stage("odd", [] { throw 42; }), int);
    CHECK(manager.latest("odd")->status == Status::Failed);
    // A failed stage runs again next time.
    CHECK(manager.run_stage("broken", [&] { ++calls; }));
    CHECK(manager.has_checkpoint("broken"));
}

TEST_CASE("history filters by stage, run, status, time and limit", "[history]") {
    TestLocation dir;
    std::string first_run;
    {
        CheckpointManager manager(dir.location());
        first_run = manager.run_id();
        manager.save_checkpoint("a");
        manager.begin_stage("b");
        manager.fail_stage("b", "boom");
    }
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("b");
    manager.clear_checkpoints();
    manager.save_checkpoint("a");

    const auto all = manager.history();
    REQUIRE(all.size() == 6);
    for (std::size_t i = 1; i < all.size(); ++i) CHECK(all[i - 1].id < all[i].id);

    HistoryFilter by_stage;
    by_stage.stage = "b";
    // The stage's own rows, and the pipeline-wide clear that affected it.
    CHECK(statuses(manager.history(by_stage)) ==
          std::vector<Status>{Status::Started, Status::Failed, Status::Completed, Status::Cleared});
    HistoryFilter by_run;
    by_run.run_id = first_run;
    CHECK(manager.history(by_run).size() == 3);
    HistoryFilter failed;
    failed.status = Status::Failed;
    REQUIRE(manager.history(failed).size() == 1);
    CHECK(manager.history(failed)[0].message == "boom");
    HistoryFilter limited;
    limited.limit = 2;
    CHECK(manager.history(limited).size() == 2);
    limited.limit = 0;
    CHECK(manager.history(limited).empty());

    HistoryFilter future;
    future.since = "2999-01-01";
    CHECK(manager.history(future).empty());
    HistoryFilter past;
    past.until = "2000-01-01T00:00:00Z";
    CHECK(manager.history(past).empty());
    HistoryFilter window;
    window.since = all.front().timestamp;
    window.until = "2999-12-31T23:59";
    CHECK(manager.history(window).size() == all.size());

    HistoryFilter bad_time;
    bad_time.since = "yesterday";
    try {
        manager.history(bad_time);
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::InvalidArgument);
        CHECK_THAT(e.what(), Catch::Contains("yesterday") && Catch::Contains("ISO-8601"));
    }
}

TEST_CASE("for_each_history streams rows and lets the caller's exceptions through", "[history]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    for (int i = 0; i < 10; ++i) manager.save_checkpoint("s" + std::to_string(i));
    int seen = 0;
    manager.for_each_history({}, [&](const Checkpoint& row) {
        CHECK(row.stage == "s" + std::to_string(seen));
        ++seen;
    });
    CHECK(seen == 10);
    struct Stop {};
    CHECK_THROWS_AS(manager.for_each_history({}, [](const Checkpoint&) { throw Stop{}; }), Stop);
    // The manager still works after an interrupted stream.
    manager.save_checkpoint("after");
    CHECK(manager.history().size() == 11);
}

TEST_CASE("stages() reports the current state of every stage", "[history]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("c");
    manager.save_checkpoint("a");
    manager.fail_stage("b", "x");
    manager.begin_stage("d");
    const auto current = manager.stages();
    REQUIRE(current.size() == 4);
    CHECK(current[0].stage == "a");
    CHECK(current[0].status == Status::Completed);
    CHECK(current[1].status == Status::Failed);
    CHECK(current[2].status == Status::Completed);
    CHECK(current[3].status == Status::Started);
}

TEST_CASE("each manager is one run with host, pid, user, start and end", "[runs]") {
    TestLocation dir;
    std::string run_id;
    {
        CheckpointManager manager(dir.location());
        run_id = manager.run_id();
        CHECK(manager.runs().empty());  // nothing written yet: no run recorded
        manager.save_checkpoint("s");
        const auto runs = manager.runs();
        REQUIRE(runs.size() == 1);
        CHECK(runs[0].run_id == run_id);
        CHECK(runs[0].pid == static_cast<std::int64_t>(getpid()));
        CHECK_FALSE(runs[0].host.empty());
        CHECK_FALSE(runs[0].user.empty());
        CHECK_FALSE(runs[0].ended_at);
        CHECK(runs[0].outcome == RunOutcome::Running);
    }
    {
        CheckpointManager failing(dir.location());
        failing.fail_stage("t", "bad");
    }
    {
        CheckpointManager reader(dir.location());
        CHECK(reader.has_checkpoint("s"));  // a reader records no run
    }
    CheckpointManager manager(dir.location());
    const auto runs = manager.runs();
    REQUIRE(runs.size() == 2);
    CHECK(runs[0].run_id == run_id);
    CHECK(runs[0].outcome == RunOutcome::Finished);
    REQUIRE(runs[0].ended_at);
    CHECK(*runs[0].ended_at >= runs[0].started_at);
    CHECK(runs[1].outcome == RunOutcome::Failed);
    CHECK(run_id.size() == 36);
    CHECK(run_id[14] == '7');                // UUID version 7
    CHECK(runs[0].run_id < runs[1].run_id);  // time-ordered
}

TEST_CASE("a stage begun by a run that ended reads as incomplete", "[runs]") {
    TestLocation dir;
    {
        CheckpointManager manager(dir.location());
        manager.save_checkpoint("done");
        manager.begin_stage("interrupted");
    }
    CheckpointManager manager(dir.location());
    CHECK_FALSE(manager.has_checkpoint("interrupted"));
    CHECK(manager.latest("interrupted")->status == Status::Incomplete);
    CHECK(manager.history().back().status == Status::Incomplete);
    HistoryFilter incomplete;
    incomplete.status = Status::Incomplete;
    CHECK(manager.history(incomplete).size() == 1);
    // The same view answers in the sqlite3 shell (psql).
    CHECK(dir.query("SELECT count(*) FROM current_state WHERE status = 'incomplete'") == "1");
}

TEST_CASE("a read-only manager reads and refuses to write", "[open]") {
    TestLocation dir;
    {
        CheckpointManager writer(dir.location());
        writer.save_checkpoint("s");
    }
    Options options;
    options.read_only = true;
    CheckpointManager reader(dir.location(), options);
    CHECK(reader.has_checkpoint("s"));
    CHECK(reader.history().size() == 1);
    try {
        reader.save_checkpoint("t");
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::ReadOnly);
        CHECK_THAT(e.what(), Catch::Contains(dir.described()));
    }
    CHECK_THROWS_AS(reader.clear_checkpoints(), Error);
    CHECK(reader.history().size() == 1);

    if (dir.is_sqlite()) {
        TempDir empty;
        try {
            CheckpointManager missing(empty.path() / "nothing-here", options);
            FAIL("no exception");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::NotFound);
            CHECK_THAT(e.what(), Catch::Contains("nothing-here"));
        }
        CHECK_FALSE(std::filesystem::exists(empty.path() / "nothing-here"));
    } else {
        TestLocation empty;  // a database without checkpoint's tables
        try {
            CheckpointManager missing(empty.location(), options);
            FAIL("no exception");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::NotFound);
            CHECK_THAT(e.what(), Catch::Contains(empty.described()));
        }
        CHECK(empty.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0");
    }
}

TEST_CASE("logging: a default-configured manager is quiet on the happy path", "[logging]") {
    TestLocation dir;
    {
        CheckpointManager creator(dir.location());  // creates the database (an info line)
    }
    // The library's default logger ("checkpoint", level info, stderr), with a sink of ours.
    CheckpointManager manager(dir.location());
    const auto logger = spdlog::get("checkpoint");
    REQUIRE(logger);
    CHECK(logger->level() == spdlog::level::info);
    std::ostringstream lines;
    auto capture = std::make_shared<spdlog::sinks::ostream_sink_mt>(lines);
    capture->set_pattern("[%l] %v");
    logger->sinks().push_back(capture);
    manager.save_checkpoint("loaded");
    CHECK(manager.has_checkpoint("loaded"));
    manager.begin_stage("next");
    manager.save_checkpoint("next");
    CHECK_FALSE(manager.run_stage("next", [] {}));  // skipped: already completed
    manager.clear_checkpoint("next");
    manager.clear_checkpoints();
    (void)manager.history();
    (void)manager.stages();
    logger->sinks().pop_back();
    INFO(lines.str());
    CHECK(lines.str().empty());
}

TEST_CASE(
    "logging: info when a database is created and a warning for a failed stage with the rest "
    "at debug and a thrown error not logged as an error",
    "[logging]") {
    TestLocation dir;
    std::ostringstream lines;
    auto logger = std::make_shared<spdlog::logger>(
        "test", std::make_shared<spdlog::sinks::ostream_sink_mt>(lines));
    logger->set_pattern("[%l] %v");
    logger->set_level(spdlog::level::info);
    Options options;
    options.logger = logger;
    { CheckpointManager creator(dir.location(), options); }
    CHECK_THAT(lines.str(), Catch::StartsWith("[info] created "));
    const std::string created = lines.str();
    CHECK(std::count(created.begin(), created.end(), '\n') == 1);
    lines.str("");
    CheckpointManager manager(dir.location(), options);  // up to date: nothing to say
    manager.save_checkpoint("loaded");
    (void)manager.has_checkpoint("loaded");
    manager.clear_checkpoints();
    CHECK(lines.str().empty());

    manager.begin_stage("broken");
    manager.fail_stage("broken", "disk on fire");
    CHECK(lines.str() == "[warning] stage 'broken' failed: disk on fire\n");
    lines.str("");

    logger->set_level(spdlog::level::debug);
    (void)manager.has_checkpoint("loaded");
    CHECK_THAT(lines.str(), Catch::Contains("[debug] has_checkpoint('loaded') = false"));
    manager.save_checkpoint("again");
    CHECK_THAT(lines.str(), Catch::Contains("[debug] saved stage 'again' version 1"));
    lines.str("");

    // The caller gets the error; the library does not log it at error level too.
    Options read_only = options;
    read_only.read_only = true;
    CheckpointManager reader(dir.location(), read_only);
    CHECK_THROWS_AS(reader.save_checkpoint("x"), Error);
    CHECK_THAT(lines.str(), !Catch::Contains("[error]"));
    CHECK_THAT(lines.str(), Catch::Contains("[debug]") && Catch::Contains(dir.described()));
}

TEST_CASE("a manager can be moved, and the moved-to one keeps the run", "[save]") {
    TestLocation dir;
    CheckpointManager first(dir.location());
    first.save_checkpoint("a");
    const std::string run = first.run_id();
    CheckpointManager second(std::move(first));
    second.save_checkpoint("b");
    CHECK(second.run_id() == run);
    CHECK(second.history().back().run_id == run);
    CheckpointManager third(dir.location());
    third.save_checkpoint("c");
    third = std::move(second);  // closes third's run
    CHECK(third.run_id() == run);
    const auto runs = third.runs();
    REQUIRE(runs.size() == 2);
    CHECK(runs[1].outcome == RunOutcome::Finished);
}

TEST_CASE("import_checkpoint records a completed stage once, at the given time", "[import]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    CHECK(manager.import_checkpoint("data_ingestion", "2024-03-01T10:20:30.000Z",
                                    "legacy file /old/data_ingestion.checkpoint"));
    CHECK(manager.has_checkpoint("data_ingestion"));
    const auto row = manager.latest("data_ingestion");
    REQUIRE(row);
    CHECK(row->timestamp == "2024-03-01T10:20:30.000Z");
    CHECK(row->message == "legacy file /old/data_ingestion.checkpoint");
    CHECK(row->version == 1);
    // Again: nothing is written.
    CHECK_FALSE(manager.import_checkpoint("data_ingestion", "2024-03-01T10:20:30.000Z",
                                          "legacy file /old/data_ingestion.checkpoint"));
    CHECK(manager.history().size() == 1);
    // A different source or time is a different import.
    CHECK(manager.import_checkpoint("data_ingestion", "2024-03-02T00:00:00.000Z",
                                    "legacy file /old/data_ingestion.checkpoint"));
    CHECK(manager.latest("data_ingestion")->version == 2);

    for (const char* bad :
         {"2024-03-01", "2024-02-30T00:00:00.000Z", "2024-03-01T10:20:30Z", "yesterday", ""}) {
        INFO(bad);
        try {
            manager.import_checkpoint("s", bad, "x");
            FAIL("no exception");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::InvalidArgument);
        }
    }
    CHECK(manager.history().size() == 2);
}

TEST_CASE("runs count the stages each run completed and failed", "[runs]") {
    TestLocation dir;
    {
        CheckpointManager manager(dir.location());
        manager.save_checkpoint("a");
        manager.save_checkpoint("b");
        manager.fail_stage("c", "x");
    }
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("c");
    const auto runs = manager.runs();
    REQUIRE(runs.size() == 2);
    CHECK(runs[0].stages_completed == 2);
    CHECK(runs[0].stages_failed == 1);
    CHECK(runs[1].stages_completed == 1);
    CHECK(runs[1].stages_failed == 0);
}

TEST_CASE("history can cover every pipeline of the database", "[history]") {
    TestLocation dir;
    Options first;
    first.pipeline = "first";
    Options second;
    second.pipeline = "second";
    CheckpointManager a(dir.location(), first);
    CheckpointManager b(dir.location(), second);
    a.save_checkpoint("x");
    b.save_checkpoint("y");
    a.clear_checkpoints();
    HistoryFilter all;
    all.all_pipelines = true;
    const auto rows = b.history(all);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].pipeline == "first");
    CHECK(rows[1].pipeline == "second");
    CHECK(rows[2].status == Status::Cleared);
    CHECK(b.history().size() == 1);
}

TEST_CASE("threads saving at once share commits and each gets its own version", "[save]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    constexpr int threads = 8;
    constexpr int saves = 40;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&manager, t] {
            for (int i = 0; i < saves; ++i) {
                manager.save_checkpoint("shared");
                manager.save_checkpoint("own-" + std::to_string(t));
            }
        });
    }
    for (auto& worker : workers) worker.join();
    // Every save of the shared stage got a distinct version: 1 .. threads * saves.
    std::vector<std::int64_t> versions;
    HistoryFilter shared;
    shared.stage = "shared";
    for (const auto& row : manager.history(shared)) versions.push_back(row.version);
    REQUIRE(versions.size() == threads * saves);
    for (std::size_t i = 0; i < versions.size(); ++i) CHECK(versions[i] == std::int64_t(i + 1));
    for (int t = 0; t < threads; ++t)
        CHECK(manager.latest("own-" + std::to_string(t))->version == saves);
    CHECK(manager.verify().empty());
}

TEST_CASE("time bounds must be real dates and times", "[history]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("s");
    for (const char* bad : {"2026-13-01", "2026-02-30", "2026-11-27T25:00", "2026-11-27T06:37:61",
                            "2026-11-27T06:60", "2026-00-10", "2026-11-27T06:37:48.1234Z"}) {
        INFO(bad);
        HistoryFilter filter;
        filter.since = bad;
        CHECK_THROWS_MATCHES(manager.history(filter), Error,
                             Catch::Predicate<Error>([](const Error& e) {
                                 return e.code() == ErrorCode::InvalidArgument;
                             }));
        filter.since.reset();
        filter.until = bad;
        CHECK_THROWS_AS(manager.history(filter), Error);
    }
    for (const char* good :
         {"2024-02-29", "2025-11-27T06:37", "2025-11-27 06:37:48", "2025-11-27T23:59:59.999Z"}) {
        INFO(good);
        HistoryFilter filter;
        filter.until = good;
        CHECK(manager.history(filter).empty());  // all before the save, which is now
    }
}

TEST_CASE("pipelines() names every pipeline that wrote to the database, sorted", "[history]") {
    TestLocation dir;
    {
        CheckpointManager empty(dir.location());
        CHECK(empty.pipelines().empty());  // opening writes nothing
    }
    Options zeta;
    zeta.pipeline = "zeta \"odd\"\nname";
    Options alpha;
    alpha.pipeline = "alpha";
    {
        CheckpointManager z(dir.location(), zeta);
        z.save_checkpoint("x");
        CheckpointManager a(dir.location(), alpha);
        a.begin_stage("y");
        a.clear_checkpoints();
        CheckpointManager reader(dir.location());  // "default" never wrote
        CHECK(reader.pipelines() == std::vector<std::string>{"alpha", "zeta \"odd\"\nname"});
    }
    Options read_only;
    read_only.read_only = true;
    read_only.pipeline = "nope";
    const CheckpointManager reader(dir.location(), read_only);
    CHECK(reader.pipelines() == std::vector<std::string>{"alpha", "zeta \"odd\"\nname"});
}

TEST_CASE("history newest first, paged backwards with before_id", "[history]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    Options other;
    other.pipeline = "other";
    CheckpointManager elsewhere(dir.location(), other);
    for (int i = 0; i < 5; ++i) {
        manager.begin_stage("a");
        manager.save_checkpoint("a");
        elsewhere.save_checkpoint("a");
        manager.save_checkpoint("b");
        if (i == 2) manager.clear_checkpoints();
        if (i == 3) manager.fail_stage("b", "failed " + std::to_string(i));
    }
    const auto oldest_first = [&](HistoryFilter filter) {
        filter.newest_first = false;
        filter.limit.reset();
        filter.before_id.reset();
        return manager.history(filter);
    };
    const auto ids = [](const std::vector<Checkpoint>& rows) {
        std::vector<std::int64_t> result;
        for (const auto& row : rows) result.push_back(row.id);
        return result;
    };
    for (const auto& filter_of : std::vector<std::function<HistoryFilter()>>{
             [] { return HistoryFilter{}; },
             [] {
                 HistoryFilter f;
                 f.stage = "a";  // the stage's rows and the pipeline-wide clear
                 return f;
             },
             [] {
                 HistoryFilter f;
                 f.stage = "b";
                 f.status = Status::Completed;
                 return f;
             },
             [] {
                 HistoryFilter f;
                 f.status = Status::Started;
                 return f;
             }}) {
        const HistoryFilter base = filter_of();
        auto expected = ids(oldest_first(base));
        REQUIRE(!expected.empty());
        std::reverse(expected.begin(), expected.end());
        // one read, newest first
        HistoryFilter newest = base;
        newest.newest_first = true;
        CHECK(ids(manager.history(newest)) == expected);
        // pages of 2, each starting below the smallest id of the one before
        std::vector<std::int64_t> paged;
        HistoryFilter page = newest;
        page.limit = 2;
        for (int guard = 0; guard < 100; ++guard) {
            const auto rows = manager.history(page);
            CHECK(rows.size() <= 2);
            for (const auto& row : rows) paged.push_back(row.id);
            if (rows.size() < 2) break;
            page.before_id = rows.back().id;
        }
        CHECK(paged == expected);
        // before_id oldest first: the rows below it, in id order
        HistoryFilter below = base;
        below.before_id = expected[expected.size() / 2];
        const auto rows = ids(manager.history(below));
        std::vector<std::int64_t> smaller;
        for (auto id = expected.rbegin(); id != expected.rend(); ++id)
            if (*id < *below.before_id) smaller.push_back(*id);
        CHECK(rows == smaller);
    }
    HistoryFilter stage_a;
    stage_a.stage = "a";
    stage_a.newest_first = true;
    const auto rows = manager.history(stage_a);
    CHECK(std::count_if(rows.begin(), rows.end(), [](const Checkpoint& row) {
              return row.stage.empty() && row.status == Status::Cleared;
          }) == 1);
    CHECK(std::all_of(rows.begin(), rows.end(),
                      [](const Checkpoint& row) { return row.pipeline == "default"; }));
}
