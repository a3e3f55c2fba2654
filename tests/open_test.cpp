// Opening: directories that cannot be used, files that are not checkpoint databases,
// schema versions, migrations and the connection settings.
#include <checkpoint/checkpoint_manager.hpp>

#include "child_process.hpp"
#include "files.hpp"
#include "raw_db.hpp"
#include "temp_dir.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>
#include <random>

using checkpoint::CheckpointManager;
using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::Options;
using checkpoint::test::exec_sql;
using checkpoint::test::query_value;
using checkpoint::test::read_file;
using checkpoint::test::run_command;
using checkpoint::test::TempDir;
using checkpoint::test::write_file;

namespace {

// The on-disk contract: PRAGMA application_id of a checkpoint database ("CHKP").
constexpr int checkpoint_application_id = 0x43484B50;

// The schema version of this source tree: the number of migrations/sqlite/NNNN_*.sql files.
int latest_schema_version() {
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(
             std::filesystem::path(CHECKPOINT_SOURCE_DIR) / "migrations" / "sqlite"))
        if (entry.path().extension() == ".sql") ++count;
    return count;
}

// Opening `dir` must throw Error with `code`, naming the database file, and leave the
// file byte for byte as it was (and create no -wal / -shm beside it).
void expect_refused(const TempDir& dir, ErrorCode code) {
    const auto db = dir.path() / "checkpoints.db";
    const std::string before = read_file(db);
    try {
        CheckpointManager manager(dir.path());
        FAIL("opening did not throw");
    } catch (const Error& e) {
        CHECK(e.code() == code);
        CHECK_THAT(e.what(), Catch::Contains(db.string()));
    }
    CHECK(read_file(db) == before);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "checkpoints.db-wal"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "checkpoints.db-shm"));
}

std::string valid_database_bytes() {
    TempDir source;
    {
        CheckpointManager manager(source.path());
        for (int i = 0; i < 300; ++i) manager.save_checkpoint("stage-" + std::to_string(i));
    }
    exec_sql(source.path() / "checkpoints.db", "PRAGMA wal_checkpoint(TRUNCATE)");
    return read_file(source.path() / "checkpoints.db");
}

}  // namespace

TEST_CASE("a file that is not a database is refused and left unchanged", "[open]") {
    TempDir dir;
    SECTION("random bytes") {
        std::mt19937 random(7);
        std::string bytes(8192, '\0');
        for (auto& byte : bytes) byte = static_cast<char>(random());
        write_file(dir / "checkpoints.db", bytes);
        expect_refused(dir, ErrorCode::NotADatabase);
    }
    SECTION("a text file") {
        write_file(dir / "checkpoints.db", "data_ingestion: COMPLETED\n");
        expect_refused(dir, ErrorCode::NotADatabase);
    }
    SECTION("a truncated database") {
        const std::string bytes = valid_database_bytes();
        REQUIRE(bytes.size() > 8192);
        write_file(dir / "checkpoints.db", bytes.substr(0, bytes.size() / 2));
        expect_refused(dir, ErrorCode::Corrupt);
    }
    SECTION("a database cut inside its header") {
        write_file(dir / "checkpoints.db", valid_database_bytes().substr(0, 60));
        expect_refused(dir, ErrorCode::Corrupt);
    }
    SECTION("another application's SQLite database") {
        exec_sql(dir / "checkpoints.db",
                 "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)");
        expect_refused(dir, ErrorCode::NotADatabase);
    }
    SECTION("a directory where the file should be") {
        std::filesystem::create_directory(dir / "checkpoints.db");
        CHECK_THROWS_MATCHES(CheckpointManager(dir.path()), Error,
                             Catch::Predicate<Error>([](const Error& e) {
                                 return e.code() == ErrorCode::NotADatabase;
                             }));
    }
}

TEST_CASE("an empty file is initialized as a new database", "[open]") {
    TempDir dir;
    write_file(dir / "checkpoints.db", "");
    CheckpointManager manager(dir.path());
    manager.save_checkpoint("s");
    CHECK(manager.has_checkpoint("s"));
}

