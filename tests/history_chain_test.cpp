// The tamper-evident history (README, "Security"): every row carries a hash over the row
// before it and its own content. Each edit an attacker makes with the real `sqlite3` shell
// (SQLite) or `psql` (PostgreSQL) — a column of a row, a deleted, inserted or renumbered
// row, a cut tail — makes verify() name the row; a keyed chain cannot be recomputed
// without the key; prune keeps it verifiable. Keys: KeyRequired and WrongKey, nothing
// written. On both backends (test_location.hpp).
#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/keys.hpp>

#include "child_process.hpp"
#include "test_location.hpp"

#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

using checkpoint::CheckpointManager;
using checkpoint::ClearScope;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::Options;
using checkpoint::SaveOptions;
using checkpoint::test::run_command;
using checkpoint::test::TestLocation;
namespace fs = std::filesystem;

namespace {

std::string joined(const std::vector<std::string>& lines) {
    std::string text;
    for (const auto& line : lines) text += line + "\n";
    return text;
}

// Runs `sql` with the real command-line client, as an attacker with write access would.
void edit(const TestLocation& location, const std::string& sql) {
    std::vector<std::string> argv;
    if (location.is_sqlite()) {
        argv = {CHECKPOINT_SQLITE3_SHELL, "-bail",
                (location.location() / "checkpoints.db").string(), sql};
    } else {
        argv = {"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", location.pg()->url(), "-c", sql};
    }
    const auto result = run_command(argv);
    INFO(sql << "\n" << result.err);
    REQUIRE(result.exit_code == 0);
}

Options with_pipeline(const std::string& pipeline, const fs::path& key_file = {}) {
    Options options;
    options.pipeline = pipeline;
    options.key_file = key_file;
    return options;
}

// A history with every kind of row and every column filled somewhere: two pipelines, two
// runs, outputs, metadata, fingerprints, inputs, a failure, clears.
void populate(const fs::path& location, const fs::path& key_file = {}) {
    {
        CheckpointManager manager(location, with_pipeline("default", key_file));
        manager.begin_stage("ingest");
        SaveOptions ingest;
        ingest.metadata = {{"rows", 10}};
        ingest.fingerprint = "v1";
        ingest.output = std::string("raw bytes");
        manager.save_checkpoint("ingest", ingest);
        manager.begin_stage("train");
        manager.fail_stage("train", "out of memory");
        SaveOptions train;
        train.inputs = {"ingest"};
        train.output = std::string("model");
        manager.save_checkpoint("train", train);
        manager.clear_checkpoint("ingest", ClearScope::WithDownstream);
        manager.save_checkpoint("ingest", ingest);
    }
    CheckpointManager other(location, with_pipeline("other", key_file));
    other.save_checkpoint("a");
    other.clear_checkpoints();
    other.save_checkpoint("a");
}

std::int64_t max_id(const TestLocation& location) {
    return std::stoll(location.query("SELECT max(id) FROM checkpoints"));
}

std::string chain_problems(const std::vector<std::string>& problems) {
    std::string text;
    for (const auto& line : problems)
        if (line.rfind("history chain: ", 0) == 0) text += line + "\n";
    return text;
}

// A key file in the test's scratch directory.
fs::path new_key(const TestLocation& location, const std::string& name) {
    const fs::path file = location / name;
    checkpoint::generate_key_file(file);
    return file;
}

}  // namespace

TEST_CASE("a fresh history verifies, and its head is the newest row", "[chain]") {
    TestLocation location;
    populate(location.location());
    CheckpointManager manager(location.location());
    CHECK(joined(manager.verify()).empty());
    const std::string head = manager.history_head();
    CHECK(head.rfind(std::to_string(max_id(location)) + " ", 0) == 0);
    CHECK(head.size() == std::to_string(max_id(location)).size() + 1 + 64);
    CHECK(joined(manager.verify(head)).empty());
    // Every row carries a hash.
    CHECK(location.query("SELECT count(*) FROM checkpoints WHERE chain_hash IS NULL") == "0");
    CHECK_THROWS_MATCHES(manager.verify("12 abc"), Error,
                         Catch::Predicate<Error>([](const Error& e) {
                             return e.code() == ErrorCode::InvalidArgument;
                         }));
}

