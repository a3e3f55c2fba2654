#include "db_file.hpp"

#include <checkpoint/error.hpp>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace checkpoint::detail {

namespace {

constexpr std::size_t header_size = 100;
constexpr char sqlite_magic[] = "SQLite format 3";  // followed by a NUL: 16 bytes

std::uint32_t big_endian(const unsigned char* bytes, int count) {
    std::uint32_t value = 0;
    for (int i = 0; i < count; ++i) value = (value << 8) | bytes[i];
    return value;
}

std::string describe(const std::filesystem::path& path) {
    return "checkpoint database " + path.string();
}

// Closes a file descriptor on scope exit.
struct FileDescriptor {
    int fd;
    ~FileDescriptor() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

FileState inspect_database_file(const std::filesystem::path& path) {
    FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    if (file.fd < 0) {
        if (errno == ENOENT) return FileState::Missing;
        if (errno == ENOTDIR) {
            throw Error(ErrorCode::NotFound,
                        describe(path) + ": does not exist: " + path.parent_path().string() +
                            " is not a directory. Check the path");
        }
        throw Error(ErrorCode::Io, describe(path) + ": cannot be read (" + std::strerror(errno) +
                                       "); check its permissions");
    }
    struct stat info {};
    if (::fstat(file.fd, &info) != 0) {
        throw Error(ErrorCode::Io,
                    describe(path) + ": cannot be examined (" + std::strerror(errno) + ")");
    }
    if (S_ISDIR(info.st_mode)) {
        throw Error(ErrorCode::NotADatabase,
                    describe(path) + ": is a directory, not a database file; move it aside");
    }
    if (info.st_size == 0) return FileState::Empty;

    std::array<unsigned char, header_size> header{};
    const ssize_t got = ::pread(file.fd, header.data(), header.size(), 0);
    if (got < 0) {
        throw Error(ErrorCode::Io,
                    describe(path) + ": cannot be read (" + std::strerror(errno) + ")");
    }
    const bool magic_ok = static_cast<std::size_t>(got) >= sizeof sqlite_magic &&
                          std::memcmp(header.data(), sqlite_magic, sizeof sqlite_magic) == 0;
    if (!magic_ok) {
        throw Error(ErrorCode::NotADatabase,
                    describe(path) +
                        ": is not an SQLite database (no SQLite header); it was left "
                        "unchanged. Point the manager at another directory, or move the "
                        "file aside");
    }
    if (static_cast<std::size_t>(got) < header_size) {
        throw Error(ErrorCode::Corrupt, describe(path) +
                                            ": is truncated (shorter than its 100-byte "
                                            "header); it was left unchanged. Restore it "
                                            "from a backup or move it aside");
    }
    std::uint32_t page_size = big_endian(&header[16], 2);
    if (page_size == 1) page_size = 65536;
    const std::uint32_t page_count = big_endian(&header[28], 4);
    const bool count_valid =
        page_count != 0 && big_endian(&header[24], 4) == big_endian(&header[92], 4);
    if (page_size < 512 || (page_size & (page_size - 1)) != 0) {
        throw Error(ErrorCode::Corrupt, describe(path) + ": has an invalid page size (" +
                                            std::to_string(page_size) +
                                            "); it was left unchanged. Restore it from a "
                                            "backup or move it aside");
    }
    if (count_valid && static_cast<std::uint64_t>(info.st_size) <
                           static_cast<std::uint64_t>(page_count) * page_size) {
        throw Error(ErrorCode::Corrupt,
                    describe(path) + ": is truncated (" + std::to_string(info.st_size) +
                        " bytes, but its header declares " + std::to_string(page_count) +
                        " pages of " + std::to_string(page_size) +
                        " bytes); it was left unchanged. Restore it from a backup or move "
                        "it aside");
    }
    return FileState::Present;
}

void sync_directory(const std::filesystem::path& directory) {
    FileDescriptor dir{::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd < 0 || ::fsync(dir.fd) != 0) {
        throw Error(ErrorCode::Io, "checkpoint directory " + directory.string() +
                                       ": cannot be synced (" + std::strerror(errno) + ")");
    }
}

}  // namespace checkpoint::detail
