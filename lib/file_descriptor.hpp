// A POSIX file descriptor owned by a scope.
#pragma once

#include <unistd.h>

namespace checkpoint::detail {

// Closes the descriptor (when valid) on scope exit.
struct FileDescriptor {
    int fd = -1;
    FileDescriptor() = default;
    explicit FileDescriptor(int descriptor) : fd(descriptor) {}
    ~FileDescriptor() {
        if (fd >= 0) ::close(fd);
    }
    FileDescriptor(const FileDescriptor&) = delete;
    FileDescriptor& operator=(const FileDescriptor&) = delete;
    FileDescriptor(FileDescriptor&& other) noexcept : fd(other.fd) { other.fd = -1; }
};

}  // namespace checkpoint::detail
