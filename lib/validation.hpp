// Validation at the API boundary, for every backend: options, history filters and what a
// save carries are checked here, before anything is opened or written, with one message
// for each kind of mistake (leveldb's SanitizeOptions). Names: names.hpp.
#pragma once

#include <checkpoint/options.hpp>
#include <checkpoint/prune.hpp>
#include <checkpoint/records.hpp>
#include <checkpoint/save_options.hpp>

#include <filesystem>
#include <string>

namespace checkpoint::detail {

// The largest Options::max_inline_output: 512 MiB.
inline constexpr std::size_t max_inline_output_limit = 512 * 1024 * 1024;

// Throws Error(InvalidArgument) naming the option and the accepted range unless the
// checkpoint directory and every field of `options` are usable.
void check_options(const std::filesystem::path& directory, const Options& options);

// The filter with its time bounds in the stored form (normalize_time_bound). Throws
// Error(InvalidArgument) for a bad stage name, time bound or a negative limit.
HistoryFilter check_filter(const HistoryFilter& filter);

// Throws Error(InvalidArgument) for bad PruneOptions.
void check_prune_options(const PruneOptions& options);

// Checks what a save of `stage` carries besides its output: the metadata (a JSON object
// of valid UTF-8, at most max_metadata_bytes), the fingerprint, the inputs (valid names,
// not the stage itself, no duplicates). Returns the metadata as stored: compact JSON, empty
// for none. Throws Error(InvalidArgument) saying that nothing was written.
std::string check_save_options(const std::string& stage, const SaveOptions& options);

}  // namespace checkpoint::detail
