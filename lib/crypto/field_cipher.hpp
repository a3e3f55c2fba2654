// Encryption at rest (README, "Security"): what a user put in — message, metadata, stored
// outputs — sealed with XChaCha20-Poly1305 under the key file's data key, with associated
// data binding each ciphertext to its key, pipeline, stage, version and field, so that a
// ciphertext moved to another row does not decrypt (Error(OutputDamaged)). Output files use
// libsodium's secretstream, chunk by chunk, bound to the output's SHA-256 (their name).
// Backend-neutral: the backends call these inside their write transaction, once the row's
// version is known.
#pragma once

#include "crypto/secret_key.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace checkpoint::detail {

// Where a field belongs: the associated data of its ciphertext.
struct FieldContext {
    std::string_view pipeline;
    std::string_view stage;  // "" for a pipeline-wide clear
    std::int64_t version = 0;
    std::string_view field;  // "message", "metadata", "output"
};

// Binary form: a 24-byte nonce, then the ciphertext and its 16-byte tag.
std::string seal_field(const DatabaseKey& key, const FieldContext& context,
                       std::string_view plaintext);
// Throws Error(OutputDamaged) naming `where` when `sealed` does not decrypt with this key
// in this context (altered, or moved from another row).
std::string open_field(const DatabaseKey& key, const FieldContext& context, std::string_view sealed,
                       const std::string& where);

// Text form, for text columns (message, metadata): "ckpt-enc1:<key id>:<base64>".
std::string seal_text_field(const DatabaseKey& key, const FieldContext& context,
                            std::string_view plaintext);
// True when `text` has the text form.
bool is_sealed_text(std::string_view text) noexcept;
std::string open_text_field(const DatabaseKey& key, const FieldContext& context,
                            std::string_view text, const std::string& where);

// Output files: the size of the encrypted file of a `plain_size`-byte output, and the
// plaintext size an encrypted file of `file_size` bytes holds (std::nullopt: no plaintext
// size gives that file size: truncated or altered).
std::uint64_t sealed_file_size(std::uint64_t plain_size) noexcept;
std::optional<std::uint64_t> plain_file_size(std::uint64_t file_size) noexcept;

// Writes `bytes` to the open file `fd` as a secretstream bound to `sha256_hex`, 64 KiB at a
// time. Returns false with errno set when a write fails.
bool write_sealed_file(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                       std::string_view bytes);
// Reads the secretstream of `fd` (`file_size` bytes) into `plain_size` bytes, decrypting
// 64 KiB at a time. Throws Error(OutputDamaged) naming `where` when it does not decrypt
// (altered, truncated, another output's file), Error(Io) when it cannot be read.
std::string read_sealed_file(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                             std::uint64_t plain_size, const std::string& where);

}  // namespace checkpoint::detail
