// checkpoint — what a save may carry besides "done": metadata, a fingerprint, the stage's
// output and the upstream stages it consumed.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace checkpoint {

// Options of CheckpointManager::save_checkpoint(stage, options). Every field may be left
// at its default; SaveOptions{} saves exactly like save_checkpoint(stage).
struct SaveOptions {
    // The user's own fields: a JSON object (null counts as an empty object). Stored as
    // compact JSON text in the `metadata` column, where sqlite3's json_extract() reads it;
    // returned in Checkpoint::metadata. At most max_metadata_bytes once serialized; every
    // string must be valid UTF-8. Automatic fields (duration, host, pid) are not put here.
    // Default: an empty object.
    nlohmann::json metadata = nlohmann::json::object();

    // A string the caller derives from what the stage's result depends on (code version,
    // configuration, input files: see Fingerprint). has_checkpoint(stage, fingerprint) is
    // false when the stored fingerprint differs. Valid UTF-8, at most max_name_bytes bytes,
    // no NUL. Default: empty (none).
    std::string fingerprint;

    // The stage's output, any bytes, loaded back with load_output(). Outputs of at most
    // Options::max_inline_output bytes are stored in the database; larger ones in a file
    // of the outputs directory (see CheckpointManager::outputs_directory) named by their
    // SHA-256, written and fsynced before the row commits. Default: none.
    std::optional<std::string> output;

    // The upstream stages (of the same pipeline) whose results this stage consumed. Each
    // must be completed and up to date (has_checkpoint) when the save is made; the checkpoint
    // records which version of each it used, and becomes stale (has_checkpoint false) once any of
    // them is saved again, cleared, begun or failed, or goes stale itself. No duplicates, not the
    // stage itself. Default: none.
    std::vector<std::string> inputs;
};

// The largest metadata accepted, in bytes of serialized JSON.
inline constexpr std::size_t max_metadata_bytes = 1024 * 1024;

}  // namespace checkpoint
