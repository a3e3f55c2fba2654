// Retention: prune() by count and by age deletes old history rows, the runs left without
// rows and the output files only they referenced, plus orphaned files; it never deletes a
// stage's current state, the last pipeline-wide clear, or the rows of a running run.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"
#include "test_location.hpp"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::fingerprint_of;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::PruneOptions;
using checkpoint::PruneResult;
using checkpoint::RunOutcome;
using checkpoint::SaveOptions;
using checkpoint::Status;
using checkpoint::test::ChildProcess;
using checkpoint::test::exec_sql;
using checkpoint::test::query_value;
using checkpoint::test::read_file;
using checkpoint::test::TempDir;
using checkpoint::test::TestLocation;
using checkpoint::test::write_file;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

// Runs `call`, which must throw Error with `code`.
template <typename Call>
void expect_error(ErrorCode code, Call&& call) {
    try {
        call();
    } catch (const Error& e) {
        CHECK(e.code() == code);
        return;
    }
    FAIL("no checkpoint::Error was thrown");
}

Options small_inline() {
    Options options;
    options.max_inline_output = 64;
    return options;
}

void save_output(CheckpointManager& manager, const std::string& stage, const std::string& bytes) {
    SaveOptions save;
    save.output = bytes;
    manager.save_checkpoint(stage, save);
}

// Distinct bytes for each name (and big enough for a file with small_inline()).
std::string bytes_of(const std::string& name, std::size_t size = 500) {
    std::string bytes = name + ":";
    while (bytes.size() < size) bytes += static_cast<char>('a' + bytes.size() % 26);
    return bytes.substr(0, size);
}

// The outputs stored as files: the output files (SQLite, with small_inline()), or on
// PostgreSQL, which keeps every output in the database with its row, the distinct SHA-256
// of the outputs that SQLite would have put in files (over small_inline()'s limit).
std::set<std::string> output_files(const TestLocation& dir, const CheckpointManager& manager) {
    std::set<std::string> names;
    if (dir.is_postgres()) {
        for (const auto& sha : dir.rows("SELECT DISTINCT output_sha256 FROM checkpoints "
                                        "WHERE output_size > " +
                                        std::to_string(small_inline().max_inline_output)))
            names.insert(sha);
        return names;
    }
    if (!fs::exists(manager.outputs_directory())) return names;
    for (const auto& entry : fs::directory_iterator(manager.outputs_directory()))
        names.insert(entry.path().filename().string());
    return names;
}

std::vector<std::int64_t> versions_of(const CheckpointManager& manager, const std::string& stage) {
    HistoryFilter filter;
    filter.stage = stage;
    std::vector<std::int64_t> versions;
    for (const auto& row : manager.history(filter)) {
        if (row.status == Status::Completed) versions.push_back(row.version);
    }
    return versions;
}

std::vector<std::string> statuses_of(const CheckpointManager& manager, const std::string& stage) {
    HistoryFilter filter;
    filter.stage = stage;
    std::vector<std::string> result;
    for (const auto& row : manager.history(filter))
        result.push_back(std::string(checkpoint::to_string(row.status)) + " " +
                         std::to_string(row.version));
    return result;
}

// What a prune must never change: every stage's current state and its current output.
std::vector<std::string> current_state(const CheckpointManager& manager) {
    std::vector<std::string> result;
    for (const auto& stage : manager.stages()) {
        std::ostringstream line;
        line << stage.stage << " " << checkpoint::to_string(stage.status) << " v" << stage.version
             << " id" << stage.id << (stage.stale ? " stale" : "")
             << (manager.has_checkpoint(stage.stage) ? " fresh" : "");
        const auto output = manager.load_output(stage.stage);
        line << " output " << (output ? fingerprint_of(*output) : "none");
        result.push_back(line.str());
    }
    return result;
}

