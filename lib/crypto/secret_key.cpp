#include "crypto/secret_key.hpp"

#include <checkpoint/keys.hpp>

#include "file_descriptor.hpp"
#include "sha256.hpp"

#include <checkpoint/error.hpp>

#include <cerrno>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

namespace checkpoint::detail {

namespace {

void initialize() {
    static const int status = sodium_init();
    if (status < 0) throw Error(ErrorCode::Internal, "libsodium failed to initialize");
}

std::string describe(const std::filesystem::path& file) {
    return "key file " + file.string();
}

int hex_digit(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

}  // namespace

SecretKey::SecretKey() {
    initialize();
    sodium_mlock(bytes_, size);  // best effort: without it, the bytes may reach swap
    sodium_memzero(bytes_, size);
}

SecretKey::~SecretKey() {
    sodium_munlock(bytes_, size);  // zeroes them too
    sodium_memzero(bytes_, size);
}

void derive_keys(DatabaseKey& key) {
    crypto_kdf_derive_from_key(key.chain.data(), SecretKey::size, 1, "chkchain", key.master.data());
    crypto_kdf_derive_from_key(key.data.data(), SecretKey::size, 2, "chkpdata", key.master.data());
    SecretKey id_key;
    crypto_kdf_derive_from_key(id_key.data(), SecretKey::size, 3, "chkkeyid", key.master.data());
    unsigned char digest[32];
    static constexpr char id_label[] = "checkpoint key id";
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(id_label),
                       sizeof id_label - 1, id_key.data(), SecretKey::size);
    key.key_id = to_hex(std::string_view(reinterpret_cast<const char*>(digest), 8));
    static constexpr char check_label[] = "checkpoint key check value";
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(check_label),
                       sizeof check_label - 1, id_key.data(), SecretKey::size);
    key.check_value.assign(reinterpret_cast<const char*>(digest), sizeof digest);
    sodium_memzero(digest, sizeof digest);
}

std::shared_ptr<const DatabaseKey> load_key_file(const std::filesystem::path& file) {
    initialize();
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        const int error = errno;
        if (error == ENOENT) {
            throw Error(ErrorCode::NotFound, describe(file) +
                                                 ": does not exist. Create one with "
                                                 "`checkpointctl keygen FILE`");
        }
        if (error == ELOOP) {
            throw Error(ErrorCode::Unsafe,
                        describe(file) + ": is a symbolic link; name the key file itself");
        }
        throw Error(ErrorCode::Io,
                    describe(file) + ": cannot be opened (" + std::strerror(error) + ")");
    }
    FileDescriptor owned(fd);
    struct stat info {};
    if (::fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        throw Error(ErrorCode::Io, describe(file) + ": is not a regular file");
    }
    if ((info.st_mode & 077) != 0) {
        throw Error(
            ErrorCode::Unsafe,
            describe(file) + ": may be read or written by its group or others (mode " +
                [&] {
                    char mode[8];
                    std::snprintf(mode, sizeof mode, "%04o",
                                  static_cast<unsigned>(info.st_mode & 07777));
                    return std::string(mode);
                }() +
                "); make it readable by its owner only: chmod 600 " + file.string());
    }
    if (info.st_uid != ::geteuid()) {
        throw Error(ErrorCode::Unsafe,
                    describe(file) + ": belongs to another user; use a key file of your own");
    }
    // At most 65 bytes matter; read one more to tell a longer file.
    unsigned char buffer[80];
    sodium_mlock(buffer, sizeof buffer);
    std::size_t length = 0;
    for (;;) {
        const ssize_t got = ::read(fd, buffer + length, sizeof buffer - length);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            sodium_munlock(buffer, sizeof buffer);
            throw Error(ErrorCode::Io, describe(file) + ": cannot be read");
        }
        if (got == 0) break;
        length += static_cast<std::size_t>(got);
        if (length == sizeof buffer) break;
    }
    auto key = std::make_shared<DatabaseKey>();
    bool ok = false;
    if (length == SecretKey::size) {
        std::memcpy(key->master.data(), buffer, SecretKey::size);
        ok = true;
    } else if (length == 64 || (length == 65 && buffer[64] == '\n')) {
        ok = true;
        for (std::size_t i = 0; i < SecretKey::size; ++i) {
            const int high = hex_digit(buffer[2 * i]);
            const int low = hex_digit(buffer[2 * i + 1]);
            if (high < 0 || low < 0) {
                ok = false;
                break;
            }
            key->master.data()[i] = static_cast<unsigned char>(high * 16 + low);
        }
    }
    sodium_munlock(buffer, sizeof buffer);  // zeroes it
    if (!ok) {
        throw Error(ErrorCode::InvalidArgument,
                    describe(file) +
                        ": is not a key file (it must hold 32 bytes, or 64 hexadecimal digits "
                        "and a newline); create one with `checkpointctl keygen FILE`");
    }
    derive_keys(*key);
    return key;
}

void write_new_key_file(const std::filesystem::path& file) {
    initialize();
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        const int error = errno;
        if (error == EEXIST) {
            throw Error(ErrorCode::InvalidArgument,
                        describe(file) +
                            ": exists already; it was left unchanged (a key "
                            "file is never overwritten: choose another name)");
        }
        throw Error(ErrorCode::Io,
                    describe(file) + ": cannot be created (" + std::strerror(error) + ")");
    }
    FileDescriptor owned(fd);
    SecretKey key;
    randombytes_buf(key.data(), SecretKey::size);
    char text[2 * SecretKey::size + 2];
    sodium_mlock(text, sizeof text);
    sodium_bin2hex(text, sizeof text, key.data(), SecretKey::size);
    text[2 * SecretKey::size] = '\n';
    std::size_t written = 0;
    const std::size_t total = 2 * SecretKey::size + 1;
    bool failed = false;
    while (written < total) {
        const ssize_t n = ::write(fd, text + written, total - written);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            failed = true;
            break;
        }
        written += static_cast<std::size_t>(n);
    }
    sodium_munlock(text, sizeof text);
    if (failed || ::fsync(fd) != 0) {
        ::unlink(file.c_str());
        throw Error(ErrorCode::Io, describe(file) + ": cannot be written");
    }
}

}  // namespace checkpoint::detail

namespace checkpoint {

void generate_key_file(const std::filesystem::path& file) {
    detail::write_new_key_file(file);
}

}  // namespace checkpoint
