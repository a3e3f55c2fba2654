// Upgrade: tests/data/schema1.db, written by the library at schema version 1, opened by this
// one: migrated in one transaction with its history intact, and every new feature works on
// it. A read-only manager refuses it and leaves it untouched.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

using checkpoint::Checkpoint;
using checkpoint::CheckpointManager;
using checkpoint::ClearScope;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::HistoryFilter;
using checkpoint::Options;
using checkpoint::PruneOptions;
using checkpoint::RunOutcome;
using checkpoint::SaveOptions;
using checkpoint::Status;
using checkpoint::test::exec_sql;
using checkpoint::test::query_value;
using checkpoint::test::RawDb;
using checkpoint::test::read_file;
using checkpoint::test::run_command;
using checkpoint::test::TempDir;
namespace fs = std::filesystem;

namespace {

const fs::path schema1_db = fs::path(CHECKPOINT_SOURCE_DIR) / "tests" / "data" / "schema1.db";

const std::string run1 = "01a21e89-0c0f-7b4d-b46e-aa27536b2331";
const std::string run2 = "01a21e89-0c2b-7389-8278-fb04e757551b";
const std::string nightly_run = "01a21e89-0c43-756d-9246-6b3884162a01";
const std::string died_run = "01a21e89-0c5e-702a-ad4e-8b20bf1d2d55";

// The schema version this library writes, as SQL prints it.
std::string latest_version() {
    return std::to_string(checkpoint::schema_version());
}

// "1,2,...,latest": every migration applied, in order.
std::string all_versions() {
    std::string all;
    for (int version = 1; version <= checkpoint::schema_version(); ++version)
        all += (version > 1 ? "," : "") + std::to_string(version);
    return all;
}

// A copy of schema1.db (the file alone: its WAL was checkpointed into it) in `dir`.
fs::path copy_schema1(const TempDir& dir) {
    REQUIRE(fs::exists(schema1_db));
    const auto target = dir / "checkpoints.db";
    fs::copy_file(schema1_db, target);
    fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write);
    REQUIRE(query_value(target, "PRAGMA user_version") == "1");
    return target;
}

Options pipeline(const std::string& name, bool read_only = false) {
    Options options;
    options.pipeline = name;
    options.read_only = read_only;
    return options;
}

// A row as "stage|status|version|run|message" for compact comparisons.
std::vector<std::string> rows_of(const std::vector<Checkpoint>& rows) {
    std::vector<std::string> result;
    for (const auto& row : rows) {
        result.push_back(row.stage + "|" + std::string(checkpoint::to_string(row.status)) + "|" +
                         std::to_string(row.version) + "|" + row.run_id + "|" + row.message);
    }
    return result;
}