std::string describe(const std::vector<std::string>& lines) {
    std::string all;
    for (const auto& line : lines) all += line + "\n";
    return all;
}

// prune(), checked: the current state is unchanged and verify() is clean afterwards.
PruneResult prune_checked(CheckpointManager& manager, const PruneOptions& options) {
    const auto before = current_state(manager);
    const PruneResult result = manager.prune(options);
    INFO("prune deleted " << result.rows_deleted << " rows, " << result.runs_deleted << " runs, "
                          << result.files_deleted << " files, " << result.bytes_freed << " bytes");
    const auto problems = manager.verify();
    INFO("verify():\n" << describe(problems));
    CHECK(problems.empty());
    const auto after = current_state(manager);
    INFO("before:\n" << describe(before) << "after:\n" << describe(after));
    CHECK(after == before);
    CHECK(result.rows_deleted >= 0);
    CHECK(result.files_deleted >= 0);
    return result;
}

PruneOptions keep_last(std::int64_t count) {
    PruneOptions options;
    options.keep_last = count;
    return options;
}

PruneOptions older_than(std::chrono::seconds age) {
    PruneOptions options;
    options.older_than = age;
    return options;
}

// Moves the timestamps of the rows matching `where` to early 2020 (one second apart,
// in id order, so the history stays ordered). No manager may be writing meanwhile. An edit
// by hand breaks the history chain (README, "Security"), so the chain is restarted after
// the edited rows, as for a database upgraded from schema 2: the rows up to the newest
// predate it.
void make_old(const TestLocation& dir, const std::string& where) {
    const std::string restart_chain =
        "UPDATE history_chain SET start_id = (SELECT max(id) FROM checkpoints)";
    if (dir.is_postgres()) {
        dir.exec(
            "UPDATE checkpoints SET timestamp = to_char(timestamp '2020-01-01' + id * interval "
            "'1 second', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') WHERE " +
            where);
        dir.exec("UPDATE checkpoints SET chain_hash = NULL");
        dir.exec(restart_chain);
        return;
    }
    exec_sql(dir.location() / "checkpoints.db",
             "UPDATE checkpoints SET timestamp = strftime('%Y-%m-%dT%H:%M:%fZ', '2020-01-01', '+' "
             "|| id || ' seconds') WHERE " +
                 where);
    exec_sql(dir.location() / "checkpoints.db", "UPDATE checkpoints SET chain_hash = NULL");
    exec_sql(dir.location() / "checkpoints.db", restart_chain);
}

// `count` output files deleted by a prune on SQLite; none on PostgreSQL, which has no
// output files (its outputs go with their rows: bytes_freed counts them).
std::int64_t files(const TestLocation& dir, std::int64_t count) {
    return dir.is_sqlite() ? count : 0;
}

// Writes through a manager of its own, whose run has ended when this returns: the rows to
// prune come from ended runs, as the rows of a running run (which the pruning manager's own
// run is) are never pruned.
template <typename Write>
void in_ended_run(const fs::path& dir, const Options& options, Write&& write) {
    CheckpointManager writer(dir, options);
    write(writer);
}

bool has_run(const CheckpointManager& manager, const std::string& run_id) {
    for (const auto& run : manager.runs()) {
        if (run.run_id == run_id) return true;
    }
    return false;
}

void set_age(const fs::path& file, std::chrono::seconds age) {
    fs::last_write_time(file, fs::file_time_type::clock::now() - age);
}

}  // namespace

