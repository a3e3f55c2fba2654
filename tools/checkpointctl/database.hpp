// How every checkpointctl subcommand finds and opens the database (--dir / --db / --url or
// CHECKPOINT_URL, --pipeline, --busy-timeout, --verbose), and the exit code of each library
// error.
#pragma once

#include "command_line.hpp"

#include <checkpoint/checkpoint_manager.hpp>

#include <filesystem>
#include <memory>
#include <string>

namespace checkpointctl {

// The exit code for a library error (see the table in command_line.hpp).
int exit_code_for(checkpoint::ErrorCode code);

// The library's log lines for the tool: none, or with --verbose every one, on stderr.
std::shared_ptr<spdlog::logger> tool_logger(bool verbose);

// Where the database is (--dir, --db or --url) and how to open it.
struct Location {
    std::filesystem::path directory;  // or the URI
    checkpoint::Options options;
};

Location locate(const Settings& settings);

// Opens an existing database: read-only for the read commands; for writing, only if it
// exists (a typo in --dir must not leave an empty database behind). Throws
// checkpoint::Error (NotFound when there is no database).
checkpoint::CheckpointManager open_database(const Settings& settings, bool read_only);

// The same database read-only, for `pipeline` instead of --pipeline.
checkpoint::CheckpointManager open_pipeline(const Settings& settings, const std::string& pipeline);

}  // namespace checkpointctl