TEST_CASE("every kind of stage write verifies, whatever its metadata's JSON and message hold",
          "[chain]") {
    // On PostgreSQL a stage write computes its row's hash before the row is stored: the
    // hash must match what verify() reads back (jsonb's rendering of the metadata, the
    // sealed message and metadata with a key, the lease token, the inputs).
    TestLocation location;
    fs::path key_file;
    SECTION("without a key") {}
    SECTION("with a key") {
        key_file = new_key(location, "chain.key");
    }
    CheckpointManager manager(location.location(), with_pipeline("default", key_file));
    SaveOptions odd;
    odd.metadata = nlohmann::json::parse(
        R"({"zeta": 1.50, "a": [1e2, -0, 2.0e-3, 12345678901234567890], "": true,)"
        R"( "nested": {"b": "x\"y\\z\n\u0001\u00e9\u2713", "a": null}, "long key": {}})");
    odd.fingerprint = "fp-1";
    odd.output = std::string("out\0put", 7);
    manager.begin_stage("odd");
    manager.save_checkpoint("odd", odd);
    manager.fail_stage("failing", "quote \" backslash \\ newline \n tab \t \u00e9\u2713 'single'");
    {
        auto lease = manager.claim_stage("fenced");
        REQUIRE(lease);
        manager.begin_stage("fenced");
        SaveOptions fenced;
        fenced.metadata = {{"k", "v"}};
        manager.save_checkpoint("fenced", fenced);
    }
    SaveOptions downstream;
    downstream.inputs = {"odd", "fenced"};
    downstream.output = std::string(3 * 1024 * 1024 + 5, 'x');  // several chunks
    manager.save_checkpoint("downstream", downstream);
    manager.save_checkpoint("odd", odd);
    manager.clear_checkpoint("fenced", ClearScope::WithDownstream);
    manager.save_checkpoint("fenced");
    CHECK(location.query("SELECT count(*) FROM checkpoints WHERE chain_hash IS NULL") == "0");
    CHECK(joined(manager.verify()).empty());
    CHECK(manager.latest("odd")->version == 2);
    CHECK(manager.latest("odd")->metadata == odd.metadata);
    CHECK(manager.latest("downstream")->version == 1);
    CHECK(manager.latest("fenced")->version == 2);
    checkpoint::HistoryFilter failing;
    failing.stage = "failing";
    failing.status = checkpoint::Status::Failed;
    CHECK(manager.history(failing).front().message ==
          "quote \" backslash \\ newline \n tab \t \u00e9\u2713 'single'");
}

