#include "database.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>

namespace checkpointctl {

std::shared_ptr<spdlog::logger> tool_logger(bool verbose) {
    auto logger = std::make_shared<spdlog::logger>(
        "checkpointctl", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    // Failures reach the user once, as the tool's own error line: the library's log lines
    // only with --verbose.
    logger->set_level(verbose ? spdlog::level::debug : spdlog::level::off);
    logger->set_pattern("checkpointctl: %v");
    return logger;
}

int exit_code_for(checkpoint::ErrorCode code) {
    using checkpoint::ErrorCode;
    switch (code) {
        case ErrorCode::InvalidArgument:
            return exit_usage;
        case ErrorCode::NotFound:
            return exit_not_found;
        case ErrorCode::NotADatabase:
        case ErrorCode::Corrupt:
        case ErrorCode::Unsafe:
        case ErrorCode::OutputDamaged:
            return exit_not_a_database;
        case ErrorCode::SchemaTooNew:
        case ErrorCode::SchemaTooOld:
            return exit_schema;
        case ErrorCode::Busy:
            return exit_busy;
        case ErrorCode::Unavailable:
            return exit_unavailable;
        case ErrorCode::KeyRequired:
            return exit_key_required;
        case ErrorCode::WrongKey:
            return exit_wrong_key;
        default:
            return exit_error;
    }
}

Location locate(const Settings& settings) {
    Location location{settings.url.empty() ? settings.dir : settings.url, {}};
    location.options.pipeline = settings.pipeline;
    location.options.key_file = settings.key_file;
    location.options.logger = tool_logger(settings.verbose);
    location.options.busy_timeout = std::chrono::milliseconds(settings.busy_timeout_ms);
    if (settings.url.empty() && !settings.db.empty()) {
        const std::filesystem::path file(settings.db);
        location.directory = file.has_parent_path() ? file.parent_path() : ".";
        location.options.database_file = file.filename().string();
    }
    return location;
}

checkpoint::CheckpointManager open_database(const Settings& settings, bool read_only) {
    Location location = locate(settings);
    location.options.read_only = read_only;
    const auto file = location.directory / location.options.database_file;
    if (!read_only && settings.url.empty() && !std::filesystem::exists(file)) {
        throw checkpoint::Error(
            checkpoint::ErrorCode::NotFound,
            "checkpoint database " + file.string() + ": does not exist. Check --dir / --db");
    }
    return checkpoint::CheckpointManager(location.directory, location.options);
}

checkpoint::CheckpointManager open_pipeline(const Settings& settings, const std::string& pipeline) {
    Settings other = settings;
    other.pipeline = pipeline;
    return open_database(other, true);
}

}  // namespace checkpointctl
