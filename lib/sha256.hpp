// SHA-256 (libsodium) for fingerprints and stored outputs.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace checkpoint::detail {

// An incremental SHA-256.
class Sha256 {
public:
    Sha256();
    void update(std::string_view bytes);
    // The 32-byte digest; the hasher may not be used afterwards.
    std::string finish();

private:
    alignas(8) unsigned char state_[128];  // crypto_hash_sha256_state (checked in the .cpp)
};

// The 32-byte SHA-256 of `bytes`.
std::string sha256(std::string_view bytes);

// Lower-case hexadecimal of `bytes`.
std::string to_hex(std::string_view bytes);

// True when `text` is 64 lower-case hexadecimal digits.
bool is_sha256_hex(std::string_view text) noexcept;

// Feeds the contents of the regular file `file` (opened without following a final
// symbolic link only when `no_follow`) to `hasher`. Throws Error(NotFound) when it does
// not exist, Error(Io) when it cannot be read or is not a regular file. Returns its size.
std::uint64_t hash_file(const std::filesystem::path& file, Sha256& hasher, bool no_follow = false);

}  // namespace checkpoint::detail