TEST_CASE("an edit of any column of a row, made with sqlite3 or psql, names that row", "[chain]") {
    TestLocation location;
    populate(location.location());
    // The rows to edit: a completed row with an output, metadata and a fingerprint; one
    // with inputs; a failure; a pipeline-wide clear.
    const std::string saved = location.query(
        "SELECT min(id) FROM checkpoints WHERE status = 'completed' AND metadata IS NOT NULL");
    const std::string with_inputs =
        location.query("SELECT min(id) FROM checkpoints WHERE input_count > 0");
    const std::string failed =
        location.query("SELECT min(id) FROM checkpoints WHERE status = 'failed'");
    const std::string clear = location.query("SELECT min(id) FROM checkpoints WHERE stage IS NULL");
    const std::string other_run =
        location.query("SELECT run_id FROM runs WHERE pipeline = 'other'");
    edit(location, "CREATE TABLE saved AS SELECT * FROM checkpoints");
    edit(location, "CREATE TABLE saved_inputs AS SELECT * FROM checkpoint_inputs");
    const bool pg = location.is_postgres();
    struct Edit {
        std::string column;
        std::string row;
        std::string value;  // SQL
    };
    std::vector<Edit> edits = {
        {"pipeline", saved, "'other'"},
        {"stage", saved, "'forged'"},
        {"status", saved, "'failed'"},
        {"version", saved, "version + 1"},
        {"timestamp", saved, "'2020-01-01T00:00:00.000Z'"},
        {"run_id", saved, "'" + other_run + "'"},
        {"duration_ms", failed, "coalesce(duration_ms, 0) + 1"},
        {"message", failed, "'forged'"},
        {"metadata", saved, pg ? "'{\"rows\": 11}'" : "'{\"rows\":11}'"},
        {"fingerprint", saved, "'v2'"},
        {"output_size", saved, "output_size + 1"},
        {"output_sha256", saved, "'" + std::string(64, 'a') + "'"},
        {"output_in_database", saved, pg ? "NOT output_in_database" : "1 - output_in_database"},
        {"input_count", with_inputs, "input_count + 1"},
        {"key_id", failed, "'0123456789abcdef'"},
        {"chain_hash", clear, pg ? "decode(repeat('00', 32), 'hex')" : "zeroblob(32)"},
        {"stage", clear, "'forged'"},
        {"lease_token", saved, "coalesce(lease_token, 0) + 7"},
    };
    if (pg) edits.push_back({"write_id", failed, "gen_random_uuid()"});  // PostgreSQL only
    CheckpointManager manager(location.location());
    REQUIRE(joined(manager.verify()).empty());
    for (const Edit& e : edits) {
        INFO("column " << e.column << " of row " << e.row);
        edit(location,
             "UPDATE checkpoints SET " + e.column + " = " + e.value + " WHERE id = " + e.row);
        const std::string problems = chain_problems(manager.verify());
        CHECK_THAT(problems,
                   Catch::Contains("history chain: row " + e.row + " does not match its hash"));
        // Only that row: the rows after it still chain from its stored hash (an edited hash
        // is also the next row's link).
        if (e.column != "chain_hash")
            CHECK(std::count(problems.begin(), problems.end(), '\n') == 1);
        edit(location, "UPDATE checkpoints SET " + e.column + " = (SELECT s." + e.column +
                           " FROM saved s WHERE s.id = checkpoints.id) WHERE id = " + e.row);
        CHECK(chain_problems(manager.verify()).empty());
    }
    SECTION("an input of a row") {
        edit(location,
             "UPDATE checkpoint_inputs SET input_version = input_version + 1 "
             "WHERE checkpoint_id = " +
                 with_inputs);
        CHECK_THAT(chain_problems(manager.verify()),
                   Catch::Contains("row " + with_inputs + " does not match its hash"));
    }
    SECTION("a renumbered row: the chain breaks at the row after its old place") {
        const std::string started =
            location.query("SELECT min(id) FROM checkpoints WHERE status = 'started'");
        const std::string next =
            location.query("SELECT min(id) FROM checkpoints WHERE id > " + started);
        edit(location, "UPDATE checkpoints SET id = 1000 WHERE id = " + started);
        const std::string problems = chain_problems(manager.verify());
        CHECK_THAT(problems, Catch::Contains("row " + next + " does not match its hash"));
        CHECK_THAT(problems, Catch::Contains("row 1000 does not match its hash"));
    }
}

