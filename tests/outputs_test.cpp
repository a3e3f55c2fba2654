// Stored outputs: small outputs in the database, large ones in files of the outputs
// directory named by their SHA-256; loaded back byte for byte (current and old versions);
// missing, truncated and altered outputs detected; identical outputs stored once.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"
#include "test_location.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

using checkpoint::CheckpointManager;
using checkpoint::ClearScope;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::fingerprint_of;
using checkpoint::fingerprint_of_file;
using checkpoint::Options;
using checkpoint::PruneOptions;
using checkpoint::SaveOptions;
using checkpoint::Status;
using checkpoint::test::RawDb;
using checkpoint::test::read_file;
using checkpoint::test::run_command;
using checkpoint::test::TempDir;
using checkpoint::test::TestLocation;
using checkpoint::test::write_file;
using namespace std::chrono_literals;
using namespace std::string_literals;
namespace fs = std::filesystem;

namespace {

// `size` bytes of every value (NUL included), different for each seed.
std::string binary_bytes(std::size_t size, std::uint32_t seed) {
    std::mt19937 rng(seed);
    std::string bytes(size, '\0');
    for (auto& byte : bytes) byte = static_cast<char>(rng() & 0xff);
    if (size > 2) bytes[1] = '\0';  // certainly a NUL byte, early
    return bytes;
}

SaveOptions with_output(std::string bytes) {
    SaveOptions options;
    options.output = std::move(bytes);
    return options;
}

// Options with a small inline limit, so that file-backed outputs stay small and fast.
Options small_inline(std::size_t limit = 1024) {
    Options options;
    options.max_inline_output = limit;
    return options;
}

// The names of the entries of the outputs directory (none when it does not exist).
std::set<std::string> output_files(const CheckpointManager& manager) {
    std::set<std::string> names;
    std::error_code ignored;
    if (!fs::exists(manager.outputs_directory(), ignored)) return names;
    for (const auto& entry : fs::directory_iterator(manager.outputs_directory()))
        names.insert(entry.path().filename().string());
    return names;
}

// Runs `call`, which must throw Error with `code`; returns its what().
template <typename Call>
std::string error_of(ErrorCode code, Call&& call) {
    try {
        call();
    } catch (const Error& e) {
        CHECK(e.code() == code);
        return e.what();
    }
    FAIL("no checkpoint::Error was thrown");
    return {};
}

// The sha256sum binary's digest of `file`.
std::string sha256sum(const fs::path& file) {
    const auto result = run_command({"sha256sum", file.string()});
    INFO("sha256sum stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    return result.out.substr(0, result.out.find(' '));
}

unsigned permission_bits(const fs::path& file) {
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

}  // namespace

TEST_CASE("an output up to max_inline_output is stored in the database and loaded exactly",
          "[outputs]") {
    TestLocation dir;
    const std::string bytes = binary_bytes(1024, 1);  // exactly the limit
    REQUIRE(bytes.find('\0') != std::string::npos);
    {
        CheckpointManager manager(dir.location(), small_inline());
        manager.save_checkpoint("train", with_output(bytes));
        CHECK(manager.has_checkpoint("train"));
        CHECK(manager.load_output("train") == bytes);

        const auto latest = manager.latest("train");
        REQUIRE(latest);
        REQUIRE(latest->output);
        CHECK(latest->output->size == 1024);
        CHECK(latest->output->sha256 == fingerprint_of(bytes));
        CHECK(latest->output->in_database);
        CHECK(output_files(manager).empty());  // no file for an inline output
    }
    // A resumed run (a new manager, a new process as far as the file knows) loads it back.
    CheckpointManager resumed(dir.location());
    const auto loaded = resumed.load_output("train");
    REQUIRE(loaded);
    CHECK(loaded->size() == bytes.size());
    CHECK(*loaded == bytes);
    CHECK(resumed.load_output("train", 1) == bytes);
}

TEST_CASE("an empty output is an output, not a missing one", "[outputs]") {
    TestLocation dir;
    CheckpointManager manager(dir.location());
    manager.save_checkpoint("empty", with_output(""));
    const auto loaded = manager.load_output("empty");
    REQUIRE(loaded);
    CHECK(loaded->empty());
    const auto latest = manager.latest("empty");
    REQUIRE(latest);
    REQUIRE(latest->output);
    CHECK(latest->output->size == 0);
    CHECK(latest->output->sha256 == fingerprint_of(""));
    CHECK(latest->output->sha256 ==
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(latest->output->in_database);

    // Saved without output: no output at all.
    manager.save_checkpoint("none", SaveOptions{});
    CHECK(manager.has_checkpoint("none"));
    CHECK_FALSE(manager.load_output("none"));
    const auto none = manager.latest("none");
    REQUIRE(none);
    CHECK_FALSE(none->output);
}

TEST_CASE("an output over max_inline_output is a file named by its SHA-256, owner-only",
          "[outputs][sqlite]") {
    TempDir dir;
    const std::string bytes = binary_bytes(1025, 2);  // one byte over the limit
    const std::string sha = fingerprint_of(bytes);
    fs::path file;
    {
        CheckpointManager manager(dir.path(), small_inline());
        CHECK(manager.outputs_directory() == dir.path() / "checkpoints.db-outputs");
        manager.save_checkpoint("big", with_output(bytes));
        CHECK(manager.has_checkpoint("big"));

        const auto latest = manager.latest("big");
        REQUIRE(latest);
        REQUIRE(latest->output);
        CHECK(latest->output->size == 1025);
        CHECK(latest->output->sha256 == sha);
        CHECK_FALSE(latest->output->in_database);

        // Exactly one file, named by the SHA-256, holding the bytes; no temporary left.
        CHECK(output_files(manager) == std::set<std::string>{sha});
        file = manager.outputs_directory() / sha;
        CHECK(read_file(file) == bytes);
        CHECK(fs::file_size(file) == 1025);
        CHECK(sha256sum(file) == sha);
        CHECK(fingerprint_of_file(file) == sha);
        const unsigned mode = permission_bits(file);
        INFO("mode " << std::oct << mode);
        CHECK((mode & 077) == 0);  // nobody but the owner
        CHECK((mode & 0400) != 0);
        CHECK(manager.load_output("big") == bytes);
    }
    // The limit only decides where a save puts its output: a manager with the default
    // limit loads the file just the same.
    CheckpointManager resumed(dir.path());
    CHECK(resumed.has_checkpoint("big"));
    CHECK(resumed.load_output("big") == bytes);
    CHECK(resumed.load_output("big", 1) == bytes);
}

TEST_CASE("the default inline limit is 1.5 MiB: 1.5 MiB stays inline, 1.5 MiB + 1 goes to a file",
          "[outputs][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path());
    REQUIRE(Options{}.max_inline_output == 1536 * 1024);
    const std::string at_limit = binary_bytes(1536 * 1024, 3);
    const std::string over = binary_bytes(1536 * 1024 + 1, 4);

    manager.save_checkpoint("at-limit", with_output(at_limit));
    manager.save_checkpoint("over", with_output(over));

    const auto inline_one = manager.latest("at-limit");
    REQUIRE(inline_one);
    REQUIRE(inline_one->output);
    CHECK(inline_one->output->in_database);
    CHECK(inline_one->output->size == 1536 * 1024);

    const auto file_one = manager.latest("over");
    REQUIRE(file_one);
    REQUIRE(file_one->output);
    CHECK_FALSE(file_one->output->in_database);
    CHECK(file_one->output->size == 1536 * 1024 + 1);
    CHECK(output_files(manager) == std::set<std::string>{fingerprint_of(over)});
    CHECK(sha256sum(manager.outputs_directory() / fingerprint_of(over)) == fingerprint_of(over));

    CHECK(manager.load_output("at-limit") == at_limit);
    CHECK(manager.load_output("over") == over);
}

TEST_CASE("the outputs directory follows Options::database_file", "[outputs][sqlite]") {
    TempDir dir;
    Options options = small_inline();
    options.database_file = "other.db";
    CheckpointManager manager(dir.path(), options);
    CHECK(manager.outputs_directory() == dir.path() / "other.db-outputs");
    const std::string bytes = binary_bytes(4096, 5);
    manager.save_checkpoint("s", with_output(bytes));
    CHECK(fs::exists(dir.path() / "other.db-outputs" / fingerprint_of(bytes)));
    CHECK_FALSE(fs::exists(dir.path() / "checkpoints.db-outputs"));
    CHECK(manager.load_output("s") == bytes);
}

TEST_CASE("load_output(stage, version) loads every retained version", "[outputs]") {
    TestLocation dir;
    CheckpointManager manager(dir.location(), small_inline());
    const std::string v1 = "first\0version"s;
    const std::string v2 = binary_bytes(5000, 6);  // a file
    const std::string v4 = binary_bytes(100, 7);   // inline
    manager.save_checkpoint("s", with_output(v1));
    manager.save_checkpoint("s", with_output(v2));
    manager.save_checkpoint("s", SaveOptions{});  // version 3: no output
    manager.save_checkpoint("s", with_output(v4));
    manager.save_checkpoint("other", with_output("other"));

    CHECK(manager.load_output("s", 1) == v1);
    CHECK(manager.load_output("s", 2) == v2);
    CHECK_FALSE(manager.load_output("s", 3));  // saved without an output
    CHECK(manager.load_output("s", 4) == v4);
    CHECK(manager.load_output("s") == v4);
    CHECK_FALSE(manager.load_output("s", 5));  // never made
    CHECK_FALSE(manager.load_output("s", 0));
    CHECK_FALSE(manager.load_output("s", -1));
    CHECK_FALSE(manager.load_output("other", 2));
    CHECK_FALSE(manager.load_output("never", 1));

    // Each history row carries its own output description.
    checkpoint::HistoryFilter filter;
    filter.stage = "s";
    const auto rows = manager.history(filter);
    REQUIRE(rows.size() == 4);
    REQUIRE(rows[0].output);
    CHECK(rows[0].output->sha256 == fingerprint_of(v1));
    CHECK(rows[0].output->in_database);
    REQUIRE(rows[1].output);
    CHECK(rows[1].output->sha256 == fingerprint_of(v2));
    CHECK(rows[1].output->in_database == dir.is_postgres());  // SQLite: over the limit, a file
    CHECK_FALSE(rows[2].output);
    REQUIRE(rows[3].output);
    CHECK(rows[3].output->size == 100);

    // The last version saved without output: the current output is none, old ones stay.
    manager.save_checkpoint("s", SaveOptions{});
    CHECK_FALSE(manager.load_output("s"));
    CHECK(manager.load_output("s", 2) == v2);
}

TEST_CASE("load_output is empty when the stage is not completed, and old versions still load",
          "[outputs]") {
    TestLocation dir;
    CheckpointManager manager(dir.location(), small_inline());
    const std::string small = "small output";
    const std::string big = binary_bytes(3000, 8);
    manager.save_checkpoint("a", with_output(small));
    manager.save_checkpoint("b", with_output(big));
    CHECK_FALSE(manager.load_output("never-saved"));

    SECTION("cleared") {
        manager.clear_checkpoint("a");
        manager.clear_checkpoint("b");
    }
    SECTION("cleared pipeline-wide") {
        manager.clear_checkpoints();
    }
    SECTION("failed") {
        manager.fail_stage("a", "broke");
        manager.fail_stage("b", "broke");
    }
    SECTION("started again") {
        manager.begin_stage("a");
        manager.begin_stage("b");
    }
    CHECK_FALSE(manager.has_checkpoint("a"));
    CHECK_FALSE(manager.load_output("a"));
    CHECK_FALSE(manager.load_output("b"));
    // The completed rows are still in the history: their outputs load by version.
    CHECK(manager.load_output("a", 1) == small);
    CHECK(manager.load_output("b", 1) == big);
    // And a new save of the stage makes its output current again.
    manager.save_checkpoint("b", with_output("new"));
    CHECK(manager.load_output("b") == "new");
    CHECK(manager.load_output("b", 2) == "new");
    CHECK(manager.load_output("b", 1) == big);
}

TEST_CASE("a stale stage still loads its output", "[outputs]") {
    TestLocation dir;
    CheckpointManager manager(dir.location(), small_inline());
    manager.save_checkpoint("up", with_output("u1"));
    SaveOptions down = with_output(binary_bytes(2000, 9));
    down.inputs = {"up"};
    manager.save_checkpoint("down", down);
    manager.save_checkpoint("up", with_output("u2"));
    CHECK_FALSE(manager.has_checkpoint("down"));
    const auto latest = manager.latest("down");
    REQUIRE(latest);
    CHECK(latest->stale);
    CHECK(manager.load_output("down") == down.output);
}

TEST_CASE("a read-only manager loads outputs and writes nothing", "[outputs]") {
    TestLocation dir;
    const std::string big = binary_bytes(4000, 10);
    {
        CheckpointManager writer(dir.location(), small_inline());
        writer.save_checkpoint("s", with_output(big));
        writer.save_checkpoint("t", with_output("tiny"));
    }
    Options read_only;
    read_only.read_only = true;
    const CheckpointManager reader(dir.location(), read_only);
    CHECK(reader.load_output("s") == big);
    CHECK(reader.load_output("t") == "tiny");
    CHECK(reader.has_checkpoint("s"));
    CHECK(reader.runs().size() == 1);
}

TEST_CASE("a deleted, truncated or grown output file makes the stage stale and loading fail",
          "[outputs][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    const std::string bytes = binary_bytes(8000, 11);
    const std::string sha = fingerprint_of(bytes);
    manager.save_checkpoint("s", with_output(bytes));
    manager.save_checkpoint("fine", with_output(binary_bytes(8000, 12)));
    const fs::path file = manager.outputs_directory() / sha;
    REQUIRE(fs::exists(file));
    REQUIRE(manager.has_checkpoint("s"));
    fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);  // to damage it

    std::string what;
    SECTION("deleted") {
        what = "deleted";
        fs::remove(file);
    }
    SECTION("truncated") {
        what = "truncated";
        fs::resize_file(file, 4000);
    }
    SECTION("truncated to nothing") {
        what = "emptied";
        fs::resize_file(file, 0);
    }
    SECTION("grown") {
        what = "grown";
        write_file(file, bytes + "x");
    }
    INFO("the output file was " << what);
    CHECK_FALSE(manager.has_checkpoint("s"));
    CHECK_FALSE(manager.has_checkpoint("s", ""));
    const auto latest = manager.latest("s");
    REQUIRE(latest);
    CHECK(latest->status == Status::Completed);  // the history is unchanged
    CHECK(latest->version == 1);
    CHECK(latest->stale);
    CHECK_FALSE(latest->stale_reason.empty());
    // stages() says the same as latest().
    bool listed = false;
    for (const auto& stage : manager.stages()) {
        if (stage.stage != "s") continue;
        listed = true;
        CHECK(stage.stale);
        CHECK_FALSE(stage.stale_reason.empty());
    }
    CHECK(listed);

    const std::string message =
        error_of(ErrorCode::OutputDamaged, [&] { (void)manager.load_output("s"); });
    CHECK_THAT(message, Catch::Contains(sha));
    error_of(ErrorCode::OutputDamaged, [&] { (void)manager.load_output("s", 1); });

    // Other stages are not affected.
    CHECK(manager.has_checkpoint("fine"));
    const auto fine = manager.latest("fine");
    REQUIRE(fine);
    CHECK_FALSE(fine->stale);
    CHECK(fine->stale_reason.empty());

    // Putting the right bytes back makes the stage current again (nothing was recorded).
    write_file(file, bytes);
    CHECK(manager.has_checkpoint("s"));
    CHECK(manager.load_output("s") == bytes);
    const auto restored = manager.latest("s");
    REQUIRE(restored);
    CHECK_FALSE(restored->stale);

    // Saving the stage again rewrites the file.
    fs::remove(file);
    manager.save_checkpoint("s", with_output(bytes));
    CHECK(manager.has_checkpoint("s"));
    CHECK(read_file(file) == bytes);
    CHECK(manager.load_output("s") == bytes);
}

TEST_CASE("an output file altered without changing its size is detected when loaded",
          "[outputs][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    const std::string bytes = binary_bytes(6000, 13);
    const std::string sha = fingerprint_of(bytes);
    manager.save_checkpoint("s", with_output(bytes));
    const fs::path file = manager.outputs_directory() / sha;
    std::string altered = bytes;
    altered[3000] = static_cast<char>(altered[3000] ^ 0x01);  // one bit
    fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);
    write_file(file, altered);
    REQUIRE(fs::file_size(file) == bytes.size());

    // has_checkpoint checks the size only (cheap): still true, by the contract.
    CHECK(manager.has_checkpoint("s"));
    const std::string message =
        error_of(ErrorCode::OutputDamaged, [&] { (void)manager.load_output("s"); });
    INFO("message: " << message);
    CHECK_THAT(message, Catch::Contains(file.string()));
    error_of(ErrorCode::OutputDamaged, [&] { (void)manager.load_output("s", 1); });
}

TEST_CASE("an inline output altered in the database is detected when loaded", "[outputs][sqlite]") {
    TempDir dir;
    const std::string bytes = "inline output: " + binary_bytes(200, 14);
    std::string altered = bytes;
    altered[100] = static_cast<char>(altered[100] ^ 0x40);
    {
        CheckpointManager manager(dir.path());
        manager.save_checkpoint("s", with_output(bytes));
    }
    // Wherever the schema keeps it, find the stored bytes and change one of them, as a
    // careless hand edit or a bit flip on disk would.
    int changed = 0;
    {
        RawDb raw(dir / "checkpoints.db");
        std::vector<std::pair<std::string, std::string>> columns;  // (table, column)
        for (const auto& table :
             raw.rows("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE "
                      "'sqlite_%'")) {
            for (const auto& column : raw.rows("SELECT name FROM pragma_table_info(?1)", {table}))
                columns.emplace_back(table, column);
        }
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open_v2((dir / "checkpoints.db").c_str(), &db, SQLITE_OPEN_READWRITE,
                                nullptr) == SQLITE_OK);
        for (const auto& [table, column] : columns) {
            const std::string c = "\"" + column + "\"";
            // The altered bytes keep the stored type (text or blob).
            const std::string sql = "UPDATE \"" + table + "\" SET " + c + " = CASE WHEN typeof(" +
                                    c + ") = 'text' THEN CAST(?1 AS TEXT) ELSE ?1 END WHERE CAST(" +
                                    c + " AS BLOB) = ?2";
            sqlite3_stmt* statement = nullptr;
            REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK);
            sqlite3_bind_blob(statement, 1, altered.data(), static_cast<int>(altered.size()),
                              SQLITE_TRANSIENT);
            sqlite3_bind_blob(statement, 2, bytes.data(), static_cast<int>(bytes.size()),
                              SQLITE_TRANSIENT);
            const int rc = sqlite3_step(statement);
            INFO(sql << ": " << sqlite3_errmsg(db));
            CHECK(rc == SQLITE_DONE);
            sqlite3_finalize(statement);
            changed += sqlite3_changes(db);
        }
        sqlite3_close(db);
    }
    INFO("the output's bytes were found in no column of any table");
    REQUIRE(changed >= 1);

    CheckpointManager manager(dir.path());
    error_of(ErrorCode::OutputDamaged, [&] { (void)manager.load_output("s"); });
    error_of(ErrorCode::OutputDamaged, [&] { (void)manager.load_output("s", 1); });
}

