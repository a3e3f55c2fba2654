// Where a conformance test keeps its checkpoints: the backend under test, chosen by the
// environment variable CHECKPOINT_TEST_BACKEND.
//
//   unset or "sqlite"  a fresh temporary directory per test case (as TempDir)
//   "postgres"         a fresh database per test case on the test server (PgDatabase:
//                      CHECKPOINT_TEST_PG_URL, see pg_database.hpp), dropped afterwards
//
// tests/CMakeLists.txt registers each conformance program twice: as is (SQLite), and with
// CHECKPOINT_TEST_BACKEND=postgres for every test case not tagged [sqlite] (the test cases
// about SQLite files: the file itself, its modes, -wal/-shm, output files on disk, the
// fault VFS). Any other value stops the test program (a typo must not silently test SQLite).
#pragma once

#include "pg_database.hpp"
#include "temp_dir.hpp"

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace checkpoint::test {

enum class TestBackend { Sqlite, Postgres };

// CHECKPOINT_TEST_BACKEND, read once.
TestBackend test_backend();
// "sqlite" or "postgres".
const char* test_backend_name();

// One test case's location, on the backend under test. Not copyable.
class TestLocation {
public:
    // On the backend under test (CHECKPOINT_TEST_BACKEND).
    TestLocation();
    // On `backend` whatever the environment says (tests of one backend only).
    explicit TestLocation(TestBackend backend);
    ~TestLocation();
    TestLocation(const TestLocation&) = delete;
    TestLocation& operator=(const TestLocation&) = delete;

    TestBackend backend() const { return backend_; }
    bool is_postgres() const { return backend_ == TestBackend::Postgres; }
    bool is_sqlite() const { return backend_ == TestBackend::Sqlite; }

    // What to give CheckpointManager (and checkpoint_test_worker as DIR): the directory
    // (SQLite), or postgresql://postgres@127.0.0.1:PORT/test_<random> (PostgreSQL).
    const std::filesystem::path& location() const { return location_; }
    // A temporary directory for the test's own files (gates, logs), on both backends. On
    // SQLite it is the checkpoint directory itself.
    const std::filesystem::path& scratch() const { return scratch_.path(); }
    std::filesystem::path operator/(const std::filesystem::path& child) const {
        return scratch() / child;
    }

    // What error messages and log lines call the database: "checkpoints.db" (SQLite), or
    // "checkpoint database 'test_<random>'" (PostgreSQL).
    std::string described() const;

    // Runs `sql` on the database, outside the library (SQLite: a raw connection to
    // <location>/checkpoints.db; PostgreSQL: a superuser connection), and returns its one
    // row, the columns joined by '|' (NULL: empty). The test fails unless there is exactly
    // one row. Write SQL both understand (counts, plain columns; quote "user").
    std::string query(const std::string& sql) const;
    // Every row of `sql` (as query()).
    std::vector<std::string> rows(const std::string& sql) const;
    // Runs `sql` (statements without results); the test fails if the database refuses it.
    void exec(const std::string& sql) const;

    // After a test killed a process that used the database: waits (up to 60 s; the test
    // fails after that) until the server has ended every session of the database but this
    // call's own, so that a commit the killed process had sent is either done or never will
    // be before the test looks. Nothing to wait for on SQLite (the kill ended it all).
    void settle() const;

    // The PostgreSQL database (nullptr on SQLite).
    const PgDatabase* pg() const { return pg_.get(); }

private:
    TestBackend backend_;
    TempDir scratch_;
    std::unique_ptr<PgDatabase> pg_;
    std::filesystem::path location_;
};

}  // namespace checkpoint::test
