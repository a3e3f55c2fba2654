// Looks at a database file before SQLite opens it, so that a file that is not a database
// (or a truncated one) is refused before anything could be written to it.
#pragma once

#include <filesystem>

namespace checkpoint::detail {

enum class FileState {
    Missing,  // no file: it will be created
    Empty,    // a zero-length file: SQLite treats it as a new database
    Present,  // an SQLite database file whose header is plausible
};

// Throws Error(NotFound) when the directory in the path is a file, Error(NotADatabase) when the
// file does not start with the SQLite header, Error(Corrupt) when it is shorter than its header
// says (truncated), Error(Io) when it cannot be read. Never modifies the file.
// A symbolic link is refused (Error(Unsafe)), and so is, when `shared_directory`, a file
// owned by another user (not root).
FileState inspect_database_file(const std::filesystem::path& path, bool shared_directory);

// Refuses (Error(Unsafe)) a directory that every user may write to, unless it has the
// sticky bit (like /tmp), where others cannot replace our files. Returns true when the
// directory is shared that way.
bool check_directory_safety(const std::filesystem::path& directory);

// Creates an empty database file with permission bits `mode` (before umask), so that
// SQLite (and its -wal and -shm files, which copy the mode) never widens them. A file
// created meanwhile by another process is fine. Throws Error(Io) otherwise.
void create_database_file(const std::filesystem::path& path, unsigned mode);

// fsyncs a directory, so that a file just created in it survives a power loss.
// Throws Error(Io) naming the directory on failure.
void sync_directory(const std::filesystem::path& directory);

}  // namespace checkpoint::detail