TEST_CASE("an older version's inline output altered in the database fails only that version",
          "[outputs]") {
    // The second direct check of inline outputs (the test above finds the bytes wherever
    // the schema keeps them): here through the documented table, output_data (PostgreSQL:
    // output_chunks), one bit of version 1 flipped, the size unchanged, version 2 left alone.
    TestLocation dir;
    const std::string first = binary_bytes(300, 21);
    const std::string second = binary_bytes(300, 22);
    {
        CheckpointManager manager(dir.location());
        manager.save_checkpoint("s", with_output(first));
        manager.save_checkpoint("s", with_output(second));
    }
    std::string altered = first;
    altered[150] = static_cast<char>(altered[150] ^ 0x01);
    if (dir.is_postgres()) {  // PostgreSQL: output_chunks, one chunk each
        REQUIRE(dir.query("SELECT count(*) FROM output_chunks") == "2");
        dir.exec(
            "UPDATE output_chunks SET data = set_byte(data, 150, get_byte(data, 150) # 1) "
            "WHERE checkpoint_id = (SELECT id FROM checkpoints WHERE stage = 's' AND "
            "version = 1)");
        CHECK(dir.query("SELECT count(*) FROM output_chunks o JOIN checkpoints c ON c.id = "
                        "o.checkpoint_id WHERE c.version = 1 AND encode(sha256(o.data), 'hex') = "
                        "c.output_sha256") == "0");
    } else {
        RawDb raw(dir.location() / "checkpoints.db");
        REQUIRE(raw.value("SELECT count(*) FROM output_data") == "2");
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open_v2((dir.location() / "checkpoints.db").c_str(), &db,
                                SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
        sqlite3_stmt* update = nullptr;
        REQUIRE(sqlite3_prepare_v2(db,
                                   "UPDATE output_data SET data = ?1 WHERE checkpoint_id = "
                                   "(SELECT id FROM checkpoints WHERE stage = 's' AND version = 1)",
                                   -1, &update, nullptr) == SQLITE_OK);
        sqlite3_bind_blob(update, 1, altered.data(), static_cast<int>(altered.size()),
                          SQLITE_TRANSIENT);
        CHECK(sqlite3_step(update) == SQLITE_DONE);
        CHECK(sqlite3_changes(db) == 1);
        sqlite3_finalize(update);
        sqlite3_close(db);
    }
    CheckpointManager manager(dir.location());
    const std::string message =
        error_of(ErrorCode::OutputDamaged, [&] { (void)manager.load_output("s", 1); });
    CHECK_THAT(message, Catch::Contains("'s'"));
    CHECK(manager.load_output("s", 2) == second);
    CHECK(manager.load_output("s") == second);
    CHECK(manager.has_checkpoint("s"));
    const auto problems = manager.verify();
    CHECK(problems.size() == 1);
}

TEST_CASE("a damaged file already under an output's name is not trusted by a save",
          "[outputs][sqlite]") {
    // A file named by the output's SHA-256 but holding other bytes (a leftover, a
    // tampered copy): the save must still leave a checkpoint whose output loads.
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    const std::string bytes = binary_bytes(5000, 15);
    const std::string sha = fingerprint_of(bytes);
    fs::create_directories(manager.outputs_directory());
    const fs::path file = manager.outputs_directory() / sha;

    SECTION("truncated") {
        write_file(file, bytes.substr(0, 2500));
    }
    SECTION("same size, other bytes") {
        write_file(file, binary_bytes(5000, 16));
    }
    ::chmod(file.c_str(), 0600);
    manager.save_checkpoint("s", with_output(bytes));
    CHECK(manager.has_checkpoint("s"));
    CHECK(manager.load_output("s") == bytes);
    CHECK(read_file(file) == bytes);
}

TEST_CASE("identical outputs are stored once, and pruning one user keeps the file for the other",
          "[outputs][sqlite]") {
    TempDir dir;
    const std::string shared = binary_bytes(4000, 17);
    const std::string other = binary_bytes(4000, 18);
    const std::string sha = fingerprint_of(shared);
    // Each step writes through a manager of its own (its run ends at the end of the step):
    // prune never deletes the rows of a run that is still running.
    {
        CheckpointManager writer(dir.path(), small_inline());
        writer.save_checkpoint("a", with_output(shared));
        writer.save_checkpoint("b", with_output(shared));
        CHECK(output_files(writer) == std::set<std::string>{sha});
        const auto a = writer.latest("a");
        const auto b = writer.latest("b");
        REQUIRE(a);
        REQUIRE(b);
        REQUIRE(a->output);
        REQUIRE(b->output);
        CHECK(a->output->sha256 == b->output->sha256);
        // "a" moves on.
        writer.save_checkpoint("a", with_output(other));
    }
    PruneOptions keep_one;
    keep_one.keep_last = 1;
    keep_one.orphan_grace = 0s;
    {
        // Pruning the first version of "a" must keep the file "b" still uses.
        CheckpointManager manager(dir.path(), small_inline());
        const auto first = manager.prune(keep_one);
        CHECK(first.rows_deleted == 1);
        CHECK(first.files_deleted == 0);
        CHECK(first.bytes_freed == 0);
        CHECK(fs::exists(manager.outputs_directory() / sha));
        CHECK(manager.has_checkpoint("b"));
        CHECK(manager.load_output("b") == shared);
        CHECK(manager.load_output("a") == other);
        CHECK_FALSE(manager.load_output("a", 1));  // pruned
        CHECK(manager.verify().empty());
    }
    {
        // "b" moves on too.
        CheckpointManager writer(dir.path(), small_inline());
        writer.save_checkpoint("b", with_output(other));
        CHECK(output_files(writer) == std::set<std::string>{sha, fingerprint_of(other)});
    }
    // Now the file has no user left once b's first version is pruned, and goes.
    CheckpointManager manager(dir.path(), small_inline());
    const auto second = manager.prune(keep_one);
    CHECK(second.rows_deleted == 1);
    CHECK(second.files_deleted == 1);
    CHECK(second.bytes_freed == 4000);
    CHECK_FALSE(fs::exists(manager.outputs_directory() / sha));
    CHECK(output_files(manager) == std::set<std::string>{fingerprint_of(other)});
    CHECK(manager.load_output("a") == other);
    CHECK(manager.load_output("b") == other);
    CHECK(manager.verify().empty());
}

TEST_CASE("saving the same output again keeps one file and loads from every version",
          "[outputs][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    const std::string bytes = binary_bytes(3000, 19);
    for (int i = 0; i < 3; ++i) manager.save_checkpoint("s", with_output(bytes));
    CHECK(output_files(manager) == std::set<std::string>{fingerprint_of(bytes)});
    for (int version = 1; version <= 3; ++version)
        CHECK(manager.load_output("s", version) == bytes);
}

TEST_CASE("many file-backed saves leave no temporary file behind", "[outputs][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    std::set<std::string> expected;
    for (std::uint32_t i = 0; i < 20; ++i) {
        const std::string bytes = binary_bytes(1500 + i * 100, 100 + i);
        manager.save_checkpoint("s" + std::to_string(i), with_output(bytes));
        expected.insert(fingerprint_of(bytes));
    }
    CHECK(output_files(manager) == expected);
    for (const auto& name : output_files(manager)) {
        CHECK(name.size() == 64);
        CHECK(name.find(".tmp") == std::string::npos);
    }
}

TEST_CASE("verify() reports a missing, truncated or altered output, and is clean once repaired",
          "[outputs][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    const std::string bytes = binary_bytes(6000, 20);
    const std::string sha = fingerprint_of(bytes);
    manager.save_checkpoint("s", with_output(bytes));
    manager.save_checkpoint("t", with_output("inline bytes"));
    REQUIRE(manager.verify().empty());
    const fs::path file = manager.outputs_directory() / sha;
    fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);

    std::string altered = bytes;
    altered[0] = static_cast<char>(altered[0] ^ 0x10);
    SECTION("missing") {
        fs::remove(file);
    }
    SECTION("truncated") {
        fs::resize_file(file, 10);
    }
    SECTION("altered, same size") {
        write_file(file, altered);
    }
    const auto problems = manager.verify();
    std::string all;
    for (const auto& problem : problems) all += problem + "\n";
    INFO("verify():\n" << all);
    REQUIRE(problems.size() == 1);
    CHECK_THAT(problems[0], Catch::Contains(sha));

    write_file(file, bytes);
    CHECK(manager.verify().empty());
}

