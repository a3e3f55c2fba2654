#include "sqlite/output_files.hpp"

#include "crypto/field_cipher.hpp"

#include "file_descriptor.hpp"
#include "sha256.hpp"
#include "sqlite/db_file.hpp"

#include <checkpoint/error.hpp>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <optional>
#include <random>

#include <fcntl.h>
#include <sodium.h>
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

namespace {

constexpr std::string_view what_to_do =
    ". The stage must run again: clear it (checkpointctl clear --stage) or save it anew";

[[noreturn]] void throw_damaged_hash(const std::filesystem::path& path) {
    throw Error(ErrorCode::OutputDamaged,
                "output file " + path.string() +
                    ": its content no longer matches its SHA-256 (altered on disk)" +
                    std::string(what_to_do));
}

// Opens the output file `path` for reading, checking that it is a regular file of
// `file_size` bytes. Throws Error(OutputDamaged) when it is missing, a symbolic link, not a
// regular file or of another size; Error(Io) when it cannot be opened.
FileDescriptor open_output_file(const std::filesystem::path& path, std::uint64_t file_size) {
    const std::string damaged = "output file " + path.string() + ": ";
    FileDescriptor file(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (file.fd < 0) {
        const int error = errno;
        if (error == ENOENT || error == ELOOP) {
            throw Error(ErrorCode::OutputDamaged,
                        damaged + (error == ENOENT ? "is missing" : "is a symbolic link") +
                            std::string(what_to_do));
        }
        throw Error(ErrorCode::Io, damaged + "cannot be opened (" + std::strerror(error) + ")");
    }
    struct stat info {};
    if (::fstat(file.fd, &info) != 0 || !S_ISREG(info.st_mode)) {
        throw Error(ErrorCode::OutputDamaged,
                    damaged + "is not a regular file" + std::string(what_to_do));
    }
    if (static_cast<std::uint64_t>(info.st_size) != file_size) {
        throw Error(ErrorCode::OutputDamaged, damaged + "holds " + std::to_string(info.st_size) +
                                                  " bytes instead of " + std::to_string(file_size) +
                                                  " (truncated or altered)" +
                                                  std::string(what_to_do));
    }
    return file;
}

}  // namespace

std::filesystem::path outputs_directory(const std::filesystem::path& directory,
                                        const std::string& database_file) {
    return directory / (database_file + "-outputs");
}

namespace {

// Outputs at least this large are hashed on a second thread while they are written or
// read (BackgroundSha256); below it, a thread costs more than it saves.
constexpr std::size_t background_hash_bytes = 256 * 1024;
// The pieces a plaintext file is read in, each hashed while the next one is read.
constexpr std::size_t read_piece_bytes = 2 << 20;

[[noreturn]] void throw_write_error_errno(const std::filesystem::path& file, const char* doing) {
    throw_write_error(file, doing, errno);
}

void write_plain(int fd, const std::filesystem::path& file, std::string_view bytes) {
    std::size_t written = 0;
    while (written < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + written,
                                  std::min<std::size_t>(bytes.size() - written, 1 << 24));
        if (n < 0) {
            if (errno == EINTR) continue;
            throw_write_error_errno(file, "writing");
        }
        written += static_cast<std::size_t>(n);
    }
}

// The one way an output file comes to be: ensures the directory, creates a temporary file
// (a name no other writer uses, starting with `stem`) with permission bits `mode`, lets
// `fill(fd, temporary)` write it and name the file (a name of the outputs directory),
// fsyncs it, renames it over any file of that name (an orphan is never reused as it is) and
// fsyncs the directory. Only then may a row name it. A temporary file is removed on failure.
template <typename Fill>
void write_atomically(const std::filesystem::path& outputs, const std::string& stem, unsigned mode,
                      Fill fill) {
    ensure_directory(outputs);
    const std::filesystem::path temporary = outputs / temporary_name(stem);
    {
        FileDescriptor file(::open(temporary.c_str(),
                                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                   static_cast<mode_t>(mode)));
        if (file.fd < 0) throw_write_error(temporary, "creating", errno);
        try {
            const std::string name = fill(file.fd, temporary);
            if (::fsync(file.fd) != 0) throw_write_error(temporary, "syncing", errno);
            const std::filesystem::path final_path = outputs / name;
            if (::rename(temporary.c_str(), final_path.c_str()) != 0)
                throw_write_error(final_path, "renaming", errno);
        } catch (...) {
            ::unlink(temporary.c_str());
            throw;
        }
    }
    sync_directory(outputs);
}

void write_bytes(int fd, const std::filesystem::path& temporary, const std::string& sha256_hex,
                 std::string_view bytes, const DatabaseKey* key) {
    if (!key) return write_plain(fd, temporary, bytes);
    if (!write_sealed_file(fd, *key, sha256_hex, bytes))
        throw_write_error_errno(temporary, "writing");
}

}  // namespace

