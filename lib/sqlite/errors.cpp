// SQLite failures inside SqliteBackend as checkpoint::Error: what was wrong, with which
// file, and what to do.
#include "sqlite/sqlite_backend_impl.hpp"

#include <checkpoint/error.hpp>

#include <new>
#include <string>

#include <SQLiteCpp/Exception.h>
#include <sqlite3.h>

namespace checkpoint::detail {

// Translates a failure inside the store into checkpoint::Error naming the file and
// saying what to do. `action` says what was being done ("saving stage 'x'").
void throw_translated(const std::filesystem::path& path, const std::string& action,
                      std::chrono::milliseconds busy_timeout) {
    try {
        throw;
    } catch (const Error&) {
        throw;
    } catch (const SQLite::Exception& e) {
        const std::string where = describe(path) + ": " + action + " failed: ";
        switch (e.getErrorCode()) {
            case SQLITE_BUSY:
            case SQLITE_LOCKED:
                throw Error(ErrorCode::Busy,
                            where +
                                "the database stayed locked by another connection for "
                                "longer than the busy timeout (" +
                                std::to_string(busy_timeout.count()) +
                                " ms); nothing was written. Retry, or raise "
                                "Options::busy_timeout");
            case SQLITE_FULL:
                throw Error(ErrorCode::DiskFull,
                            where +
                                "the disk is full; nothing was written. Free space on "
                                "the filesystem holding " +
                                path.parent_path().string() + " and retry");
            case SQLITE_CORRUPT:
                throw Error(ErrorCode::Corrupt,
                            where + "the database is damaged (" + e.what() +
                                "). Restore it from a backup, or move it aside to start "
                                "afresh");
            case SQLITE_ERROR:
            case SQLITE_MISMATCH:
                // Our SQL is fixed and was checked against this schema version: an SQL
                // error here means the tables were altered by hand (a dropped column...).
                throw Error(ErrorCode::Corrupt,
                            where + "the database's tables do not match its schema version (" +
                                e.what() +
                                "); they were altered outside the library. Restore the file "
                                "from a backup, or move it aside to start afresh");
            case SQLITE_NOTADB:
                throw Error(ErrorCode::NotADatabase,
                            where +
                                "the file is not an SQLite database; it was left "
                                "unchanged. Move it aside");
            case SQLITE_READONLY:
                throw Error(ErrorCode::ReadOnly,
                            where + "the database or its directory is read-only (" + e.what() +
                                "). Check the permissions of " + path.parent_path().string());
            case SQLITE_CANTOPEN:
            case SQLITE_PERM:
            case SQLITE_AUTH:
                throw Error(ErrorCode::Io, where + "cannot open the file (" + e.what() +
                                               "). Check that " + path.parent_path().string() +
                                               " exists and is writable");
            case SQLITE_IOERR:
            case SQLITE_NOLFS:
            case SQLITE_PROTOCOL:
                throw Error(ErrorCode::Io, where + "an I/O error occurred (" + e.what() +
                                               "); nothing was written. Check the disk "
                                               "and retry");
            default:
                throw Error(ErrorCode::Internal, where + "unexpected SQLite error " +
                                                     std::to_string(e.getExtendedErrorCode()) +
                                                     " (" + e.what() + "). Please report this");
        }
    } catch (const std::filesystem::filesystem_error& e) {
        throw Error(ErrorCode::Io, describe(path) + ": " + action + " failed: " + e.what());
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const std::exception& e) {
        throw Error(ErrorCode::Internal, describe(path) + ": " + action + " failed: " + e.what());
    }
}

}  // namespace checkpoint::detail
