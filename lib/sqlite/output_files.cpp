#include "sqlite/output_files.hpp"

#include "crypto/field_cipher.hpp"

#include "file_descriptor.hpp"
#include "sha256.hpp"
#include "sqlite/db_file.hpp"

#include <checkpoint/error.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace checkpoint::detail {

namespace {

constexpr std::string_view temporary_suffix = ".tmp";

[[noreturn]] void throw_write_error(const std::filesystem::path& file, const char* doing,
                                    int error) {
    if (error == ENOSPC || error == EDQUOT) {
        throw Error(ErrorCode::DiskFull, "output file " + file.string() + ": " + doing +
                                             " failed: the disk is full; nothing was recorded. "
                                             "Free space on its filesystem and retry");
    }
    throw Error(ErrorCode::Io, "output file " + file.string() + ": " + doing + " failed (" +
                                   std::strerror(error) +
                                   "); nothing was recorded. Check the disk and retry");
}

}  // namespace

std::string output_file_name(const std::string& sha256_hex, const DatabaseKey* key) {
    return key ? sha256_hex + "." + key->key_id : sha256_hex;
}

namespace {

// A name no other writer (thread or process) uses at the same time.
std::string temporary_name(const std::string& sha256_hex) {
    static std::atomic<std::uint64_t> counter{0};
    thread_local std::mt19937_64 random{std::random_device{}()};
    return sha256_hex + "." + std::to_string(::getpid()) + "." + std::to_string(counter++) + "." +
           std::to_string(random() & 0xffffffff) + std::string(temporary_suffix);
}

void ensure_directory(const std::filesystem::path& outputs) {
    if (::mkdir(outputs.c_str(), 0700) == 0) {
        sync_directory(outputs.parent_path());
        return;
    }
    const int error = errno;
    struct stat info {};
    if (error == EEXIST && ::lstat(outputs.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) return;
    if (error == EEXIST && S_ISLNK(info.st_mode)) {
        throw Error(ErrorCode::Unsafe, "outputs directory " + outputs.string() +
                                           " is a symbolic link; refused, so that outputs "
                                           "cannot be redirected. Replace it with a directory");
    }
    if (error == EEXIST) {
        throw Error(ErrorCode::Io, "outputs directory " + outputs.string() +
                                       " exists but is not a directory; nothing was recorded. "
                                       "Move it aside");
    }
    throw_write_error(outputs, "creating the directory", error);
}

}  // namespace

std::filesystem::path outputs_directory(const std::filesystem::path& directory,
                                        const std::string& database_file) {
    return directory / (database_file + "-outputs");
}

void write_output_file(const std::filesystem::path& outputs, const std::string& sha256_hex,
                       std::string_view bytes, unsigned mode, const DatabaseKey* key) {
    ensure_directory(outputs);
    const std::filesystem::path final_path = outputs / output_file_name(sha256_hex, key);
    const std::filesystem::path temporary =
        outputs / temporary_name(output_file_name(sha256_hex, key));
    {
        FileDescriptor file(::open(temporary.c_str(),
                                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                   static_cast<mode_t>(mode)));
        if (file.fd < 0) throw_write_error(temporary, "creating", errno);
        try {
            if (key && !write_sealed_file(file.fd, *key, sha256_hex, bytes))
                throw_write_error(temporary, "writing", errno);
            std::size_t written = key ? bytes.size() : 0;
            while (written < bytes.size()) {
                const ssize_t n = ::write(file.fd, bytes.data() + written,
                                          std::min<std::size_t>(bytes.size() - written, 1 << 24));
                if (n < 0) {
                    if (errno == EINTR) continue;
                    throw_write_error(temporary, "writing", errno);
                }
                written += static_cast<std::size_t>(n);
            }
            if (::fsync(file.fd) != 0) throw_write_error(temporary, "syncing", errno);
            if (::rename(temporary.c_str(), final_path.c_str()) != 0)
                throw_write_error(final_path, "renaming", errno);
        } catch (...) {
            ::unlink(temporary.c_str());
            throw;
        }
    }
    sync_directory(outputs);
}

std::optional<std::uint64_t> output_file_size(const std::filesystem::path& outputs,
                                              const std::string& sha256_hex,
                                              const DatabaseKey* key) {
    struct stat info {};
    const std::filesystem::path file = outputs / output_file_name(sha256_hex, key);
    if (::lstat(file.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
    if (key) return plain_file_size(static_cast<std::uint64_t>(info.st_size));
    return static_cast<std::uint64_t>(info.st_size);
}

std::string read_output_file(const std::filesystem::path& outputs, const std::string& sha256_hex,
                             std::uint64_t size, const DatabaseKey* key) {
    const std::filesystem::path path = outputs / output_file_name(sha256_hex, key);
    const std::string damaged = "output file " + path.string() + ": ";
    const std::string what_to_do =
        ". The stage must run again: clear it (checkpointctl clear --stage) or save it anew";
    FileDescriptor file(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (file.fd < 0) {
        const int error = errno;
        if (error == ENOENT || error == ELOOP) {
            throw Error(
                ErrorCode::OutputDamaged,
                damaged + (error == ENOENT ? "is missing" : "is a symbolic link") + what_to_do);
        }
        throw Error(ErrorCode::Io, damaged + "cannot be opened (" + std::strerror(error) + ")");
    }
    struct stat info {};
    if (::fstat(file.fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        throw Error(ErrorCode::OutputDamaged, damaged + "is not a regular file" + what_to_do);
    }
    const std::uint64_t file_size = key ? sealed_file_size(size) : size;
    if (static_cast<std::uint64_t>(info.st_size) != file_size) {
        throw Error(ErrorCode::OutputDamaged, damaged + "holds " + std::to_string(info.st_size) +
                                                  " bytes instead of " + std::to_string(file_size) +
                                                  " (truncated or altered)" + what_to_do);
    }
    std::string bytes;
    if (key) {
        bytes = read_sealed_file(file.fd, *key, sha256_hex, size, "output file " + path.string());
    } else {
        bytes.assign(size, '\0');
    }
    std::size_t got = key ? size : 0;
    while (got < size) {
        const ssize_t n = ::read(file.fd, bytes.data() + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            throw Error(ErrorCode::Io, damaged + "cannot be read (" + std::strerror(errno) + ")");
        }
        if (n == 0) {
            throw Error(ErrorCode::OutputDamaged, damaged + "shrank while being read" + what_to_do);
        }
        got += static_cast<std::size_t>(n);
    }
    if (to_hex(sha256(bytes)) != sha256_hex) {
        throw Error(
            ErrorCode::OutputDamaged,
            damaged + "its content no longer matches its SHA-256 (altered on disk)" + what_to_do);
    }
    return bytes;
}

std::vector<OutputFileEntry> list_output_files(const std::filesystem::path& outputs) {
    std::vector<OutputFileEntry> entries;
    std::error_code error;
    std::filesystem::directory_iterator it(outputs, error);
    if (error) {
        if (error == std::errc::no_such_file_or_directory) return entries;
        throw Error(ErrorCode::Io, "outputs directory " + outputs.string() + " cannot be listed (" +
                                       error.message() + ")");
    }
    for (const auto& entry : it) {
        const std::string name = entry.path().filename().string();
        const bool temporary = name.size() > temporary_suffix.size() &&
                               name.compare(name.size() - temporary_suffix.size(),
                                            temporary_suffix.size(), temporary_suffix) == 0;
        // <sha256> (plaintext) or <sha256>.<key id> (encrypted with that key)
        const std::string sha = name.substr(0, 64);
        const std::string key_id = name.size() > 65 && name[64] == '.' ? name.substr(65) : "";
        const bool keyed_name = key_id.size() == 16 && is_sha256_hex(sha) &&
                                key_id.find_first_not_of("0123456789abcdef") == std::string::npos;
        if (!temporary && !is_sha256_hex(name) && !keyed_name) continue;
        struct stat info {};
        if (::lstat(entry.path().c_str(), &info) != 0 || !S_ISREG(info.st_mode)) continue;
        OutputFileEntry file;
        file.name = name;
        file.sha256 = temporary ? "" : sha;
        file.key_id = temporary ? "" : key_id;
        file.size = static_cast<std::uint64_t>(info.st_size);
        file.modified = std::chrono::system_clock::from_time_t(info.st_mtim.tv_sec) +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::nanoseconds(info.st_mtim.tv_nsec));
        file.temporary = temporary;
        entries.push_back(std::move(file));
    }
    return entries;
}

bool remove_output_file(const std::filesystem::path& outputs, const std::string& name) {
    const std::filesystem::path file = outputs / name;
    if (::unlink(file.c_str()) == 0) return true;
    if (errno == ENOENT) return false;
    throw Error(ErrorCode::Io, "output file " + file.string() + " cannot be deleted (" +
                                   std::strerror(errno) + "). Check the directory's permissions");
}

}  // namespace checkpoint::detail
