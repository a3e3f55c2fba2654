// SqliteBackend::backup: a consistent online copy of the database and its output files.
#include "sqlite/db_file.hpp"
#include "sqlite/output_files.hpp"
#include "sqlite/sqlite_backend_impl.hpp"

#include <checkpoint/error.hpp>

#include <cstdio>
#include <string>
#include <system_error>

#include <sqlite3.h>
#include <unistd.h>

namespace checkpoint::detail {

namespace {

// A raw connection to the copy being written, closed however the backup ends.
struct CopyConnection {
    sqlite3* db = nullptr;
    ~CopyConnection() { sqlite3_close_v2(db); }
};

// Removes the unfinished copy unless the backup succeeded.
struct PartialCopy {
    std::filesystem::path file;
    bool keep = false;
    ~PartialCopy() {
        if (keep) return;
        std::error_code ignored;
        std::filesystem::remove(file, ignored);
        std::filesystem::remove(file.string() + "-journal", ignored);
    }
};

}  // namespace

// The copy is written to a temporary name in `destination`, filled by SQLite's backup API
// in one step (one read snapshot of the source: writers of other processes go on, and the
// copy holds exactly the transactions committed before it began), switched to the rollback
// journal so that it is one self-contained file, fsynced; then the output files its rows
// name are copied (checked against their SHA-256 on the way), and only then is the file
// renamed to its final name: a database file in `destination` is always a complete backup.
void SqliteBackend::backup(const std::filesystem::path& destination) {
    Impl& s = *impl_;
    const std::filesystem::path target = destination / s.config.database_file;
    const std::string where = "backup of " + s.description + " into " + destination.string();
    std::error_code error;
    std::filesystem::create_directories(destination, error);
    if (error || !std::filesystem::is_directory(destination)) {
        throw Error(ErrorCode::Io, where + ": the directory cannot be created (" +
                                       (error ? error.message() : "not a directory") +
                                       "). Choose a writable location");
    }
    if (std::filesystem::exists(std::filesystem::symlink_status(target))) {
        throw Error(ErrorCode::InvalidArgument,
                    where + ": " + target.string() +
                        " already exists; nothing was written. Choose a new directory, or "
                        "move the old backup aside");
    }
    PartialCopy partial{
        destination / (s.config.database_file + ".backup-" + std::to_string(::getpid()) + ".tmp")};
    std::filesystem::remove(partial.file, error);
    create_database_file(partial.file, s.config.file_mode);

    CopyConnection copy;
    const auto check = [&](int rc, const char* step) {
        if (rc == SQLITE_OK || rc == SQLITE_DONE) return;
        const std::string detail = copy.db ? sqlite3_errmsg(copy.db) : sqlite3_errstr(rc);
        throw Error(rc == SQLITE_FULL ? ErrorCode::DiskFull : ErrorCode::Io,
                    where + " failed while " + step + " (" + detail +
                        "); nothing was left behind. Check the free space and permissions of " +
                        destination.string());
    };
    check(sqlite3_open_v2(partial.file.c_str(), &copy.db,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, nullptr),
          "opening the copy");
    {
        sqlite3_backup* backup = sqlite3_backup_init(copy.db, "main", s.db->getHandle(), "main");
        if (backup == nullptr) {
            check(sqlite3_errcode(copy.db), "starting the copy");
            check(SQLITE_ERROR, "starting the copy");
        }
        const int stepped = sqlite3_backup_step(backup, -1);
        const int finished = sqlite3_backup_finish(backup);
        if (stepped == SQLITE_BUSY || stepped == SQLITE_LOCKED) {
            throw Error(ErrorCode::Busy, where +
                                             " failed: the database stayed locked by another "
                                             "connection; nothing was left behind. Retry");
        }
        check(stepped, "copying the pages");
        check(finished, "copying the pages");
    }
    check(sqlite3_exec(copy.db, "PRAGMA journal_mode = DELETE", nullptr, nullptr, nullptr),
          "making the copy self-contained");

    // The output files the copied rows name, from the copy itself (its snapshot).
    const std::filesystem::path outputs =
        detail::outputs_directory(destination, s.config.database_file);
    sqlite3_stmt* files = nullptr;
    check(sqlite3_prepare_v2(copy.db,
                             "SELECT DISTINCT output_sha256, output_size FROM checkpoints "
                             "WHERE output_sha256 IS NOT NULL AND output_in_database = 0",
                             -1, &files, nullptr),
          "listing the output files");
    try {
        int rc = SQLITE_ROW;
        while ((rc = sqlite3_step(files)) == SQLITE_ROW) {
            const std::string sha256(reinterpret_cast<const char*>(sqlite3_column_text(files, 0)));
            const auto size = static_cast<std::uint64_t>(sqlite3_column_int64(files, 1));
            if (detail::output_file_size(outputs, sha256) == size) continue;  // a rerun's copy
            const std::string bytes = detail::read_output_file(s.outputs, sha256, size);
            write_output_file(outputs, sha256, bytes, s.config.file_mode);
        }
        check(rc, "listing the output files");
    } catch (...) {
        sqlite3_finalize(files);
        throw;
    }
    sqlite3_finalize(files);
    check(sqlite3_close_v2(copy.db), "closing the copy");
    copy.db = nullptr;
    {
        FILE* file = std::fopen(partial.file.c_str(), "r+b");
        const bool synced = file != nullptr && ::fsync(::fileno(file)) == 0;
        if (file) std::fclose(file);
        if (!synced) check(SQLITE_IOERR, "syncing the copy");
    }
    std::filesystem::rename(partial.file, target, error);
    if (error) check(SQLITE_IOERR, "renaming the copy");
    partial.keep = true;
    sync_directory(destination);
}

}  // namespace checkpoint::detail
