// CheckpointManager::verify: a sound database has no problem; each kind of damage to our
// tables, made through SQLite as a careless hand edit would, is reported.
#include <checkpoint/checkpoint_manager.hpp>

#include "raw_db.hpp"
#include "temp_dir.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

using checkpoint::CheckpointManager;
using checkpoint::test::exec_sql;
using checkpoint::test::TempDir;

namespace {

std::string joined(const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& line : lines) text += line + "\n";
    return text;
}

// A database with two pipelines, several versions, a failure, clears and two runs.
void populate(const std::filesystem::path& dir) {
    {
        CheckpointManager manager(dir);
        manager.save_checkpoint("a");
        manager.save_checkpoint("a");
        manager.begin_stage("b");
        manager.fail_stage("b", "boom");
        manager.clear_checkpoints();
    }
    checkpoint::Options other;
    other.pipeline = "other";
    CheckpointManager manager(dir, other);
    manager.save_checkpoint("a");
    manager.clear_checkpoint("a");
    manager.save_checkpoint("a");
}

}  // namespace

TEST_CASE("a sound database verifies clean", "[verify]") {
    TempDir dir;
    populate(dir.path());
    CheckpointManager manager(dir.path());
    CHECK(manager.verify().empty());
}

TEST_CASE("damage to the tables is reported", "[verify]") {
    TempDir dir;
    populate(dir.path());
    const auto db = dir / "checkpoints.db";
    std::string damage;
    std::string expected;
    SECTION("a bogus status") {
        damage =
            "PRAGMA ignore_check_constraints = 1; "
            "UPDATE checkpoints SET status = 'bogus' WHERE id = 1";
        expected = "checkpoints row 1: unknown status 'bogus'";
    }
    SECTION("a version going backwards") {
        damage = "UPDATE checkpoints SET version = 1 WHERE id = 2";
        expected = "checkpoints row 2: stage 'a' version 1 is not above the earlier version 1";
    }
    SECTION("a malformed timestamp") {
        damage = "UPDATE checkpoints SET timestamp = '27/11/2026 06:37' WHERE id = 3";
        expected = "checkpoints row 3: timestamp '27/11/2026 06:37' is not ISO-8601";
    }
    SECTION("a row whose run is gone") {
        damage = "DELETE FROM runs WHERE run_id = (SELECT run_id FROM checkpoints WHERE id = 1)";
        expected = "checkpoints row 1: run '";
    }
    SECTION("derived state out of step with the history") {
        damage = "UPDATE stage_heads SET status = 'completed' WHERE stage = 'b'";
        expected = "stage 'b' of pipeline 'default': derived state (stage_heads) disagrees";
    }
    SECTION("a lost pipeline-wide clear") {
        damage = "UPDATE pipelines SET cleared_id = 0 WHERE pipeline = 'default'";
        expected = "pipeline 'default': last clear recorded as row 0";
    }
    SECTION("a row deleted from the middle of the history") {
        damage = "DELETE FROM checkpoints WHERE id = (SELECT max(id) FROM checkpoints)";
        expected = "stage 'a' of pipeline 'other': derived state";
    }
    exec_sql(db, damage);
    CheckpointManager manager(dir.path());
    const auto problems = manager.verify();
    INFO(joined(problems));
    CHECK_THAT(joined(problems), Catch::Contains(expected));
}

TEST_CASE("tables altered by hand make reads throw Corrupt, not Internal", "[verify]") {
    TempDir dir;
    populate(dir.path());
    exec_sql(dir / "checkpoints.db", "ALTER TABLE runs DROP COLUMN user");
    CheckpointManager manager(dir.path());
    try {
        manager.runs();
        FAIL("no exception");
    } catch (const checkpoint::Error& e) {
        CHECK(e.code() == checkpoint::ErrorCode::Corrupt);
        CHECK_THAT(e.what(), Catch::Contains("altered outside the library"));
    }
}
