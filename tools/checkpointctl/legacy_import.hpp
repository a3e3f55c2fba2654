// Reads a directory written by the original Python design: one `<stage>.checkpoint` text
// file per completed stage, containing `COMPLETED`, possibly followed by `Timestamp: …`.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace checkpointctl {

struct LegacyCheckpoint {
    std::string stage;      // the file name without ".checkpoint"
    std::string timestamp;  // stored form (UTC, ms): the Timestamp line, else the mtime
    std::filesystem::path file;
    bool timestamp_written = true;  // false: `timestamp` is the file's modification time
    bool empty_file = false;        // the file is empty (or blank): completed all the same
};

struct LegacyProblem {
    std::filesystem::path file;
    std::string reason;  // why the file was skipped
};

struct LegacyScan {
    std::vector<LegacyCheckpoint> checkpoints;  // sorted by file name
    std::vector<LegacyProblem> problems;        // unreadable or malformed files, skipped
};

// Scans `directory` (not recursively). Files not ending in ".checkpoint" are ignored.
// Throws std::runtime_error when the directory itself cannot be read.
LegacyScan scan_legacy_directory(const std::filesystem::path& directory);

// The content of one legacy file: `COMPLETED` on its first non-blank line, then at most one
// `Timestamp: …` line (blank lines and surrounding spaces ignored); or nothing at all (an
// empty or blank file: the original design treated a file's existence as completion, and
// so does the import). On success, the
// timestamp in stored form, or std::nullopt when the file has no Timestamp line (the
// caller uses the file's modification time); otherwise LegacyFileError, why it is skipped.
struct LegacyFileError {
    std::string reason;
};
std::variant<std::optional<std::string>, LegacyFileError> parse_legacy_file(
    std::string_view content);

// A legacy timestamp in the stored form "YYYY-MM-DDTHH:MM:SS.mmmZ": ISO-8601 with 'T' or
// ' ', optional fraction and optional zone ('Z', ±HH:MM, ±HHMM; without one, the local
// time of this machine, as Python's datetime.now() wrote it), or seconds since the epoch.
std::optional<std::string> parse_legacy_timestamp(std::string_view text);

}  // namespace checkpointctl
