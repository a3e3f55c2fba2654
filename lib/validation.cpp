#include "validation.hpp"

#include "clock.hpp"
#include "names.hpp"

#include <checkpoint/checkpoint_manager.hpp>
#include <checkpoint/error.hpp>

#include <chrono>

namespace checkpoint::detail {

namespace {

// SaveOptions::metadata as the stored text: compact JSON, empty for an empty object.
std::string metadata_text(const nlohmann::json& metadata, const std::string& stage) {
    const std::string where = "saving stage '" + stage + "': SaveOptions::metadata ";
    if (metadata.is_null()) return {};
    if (!metadata.is_object()) {
        throw Error(ErrorCode::InvalidArgument, where + "must be a JSON object (it is " +
                                                    metadata.type_name() +
                                                    "); nothing was written");
    }
    if (metadata.empty()) return {};
    std::string text;
    try {
        text = metadata.dump();  // strict: invalid UTF-8 throws
    } catch (const nlohmann::json::exception&) {
        throw Error(ErrorCode::InvalidArgument,
                    where + "holds a string that is not valid UTF-8; nothing was written");
    }
    if (text.size() > max_metadata_bytes) {
        throw Error(ErrorCode::InvalidArgument,
                    where + "is " + std::to_string(text.size()) + " bytes as JSON, more than " +
                        std::to_string(max_metadata_bytes) +
                        "; store large data as the output instead. Nothing was written");
    }
    return text;
}

}  // namespace

void check_options(const std::filesystem::path& directory, const Options& options) {
    validate_name(options.pipeline, "pipeline name");
    if (options.busy_timeout.count() < 0 || options.busy_timeout > std::chrono::hours(24)) {
        throw Error(ErrorCode::InvalidArgument, "invalid Options::busy_timeout: " +
                                                    std::to_string(options.busy_timeout.count()) +
                                                    " ms; give 0 ms to 24 hours");
    }
    if (options.reconnect_timeout.count() < 0 ||
        options.reconnect_timeout > std::chrono::hours(24)) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid Options::reconnect_timeout: " +
                        std::to_string(options.reconnect_timeout.count()) +
                        " ms; give 0 ms to 24 hours");
    }
    const std::filesystem::path file(options.database_file);
    if (options.database_file.empty() || file != file.filename() || file == "." || file == "..") {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid Options::database_file '" + options.database_file +
                        "': give a plain file name such as checkpoints.db, without '/'");
    }
    if (directory.empty()) {
        throw Error(ErrorCode::InvalidArgument, "invalid checkpoint directory: the path is empty");
    }
    if (options.max_inline_output > max_inline_output_limit) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid Options::max_inline_output " +
                        std::to_string(options.max_inline_output) + ": give at most " +
                        std::to_string(max_inline_output_limit) + " bytes (512 MiB)");
    }
    if ((options.file_mode & ~0777u) != 0 || (options.file_mode & 0600u) != 0600u) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid Options::file_mode " + std::to_string(options.file_mode) +
                        ": give permission bits (at most 0777) that include owner read "
                        "and write (0600)");
    }
}

HistoryFilter check_filter(const HistoryFilter& filter) {
    HistoryFilter checked = filter;
    if (filter.stage) validate_name(*filter.stage, "stage name");
    if (filter.since) checked.since = normalize_time_bound(*filter.since, "since");
    if (filter.until) checked.until = normalize_time_bound(*filter.until, "until");
    if (filter.limit && *filter.limit < 0) {
        throw Error(ErrorCode::InvalidArgument,
                    "invalid history limit " + std::to_string(*filter.limit) + ": give 0 or more");
    }
    return checked;
}

void check_prune_options(const PruneOptions& options) {
    if (options.keep_last && *options.keep_last < 1) {
        throw Error(ErrorCode::InvalidArgument, "invalid PruneOptions::keep_last " +
                                                    std::to_string(*options.keep_last) +
                                                    ": keep at least 1 version per stage");
    }
    if (options.older_than && options.older_than->count() < 0) {
        throw Error(ErrorCode::InvalidArgument, "invalid PruneOptions::older_than " +
                                                    std::to_string(options.older_than->count()) +
                                                    " s: give 0 or more");
    }
    if (options.orphan_grace.count() < 0) {
        throw Error(ErrorCode::InvalidArgument, "invalid PruneOptions::orphan_grace " +
                                                    std::to_string(options.orphan_grace.count()) +
                                                    " s: give 0 or more");
    }
}

std::string check_save_options(const std::string& stage, const SaveOptions& options) {
    std::string metadata = metadata_text(options.metadata, stage);
    if (!options.fingerprint.empty()) validate_name(options.fingerprint, "fingerprint");
    for (std::size_t i = 0; i < options.inputs.size(); ++i) {
        const std::string& input = options.inputs[i];
        validate_name(input, "input stage name");
        if (input == stage) {
            throw Error(ErrorCode::InvalidArgument, "saving stage '" + stage +
                                                        "': a stage cannot be its own input; "
                                                        "nothing was written");
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (options.inputs[j] == input) {
                throw Error(ErrorCode::InvalidArgument,
                            "saving stage '" + stage + "': input '" + input +
                                "' is named twice; nothing was written");
            }
        }
    }
    return metadata;
}

}  // namespace checkpoint::detail
