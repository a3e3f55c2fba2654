#include "sha256.hpp"

#include "file_descriptor.hpp"

#include <checkpoint/error.hpp>

#include <cerrno>
#include <cstring>
#include <vector>

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>

namespace checkpoint::detail {

namespace {

crypto_hash_sha256_state& state_of(unsigned char* storage) {
    static_assert(sizeof(crypto_hash_sha256_state) <= 128);
    static_assert(alignof(crypto_hash_sha256_state) <= 8);
    return *reinterpret_cast<crypto_hash_sha256_state*>(storage);
}

void initialize_sodium() {
    // Thread-safe once: picks the fastest implementation for this CPU.
    static const int status = sodium_init();
    if (status < 0) throw Error(ErrorCode::Internal, "libsodium failed to initialize");
}

}  // namespace

Sha256::Sha256() {
    initialize_sodium();
    crypto_hash_sha256_init(&state_of(state_));
}

void Sha256::update(std::string_view bytes) {
    crypto_hash_sha256_update(&state_of(state_),
                              reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
}

std::string Sha256::finish() {
    std::string digest(crypto_hash_sha256_BYTES, '\0');
    crypto_hash_sha256_final(&state_of(state_), reinterpret_cast<unsigned char*>(digest.data()));
    return digest;
}

std::string sha256(std::string_view bytes) {
    Sha256 hasher;
    hasher.update(bytes);
    return hasher.finish();
}

std::string to_hex(std::string_view bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(bytes.size() * 2);
    for (const char c : bytes) {
        const auto byte = static_cast<unsigned char>(c);
        hex.push_back(digits[byte >> 4]);
        hex.push_back(digits[byte & 0x0f]);
    }
    return hex;
}

bool is_sha256_hex(std::string_view text) noexcept {
    if (text.size() != 64) return false;
    for (const char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

std::uint64_t hash_file(const std::filesystem::path& file, Sha256& hasher, bool no_follow) {
    const int flags = O_RDONLY | O_CLOEXEC | (no_follow ? O_NOFOLLOW : 0);
    FileDescriptor input(::open(file.c_str(), flags));
    if (input.fd < 0) {
        const int error = errno;
        if (error == ENOENT) {
            throw Error(ErrorCode::NotFound, "file " + file.string() + " does not exist");
        }
        throw Error(ErrorCode::Io, "file " + file.string() + " cannot be opened (" +
                                       std::strerror(error) + "). Check its permissions");
    }
    struct stat info {};
    if (::fstat(input.fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        throw Error(ErrorCode::Io,
                    "file " + file.string() + " is not a regular file; give a regular file");
    }
    std::vector<char> block(1 << 20);
    std::uint64_t total = 0;
    for (;;) {
        const ssize_t got = ::read(input.fd, block.data(), block.size());
        if (got == 0) break;
        if (got < 0) {
            if (errno == EINTR) continue;
            throw Error(ErrorCode::Io,
                        "file " + file.string() + " cannot be read (" + std::strerror(errno) + ")");
        }
        hasher.update(std::string_view(block.data(), static_cast<std::size_t>(got)));
        total += static_cast<std::uint64_t>(got);
    }
    return total;
}

}  // namespace checkpoint::detail