TEST_CASE(
    "Options::max_inline_output: 0 puts every non-empty output in a file, and over 512 MiB "
    "is refused",
    "[outputs][sqlite]") {
    TempDir dir;
    {
        Options none_inline;
        none_inline.max_inline_output = 0;
        CheckpointManager manager(dir.path(), none_inline);
        manager.save_checkpoint("empty", with_output(""));
        manager.save_checkpoint("one", with_output("x"));
        const auto empty = manager.latest("empty");
        const auto one = manager.latest("one");
        REQUIRE(empty);
        REQUIRE(one);
        REQUIRE(empty->output);
        REQUIRE(one->output);
        CHECK(empty->output->in_database);  // 0 bytes: at most the limit
        CHECK_FALSE(one->output->in_database);
        CHECK(output_files(manager) == std::set<std::string>{fingerprint_of("x")});
        CHECK(manager.load_output("empty") == "");
        CHECK(manager.load_output("one") == "x");
    }
    Options largest;
    largest.max_inline_output = std::size_t{512} * 1024 * 1024;
    CHECK_NOTHROW(CheckpointManager(dir.path(), largest));
    Options too_large;
    too_large.max_inline_output = std::size_t{512} * 1024 * 1024 + 1;
    error_of(ErrorCode::InvalidArgument, [&] { CheckpointManager(dir.path(), too_large); });
}