TEST_CASE("a deleted middle row, a forged row and a cut tail are detected", "[chain]") {
    TestLocation location;
    populate(location.location());
    CheckpointManager manager(location.location());
    const std::string head = manager.history_head();
    REQUIRE(joined(manager.verify(head)).empty());

    SECTION("a deleted row in the middle: the row after it is named") {
        edit(location, "DELETE FROM checkpoints WHERE id = 3");
        const std::string next = location.query("SELECT min(id) FROM checkpoints WHERE id > 3");
        CHECK_THAT(chain_problems(manager.verify()),
                   Catch::Contains("row " + next +
                                   " does not match its hash (the chain before it "
                                   "ends at row 2)"));
    }
    SECTION("a forged row appended without the library") {
        const std::int64_t forged = max_id(location) + 1;
        edit(location,
             "INSERT INTO checkpoints (id, pipeline, stage, status, version, timestamp, run_id) "
             "SELECT " +
                 std::to_string(forged) +
                 ", pipeline, stage, status, version, "
                 "timestamp, run_id FROM checkpoints WHERE id = 1");
        CHECK_THAT(chain_problems(manager.verify()),
                   Catch::Contains("row " + std::to_string(forged) + " has no chain hash"));
    }
    SECTION("a forged row with a copied hash") {
        const std::int64_t forged = max_id(location) + 1;
        edit(location,
             "INSERT INTO checkpoints (id, pipeline, stage, status, version, timestamp, run_id, "
             "chain_hash) SELECT " +
                 std::to_string(forged) +
                 ", pipeline, stage, status, "
                 "version, timestamp, run_id, chain_hash FROM checkpoints WHERE id = 1");
        CHECK_THAT(chain_problems(manager.verify()),
                   Catch::Contains("row " + std::to_string(forged) + " does not match its hash"));
    }
    SECTION("the tail cut: invisible from inside the database, only the kept head tells") {
        const std::int64_t last = max_id(location);
        edit(location, "DELETE FROM checkpoints WHERE id >= " + std::to_string(last - 1));
        CHECK(chain_problems(manager.verify()).empty());
        CHECK_THAT(
            chain_problems(manager.verify(head)),
            Catch::Contains("the expected head row " + std::to_string(last) + " is missing"));
    }
    SECTION("a row that something else appended stops every write until it is removed") {
        // (PostgreSQL: the id from the sequence, as a plain INSERT takes it.)
        edit(location,
             "INSERT INTO checkpoints (pipeline, stage, status, version, timestamp, run_id) "
             "SELECT pipeline, stage, status, version, timestamp, run_id FROM checkpoints "
             "WHERE id = 1");
        const std::int64_t forged = max_id(location);
        CheckpointManager writer(location.location());
        try {
            writer.save_checkpoint("after");
            FAIL("the forged row was chained");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::Corrupt);
            CHECK_THAT(std::string(e.what()),
                       Catch::Contains("history row " + std::to_string(forged)));
        }
        CHECK(location.query("SELECT count(*) FROM checkpoints WHERE stage = 'after'") == "0");
    }
}

TEST_CASE("prune keeps the chain verifiable, and a forged anchor is detected", "[chain][prune]") {
    TestLocation location;
    populate(location.location());
    {
        CheckpointManager manager(location.location());
        for (int i = 0; i < 4; ++i) manager.save_checkpoint("ingest");
        checkpoint::PruneOptions prune;
        prune.keep_last = 1;
        const auto result = manager.prune(prune);
        REQUIRE(result.rows_deleted > 0);
        CHECK(joined(manager.verify()).empty());
        manager.save_checkpoint("ingest");
        for (int i = 0; i < 4; ++i) manager.save_checkpoint("later");
        CHECK(joined(manager.verify(manager.history_head())).empty());
    }
    REQUIRE(location.query("SELECT count(*) FROM history_chain_anchors") != "0");
    CheckpointManager manager(location.location());
    // An attacker deletes a row and declares it pruned with an anchor of their own: the tag
    // does not match (it binds the anchor; keyed databases key it).
    const std::string victim = location.query(
        "SELECT min(id) FROM checkpoints WHERE id > (SELECT max(row_id) FROM "
        "history_chain_anchors) AND id < (SELECT max(id) FROM checkpoints) - 1");
    const std::string after =
        location.query("SELECT min(id) FROM checkpoints WHERE id > " + victim);
    edit(location, "INSERT INTO history_chain_anchors (row_id, prev_id, prev_hash, tag) SELECT " +
                       after +
                       ", id, chain_hash, chain_hash FROM checkpoints WHERE id = " + victim);
    edit(location, "DELETE FROM checkpoints WHERE id = " + victim);
    const std::string problems = chain_problems(manager.verify());
    CHECK_THAT(problems, Catch::Contains("row " + after + ": its prune anchor"));
    CHECK_THAT(problems, Catch::Contains("row " + after + " does not match its hash"));
}