// Checks everything tests/data/README.md says schema1.db holds, through `open` managers.
void expect_schema1_history(const fs::path& dir, bool read_only) {
    {
        const CheckpointManager etl(dir, pipeline("etl", read_only));
        CHECK(rows_of(etl.history()) ==
              std::vector<std::string>{
                  "ingest|completed|1|" + run1 + "|",
                  "transform|started|0|" + run1 + "|",
                  "transform|completed|1|" + run1 + "|",
                  "load|started|0|" + run1 + "|",
                  "load|failed|0|" + run1 + "|connection refused, \"db\" at line 3",
                  "load|completed|1|" + run2 + "|",
                  "transform|cleared|1|" + run2 + "|",
                  "transform|completed|2|" + run2 + "|",
                  "|cleared|0|" + run2 + "|",
                  "ingest|completed|2|" + run2 + "|",
                  "données/é|completed|1|" + run2 + "|",
              });
        const auto history = etl.history();
        REQUIRE(history.size() == 11);
        for (std::size_t i = 0; i < history.size(); ++i) {
            CHECK(history[i].id == static_cast<std::int64_t>(i + 1));
            CHECK(history[i].pipeline == "etl");
            CHECK(history[i].metadata == nlohmann::json::object());
            CHECK(history[i].fingerprint.empty());
            CHECK(history[i].inputs.empty());
            CHECK_FALSE(history[i].output);
        }
        CHECK(history[0].timestamp == "2026-11-27T19:43:47.736Z");
        CHECK(history[2].duration == std::chrono::milliseconds(0));  // through run_stage

        // has_checkpoint answers as the old library did: after the pipeline clear, only
        // ingest (saved again) and données/é.
        CHECK(etl.has_checkpoint("ingest"));
        CHECK(etl.has_checkpoint("données/é"));
        CHECK_FALSE(etl.has_checkpoint("transform"));
        CHECK_FALSE(etl.has_checkpoint("load"));
        const auto transform = etl.latest("transform");
        REQUIRE(transform);
        CHECK(transform->status == Status::Cleared);
        CHECK(transform->version == 2);
        CHECK(transform->id == 9);
        const auto ingest = etl.latest("ingest");
        REQUIRE(ingest);
        CHECK(ingest->status == Status::Completed);
        CHECK(ingest->version == 2);
        CHECK_FALSE(ingest->stale);
        CHECK(etl.stages().size() == 4);
        CHECK_FALSE(etl.load_output("ingest"));

        const auto runs = etl.runs();
        REQUIRE(runs.size() == 2);
        CHECK(runs[0].run_id == run1);
        CHECK(runs[0].outcome == RunOutcome::Failed);
        CHECK(runs[0].host == "vm");
        CHECK(runs[0].pid == 22536);
        CHECK(runs[0].stages_completed == 2);
        CHECK(runs[0].stages_failed == 1);
        CHECK(runs[1].run_id == run2);
        CHECK(runs[1].outcome == RunOutcome::Finished);
        CHECK(runs[1].ended_at == "2026-11-27T19:43:47.766Z");
    }
    {
        const CheckpointManager nightly(dir, pipeline("nightly", read_only));
        CHECK(rows_of(nightly.history()) ==
              std::vector<std::string>{"a|completed|1|" + nightly_run + "|",
                                       "b|started|0|" + nightly_run + "|",
                                       "b|failed|0|" + nightly_run + "|b broke"});
        CHECK(nightly.has_checkpoint("a"));
        CHECK_FALSE(nightly.has_checkpoint("b"));
        const auto runs = nightly.runs();
        REQUIRE(runs.size() == 1);
        CHECK(runs[0].outcome == RunOutcome::Failed);
    }
    {
        const CheckpointManager fallback(dir, pipeline("default", read_only));
        CHECK_FALSE(fallback.has_checkpoint("died-stage"));
        const auto runs = fallback.runs();
        REQUIRE(runs.size() == 1);
        CHECK(runs[0].run_id == died_run);
        if (fs::exists("/proc/22540")) {
            WARN(
                "skipped the died-run checks: a live process has pid 22540, as the killed "
                "writer of schema1.db had");
        } else {
            CHECK(runs[0].outcome == RunOutcome::Died);
            const auto latest = fallback.latest("died-stage");
            REQUIRE(latest);
            CHECK(latest->status == Status::Incomplete);
        }
    }
}

}  // namespace

TEST_CASE("a schema 1 database is upgraded on open with its history intact", "[upgrade]") {
    TempDir dir;
    const auto db = copy_schema1(dir);
    REQUIRE(checkpoint::schema_version() >= 2);  // 2 brought issue 4's columns
    {
        CheckpointManager manager(dir.path(), pipeline("etl"));
        CHECK(query_value(db, "PRAGMA user_version") == latest_version());
    }
    CHECK(query_value(db, "PRAGMA integrity_check") == "ok");
    CHECK(query_value(db, "PRAGMA application_id") == std::to_string(0x43484B50));
    CHECK(query_value(db,
                      "SELECT group_concat(version, ',') FROM (SELECT version FROM "
                      "schema_migrations ORDER BY version)") == all_versions());
    CHECK(query_value(db, "SELECT name FROM schema_migrations WHERE version = 1") ==
          "0001_initial.sql");
    CHECK(query_value(db, "SELECT name FROM schema_migrations WHERE version = 2") != "");
    CHECK(query_value(db, "SELECT count(*) FROM checkpoints") == "15");
    CHECK(query_value(db, "SELECT count(*) FROM runs") == "4");
    // The old rows have no metadata and no fingerprint, in the table and in the view.
    CHECK(query_value(db, "SELECT count(*) FROM checkpoints WHERE metadata IS NULL") == "15");
    CHECK(query_value(db,
                      "SELECT count(*) FROM history WHERE metadata IS NULL AND "
                      "(fingerprint IS NULL OR fingerprint = '')") == "15");

    expect_schema1_history(dir.path(), false);
    // Opening again applies nothing more.
    expect_schema1_history(dir.path(), true);
    CHECK(query_value(db, "SELECT count(*) FROM schema_migrations") == latest_version());

    CheckpointManager etl(dir.path(), pipeline("etl"));
    const auto problems = etl.verify();
    INFO([&] {
        std::string all;
        for (const auto& p : problems) all += p + "\n";
        return all;
    }());
    CHECK(problems.empty());
}

