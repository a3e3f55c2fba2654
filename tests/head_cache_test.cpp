// The SQLite backend's cache of stage heads (lib/sqlite/head_cache.hpp): has_checkpoint
// answers from it while the database is unchanged, and sees at once every change — its own
// writes, another manager's in the same process, another process's, a hand edit with SQL —
// and what is not in the database at all (an output file removed).
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

using checkpoint::CheckpointManager;
using checkpoint::Options;
using checkpoint::test::exec_sql;
using checkpoint::test::run_command;
using checkpoint::test::TempDir;

namespace {

// Runs the test worker's `serve` mode on `dir` in a new process: one command per line
// (save STAGE, clear STAGE, clear-all), each acknowledged; the process then exits.
void other_process(const std::filesystem::path& dir, const std::string& commands) {
    const auto result = run_command({CHECKPOINT_TEST_WORKER, "serve", dir.string()}, commands);
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
}

}  // namespace

TEST_CASE("has_checkpoint sees another process's saves and clears at once", "[sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path());
    // Cached answers, hit and miss, asked twice: the second answer comes from the cache.
    manager.save_checkpoint("kept");
    for (int i = 0; i < 2; ++i) {
        CHECK(manager.has_checkpoint("kept"));
        CHECK_FALSE(manager.has_checkpoint("later"));
    }
    other_process(dir.path(), "save later\n");
    CHECK(manager.has_checkpoint("later"));
    CHECK(manager.has_checkpoint("kept"));
    other_process(dir.path(), "clear kept\n");
    CHECK_FALSE(manager.has_checkpoint("kept"));
    CHECK(manager.has_checkpoint("later"));
    other_process(dir.path(), "clear-all\n");
    CHECK_FALSE(manager.has_checkpoint("later"));
    other_process(dir.path(), "save kept\n");
    CHECK(manager.has_checkpoint("kept"));
    CHECK_FALSE(manager.has_checkpoint("later"));
}

TEST_CASE("has_checkpoint sees its own writes and another manager's at once", "[sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path());
    CHECK_FALSE(manager.has_checkpoint("a"));
    manager.save_checkpoint("a");
    CHECK(manager.has_checkpoint("a"));
    manager.clear_checkpoint("a");
    CHECK_FALSE(manager.has_checkpoint("a"));
    manager.save_checkpoint("a");
    manager.save_checkpoint("b");
    CHECK(manager.has_checkpoint("b"));
    manager.clear_checkpoints();
    CHECK_FALSE(manager.has_checkpoint("a"));
    CHECK_FALSE(manager.has_checkpoint("b"));
    manager.begin_stage("a");
    CHECK_FALSE(manager.has_checkpoint("a"));
    manager.save_checkpoint("a");
    CHECK(manager.has_checkpoint("a"));
    manager.fail_stage("a", "broken");
    CHECK_FALSE(manager.has_checkpoint("a"));

    // Another connection in the same process, writing and read-only.
    CheckpointManager other(dir.path());
    Options read_only;
    read_only.read_only = true;
    const CheckpointManager reader(dir.path(), read_only);
    CHECK_FALSE(reader.has_checkpoint("c"));
    other.save_checkpoint("c");
    CHECK(manager.has_checkpoint("c"));
    CHECK(reader.has_checkpoint("c"));
    other.clear_checkpoint("c");
    CHECK_FALSE(manager.has_checkpoint("c"));
    CHECK_FALSE(reader.has_checkpoint("c"));
}

TEST_CASE("has_checkpoint sees a hand edit of the database with SQL", "[sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path());
    manager.save_checkpoint("edited");
    CHECK(manager.has_checkpoint("edited"));
    // An operator marks the stage failed by hand, through another connection.
    exec_sql(dir.path() / "checkpoints.db",
             "UPDATE stage_heads SET status = 'failed' WHERE stage = 'edited'");
    CHECK_FALSE(manager.has_checkpoint("edited"));
    exec_sql(dir.path() / "checkpoints.db",
             "UPDATE stage_heads SET status = 'completed' WHERE stage = 'edited'");
    CHECK(manager.has_checkpoint("edited"));
}

TEST_CASE("has_checkpoint still checks an output file that the cache cannot know of", "[sqlite]") {
    TempDir dir;
    Options options;
    options.max_inline_output = 16;  // the output below goes to a file
    CheckpointManager manager(dir.path(), options);
    checkpoint::SaveOptions save;
    save.output = std::string(1000, 'x');
    manager.save_checkpoint("produced", save);
    CHECK(manager.has_checkpoint("produced"));
    CHECK(manager.has_checkpoint("produced"));
    // Removing the file changes nothing in the database: the stage is stale all the same.
    std::size_t removed = 0;
    for (const auto& entry : std::filesystem::directory_iterator(manager.outputs_directory())) {
        std::filesystem::remove(entry.path());
        ++removed;
    }
    REQUIRE(removed == 1);
    CHECK_FALSE(manager.has_checkpoint("produced"));
}

TEST_CASE("has_checkpoint stays right past the cache's size limit", "[sqlite]") {
    TempDir dir;
    Options options;
    options.durability = checkpoint::Durability::Normal;
    CheckpointManager manager(dir.path(), options);
    // More stages than the cache keeps (65,536), half of them saved.
    constexpr int stages = 70'000;
    for (int i = 0; i < stages; i += 2) manager.save_checkpoint("s" + std::to_string(i));
    int wrong = 0;
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < stages; ++i)
            wrong += manager.has_checkpoint("s" + std::to_string(i)) != (i % 2 == 0);
    }
    CHECK(wrong == 0);
    manager.clear_checkpoint("s0");
    CHECK_FALSE(manager.has_checkpoint("s0"));
    CHECK(manager.has_checkpoint("s2"));
}

TEST_CASE("A read-only manager's cached lookups create nothing and see writes at once",
          "[sqlite]") {
    TempDir dir;
    const auto db = dir.path() / "checkpoints.db";
    {
        CheckpointManager writer(dir.path());
        writer.save_checkpoint("done");
    }
    // Closed cleanly: the WAL was checkpointed into the file; remove what SQLite keeps beside
    // it, as a copied database would be.
    std::filesystem::remove(dir.path() / "checkpoints.db-wal");
    std::filesystem::remove(dir.path() / "checkpoints.db-shm");
    const std::string before = checkpoint::test::read_file(db);
    {
        Options read_only;
        read_only.read_only = true;
        const CheckpointManager reader(dir.path(), read_only);
        for (int i = 0; i < 3; ++i) {
            CHECK(reader.has_checkpoint("done"));
            CHECK_FALSE(reader.has_checkpoint("missing"));
        }
    }
    CHECK(checkpoint::test::read_file(db) == before);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "checkpoints.db-wal"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "checkpoints.db-shm"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "checkpoints.db-outputs"));

    // While it is open, another process's save shows at once.
    Options read_only;
    read_only.read_only = true;
    const CheckpointManager reader(dir.path(), read_only);
    CHECK_FALSE(reader.has_checkpoint("later"));
    other_process(dir.path(), "save later\n");
    CHECK(reader.has_checkpoint("later"));
}