TEST_CASE(
    "a keyed chain: the key is required and checked, and an attacker's unkeyed "
    "recomputation is detected",
    "[chain][keys]") {
    TestLocation location;
    const fs::path key = new_key(location, "db.key");
    const fs::path other_key = new_key(location, "other.key");
    populate(location.location(), key);
    const std::string rows = location.query("SELECT count(*) FROM checkpoints");
    {
        CheckpointManager manager(location.location(), with_pipeline("default", key));
        CHECK(joined(manager.verify(manager.history_head())).empty());
    }
    const auto code_of = [](auto&& call) {
        try {
            call();
        } catch (const Error& e) {
            return e.code();
        }
        return ErrorCode::Internal;
    };
    SECTION("no key: writes and the chain are refused, nothing is written") {
        CheckpointManager manager(location.location());
        CHECK(code_of([&] { manager.save_checkpoint("ingest"); }) == ErrorCode::KeyRequired);
        CHECK(code_of([&] { manager.clear_checkpoints(); }) == ErrorCode::KeyRequired);
        CHECK(code_of([&] { manager.verify(); }) == ErrorCode::KeyRequired);
        CHECK(code_of([&] { manager.history_head(); }) == ErrorCode::KeyRequired);
        CHECK(manager.has_checkpoint("ingest"));  // reads of the history still work
    }
    SECTION("another key: refused when opening, nothing is written") {
        CHECK(code_of([&] {
                  CheckpointManager manager(location.location(),
                                            with_pipeline("default", other_key));
              }) == ErrorCode::WrongKey);
    }
    SECTION("a key file others may read is refused") {
        fs::permissions(key, fs::perms::group_read, fs::perm_options::add);
        CHECK(code_of([&] {
                  CheckpointManager manager(location.location(), with_pipeline("default", key));
              }) == ErrorCode::Unsafe);
    }
    SECTION("an unkeyed recomputation of the whole chain is detected") {
        // The attacker edits a row, removes the key's record, has the library (without a
        // key) re-hash every row — as rows of its own run, which a write chains — and puts
        // the key's record back.
        edit(location, "CREATE TABLE saved_keys AS SELECT * FROM encryption_keys");
        edit(location, "UPDATE checkpoints SET message = 'forged' WHERE status = 'failed'");
        edit(location, "DELETE FROM encryption_keys");
        {
            CheckpointManager attacker(location.location());
            edit(location,
                 std::string(location.is_postgres() ? "SET session_replication_role = replica; "
                                                    : "") +
                     "UPDATE checkpoints SET chain_hash = NULL, run_id = '" + attacker.run_id() +
                     "'");
            attacker.save_checkpoint("forged");
            CHECK(joined(attacker.verify()).empty());  // consistent, unkeyed
        }
        edit(location, "INSERT INTO encryption_keys SELECT * FROM saved_keys");
        CheckpointManager manager(location.location(), with_pipeline("default", key));
        CHECK_THAT(chain_problems(manager.verify()),
                   Catch::Contains("row 1 does not match its hash"));
        return;
    }
    CHECK(location.query("SELECT count(*) FROM checkpoints") == rows);
}

// A manager keeps the chain's tail (next row id, head hash, recorded key) between its
// writes; another process writing in between must make it read the tail again, or its next
// row would reuse an id or chain from a stale head. Real child processes (checkpoint_test_
// worker) write between this manager's writes, alone and while this manager's threads save.
TEST_CASE("writes of another process between a manager's writes extend the same chain",
          "[chain][concurrency]") {
    TestLocation location;
    const std::string dir = location.location().string();
    CheckpointManager manager(location.location());
    const auto child = [&](std::vector<std::string> argv) {
        argv.insert(argv.begin(), CHECKPOINT_TEST_WORKER);
        const auto result = run_command(argv);
        INFO(result.err);
        REQUIRE(result.exit_code == 0);
    };
    std::int64_t rows = 0;
    for (int round = 0; round < 3; ++round) {
        const std::string r = std::to_string(round);
        manager.save_checkpoint("mine-" + r);  // the tail is cached after this commit
        child({"save", dir, "theirs" + r, "2"});
        // The same stage the child saved: its version must follow the child's.
        manager.save_checkpoint("theirs" + r + "-0");
        CHECK(manager.latest("theirs" + r + "-0")->version == 2);
        child({"fail", dir, "failing" + r, "boom"});
        manager.clear_checkpoint("mine-" + r);
        rows += 1 + 2 + 1 + 2 + 1;  // the child's fail writes a start and a failure
        CHECK(max_id(location) == rows);
        INFO("round " << round);
        CHECK(joined(manager.verify()).empty());
    }
    // The other process clears the whole pipeline; this manager's next save chains after it.
    child({"mixed", dir, "7", "20"});
    manager.save_checkpoint("after");
    CHECK(joined(manager.verify(manager.history_head())).empty());
    CHECK(location.query("SELECT count(*) FROM checkpoints WHERE chain_hash IS NULL") == "0");
}

