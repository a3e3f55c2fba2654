// checkpoint — the one exception type the library throws.
#pragma once

#include <checkpoint/export.hpp>

#include <stdexcept>
#include <string>
#include <string_view>

namespace checkpoint {

// What went wrong, for callers that react differently to different failures.
// The numeric values are stable: tools may use them as exit codes.
enum class ErrorCode {
    InvalidArgument = 1,  // a stage name, pipeline name or option was rejected; nothing was written
    NotFound = 2,         // the database does not exist and the manager may not create it
    NotADatabase = 3,     // the file is not an SQLite database, or not a checkpoint database
    Corrupt = 4,          // the database is damaged (truncated, malformed pages, broken invariants)
    SchemaTooNew = 5,     // the database was written by a newer version of the library
    SchemaTooOld = 6,     // the database needs a migration that a read-only manager may not apply
    Io = 7,               // the operating system refused a read, write, sync or open
    DiskFull = 8,         // the disk (or quota) is full; nothing of the failed call was written
    Busy = 9,       // another process held the database locked for longer than the busy timeout
    ReadOnly = 10,  // a write was attempted on a read-only manager or a read-only file
    Internal = 11,  // a bug in checkpoint or an unexpected SQLite answer; please report it
    Unsafe = 12,    // the database file is a symbolic link, belongs to another user in a
                    // shared directory, or the directory is writable by every user
    OutputDamaged = 13,  // a stored output is missing, truncated, or does not match its SHA-256
    Unavailable = 14,    // the database server (PostgreSQL) could not be reached, refused the
                         // login, has no free connection, or the database does not exist,
                         // or none came back within Options::reconnect_timeout after a lost
                         // connection; the message names host:port and database (never the
                         // password) and says what to check. Nothing of the failed call was
                         // written, unless the message says that a commit was in flight
    LeaseLost = 15,      // the stage's lease (claim_stage) lapsed or another worker took the
                         // stage over: the fenced write or renewal was refused and wrote
                         // nothing. Stop working on the stage; claim it again if need be
    KeyRequired = 16,    // the database was written with a key (Options::key_file) and none was
                         // given: writes, and verify's history chain, are refused
    WrongKey = 17,       // the key file given is not the database's key (checked before anything
                         // is written)
};

// The stable lower-case name of a code ("invalid_argument", "disk_full", ...).
CHECKPOINT_EXPORT std::string_view to_string(ErrorCode code) noexcept;

// Thrown by every fallible call of the library. what() is one or two sentences that name
// the database file (when there is one) and say what to do. Copyable and cheap to catch
// by const reference.
class CHECKPOINT_EXPORT Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message);

    ErrorCode code() const noexcept { return code_; }

private:
    ErrorCode code_;
};

}  // namespace checkpoint