TEST_CASE("keep_last keeps the newest completed versions and deletes older rows and outputs",
          "[prune]") {
    TestLocation dir;
    const std::string v1 = bytes_of("v1", 2000), v2 = "two", v3 = bytes_of("v3", 3000), v4 = "four",
                      v5 = bytes_of("v5", 1000);
    in_ended_run(dir.location(), small_inline(), [&](CheckpointManager& writer) {
        for (const auto& bytes : {v1, v2, v3, v4, v5}) save_output(writer, "s", bytes);
        save_output(writer, "single", bytes_of("single"));
    });
    CheckpointManager manager(dir.location(), small_inline());
    REQUIRE(output_files(dir, manager).size() == 4);

    const auto result = prune_checked(manager, keep_last(2));
    CHECK(result.rows_deleted == 3);
    CHECK(result.runs_deleted == 0);
    CHECK(result.files_deleted == files(dir, 2));
    CHECK(result.bytes_freed == static_cast<std::int64_t>(v1.size() + v2.size() + v3.size()));
    CHECK(versions_of(manager, "s") == std::vector<std::int64_t>{4, 5});
    CHECK(versions_of(manager, "single") == std::vector<std::int64_t>{1});
    for (std::int64_t version = 1; version <= 3; ++version)
        CHECK_FALSE(manager.load_output("s", version));
    CHECK(manager.load_output("s", 4) == v4);
    CHECK(manager.load_output("s", 5) == v5);
    CHECK(manager.load_output("s") == v5);
    CHECK(manager.load_output("single") == bytes_of("single"));
    CHECK(output_files(dir, manager) ==
          std::set<std::string>{fingerprint_of(v5), fingerprint_of(bytes_of("single"))});

    // Versions keep counting after a prune.
    save_output(manager, "s", "six");
    CHECK(versions_of(manager, "s") == std::vector<std::int64_t>{4, 5, 6});

    // Nothing more to do: a second prune deletes nothing.
    const auto again = prune_checked(manager, keep_last(3));
    CHECK(again.rows_deleted == 0);
    CHECK(again.files_deleted == files(dir, 0));
    CHECK(again.bytes_freed == 0);
}

TEST_CASE("keep_last keeps every row written after the oldest kept version", "[prune]") {
    TestLocation dir;
    in_ended_run(dir.location(), Options{}, [](CheckpointManager& writer) {
        writer.save_checkpoint("s");      // v1
        writer.begin_stage("s");          // deleted with v1
        writer.save_checkpoint("s");      // v2: the oldest kept
        writer.fail_stage("s", "broke");  // kept
        writer.begin_stage("s");          // kept
        writer.save_checkpoint("s");      // v3
        writer.clear_checkpoint("s");     // kept: the head
        // A stage with fewer completed versions than keep_last loses nothing.
        writer.begin_stage("few");
        writer.fail_stage("few", "no");
        writer.begin_stage("few");
        writer.save_checkpoint("few");
        // A stage never completed loses nothing either.
        writer.begin_stage("never");
        writer.fail_stage("never", "no");
        writer.clear_checkpoint("never");
    });
    CheckpointManager manager(dir.location());

    const auto result = prune_checked(manager, keep_last(2));
    CHECK(result.rows_deleted == 2);
    CHECK(statuses_of(manager, "s") == std::vector<std::string>{"completed 2", "failed 2",
                                                                "started 2", "completed 3",
                                                                "cleared 3"});
    CHECK(statuses_of(manager, "few").size() == 4);
    CHECK(statuses_of(manager, "never").size() == 3);
    const auto s = manager.latest("s");
    REQUIRE(s);
    CHECK(s->status == Status::Cleared);
    CHECK(s->version == 3);

    // keep_last 1: only from v3 on; "few" has one completed version now enough.
    const auto tighter = prune_checked(manager, keep_last(1));
    CHECK(tighter.rows_deleted == 6);
    CHECK(statuses_of(manager, "s") == std::vector<std::string>{"completed 3", "cleared 3"});
    CHECK(statuses_of(manager, "few") == std::vector<std::string>{"completed 1"});
    CHECK(statuses_of(manager, "never").size() == 3);
}

