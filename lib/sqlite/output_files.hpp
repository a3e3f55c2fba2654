// Stage outputs stored as files: <checkpoint_dir>/<database_file>-outputs/<sha256>, one
// file per distinct content. A file is written to a temporary name, fsynced and renamed
// (then the directory fsynced) before any row may name it; files that no row names are
// deleted only under the database's write lock (see Store::prune).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace checkpoint::detail {

struct DatabaseKey;

// The name of an output's file: <sha256> in a plaintext database, <sha256>.<key id> in an
// encrypted one (so that `checkpointctl rekey` writes the new files beside the old ones,
// and rows switch to them in one commit).
std::string output_file_name(const std::string& sha256_hex, const DatabaseKey* key);

// <directory>/<database_file>-outputs
std::filesystem::path outputs_directory(const std::filesystem::path& directory,
                                        const std::string& database_file);

// Writes `bytes` as <outputs>/<sha256_hex>: creates the directory (mode 0700) if missing,
// writes a temporary file with permission bits `mode`, fsyncs it, renames it over any
// file of that name (an orphan is never reused as it is) and fsyncs the directory.
// Throws Error(DiskFull) or Error(Io) naming the file; a temporary file is removed then.
// With `key` (an encrypted database), the file holds the bytes encrypted (a secretstream
// bound to sha256_hex: crypto/field_cipher.hpp).
void write_output_file(const std::filesystem::path& outputs, const std::string& sha256_hex,
                       std::string_view bytes, unsigned mode, const DatabaseKey* key = nullptr);

// Writes `bytes` as write_output_file does, and returns their SHA-256 (hex), the file's
// name: a plaintext output of 256 KiB or more is hashed on a second thread while it is
// written (to a temporary name: it is renamed once the hash is known).
std::string write_new_output_file(const std::filesystem::path& outputs, std::string_view bytes,
                                  unsigned mode, const DatabaseKey* key = nullptr);

// `checkpointctl rekey`: writes <outputs>/<sha256_hex>.<new key id> (as write_output_file
// does: temporary, fsync, rename, directory fsync) from <sha256_hex>.<old key id>, one
// secretstream chunk at a time (never the whole output in memory), decrypted with
// `old_key`, checked against `size` and the SHA-256, encrypted with `new_key`.
// Throws as read_output_file and write_output_file do; nothing is renamed then.
void reseal_output_file(const std::filesystem::path& outputs, const std::string& sha256_hex,
                        std::uint64_t size, const DatabaseKey& old_key, const DatabaseKey& new_key,
                        unsigned mode);

// The size of the output the regular file <outputs>/<sha256_hex> holds (with `key`: the
// plaintext size its encrypted size stands for); std::nullopt when it is missing (or is
// not a regular file, or no plaintext size gives its encrypted size).
std::optional<std::uint64_t> output_file_size(const std::filesystem::path& outputs,
                                              const std::string& sha256_hex,
                                              const DatabaseKey* key = nullptr);

// The bytes of <outputs>/<sha256_hex>, checked against `size` and the hash.
// Throws Error(OutputDamaged) when the file is missing, has another size or another
// SHA-256; Error(Io) when it cannot be read.
// With `key`, decrypted chunk by chunk (Error(OutputDamaged) when it does not decrypt).
// A large output is hashed on a second thread while the next piece is read.
std::string read_output_file(const std::filesystem::path& outputs, const std::string& sha256_hex,
                             std::uint64_t size, const DatabaseKey* key = nullptr);

// A file of the outputs directory.
struct OutputFileEntry {
    std::string name;
    std::uint64_t size = 0;
    std::chrono::system_clock::time_point modified;
    bool temporary = false;  // a "*.tmp" file (a write in flight, or left by a killed process)
    std::string sha256;      // of the output it holds (not temporary files)
    std::string key_id;      // the key it is encrypted with; empty: plaintext
};

// The regular files of the outputs directory whose name is a SHA-256 or ends in ".tmp";
// empty when the directory does not exist. Throws Error(Io) when it cannot be listed.
std::vector<OutputFileEntry> list_output_files(const std::filesystem::path& outputs);

// Deletes <outputs>/<name>. Returns false (and deletes nothing) when it is missing.
// Throws Error(Io) on any other failure.
bool remove_output_file(const std::filesystem::path& outputs, const std::string& name);

}  // namespace checkpoint::detail
