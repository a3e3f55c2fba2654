// CheckpointManager::verify: a sound database has no problem; each kind of damage to our
// tables, made through SQLite (psql) as a careless hand edit would, is reported. On both
// backends (test_location.hpp).
#include <checkpoint/checkpoint_manager.hpp>

#include "raw_db.hpp"
#include "test_location.hpp"

#include <sqlite3.h>
#include <catch2/catch.hpp>

using checkpoint::CheckpointManager;
using checkpoint::test::TestLocation;

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
    TestLocation dir;
    populate(dir.location());
    CheckpointManager manager(dir.location());
    CHECK(manager.verify().empty());
}

TEST_CASE("damage to the tables is reported", "[verify]") {
    TestLocation dir;
    populate(dir.location());
    std::string damage;
    std::string expected;
    // PostgreSQL enforces what SQLite only checks: the hand edit drops the constraint first.
    const bool pg = dir.is_postgres();
    SECTION("a bogus status") {
        damage = pg ? "ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_status_check; "
                      "UPDATE checkpoints SET status = 'bogus' WHERE id = 1"
                    : "PRAGMA ignore_check_constraints = 1; "
                      "UPDATE checkpoints SET status = 'bogus' WHERE id = 1";
        expected = "checkpoints row 1: unknown status 'bogus'";
    }
    SECTION("a version going backwards") {
        damage = "UPDATE checkpoints SET version = 1 WHERE id = 2";
        expected =
            "checkpoints row 2: stage 'a' completed as version 1, but an earlier row of the "
            "stage already reached version 1 (each completed version must be above every "
            "earlier one)";
    }
    SECTION("a malformed timestamp") {
        damage = "UPDATE checkpoints SET timestamp = '27/11/2026 06:37' WHERE id = 3";
        expected = "checkpoints row 3: timestamp '27/11/2026 06:37' is not ISO-8601";
    }
    SECTION("a row whose run is gone") {
        damage = "DELETE FROM runs WHERE run_id = (SELECT run_id FROM checkpoints WHERE id = 1)";
        if (pg)
            damage = "ALTER TABLE checkpoints DROP CONSTRAINT checkpoints_run_id_fkey; " + damage;
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
    dir.exec(damage);
    CheckpointManager manager(dir.location());
    const auto problems = manager.verify();
    INFO(joined(problems));
    CHECK_THAT(joined(problems), Catch::Contains(expected));
}

TEST_CASE("tables altered by hand make reads throw Corrupt, not Internal", "[verify]") {
    TestLocation dir;
    populate(dir.location());
    dir.exec(dir.is_postgres() ? "ALTER TABLE runs DROP COLUMN \"user\""
                               : "ALTER TABLE runs DROP COLUMN user");
    CheckpointManager manager(dir.location());
    try {
        manager.runs();
        FAIL("no exception");
    } catch (const checkpoint::Error& e) {
        CHECK(e.code() == checkpoint::ErrorCode::Corrupt);
        CHECK_THAT(e.what(), Catch::Contains("altered outside the library"));
    }
}