TEST_CASE("older_than deletes old rows but never a stage's head or the last pipeline clear",
          "[prune]") {
    TestLocation dir;
    std::string first_run;
    {
        CheckpointManager old_run(dir.location(), small_inline());
        first_run = old_run.run_id();
        save_output(old_run, "s", bytes_of("s1"));
        save_output(old_run, "s", bytes_of("s2"));
        save_output(old_run, "s", bytes_of("s3"));
        save_output(old_run, "alone", bytes_of("alone"));  // its only row: a head, old
        old_run.clear_checkpoints();                       // an older pipeline clear
        old_run.save_checkpoint("t");
        old_run.clear_checkpoints();  // the last pipeline clear
        old_run.save_checkpoint("u");
        Options other_pipeline = small_inline();
        other_pipeline.pipeline = "other";
        CheckpointManager other(dir.location(), other_pipeline);
        save_output(other, "x", bytes_of("x1"));
        save_output(other, "x", bytes_of("x2"));
    }
    make_old(dir, "1 = 1");
    CheckpointManager manager(dir.location(), small_inline());
    save_output(manager, "s", bytes_of("s4"));  // new, the head of "s"
    save_output(manager, "u", bytes_of("u2"));  // new

    const auto result = prune_checked(manager, older_than(std::chrono::hours(24)));
    // Deleted: s v1..v3, the older pipeline clear, u v1. Kept: alone (head), t (head), the
    // last clear, the new rows, and every row of the other pipeline.
    CHECK(result.rows_deleted == 5);
    CHECK(result.files_deleted == files(dir, 3));
    CHECK(versions_of(manager, "s") == std::vector<std::int64_t>{4});
    CHECK(versions_of(manager, "u") == std::vector<std::int64_t>{2});
    CHECK(versions_of(manager, "alone") == std::vector<std::int64_t>{1});
    const auto alone = manager.latest("alone");
    REQUIRE(alone);
    CHECK(alone->status == Status::Cleared);  // by a pipeline clear, still reported so
    CHECK(manager.load_output("alone", 1) == bytes_of("alone"));
    CHECK(dir.query("SELECT count(*) FROM checkpoints WHERE pipeline = 'default' AND "
                    "stage IS NULL") == "1");
    CHECK(dir.query("SELECT count(*) FROM checkpoints WHERE pipeline = 'other'") == "2");
    Options other_pipeline;
    other_pipeline.pipeline = "other";
    other_pipeline.read_only = true;
    const CheckpointManager other(dir.location(), other_pipeline);
    CHECK(other.load_output("x", 1) == bytes_of("x1"));
    CHECK(other.load_output("x", 2) == bytes_of("x2"));
    // The first run still has rows (alone, t, the last clear): it stays.
    CHECK(result.runs_deleted == 0);
    bool first_run_listed = false;
    for (const auto& run : manager.runs()) first_run_listed |= run.run_id == first_run;
    CHECK(first_run_listed);
}

TEST_CASE("older_than with imported checkpoints dated in the past", "[prune]") {
    TestLocation dir;
    in_ended_run(dir.location(), Options{}, [](CheckpointManager& writer) {
        CHECK(writer.import_checkpoint("legacy", "2019-03-01T10:00:00.000Z", "import a"));
        CHECK(writer.import_checkpoint("legacy", "2019-03-02T10:00:00.000Z", "import b"));
        writer.save_checkpoint("legacy");  // now: the head
        CHECK(writer.import_checkpoint("only-old", "2019-03-03T10:00:00.000Z", "import c"));
    });
    CheckpointManager manager(dir.location());

    SECTION("older than a day: both imports of legacy") {
        CHECK(prune_checked(manager, older_than(std::chrono::hours(24))).rows_deleted == 2);
        CHECK(versions_of(manager, "legacy") == std::vector<std::int64_t>{3});
    }
    SECTION("older than ten years: none") {
        CHECK(prune_checked(manager, older_than(std::chrono::hours(24 * 365 * 10))).rows_deleted ==
              0);
        CHECK(versions_of(manager, "legacy").size() == 3);
    }
    CHECK(manager.has_checkpoint("only-old"));
    CHECK(manager.has_checkpoint("legacy"));
}