TEST_CASE("a database written by a newer library is refused without writing", "[open]") {
    TempDir dir;
    {
        CheckpointManager manager(dir.path());
        manager.save_checkpoint("s");
    }
    const int newer = latest_schema_version() + 1;
    exec_sql(dir / "checkpoints.db", "PRAGMA user_version = " + std::to_string(newer) +
                                         "; PRAGMA wal_checkpoint(TRUNCATE)");
    std::filesystem::remove(dir / "checkpoints.db-wal");
    const std::string before = read_file(dir / "checkpoints.db");
    for (bool read_only : {false, true}) {
        Options options;
        options.read_only = read_only;
        try {
            CheckpointManager manager(dir.path(), options);
            FAIL("opening did not throw");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::SchemaTooNew);
            CHECK_THAT(e.what(), Catch::Contains(std::to_string(newer)) &&
                                     Catch::Contains("Upgrade") &&
                                     Catch::Contains("checkpoints.db"));
        }
    }
    CHECK(read_file(dir / "checkpoints.db") == before);
}

TEST_CASE("a new database gets the schema version, application id and migration log",
          "[open][migrations]") {
    TempDir dir;
    { CheckpointManager manager(dir.path()); }
    const auto db = dir / "checkpoints.db";
    const int latest = latest_schema_version();
    CHECK(query_value(db, "PRAGMA user_version") == std::to_string(latest));
    CHECK(query_value(db, "PRAGMA application_id") == std::to_string(checkpoint_application_id));
    CHECK(query_value(db, "SELECT count(*) FROM schema_migrations") == std::to_string(latest));
    CHECK(query_value(db, "SELECT name FROM schema_migrations WHERE version = 1") ==
          "0001_initial.sql");
    CHECK(query_value(db, "PRAGMA journal_mode") == "wal");
    // Opening again applies nothing twice.
    { CheckpointManager manager(dir.path()); }
    CHECK(query_value(db, "SELECT count(*) FROM schema_migrations") == std::to_string(latest));
}

TEST_CASE("a directory that cannot be created or written is a clear error", "[open]") {
    TempDir dir;
    SECTION("a path below a regular file") {
        write_file(dir / "file", "x");
        try {
            CheckpointManager manager(dir / "file" / "checkpoints");
            FAIL("no exception");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::Io);
            CHECK_THAT(e.what(), Catch::Contains((dir / "file" / "checkpoints").string()) &&
                                     Catch::Contains("cannot be created"));
        }
    }
    SECTION("a path that is a regular file") {
        write_file(dir / "file", "x");
        CHECK_THROWS_MATCHES(
            CheckpointManager(dir / "file"), Error,
            Catch::Predicate<Error>([](const Error& e) { return e.code() == ErrorCode::Io; }));
        CHECK(read_file(dir / "file") == "x");
    }
    SECTION("an existing directory nobody may write to (/proc/self)") {
        // Not writable even for root, so this runs everywhere.
        try {
            CheckpointManager manager("/proc/self");
            FAIL("no exception");
        } catch (const Error& e) {
            CHECK(e.code() == ErrorCode::Io);
            CHECK_THAT(e.what(), Catch::Contains("/proc/self"));
        }
    }
}

TEST_CASE("options are checked", "[open]") {
    TempDir dir;
    Options options;
    options.busy_timeout = std::chrono::milliseconds(-1);
    CHECK_THROWS_MATCHES(CheckpointManager(dir.path(), options), Error,
                         Catch::Predicate<Error>([](const Error& e) {
                             return e.code() == ErrorCode::InvalidArgument;
                         }));
    CHECK_THROWS_AS(CheckpointManager("", Options{}), Error);
}

TEST_CASE("Options::database_file names the file inside the directory", "[open]") {
    TempDir dir;
    Options options;
    options.database_file = "etl.db";
    {
        CheckpointManager manager(dir.path(), options);
        manager.save_checkpoint("s");
        CHECK(manager.database_path() == dir / "etl.db");
    }
    CHECK(std::filesystem::exists(dir / "etl.db"));
    CHECK_FALSE(std::filesystem::exists(dir / "checkpoints.db"));
    for (const char* bad : {"", "sub/etl.db", "/etc/etl.db", "..", "."}) {
        INFO(bad);
        options.database_file = bad;
        CHECK_THROWS_MATCHES(CheckpointManager(dir.path(), options), Error,
                             Catch::Predicate<Error>([](const Error& e) {
                                 return e.code() == ErrorCode::InvalidArgument;
                             }));
    }
}

namespace {

unsigned mode_of(const std::filesystem::path& path) {
    struct stat info {};
    REQUIRE(::lstat(path.c_str(), &info) == 0);
    return info.st_mode & 07777;
}

ErrorCode open_error(const std::filesystem::path& dir, const Options& options = {}) {
    try {
        CheckpointManager manager(dir, options);
    } catch (const Error& e) {
        INFO(e.what());
        return e.code();
    }
    FAIL("opening did not throw");
    return ErrorCode::Internal;
}

// Sets the process umask for a scope.
struct Umask {
    explicit Umask(mode_t mask) : previous(::umask(mask)) {}
    ~Umask() { ::umask(previous); }
    mode_t previous;
};

}  // namespace

