// Keys (README, "Security"): the key file of Options::key_file, and the keys derived from
// it. Key bytes live only in locked memory (sodium_mlock) that is zeroed when the key goes;
// no message, log line or output ever holds them.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

namespace checkpoint::detail {

// 32 secret bytes, zeroed on destruction. Not copyable.
class SecretKey {
public:
    static constexpr std::size_t size = 32;

    SecretKey();
    ~SecretKey();
    SecretKey(const SecretKey&) = delete;
    SecretKey& operator=(const SecretKey&) = delete;

    unsigned char* data() noexcept { return bytes_; }
    const unsigned char* data() const noexcept { return bytes_; }

private:
    unsigned char bytes_[size];
};

// The key of a key file, and what is derived from it.
struct DatabaseKey {
    SecretKey master;         // the file's 32 bytes
    SecretKey chain;          // keys the history chain (BLAKE2b)
    SecretKey data;           // encrypts fields and output files (XChaCha20-Poly1305)
    std::string key_id;       // 16 hex digits, public: names the key in rows
    std::string check_value;  // 32 bytes, public: tells a wrong key before any write
};

// Reads a key file: 32 bytes, or 64 hex digits and an optional newline. Refuses a file
// that its group or others may read, or that is not a regular file, with Error(Unsafe);
// a missing file is Error(NotFound), a malformed one Error(InvalidArgument). Messages name
// the file, never its contents.
std::shared_ptr<const DatabaseKey> load_key_file(const std::filesystem::path& file);

// Writes a new random key file (64 hex digits and a newline, mode 0600), refusing to
// replace an existing file (Error(InvalidArgument)).
void write_new_key_file(const std::filesystem::path& file);

// Derives `key`'s chain, data key, key id and check value from its master bytes.
void derive_keys(DatabaseKey& key);

}  // namespace checkpoint::detail