TEST_CASE("keep_last and older_than together delete only rows that pass both", "[prune]") {
    TestLocation dir;
    {
        CheckpointManager writer(dir.location());
        for (int i = 0; i < 4; ++i) writer.save_checkpoint("s");  // v1..v4: made old below
    }
    make_old(dir, "1 = 1");
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("s");  // v5, new
    manager.save_checkpoint("s");  // v6, new
    PruneOptions options;
    options.older_than = std::chrono::hours(1);

    SECTION("keep_last 3: its candidates v1..v3 are all old") {
        options.keep_last = 3;
        CHECK(prune_checked(manager, options).rows_deleted == 3);
        CHECK(versions_of(manager, "s") == std::vector<std::int64_t>{4, 5, 6});
    }
    SECTION("keep_last 1: of its candidates v1..v5, v5 is new and stays") {
        options.keep_last = 1;
        CHECK(prune_checked(manager, options).rows_deleted == 4);
        CHECK(versions_of(manager, "s") == std::vector<std::int64_t>{5, 6});
    }
    SECTION("keep_last 5: only v1") {
        options.keep_last = 5;
        CHECK(prune_checked(manager, options).rows_deleted == 1);
        CHECK(versions_of(manager, "s") == std::vector<std::int64_t>{2, 3, 4, 5, 6});
    }
}

TEST_CASE("prune with no rule deletes no row", "[prune]") {
    TestLocation dir;
    {
        CheckpointManager writer(dir.location());
        for (int i = 0; i < 5; ++i) writer.save_checkpoint("s");
        writer.clear_checkpoints();
        writer.clear_checkpoints();
    }
    make_old(dir, "1 = 1");
    CheckpointManager manager(dir.location());
    const auto before = manager.history().size();
    const auto result = prune_checked(manager, PruneOptions{});
    CHECK(result.rows_deleted == 0);
    CHECK(result.runs_deleted == 0);
    CHECK(manager.history().size() == before);
}