TEST_CASE("a key given to a history written without one is refused, unchanged", "[chain][keys]") {
    TestLocation location;
    populate(location.location());
    const fs::path key = new_key(location, "db.key");
    try {
        CheckpointManager manager(location.location(), with_pipeline("default", key));
        FAIL("opened");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::InvalidArgument);
        CHECK_THAT(std::string(e.what()), Catch::Contains("mixed"));
    }
    CHECK(location.query("SELECT count(*) FROM encryption_keys") == "0");
}

TEST_CASE("key files: keygen writes 0600 and never overwrites, malformed files are refused",
          "[chain][keys][sqlite]") {
    TestLocation location;
    const fs::path key = new_key(location, "k");
    struct stat info {};
    REQUIRE(::stat(key.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0600);
    CHECK(fs::file_size(key) == 65);
    CHECK_THROWS_AS(checkpoint::generate_key_file(key), Error);
    const fs::path bad = location / "bad.key";
    {
        std::ofstream out(bad);
        out << "not a key\n";
    }
    fs::permissions(bad, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace);
    try {
        CheckpointManager manager(location.location(), with_pipeline("default", bad));
        FAIL("opened");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::InvalidArgument);
        CHECK_THAT(std::string(e.what()), Catch::Contains(bad.string()));
    }
    // The key never appears in a message.
    std::ifstream in(key);
    std::string text;
    std::getline(in, text);
    fs::permissions(key, fs::perms::others_read, fs::perm_options::add);
    try {
        CheckpointManager manager(location.location(), with_pipeline("default", key));
        FAIL("opened");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::Unsafe);
        CHECK_THAT(std::string(e.what()), !Catch::Contains(text));
    }
}

TEST_CASE("a database upgraded from schema 2 starts its chain at the upgrade", "[chain][sqlite]") {
    TestLocation location;
    const fs::path db = location.location() / "checkpoints.db";
    // Schema 2, from the schema 1 database the library wrote (tests/data) and migration 2
    // applied by the sqlite3 shell, as the library of schema 2 did.
    fs::copy_file(fs::path(CHECKPOINT_SOURCE_DIR) / "tests" / "data" / "schema1.db", db);
    std::string migration2;
    for (const auto& entry :
         fs::directory_iterator(fs::path(CHECKPOINT_SOURCE_DIR) / "migrations" / "sqlite"))
        if (entry.path().filename().string().rfind("0002_", 0) == 0) {
            std::ifstream in(entry.path());
            migration2.assign(std::istreambuf_iterator<char>(in), {});
        }
    REQUIRE(!migration2.empty());
    const auto result = run_command(
        {CHECKPOINT_SQLITE3_SHELL, "-bail", db.string()},
        "BEGIN;\n" + migration2 +
            "\nINSERT INTO schema_migrations VALUES (2, '0002', '2026-11-01T00:00:00.000Z');\n"
            "PRAGMA user_version = 2;\nCOMMIT;\n");
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    REQUIRE(location.query("PRAGMA user_version") == "2");
    const std::int64_t old_rows = max_id(location);
    REQUIRE(old_rows > 0);

    CheckpointManager manager(location.location());
    CHECK(location.query("SELECT start_id FROM history_chain") == std::to_string(old_rows));
    CHECK(location.query("SELECT count(*) FROM checkpoints WHERE chain_hash IS NOT NULL") == "0");
    CHECK(joined(manager.verify()).empty());
    manager.save_checkpoint("after_upgrade");
    CHECK(joined(manager.verify(manager.history_head())).empty());
    CHECK(manager.history_head().rfind(std::to_string(old_rows + 1) + " ", 0) == 0);
    // The rows before the upgrade are outside the chain (documented); the new ones are in it.
    edit(location, "UPDATE checkpoints SET message = 'edited' WHERE id = 1");
    CHECK(chain_problems(manager.verify()).empty());
    edit(location,
         "UPDATE checkpoints SET message = 'edited' WHERE id = " + std::to_string(old_rows + 1));
    CHECK_THAT(chain_problems(manager.verify()),
               Catch::Contains("row " + std::to_string(old_rows + 1) +
                               " does not match its hash "
                               "(the chain before it ends at row " +
                               std::to_string(old_rows) + ")"));
}

