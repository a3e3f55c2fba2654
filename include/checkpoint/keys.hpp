// checkpoint — key files for Options::key_file (README, "Security").
#pragma once

#include <checkpoint/export.hpp>
#include <checkpoint/options.hpp>

#include <filesystem>
#include <string>

namespace checkpoint {

// Writes a new key file: 32 random bytes as 64 hexadecimal digits and a newline, mode 0600,
// fsynced. Never replaces a file: throws Error(InvalidArgument) when `file` exists, and
// Error(Io) when it cannot be written (then nothing is left behind). Thread-safe. The key
// appears in no message or log line.
CHECKPOINT_EXPORT void generate_key_file(const std::filesystem::path& file);

// What rekey() did.
struct RekeyResult {
    bool already_done = false;  // the database had the new key already (a rekey killed after
                                // its commit): only the old key's leftovers were deleted
    std::string history_head;   // the re-keyed chain's head (CheckpointManager::history_head)
};

// Re-encrypts the database at `location` (opened as `options` says, options.key_file being
// its current key) under `new_key_file`: every output, metadata and message, and the history
// chain (heads sealed before are no longer valid: seal again). Atomic for readers: they see
// the database under the old key or under the new one, never a mix; writers wait meanwhile
// (their busy timeout). Killed at any point, it leaves a database that one of the two keys
// opens, and running it again finishes. Refuses a chain that does not verify
// (Error(Corrupt)), a database without a key (Error(InvalidArgument)), a key file that is
// neither the database's key nor the new one (Error(WrongKey)). On both backends; on
// PostgreSQL it is one transaction under every pipeline's lock and the chain's (writers of
// every pipeline wait, up to their busy timeout, until it commits), so a rekey killed before
// its commit changed nothing.
CHECKPOINT_EXPORT RekeyResult rekey(const std::filesystem::path& location, const Options& options,
                                    const std::filesystem::path& new_key_file);

}  // namespace checkpoint
