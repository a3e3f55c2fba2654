// checkpoint_bench — the baselines: what a program does without the library.
//
// - Raw SQLite: the same operations written directly against the SQLite C API, on a database
//   with the library's schema, in WAL mode with the same synchronous setting.
// - The original design: a C++ equivalent of the original Python class (one file
//   <dir>/<stage>.checkpoint containing COMPLETED per finished stage), as it was (no fsync)
//   and made durable (fsync of the file and of the directory).
// - Raw fdatasync: a 100-byte write + fdatasync, the disk's limit.
#pragma once

#include "harness.hpp"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace bench {

// The stored timestamp form of the library: "2026-11-27T06:37:48.123Z" (UTC, milliseconds).
std::string utc_timestamp();

// One connection opened with the SQLite C API alone.
class RawDatabase {
public:
    // Opens an existing database read-write, with the busy timeout, journal_mode=WAL and
    // synchronous FULL or NORMAL. With `persist_wal`, the -wal file is kept on close
    // (SQLITE_FCNTL_PERSIST_WAL), as the library does.
    RawDatabase(const std::filesystem::path& file, bool full_sync, int busy_timeout_ms,
                bool persist_wal = false);
    ~RawDatabase();
    RawDatabase(const RawDatabase&) = delete;
    RawDatabase& operator=(const RawDatabase&) = delete;

    sqlite3* handle() const { return db_; }
    void exec(const char* sql);
    // The first column of the first row of `sql`, as an integer.
    std::int64_t query_int(const std::string& sql);
    [[noreturn]] void fail(const std::string& what) const;

private:
    std::filesystem::path file_;
    sqlite3* db_ = nullptr;
};

// A prepared statement of a RawDatabase.
class RawStatement {
public:
    RawStatement(RawDatabase& db, const char* sql);
    ~RawStatement();
    RawStatement(const RawStatement&) = delete;
    RawStatement& operator=(const RawStatement&) = delete;

    // Binds text that outlives the statement's next step (SQLITE_STATIC).
    void bind(int index, std::string_view text);
    void bind(int index, std::int64_t value);
    // Returns true for a row, false when done; throws Failure on an error.
    bool step();
    void reset();
    sqlite3_stmt* get() const { return statement_; }

private:
    RawDatabase& db_;
    sqlite3_stmt* statement_ = nullptr;
};

// Saves the way a program without the library would: prepared BEGIN IMMEDIATE, a single-row
// INSERT INTO checkpoints with the columns the library writes (pipeline, stage, status,
// version, timestamp, run_id, duration_ms, message), prepared COMMIT. Writes its own runs
// row first, so that the row's run exists as in the library's databases.
class RawCheckpointWriter {
public:
    RawCheckpointWriter(const std::filesystem::path& file, bool full_sync, int busy_timeout_ms);
    void save(std::string_view stage);
    RawDatabase& database() { return db_; }

private:
    RawDatabase db_;
    std::string run_id_;
    RawStatement begin_;
    RawStatement insert_;
    RawStatement commit_;
    RawStatement rollback_;
};

// The prepared point lookup: SELECT 1 FROM stage_heads WHERE pipeline=? AND stage=? AND
// status='completed'.
class RawLookup {
public:
    explicit RawLookup(const std::filesystem::path& file);
    bool has(std::string_view stage);

private:
    RawDatabase db_;
    RawStatement lookup_;
};

// The original design, in C++: save writes <dir>/<stage>.checkpoint containing COMPLETED;
// has is "the file exists"; clear deletes the files one by one. `durable` adds what the
// original lacked: fsync of the file, and of the directory after creating or deleting.
class OriginalCheckpointManager {
public:
    OriginalCheckpointManager(std::filesystem::path checkpoint_dir, bool durable);
    void save_checkpoint(std::string_view stage);
    bool has_checkpoint(std::string_view stage) const;
    void clear_checkpoints();
    const std::filesystem::path& directory() const { return dir_; }

private:
    std::filesystem::path file_of(std::string_view stage) const;
    std::filesystem::path dir_;
    bool durable_;
    Fd dir_fd_;
};

// What storing a stage's output costs without checkpoint: `bytes` written to a temporary
// file in `directory`, fsynced, renamed to `name`, and the directory fsynced.
void write_file_durably(const std::filesystem::path& directory, const std::string& name,
                        std::string_view bytes);

// The whole content of `file`.
std::string read_file(const std::filesystem::path& file);

// The disk's limit: overwrite 100 bytes at offset 0 and fdatasync, in a loop.
class FdatasyncLoop {
public:
    explicit FdatasyncLoop(const std::filesystem::path& file);
    void write_and_sync();

private:
    std::filesystem::path file_;
    Fd fd_;
};

}  // namespace bench