void write_output_file(const std::filesystem::path& outputs, const std::string& sha256_hex,
                       std::string_view bytes, unsigned mode, const DatabaseKey* key) {
    const std::string name = output_file_name(sha256_hex, key);
    write_atomically(outputs, name, mode, [&](int fd, const std::filesystem::path& temporary) {
        write_bytes(fd, temporary, sha256_hex, bytes, key);
        return name;
    });
}

std::string write_new_output_file(const std::filesystem::path& outputs, std::string_view bytes,
                                  unsigned mode, const DatabaseKey* key) {
    // Encrypted, the stream is bound to the SHA-256 (its associated data): hash first.
    if (key || bytes.size() < background_hash_bytes) {
        const std::string sha = to_hex(sha256(bytes));
        write_output_file(outputs, sha, bytes, mode, key);
        return sha;
    }
    std::string sha;
    write_atomically(outputs, "output", mode, [&](int fd, const std::filesystem::path& temporary) {
        BackgroundSha256 hasher;
        hasher.update(bytes);  // hashed meanwhile
        write_plain(fd, temporary, bytes);
        sha = to_hex(hasher.finish());
        return output_file_name(sha, nullptr);
    });
    return sha;
}

void reseal_output_file(const std::filesystem::path& outputs, const std::string& sha256_hex,
                        std::uint64_t size, const DatabaseKey& old_key, const DatabaseKey& new_key,
                        unsigned mode) {
    const std::filesystem::path old_path = outputs / output_file_name(sha256_hex, &old_key);
    FileDescriptor input = open_output_file(old_path, sealed_file_size(size));
    const std::string where = "output file " + old_path.string();
    const std::string name = output_file_name(sha256_hex, &new_key);
    write_atomically(outputs, name, mode, [&](int fd, const std::filesystem::path& temporary) {
        SealedFileReader reader(input.fd, old_key, sha256_hex, size, where);
        SealedFileWriter writer(fd, new_key, sha256_hex);
        if (!writer.start()) throw_write_error_errno(temporary, "writing");
        std::vector<char> piece(sealed_chunk_bytes);
        Sha256 hasher;
        std::uint64_t done = 0;
        do {
            const std::size_t got = reader.next(piece.data());
            hasher.update(std::string_view(piece.data(), got));
            done += got;
            if (!writer.push(std::string_view(piece.data(), got), done == size))
                throw_write_error_errno(temporary, "writing");
        } while (done < size);
        sodium_memzero(piece.data(), piece.size());
        if (to_hex(hasher.finish()) != sha256_hex) throw_damaged_hash(old_path);
        return name;
    });
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
    FileDescriptor file = open_output_file(path, key ? sealed_file_size(size) : size);
    // Each piece is hashed (on a second thread, for a large output) while the next one is
    // read or decrypted. `bytes` is declared first so that it outlives the hashing thread,
    // which may still be hashing a piece of it when a read throws.
    std::string bytes;
    std::optional<BackgroundSha256> background;
    std::optional<Sha256> foreground;
    if (size >= background_hash_bytes) {
        background.emplace();
    } else {
        foreground.emplace();
    }
    const auto hash = [&](std::string_view piece) {
        if (background) {
            background->update(piece);
        } else {
            foreground->update(piece);
        }
    };
    if (key) {
        read_sealed_file(file.fd, *key, sha256_hex, size, "output file " + path.string(), bytes,
                         hash);
    } else {
        bytes.assign(size, '\0');
    }
    std::size_t got = key ? size : 0;
    while (got < size) {
        const ssize_t n = ::read(file.fd, bytes.data() + got,
                                 std::min<std::size_t>(size - got, read_piece_bytes));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            throw Error(ErrorCode::Io, "output file " + path.string() + ": cannot be read (" +
                                           std::strerror(errno) + ")");
        }
        if (n == 0) {
            throw Error(ErrorCode::OutputDamaged, "output file " + path.string() +
                                                      ": shrank while being read" +
                                                      std::string(what_to_do));
        }
        hash(std::string_view(bytes.data() + got, static_cast<std::size_t>(n)));
        got += static_cast<std::size_t>(n);
    }
    const std::string digest = background ? background->finish() : foreground->finish();
    if (to_hex(digest) != sha256_hex) throw_damaged_hash(path);
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