TEST_CASE("the new features work on an upgraded database", "[upgrade]") {
    TempDir dir;
    const auto db = copy_schema1(dir);
    const std::string big(4096, 'B');
    {
        Options options = pipeline("etl");
        options.max_inline_output = 1024;
        CheckpointManager etl(dir.path(), options);
        // An old checkpoint (written by the old library) is a valid input.
        SaveOptions report;
        report.inputs = {"ingest", "données/é"};
        report.metadata = {{"rows", 42}, {"by", "upgrade test"}};
        report.fingerprint = checkpoint::Fingerprint().add("report v1").str();
        report.output = big;
        etl.save_checkpoint("report", report);
        SaveOptions small;
        small.output = std::string("small\0output", 12);
        etl.save_checkpoint("summary", small);

        CHECK(etl.has_checkpoint("report", report.fingerprint));
        CHECK(etl.load_output("report") == big);
        CHECK(etl.load_output("summary") == small.output);
        const auto latest = etl.latest("report");
        REQUIRE(latest);
        REQUIRE(latest->inputs.size() == 2);
        CHECK(latest->inputs[0].stage == "ingest");
        CHECK(latest->inputs[0].version == 2);
        CHECK(latest->inputs[0].id == 10);
        CHECK(latest->inputs[1].stage == "données/é");
        CHECK(latest->inputs[1].id == 11);
        CHECK(latest->metadata["rows"] == 42);

        // Staleness through an old stage: saving ingest again makes report stale.
        etl.save_checkpoint("ingest");
        CHECK_FALSE(etl.has_checkpoint("report"));
        CHECK(etl.clear_checkpoint("ingest", ClearScope::WithDownstream) ==
              std::vector<std::string>{"ingest", "report"});

        // Pruning the old history: heads, the last clear and the old runs' remaining rows stay.
        PruneOptions prune;
        prune.keep_last = 1;
        const auto result = etl.prune(prune);
        CHECK(result.rows_deleted > 0);
        CHECK(etl.has_checkpoint("données/é"));
        CHECK(etl.load_output("summary") == small.output);
        CHECK(etl.verify().empty());
    }
    // The sqlite3 shell reads the new columns of the upgraded file.
    const auto shell = run_command(
        {CHECKPOINT_SQLITE3_SHELL, "-bail", db.string(),
         "SELECT json_extract(metadata, '$.rows') FROM checkpoints WHERE stage = 'report' AND "
         "status = 'completed'"});
    INFO(shell.err);
    CHECK(shell.exit_code == 0);
    CHECK(shell.out == "42\n");
    CheckpointManager nightly(dir.path(), pipeline("nightly"));
    CHECK(nightly.has_checkpoint("a"));
    CHECK(nightly.verify().empty());
}

TEST_CASE("a read-only manager refuses a schema 1 database and leaves it byte-identical",
          "[upgrade]") {
    TempDir dir;
    const auto db = copy_schema1(dir);
    const std::string before = read_file(db);
    REQUIRE(before == read_file(schema1_db));
    for (const auto& name : {"etl", "nightly", "default"}) {
        INFO("pipeline " << name);
        try {
            CheckpointManager reader(dir.path(), pipeline(name, true));
            FAIL("a read-only manager opened a database that needs a migration");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::SchemaTooOld);
            CHECK_THAT(e.what(), Catch::Contains(db.string()));
        }
    }
    CHECK(read_file(db) == before);
    CHECK_FALSE(fs::exists(dir / "checkpoints.db-outputs"));
    // A -wal file, if SQLite left one, holds nothing.
    if (fs::exists(dir / "checkpoints.db-wal"))
        CHECK(fs::file_size(dir / "checkpoints.db-wal") == 0);
    // And the file still upgrades afterwards.
    CheckpointManager writer(dir.path(), pipeline("etl"));
    CHECK(writer.has_checkpoint("ingest"));
    CHECK(query_value(db, "PRAGMA user_version") == latest_version());
}