TEST_CASE("the rows of a run that is still running are never pruned", "[prune]") {
    TestLocation dir;
    // A worker process that holds its manager open (its run is running), fed through a FIFO.
    const auto fifo = dir / "commands";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    ChildProcess worker({"/bin/sh", "-c", "exec \"$0\" serve \"$1\" < \"$2\"",
                         CHECKPOINT_TEST_WORKER, dir.location().string(), fifo.string()});
    const int commands = ::open(fifo.c_str(), O_WRONLY | O_CLOEXEC);
    REQUIRE(commands >= 0);
    auto send = [&](const std::string& line) {
        const std::string text = line + "\n";
        REQUIRE(::write(commands, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        const auto reply = worker.read_line(30s);
        REQUIRE(reply);
        REQUIRE(*reply == "ok");
    };
    const auto ready = worker.read_line(30s);
    REQUIRE(ready);
    REQUIRE(*ready == "ready");
    for (int i = 0; i < 3; ++i) send("save w");
    send("begin w");
    send("save w");

    std::string ended_run;
    in_ended_run(dir.location(), Options{}, [&](CheckpointManager& writer) {
        ended_run = writer.run_id();
        for (int i = 0; i < 3; ++i) writer.save_checkpoint("x");
    });
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("w");  // v5, the head of w
    // Every row old, even the running run's.
    make_old(dir, "1 = 1");

    PruneOptions both = keep_last(1);
    both.older_than = 1s;
    const auto while_running = prune_checked(manager, both);
    CHECK(while_running.rows_deleted == 2);  // x v1, x v2 of the ended run
    CHECK(statuses_of(manager, "w") == std::vector<std::string>{"completed 1", "completed 2",
                                                                "completed 3", "started 3",
                                                                "completed 4", "completed 5"});
    CHECK(manager.has_checkpoint("w"));
    CHECK(versions_of(manager, "x") == std::vector<std::int64_t>{3});

    // The worker ends normally (end of its input): its rows may go now.
    ::close(commands);
    CHECK(worker.wait() == 0);
    const auto after_end = prune_checked(manager, both);
    CHECK(after_end.rows_deleted == 5);
    CHECK(after_end.runs_deleted == 1);  // the worker's run has no row left
    CHECK(versions_of(manager, "w") == std::vector<std::int64_t>{5});
    CHECK(has_run(manager, ended_run));  // it still has x v3
    CHECK(has_run(manager, manager.run_id()));
    CHECK(manager.runs().size() == 2);
    CHECK(dir.query("SELECT count(*) FROM runs") == "2");
}

TEST_CASE("runs left without rows are deleted, ended or died", "[prune]") {
    TestLocation dir;
    std::string ended_run;
    {
        CheckpointManager first(dir.location());
        ended_run = first.run_id();
        first.save_checkpoint("s");
    }
    // A process killed with a stage begun: its run died.
    {
        ChildProcess begun({CHECKPOINT_TEST_WORKER, "begin", dir.location().string(), "s"});
        const auto line = begun.read_line(30s);
        REQUIRE(line);
        REQUIRE(*line == "begun");
        begun.kill(SIGKILL);
        begun.wait();
    }
    std::string last_run;
    in_ended_run(dir.location(), Options{}, [&](CheckpointManager& writer) {
        last_run = writer.run_id();
        writer.save_checkpoint("s");
        writer.save_checkpoint("s");
    });
    CheckpointManager manager(dir.location());
    std::string died_run;
    for (const auto& run : manager.runs()) {
        if (run.outcome == RunOutcome::Died) died_run = run.run_id;
    }
    REQUIRE(manager.runs().size() == 3);
    REQUIRE_FALSE(died_run.empty());

    const auto result = prune_checked(manager, keep_last(1));
    CHECK(result.rows_deleted == 3);  // s v1 (first run), s started (died run), s v2
    CHECK(result.runs_deleted == 2);
    CHECK_FALSE(has_run(manager, ended_run));
    CHECK_FALSE(has_run(manager, died_run));
    CHECK(has_run(manager, last_run));
    CHECK(dir.query("SELECT count(*) FROM runs WHERE run_id IN ('" + ended_run + "', '" + died_run +
                    "')") == "0");
    // The runs table's rows all have history rows again.
    CHECK(dir.query("SELECT count(*) FROM runs r WHERE NOT EXISTS (SELECT 1 FROM "
                    "checkpoints c WHERE c.run_id = r.run_id)") == "0");
}

TEST_CASE("output files still referenced by any remaining row are kept", "[prune]") {
    TestLocation dir;
    const std::string shared = bytes_of("shared", 3000);
    const std::string other = bytes_of("other", 3000);
    Options first_options = small_inline();
    first_options.pipeline = "first";
    Options second_options = small_inline();
    second_options.pipeline = "second";
    in_ended_run(dir.location(), first_options, [&](CheckpointManager& writer) {
        save_output(writer, "keeper", shared);  // another pipeline's head uses the file
    });
    in_ended_run(dir.location(), second_options, [&](CheckpointManager& writer) {
        save_output(writer, "s", shared);  // v1
        save_output(writer, "s", other);   // v2
        save_output(writer, "s", shared);  // v3: uses it again
        save_output(writer, "s", other);   // v4
    });
    CheckpointManager second(dir.location(), second_options);

    // keep_last 1 deletes v1..v3: "other" is still v4's, "shared" still the first pipeline's.
    const auto result = prune_checked(second, keep_last(1));
    CHECK(result.rows_deleted == 3);
    CHECK(result.files_deleted == files(dir, 0));
    // SQLite frees no file (both are still referenced); PostgreSQL deletes each pruned
    // row's copy of its output with the row.
    CHECK(result.bytes_freed == (dir.is_sqlite() ? 0 : 3 * 3000));
    CHECK(output_files(dir, second) ==
          std::set<std::string>{fingerprint_of(shared), fingerprint_of(other)});
    {
        Options read_first = first_options;
        read_first.read_only = true;
        const CheckpointManager first(dir.location(), read_first);
        CHECK(first.load_output("keeper") == shared);
    }
    CHECK(second.load_output("s") == other);

    // Once the first pipeline moves on and prunes too, "shared" has no row left.
    in_ended_run(dir.location(), first_options,
                 [&](CheckpointManager& writer) { save_output(writer, "keeper", other); });
    CheckpointManager first(dir.location(), first_options);
    const auto last = prune_checked(first, keep_last(1));
    CHECK(last.rows_deleted == 1);
    CHECK(last.files_deleted == files(dir, 1));
    CHECK(last.bytes_freed == 3000);
    CHECK(output_files(dir, first) == std::set<std::string>{fingerprint_of(other)});
    CHECK(first.load_output("keeper") == other);
    CHECK(second.load_output("s") == other);
}

TEST_CASE("orphaned output files are removed once older than orphan_grace", "[prune][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    const std::string current = bytes_of("current", 1000);
    save_output(manager, "s", current);
    const auto outputs = manager.outputs_directory();
    const auto current_file = outputs / fingerprint_of(current);
    REQUIRE(fs::exists(current_file));

    // What a process killed while saving leaves: a complete file whose row never committed,
    // and a temporary file.
    const std::string orphan_bytes = bytes_of("orphan", 700);
    const auto orphan = outputs / fingerprint_of(orphan_bytes);
    const auto temporary = outputs / (fingerprint_of(bytes_of("partial", 900)) + ".tmp");
    write_file(orphan, orphan_bytes);
    write_file(temporary, bytes_of("partial", 300));
    // Referenced files are never orphans, however old.
    set_age(current_file, std::chrono::hours(24 * 30));

    SECTION("younger than the default grace (1 hour): kept") {
        set_age(orphan, 50min);
        set_age(temporary, 50min);
        const auto result = prune_checked(manager, PruneOptions{});
        CHECK(result.files_deleted == 0);
        CHECK(fs::exists(orphan));
        CHECK(fs::exists(temporary));
    }
    SECTION("older than the default grace: removed") {
        set_age(orphan, 2h);
        set_age(temporary, 2h);
        const auto result = prune_checked(manager, PruneOptions{});
        CHECK(result.rows_deleted == 0);
        CHECK(result.files_deleted == 2);
        CHECK(result.bytes_freed == 1000);
        CHECK_FALSE(fs::exists(orphan));
        CHECK_FALSE(fs::exists(temporary));
    }
    SECTION("orphan_grace 0: removed at once") {
        PruneOptions now;
        now.orphan_grace = 0s;
        const auto result = prune_checked(manager, now);
        CHECK(result.files_deleted == 2);
        CHECK_FALSE(fs::exists(orphan));
        CHECK_FALSE(fs::exists(temporary));
    }
    SECTION("a custom grace: the older one goes, the younger one stays") {
        PruneOptions ten_minutes;
        ten_minutes.orphan_grace = 10min;
        set_age(orphan, 5min);
        set_age(temporary, 15min);
        const auto result = prune_checked(manager, ten_minutes);
        CHECK(result.files_deleted == 1);
        CHECK(fs::exists(orphan));
        CHECK_FALSE(fs::exists(temporary));
    }
    CHECK(fs::exists(current_file));
    CHECK(manager.has_checkpoint("s"));
    CHECK(manager.load_output("s") == current);
    // An orphan is never taken for an output: its stage was never saved.
    CHECK_FALSE(manager.latest("orphan"));
}

TEST_CASE("prune works when no output was ever stored", "[prune]") {
    TestLocation dir;
    in_ended_run(dir.location(), Options{}, [](CheckpointManager& writer) {
        writer.save_checkpoint("s");
        writer.save_checkpoint("s");
    });
    CheckpointManager manager(dir.location());
    PruneOptions options = keep_last(1);
    options.orphan_grace = 0s;
    const auto result = prune_checked(manager, options);
    CHECK(result.rows_deleted == 1);
    CHECK(result.files_deleted == files(dir, 0));
}

TEST_CASE("prune over many stages and versions", "[prune]") {
    TestLocation dir;
    constexpr int stages = 40;
    constexpr int versions = 12;
    in_ended_run(dir.location(), small_inline(), [&](CheckpointManager& writer) {
        for (int v = 0; v < versions; ++v) {
            for (int s = 0; s < stages; ++s) {
                const std::string stage = "stage-" + std::to_string(s);
                // Every third version a file, the others inline.
                save_output(writer, stage,
                            bytes_of(stage + "/" + std::to_string(v), v % 3 == 0 ? 200 : 20));
            }
        }
    });
    CheckpointManager manager(dir.location(), small_inline());
    const auto result = prune_checked(manager, keep_last(3));
    CHECK(result.rows_deleted == stages * (versions - 3));
    // Files were written for versions 0, 3, 6, 9 (0-based): 9 is still kept (the 3rd newest).
    CHECK(result.files_deleted == files(dir, stages * 3));
    CHECK(manager.history().size() == static_cast<std::size_t>(stages * 3));
    CHECK(output_files(dir, manager).size() == static_cast<std::size_t>(stages));
    for (int s = 0; s < stages; ++s) {
        const std::string stage = "stage-" + std::to_string(s);
        CHECK(manager.load_output(stage, versions - 2) ==
              bytes_of(stage + "/" + std::to_string(versions - 3), 200));
        CHECK_FALSE(manager.load_output(stage, versions - 3));
    }
}

TEST_CASE("invalid prune options are refused and nothing is deleted", "[prune]") {
    TestLocation dir;
    {
        CheckpointManager writer(dir.location(), small_inline());
        for (int i = 0; i < 3; ++i) save_output(writer, "s", bytes_of("s" + std::to_string(i)));
    }
    make_old(dir, "1 = 1");
    CheckpointManager manager(dir.location(), small_inline());
    const auto outputs = manager.outputs_directory();
    if (dir.is_sqlite()) {  // an orphaned file, that a prune would delete
        write_file(outputs / "orphan.tmp", "x");
        set_age(outputs / "orphan.tmp", 48h);
    }
    const auto stored = output_files(dir, manager);
    const auto rows = manager.history().size();

    PruneOptions options;
    SECTION("keep_last 0") {
        options.keep_last = 0;
    }
    SECTION("keep_last -1") {
        options.keep_last = -1;
    }
    SECTION("older_than negative") {
        options.older_than = -1s;
    }
    SECTION("orphan_grace negative") {
        options.orphan_grace = -1s;
    }
    expect_error(ErrorCode::InvalidArgument, [&] { manager.prune(options); });
    CHECK(manager.history().size() == rows);
    CHECK(output_files(dir, manager) == stored);
    if (dir.is_sqlite()) CHECK(fs::exists(outputs / "orphan.tmp"));
    CHECK(manager.runs().size() == 1);  // the writer's: the refused prune recorded no run
}

TEST_CASE("a read-only manager may not prune", "[prune]") {
    TestLocation dir;
    {
        CheckpointManager writer(dir.location());
        writer.save_checkpoint("s");
        writer.save_checkpoint("s");
    }
    Options read_only;
    read_only.read_only = true;
    CheckpointManager reader(dir.location(), read_only);
    expect_error(ErrorCode::ReadOnly, [&] { reader.prune(keep_last(1)); });
    CHECK(reader.history().size() == 2);
}