TEST_CASE("an output file that cannot be written fails the save, which records nothing",
          "[outputs][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    manager.save_checkpoint("before");
    // Something that is not a directory where the outputs directory goes.
    write_file(manager.outputs_directory(), "in the way");
    const auto rows = manager.history().size();
    const std::string message = error_of(
        ErrorCode::Io, [&] { manager.save_checkpoint("s", with_output(binary_bytes(5000, 21))); });
    INFO(message);
    CHECK(manager.history().size() == rows);
    CHECK_FALSE(manager.latest("s"));
    CHECK(read_file(manager.outputs_directory()) == "in the way");
    // Outputs stored in the database do not need the directory.
    manager.save_checkpoint("s", with_output("small"));
    CHECK(manager.load_output("s") == "small");
    CHECK(manager.verify().empty());
}

TEST_CASE("only the current version's output file matters to has_checkpoint", "[outputs][sqlite]") {
    TempDir dir;
    CheckpointManager manager(dir.path(), small_inline());
    const std::string old_bytes = binary_bytes(5000, 22);
    manager.save_checkpoint("s", with_output(old_bytes));
    manager.save_checkpoint("s", with_output("now inline"));
    fs::remove(manager.outputs_directory() / fingerprint_of(old_bytes));
    CHECK(manager.has_checkpoint("s"));
    const auto latest = manager.latest("s");
    REQUIRE(latest);
    CHECK_FALSE(latest->stale);
    CHECK(manager.load_output("s") == "now inline");
    error_of(ErrorCode::OutputDamaged, [&] { (void)manager.load_output("s", 1); });

    // The other way round: the current version's file missing, an old one intact.
    const std::string current = binary_bytes(5000, 23);
    manager.save_checkpoint("t", with_output("was inline"));
    manager.save_checkpoint("t", with_output(current));
    fs::remove(manager.outputs_directory() / fingerprint_of(current));
    CHECK_FALSE(manager.has_checkpoint("t"));
    CHECK(manager.load_output("t", 1) == "was inline");
    // A stage saved after it without an output is fresh again.
    manager.save_checkpoint("t");
    CHECK(manager.has_checkpoint("t"));
}
