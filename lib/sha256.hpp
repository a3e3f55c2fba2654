// SHA-256 for fingerprints and stored outputs: OpenSSL 3's libcrypto, which uses the CPU's
// SHA extensions (SHA-NI) when present. The one place that hashes.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace checkpoint::detail {

// An incremental SHA-256. Not thread-safe; movable, not copyable.
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;
    void update(std::string_view bytes);
    // The 32-byte digest; the hasher may not be used afterwards.
    std::string finish();

private:
    struct Context;
    std::unique_ptr<Context> context_;
};

// A SHA-256 computed on a thread of its own, so that hashing overlaps the caller's I/O
// (load_output reads the next piece of a file while the previous one is hashed).
// update() queues a piece that must stay valid and unchanged until finish() returns (or
// the hasher is destroyed); pieces are hashed in the order given. One caller thread.
class BackgroundSha256 {
public:
    BackgroundSha256();
    ~BackgroundSha256();  // stops the thread (waits for the piece being hashed)
    BackgroundSha256(const BackgroundSha256&) = delete;
    BackgroundSha256& operator=(const BackgroundSha256&) = delete;
    void update(std::string_view bytes);
    // Waits for every queued piece; the 32-byte digest.
    std::string finish();

private:
    void run();
    Sha256 hasher_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::string_view> pending_;
    bool closing_ = false;
    std::exception_ptr error_;  // the hashing thread's, rethrown by finish()
    std::thread thread_;        // last: started once the members above exist
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
