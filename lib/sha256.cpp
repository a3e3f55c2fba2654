#include "sha256.hpp"

#include "file_descriptor.hpp"

#include <checkpoint/error.hpp>

#include <cerrno>
#include <cstring>
#include <exception>
#include <vector>

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

namespace checkpoint::detail {

namespace {

// Fetched once: EVP_MD_fetch resolves the provider's implementation (SHA-NI when the CPU
// has it), which EVP_sha256() would look up again on every init.
const EVP_MD* sha256_method() {
    static EVP_MD* const method = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!method) throw Error(ErrorCode::Internal, "OpenSSL has no SHA-256 (EVP_MD_fetch failed)");
    return method;
}

}  // namespace

struct Sha256::Context {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Context() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : context_(std::make_unique<Context>()) {
    if (!context_->ctx || EVP_DigestInit_ex2(context_->ctx, sha256_method(), nullptr) != 1)
        throw Error(ErrorCode::Internal, "OpenSSL failed to start a SHA-256");
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::string_view bytes) {
    if (EVP_DigestUpdate(context_->ctx, bytes.data(), bytes.size()) != 1)
        throw Error(ErrorCode::Internal, "OpenSSL failed to hash (SHA-256)");
}

std::string Sha256::finish() {
    std::string digest(32, '\0');
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(context_->ctx, reinterpret_cast<unsigned char*>(digest.data()),
                           &length) != 1 ||
        length != digest.size())
        throw Error(ErrorCode::Internal, "OpenSSL failed to finish a SHA-256");
    return digest;
}

BackgroundSha256::BackgroundSha256() : thread_([this] { run(); }) {}

BackgroundSha256::~BackgroundSha256() {
    {
        std::lock_guard lock(mutex_);
        closing_ = true;
        pending_.clear();
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void BackgroundSha256::update(std::string_view bytes) {
    {
        std::lock_guard lock(mutex_);
        pending_.push_back(bytes);
    }
    changed_.notify_all();
}

void BackgroundSha256::run() {
    std::unique_lock lock(mutex_);
    for (;;) {
        changed_.wait(lock, [&] { return closing_ || !pending_.empty(); });
        if (pending_.empty()) return;  // closing, and nothing left
        const std::string_view piece = pending_.front();
        pending_.pop_front();
        lock.unlock();
        try {
            if (!error_) hasher_.update(piece);
        } catch (...) {
            error_ = std::current_exception();  // read by finish(), after the join
        }
        lock.lock();
    }
}

std::string BackgroundSha256::finish() {
    {
        std::lock_guard lock(mutex_);
        closing_ = true;
    }
    changed_.notify_all();
    thread_.join();
    if (error_) std::rethrow_exception(error_);
    return hasher_.finish();
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
