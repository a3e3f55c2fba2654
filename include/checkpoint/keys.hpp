// checkpoint — key files for Options::key_file (README, "Security").
#pragma once

#include <checkpoint/export.hpp>

#include <filesystem>

namespace checkpoint {

// Writes a new key file: 32 random bytes as 64 hexadecimal digits and a newline, mode 0600,
// fsynced. Never replaces a file: throws Error(InvalidArgument) when `file` exists, and
// Error(Io) when it cannot be written (then nothing is left behind). Thread-safe. The key
// appears in no message or log line.
CHECKPOINT_EXPORT void generate_key_file(const std::filesystem::path& file);

}  // namespace checkpoint