TEST_CASE("database files are created readable and writable by the owner only", "[security]") {
    TempDir dir;
    Umask umask(022);
    {
        CheckpointManager manager(dir.path());
        manager.save_checkpoint("s");
        CHECK(mode_of(dir / "checkpoints.db") == 0600);
        CHECK(mode_of(dir / "checkpoints.db-wal") == 0600);
        CHECK(mode_of(dir / "checkpoints.db-shm") == 0600);
    }
    TempDir shared;
    Options options;
    options.file_mode = 0640;
    CheckpointManager manager(shared.path(), options);
    CHECK(mode_of(shared / "checkpoints.db") == 0640);
    for (unsigned bad : {0400u, 0200u, 01777u, 010000u}) {
        INFO(bad);
        Options wrong;
        wrong.file_mode = bad;
        TempDir other;
        CHECK(open_error(other.path(), wrong) == ErrorCode::InvalidArgument);
    }
}

TEST_CASE("another process under umask 000 still creates owner-only files and outputs",
          "[security]") {
    // The second direct check of file modes: a separate process (the test worker), with no
    // umask to hide a wrong mode, creates the database and a file-backed output.
    TempDir dir;
    const auto result = run_command(
        {"/bin/sh", "-c", "umask 000 && exec \"$0\" save-output \"$1\" s 1 5000 --inline-limit 100",
         CHECKPOINT_TEST_WORKER, dir.path().string()});
    INFO("worker stderr: " << result.err);
    REQUIRE(result.exit_code == 0);
    for (const char* name : {"checkpoints.db", "checkpoints.db-wal", "checkpoints.db-shm"}) {
        INFO(name);
        REQUIRE(std::filesystem::exists(dir / name));
        CHECK(mode_of(dir / name) == 0600);
    }
    const auto outputs = dir / "checkpoints.db-outputs";
    CHECK(mode_of(outputs) == 0700);
    int files = 0;
    for (const auto& entry : std::filesystem::directory_iterator(outputs)) {
        INFO(entry.path());
        CHECK(mode_of(entry.path()) == 0600);
        ++files;
    }
    CHECK(files == 1);
}
TEST_CASE("a database that is a symbolic link is refused", "[security]") {
    TempDir dir;
    TempDir elsewhere;
    {
        CheckpointManager manager(elsewhere.path());
        manager.save_checkpoint("s");
    }
    std::filesystem::create_symlink(elsewhere / "checkpoints.db", dir / "checkpoints.db");
    const std::string before = read_file(elsewhere / "checkpoints.db");
    CHECK(open_error(dir.path()) == ErrorCode::Unsafe);
    Options read_only;
    read_only.read_only = true;
    CHECK(open_error(dir.path(), read_only) == ErrorCode::Unsafe);
    CHECK(read_file(elsewhere / "checkpoints.db") == before);
    // A dangling link is refused too, and nothing is created at its target.
    TempDir dangling;
    std::filesystem::create_symlink(dangling / "target.db", dangling / "checkpoints.db");
    CHECK(open_error(dangling.path()) == ErrorCode::Unsafe);
    CHECK_FALSE(std::filesystem::exists(dangling / "target.db"));
}

TEST_CASE("a directory every user may write to is refused unless sticky", "[security]") {
    TempDir dir;
    std::filesystem::permissions(dir.path(), std::filesystem::perms(0777));
    try {
        CheckpointManager manager(dir.path());
        FAIL("no exception");
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::Unsafe);
        CHECK_THAT(e.what(), Catch::Contains(dir.path().string()) && Catch::Contains("0777") &&
                                 Catch::Contains("chmod o-w"));
    }
    CHECK_FALSE(std::filesystem::exists(dir / "checkpoints.db"));
    // With the sticky bit (like /tmp), others cannot replace our files: allowed.
    std::filesystem::permissions(dir.path(), std::filesystem::perms(01777));
    {
        CheckpointManager manager(dir.path());
        manager.save_checkpoint("s");
    }
    // But there, a database file that belongs to another user is refused.
    if (::geteuid() != 0) {
        WARN("skipped the foreign-owner case: it needs root to give a file to another user");
        return;
    }
    REQUIRE(::chown((dir / "checkpoints.db").c_str(), 65534, 65534) == 0);
    CHECK(open_error(dir.path()) == ErrorCode::Unsafe);
}