TEST_CASE("a PostgreSQL database upgraded from schema 1 starts its chain at the upgrade",
          "[chain]") {
    TestLocation location;
    if (!location.is_postgres()) {
        // On SQLite, the case above ("upgraded from schema 2") is the same test.
        SUCCEED("PostgreSQL only: SQLite's upgrade is the test case above");
        return;
    }
    // Schema 1 as the library of schema 1 wrote it: the frozen migration, its record and
    // the marker, then a run and two rows written by hand.
    std::string migration1;
    for (const auto& entry :
         fs::directory_iterator(fs::path(CHECKPOINT_SOURCE_DIR) / "migrations" / "postgres"))
        if (entry.path().filename().string().rfind("0001_", 0) == 0) {
            std::ifstream in(entry.path());
            migration1.assign(std::istreambuf_iterator<char>(in), {});
        }
    REQUIRE(!migration1.empty());
    const auto result = run_command(
        {"psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", location.pg()->url()},
        "BEGIN;\n" + migration1 +
            "\nINSERT INTO schema_migrations VALUES (1, '0001_initial.sql', "
            "'2026-11-01T00:00:00.000Z');\n"
            "INSERT INTO checkpoint_schema (application, version) VALUES ('checkpoint', 1);\n"
            "INSERT INTO runs (run_id, pipeline, host, pid, \"user\", started_at, ended_at, "
            "outcome) VALUES ('r1', 'default', 'h', 1, 'u', '2026-11-01T00:00:00.000Z', "
            "'2026-11-01T00:00:01.000Z', 'finished');\n"
            "INSERT INTO pipelines (pipeline) VALUES ('default');\n"
            "INSERT INTO checkpoints (pipeline, stage, status, version, timestamp, run_id) VALUES "
            "('default', 'old', 'started', 0, '2026-11-01T00:00:00.000Z', 'r1'), "
            "('default', 'old', 'completed', 1, '2026-11-01T00:00:01.000Z', 'r1');\n"
            "INSERT INTO stage_heads (pipeline, stage, status, version, head_id) VALUES "
            "('default', 'old', 'completed', 1, 2);\n"
            "COMMIT;\n");
    INFO(result.err);
    REQUIRE(result.exit_code == 0);
    CheckpointManager manager(location.location());
    CHECK(location.query("SELECT start_id FROM history_chain") == "2");
    CHECK(joined(manager.verify()).empty());
    manager.save_checkpoint("after_upgrade");
    CHECK(manager.history_head().rfind("3 ", 0) == 0);
    CHECK(joined(manager.verify(manager.history_head())).empty());
    edit(location, "UPDATE checkpoints SET timestamp = '2026-11-01T00:00:00.500Z' WHERE id = 1");
    CHECK(chain_problems(manager.verify()).empty());  // before the chain: not covered
    edit(location, "UPDATE checkpoints SET stage = 'edited' WHERE id = 3");
    CHECK_THAT(
        chain_problems(manager.verify()),
        Catch::Contains("row 3 does not match its hash (the chain before it ends at row 2)"));
}