TEST_CASE(
    "the upgrade waits for a writer that holds the database, and applies whole or not "
    "at all",
    "[upgrade]") {
    TempDir dir;
    const auto db = copy_schema1(dir);
    const std::string schema_before =
        query_value(db,
                    "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema "
                    "ORDER BY name)");
    {
        // Another connection holds the write lock: the upgrade cannot start.
        RawDb holder(db);
        REQUIRE(holder.exec("BEGIN IMMEDIATE") == SQLITE_OK);
        Options options = pipeline("etl");
        options.busy_timeout = std::chrono::milliseconds(200);
        try {
            CheckpointManager manager(dir.path(), options);
            FAIL("opened while another connection held the write lock");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::Busy);
        }
        REQUIRE(holder.exec("ROLLBACK") == SQLITE_OK);
    }
    // Nothing of the migration was applied.
    CHECK(query_value(db, "PRAGMA user_version") == "1");
    CHECK(query_value(db, "SELECT count(*) FROM schema_migrations") == "1");
    CHECK(query_value(db,
                      "SELECT group_concat(sql, ';') FROM (SELECT sql FROM sqlite_schema "
                      "ORDER BY name)") == schema_before);
    CHECK(query_value(db,
                      "SELECT count(*) FROM pragma_table_info('checkpoints') WHERE name = "
                      "'metadata'") == "0");
    // Then it upgrades normally.
    CheckpointManager manager(dir.path(), pipeline("etl"));
    CHECK(query_value(db, "PRAGMA user_version") == latest_version());
    CHECK(manager.has_checkpoint("ingest"));
    CHECK(manager.verify().empty());
}

TEST_CASE("an upgrade that fails half-way leaves the schema 1 database as it was", "[upgrade]") {
    // Make the last table migration 0002 creates exist already (as a hand-made table), so that
    // its CREATE TABLE fails after the statements before it ran: in one transaction, none of
    // them may remain.
    std::string migration;
    for (const auto& entry :
         fs::directory_iterator(fs::path(CHECKPOINT_SOURCE_DIR) / "migrations" / "sqlite")) {
        if (entry.path().filename().string().rfind("0002_", 0) == 0)
            migration = read_file(entry.path());
    }
    REQUIRE_FALSE(migration.empty());
    const auto create = migration.rfind("CREATE TABLE ");
    REQUIRE(create != std::string::npos);
    const auto name_start = create + std::string("CREATE TABLE ").size();
    const std::string table =
        migration.substr(name_start, migration.find_first_of(" (\n", name_start) - name_start);
    REQUIRE_FALSE(table.empty());
    // Statements run before it, so that a partial migration would show.
    REQUIRE(migration.find("ALTER TABLE") < create);
    INFO("the conflicting table: " << table);

    TempDir dir;
    const auto db = copy_schema1(dir);
    exec_sql(db, "CREATE TABLE " + table + " (x)");
    const auto schema_of = [&db] {
        return query_value(db,
                           "SELECT group_concat(type || ' ' || name || ' ' || ifnull(sql, ''), "
                           "';') FROM (SELECT * FROM sqlite_schema ORDER BY name)");
    };
    const std::string schema_before = schema_of();
    const std::string rows_before = query_value(db, "SELECT count(*) FROM checkpoints");

    try {
        CheckpointManager manager(dir.path(), pipeline("etl"));
        FAIL("the migration did not fail");
    } catch (const Error& e) {
        INFO(e.what());
        CHECK_THAT(e.what(), Catch::Contains(db.string()));
    }
    CHECK(query_value(db, "PRAGMA user_version") == "1");
    CHECK(schema_of() == schema_before);
    CHECK(query_value(db, "SELECT count(*) FROM schema_migrations") == "1");
    CHECK(query_value(db,
                      "SELECT count(*) FROM pragma_table_info('checkpoints') WHERE name = "
                      "'metadata'") == "0");
    CHECK(query_value(db, "SELECT count(*) FROM checkpoints") == rows_before);
    CHECK(query_value(db, "PRAGMA integrity_check") == "ok");

    // Without the obstacle, the same file upgrades.
    exec_sql(db, "DROP TABLE " + table);
    CheckpointManager manager(dir.path(), pipeline("etl"));
    CHECK(query_value(db, "PRAGMA user_version") == latest_version());
    CHECK(manager.has_checkpoint("ingest"));
    CHECK(manager.verify().empty());
}
