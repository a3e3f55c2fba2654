// checkpoint — copying a whole history from one database to another (SQLite to PostgreSQL
// or back): how a user who outgrows one machine moves.
#pragma once

#include <checkpoint/export.hpp>
#include <checkpoint/options.hpp>

#include <cstdint>
#include <filesystem>
#include <string>

namespace checkpoint {

// What copy_history() copied.
struct CopyResult {
    std::int64_t runs = 0;
    std::int64_t rows = 0;          // history rows
    std::int64_t outputs = 0;       // rows with a stored output
    std::int64_t output_bytes = 0;  // their total size
    // Where from and where to, as CheckpointManager::location() shows them (no password).
    std::string from_location;
    std::string to_location;
};

// Copies the whole history of the database at `from` into the database at `to` (each a
// checkpoint directory or a postgresql:// URI, as CheckpointManager takes them): every
// pipeline, run, history row with its id, version, timestamp, metadata, fingerprint,
// inputs, output and lease token. Live stage leases are not copied, but each leased stage's
// tokens continue above the copied ones (a claim on the target gets a larger token). The
// target keeps each output where its backend keeps outputs of that size (SQLite: in the
// database up to Options::max_inline_output, else in a file; PostgreSQL: always in the
// database). The target's current state is derived from the copied rows, so has_checkpoint,
// latest, stages, runs and verify answer there as at the source.
//
// `from` is opened read-only (it is not changed, and no run is recorded anywhere); `to` is
// created and migrated when missing, and written in one transaction: a copy that fails
// leaves the target as it was (but for output files of rows never committed, which a prune
// removes). Each output's bytes are checked against their SHA-256 on the way.
// `options` gives the target's settings (database_file, durability, busy_timeout,
// max_inline_output, file_mode) and the source's (database_file, busy_timeout); its
// pipeline and read_only are ignored.
// Throws Error: InvalidArgument when `to` already holds runs or history rows (a copy goes
// into an empty database only) or names the same database as `from`; OutputDamaged when a
// source output fails its check; otherwise as CheckpointManager's constructor and writes.
CHECKPOINT_EXPORT CopyResult copy_history(const std::filesystem::path& from,
                                          const std::filesystem::path& to,
                                          const Options& options = {});

}  // namespace checkpoint
