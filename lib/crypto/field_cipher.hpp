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
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// The plaintext bytes of each secretstream chunk of an output file (the last one may be
// shorter).
constexpr std::size_t sealed_chunk_bytes = 64 * 1024;

// Writes an output file's secretstream, bound to `sha256_hex`, to the open file `fd`, one
// chunk at a time (so that `checkpointctl rekey` streams files of any size).
class SealedFileWriter {
public:
    SealedFileWriter(int fd, const DatabaseKey& key, const std::string& sha256_hex);
    ~SealedFileWriter();  // wipes the stream's state
    SealedFileWriter(const SealedFileWriter&) = delete;
    SealedFileWriter& operator=(const SealedFileWriter&) = delete;
    // Writes the header. Returns false with errno set when the write fails.
    bool start();
    // Encrypts and writes `piece`: exactly sealed_chunk_bytes, or fewer when `last`.
    // Returns false with errno set when the write fails.
    bool push(std::string_view piece, bool last);

private:
    int fd_;
    std::string ad_;
    const DatabaseKey& key_;
    std::vector<unsigned char> buffer_;
    struct State;
    std::unique_ptr<State> state_;
};

// Reads and decrypts an output file's secretstream (`plain_size` bytes of plaintext) from
// the open file `fd`, one chunk at a time. Throws Error(OutputDamaged) naming `where` when it
// does not decrypt (altered, truncated, another output's file), Error(Io) when it cannot be
// read.
class SealedFileReader {
public:
    SealedFileReader(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                     std::uint64_t plain_size, std::string where);
    ~SealedFileReader();  // wipes the stream's state
    SealedFileReader(const SealedFileReader&) = delete;
    SealedFileReader& operator=(const SealedFileReader&) = delete;
    // Decrypts the next chunk into `out` (room for sealed_chunk_bytes) and returns its size;
    // 0 once the whole output was read.
    std::size_t next(char* out);

private:
    void read_exactly(unsigned char* data, std::size_t size);
    int fd_;
    std::string ad_;
    std::uint64_t plain_size_;
    std::uint64_t offset_ = 0;
    bool started_ = false;
    std::string where_;
    std::vector<unsigned char> buffer_;
    struct State;
    std::unique_ptr<State> state_;
};

// Writes `bytes` to the open file `fd` as a secretstream bound to `sha256_hex`, 64 KiB at a
// time. Returns false with errno set when a write fails.
bool write_sealed_file(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                       std::string_view bytes);
// Reads the secretstream of `fd` into `plain` (resized to `plain_size` bytes), decrypting
// 64 KiB at a time and giving each decrypted piece to `on_piece` (when set) as soon as it is
// decrypted. `plain` is the caller's, so that pieces handed on (to a hashing thread) stay
// valid when this throws. Throws as SealedFileReader does.
void read_sealed_file(int fd, const DatabaseKey& key, const std::string& sha256_hex,
                      std::uint64_t plain_size, const std::string& where, std::string& plain,
                      const std::function<void(std::string_view)>& on_piece = {});

// Re-encrypts a field sealed by seal_field (`sealed_size` bytes, fed in pieces of any size)
// from `old_key` to `new_key` without holding it whole: the PostgreSQL output chunks of
// `checkpointctl rekey`. The result has the same size and layout (nonce, ciphertext, tag);
// reseal() returns the new bytes for the same positions, except the last 16 (the tag),
// which finish() returns once it has checked the old tag.
class FieldResealer {
public:
    FieldResealer(const DatabaseKey& old_key, const DatabaseKey& new_key,
                  const FieldContext& context, std::uint64_t sealed_size, std::string where);
    ~FieldResealer();  // wipes keys and states
    FieldResealer(const FieldResealer&) = delete;
    FieldResealer& operator=(const FieldResealer&) = delete;
    // The next `piece` of the old field; returns the new bytes of the same positions (the
    // tag's positions as zeros). Throws Error(OutputDamaged) when fed past `sealed_size`.
    std::string reseal(std::string_view piece);
    // After the whole old field: its tag checked (Error(OutputDamaged) naming `where` when it
    // does not decrypt with the old key in this context), the new 16-byte tag.
    std::string finish();

private:
    struct State;
    std::unique_ptr<State> state_;
};

// A stored output of a row, as the database holds it: decrypted with `key` when the
// database is encrypted (Error(OutputDamaged) naming `where` when it does not decrypt),
// as it is otherwise. `row_version` is the row's version (the ciphertext's context).
std::string open_stored_output(const DatabaseKey* key, std::string_view pipeline,
                               std::string_view stage, std::int64_t row_version, std::string data,
                               const std::string& where);

}  // namespace checkpoint::detail
