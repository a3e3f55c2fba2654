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
FileState inspect_database_file(const std::filesystem::path& path);

// fsyncs a directory, so that a file just created in it survives a power loss.
// Throws Error(Io) naming the directory on failure.
void sync_directory(const std::filesystem::path& directory);

}  // namespace checkpoint::detail
