#include "sqlite/db_file.hpp"

#include "file_descriptor.hpp"

#include <checkpoint/error.hpp>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdio>
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

}  // namespace

FileState inspect_database_file(const std::filesystem::path& path, bool shared_directory) {
    FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW)};
    if (file.fd < 0) {
        if (errno == ENOENT) return FileState::Missing;
        if (errno == ELOOP) {
            throw Error(ErrorCode::Unsafe,
                        describe(path) +
                            ": is a symbolic link, which is refused (it could point anywhere). "
                            "Use the real path of the database");
        }
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
    if (shared_directory && info.st_uid != ::geteuid() && info.st_uid != 0) {
        throw Error(ErrorCode::Unsafe,
                    describe(path) + ": belongs to another user (uid " +
                        std::to_string(info.st_uid) +
                        ") in a directory every user may write to; refused. Use a private "
                        "checkpoint directory");
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
    // While another process checkpoints the WAL, page 1 (with the new page count) is
    // written before the file grows: with WAL content present, the size proves nothing,
    // and SQLite itself will find a real truncation when it reads.
    struct stat wal {};
    const bool wal_has_content =
        ::stat((path.string() + "-wal").c_str(), &wal) == 0 && wal.st_size > 0;
    if (count_valid && !wal_has_content &&
        static_cast<std::uint64_t>(info.st_size) <
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

bool check_directory_safety(const std::filesystem::path& directory) {
    struct stat info {};
    if (::stat(directory.c_str(), &info) != 0 || (info.st_mode & S_IWOTH) == 0) return false;
    if ((info.st_mode & S_ISVTX) == 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
        throw Error(
            ErrorCode::Unsafe,
            "checkpoint directory " + directory.string() +
                ": every user may write to it "
                "(mode " +
                mode +
                "), so anyone could replace the database; refused. "
                "Remove the write permission of others (chmod o-w), or use another directory");
    }
    return true;
}

void create_database_file(const std::filesystem::path& path, unsigned mode) {
    FileDescriptor file{::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                               static_cast<mode_t>(mode))};
    if (file.fd < 0 && errno != EEXIST) {
        throw Error(ErrorCode::Io, describe(path) + ": cannot be created (" + std::strerror(errno) +
                                       "). Check that " + path.parent_path().string() +
                                       " is writable");
    }
}

void sync_directory(const std::filesystem::path& directory) {
    FileDescriptor dir{::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
    if (dir.fd < 0 || ::fsync(dir.fd) != 0) {
        throw Error(ErrorCode::Io, "checkpoint directory " + directory.string() +
                                       ": cannot be synced (" + std::strerror(errno) + ")");
    }
}

}  // namespace checkpoint::detail
