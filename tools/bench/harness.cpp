#include "harness.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <linux/magic.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bench {

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
    if (values.empty()) throw Failure("no samples to take the median of");
    std::sort(values.begin(), values.end());
    const std::size_t middle = values.size() / 2;
    if (values.size() % 2 == 1) return values[middle];
    return (values[middle - 1] + values[middle]) / 2;
}

double paired_ratio(const std::vector<double>& numerator, const std::vector<double>& denominator) {
    if (numerator.size() != denominator.size()) throw Failure("unpaired samples");
    std::vector<double> ratios;
    for (std::size_t i = 0; i < numerator.size(); ++i)
        ratios.push_back(numerator[i] / denominator[i]);
    return median(ratios);
}

std::vector<std::vector<double>> interleave(int repetitions,
                                            const std::vector<std::function<double()>>& variants,
                                            const std::function<void()>& settle) {
    std::vector<std::vector<double>> samples(variants.size());
    for (int repetition = 0; repetition < repetitions; ++repetition) {
        for (std::size_t k = 0; k < variants.size(); ++k) {
            const std::size_t which = (k + static_cast<std::size_t>(repetition)) % variants.size();
            samples[which].push_back(variants[which]());
            if (settle) settle();
        }
    }
    return samples;
}

// ---- Filesystem ----

FilesystemInfo filesystem_of(const std::filesystem::path& path) {
    struct statfs info {};
    if (::statfs(path.c_str(), &info) != 0) {
        throw Failure("statfs(" + path.string() + "): " + std::strerror(errno));
    }
    const auto magic = static_cast<unsigned long>(info.f_type);
    switch (magic) {
        case EXT4_SUPER_MAGIC:  // also ext2 and ext3: same magic
            return {"ext4 (ext2/3/4 magic 0xEF53)", false};
        case XFS_SUPER_MAGIC:
            return {"xfs", false};
        case BTRFS_SUPER_MAGIC:
            return {"btrfs", false};
        case TMPFS_MAGIC:
            return {"tmpfs (memory: fsync costs nothing, durability figures are meaningless)",
                    true};
        case RAMFS_MAGIC:
            return {"ramfs (memory: fsync costs nothing, durability figures are meaningless)",
                    true};
        case OVERLAYFS_SUPER_MAGIC:
            return {"overlayfs", false};
        case NFS_SUPER_MAGIC:
            return {"nfs", false};
        case 0x2fc12fc1:
            return {"zfs", false};
        case 0xf2f52010:
            return {"f2fs", false};
        default: {
            char text[64];
            std::snprintf(text, sizeof text, "unknown (statfs magic 0x%lx)", magic);
            return {text, false};
        }
    }
}

void sync_filesystem(const std::filesystem::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0 || ::syncfs(fd.get()) != 0) {
        throw Failure("syncfs(" + path.string() + "): " + std::strerror(errno));
    }
}

// ---- Child processes ----

void Fd::reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
}

Fd open_dev_null(int flags) {
    Fd fd(::open("/dev/null", flags | O_CLOEXEC));
    if (fd.get() < 0) throw Failure(std::string("open(/dev/null): ") + std::strerror(errno));
    return fd;
}

std::string self_executable() {
    std::array<char, 4096> buffer{};
    const ssize_t length = ::readlink("/proc/self/exe", buffer.data(), buffer.size() - 1);
    if (length <= 0)
        throw Failure(std::string("readlink(/proc/self/exe): ") + std::strerror(errno));
    return std::string(buffer.data(), static_cast<std::size_t>(length));
}

pid_t spawn(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd) {
    std::vector<char*> args;
    for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw Failure(std::string("fork: ") + std::strerror(errno));
    if (pid == 0) {
        // dup2 clears FD_CLOEXEC on the copy; every other descriptor of ours is O_CLOEXEC.
        if (stdin_fd >= 0 && stdin_fd != 0 && ::dup2(stdin_fd, 0) < 0) ::_exit(126);
        if (stdout_fd >= 0 && stdout_fd != 1 && ::dup2(stdout_fd, 1) < 0) ::_exit(126);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    return pid;
}

ChildOutcome wait_for(pid_t pid, Clock::time_point started) {
    int status = 0;
    struct rusage usage {};
    pid_t got;
    do {
        got = ::wait4(pid, &status, 0, &usage);
    } while (got < 0 && errno == EINTR);
    ChildOutcome outcome;
    outcome.wall_seconds = seconds_since(started);
    if (got < 0) throw Failure(std::string("wait4: ") + std::strerror(errno));
    outcome.max_rss_kb = usage.ru_maxrss;
    if (WIFEXITED(status)) {
        outcome.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        outcome.signal = WTERMSIG(status);
    }
    return outcome;
}

ChildOutcome run_child(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd) {
    const auto started = Clock::now();
    const pid_t pid = spawn(argv, stdin_fd, stdout_fd);
    return wait_for(pid, started);
}

ChildOutcome run_child_with_deadline(const std::vector<std::string>& argv, int stdin_fd,
                                     int stdout_fd, double deadline_seconds, std::int64_t* lines) {
    Fd read_end, write_end;
    if (lines != nullptr) {
        int ends[2];
        if (::pipe2(ends, O_CLOEXEC) != 0)
            throw Failure(std::string("pipe2: ") + std::strerror(errno));
        read_end = Fd(ends[0]);
        write_end = Fd(ends[1]);
        stdout_fd = write_end.get();
        *lines = 0;
    }
    const auto started = Clock::now();
    const auto deadline = started + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(deadline_seconds));
    const pid_t pid = spawn(argv, stdin_fd, stdout_fd);
    write_end.reset();
    bool timed_out = false;
    if (lines != nullptr) {  // read until EOF or the deadline
        char buffer[1 << 16];
        for (;;) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now())
                    .count();
            if (left <= 0) {
                timed_out = true;
                break;
            }
            struct pollfd ready {
                read_end.get(), POLLIN, 0
            };
            const int polled = ::poll(&ready, 1, static_cast<int>(left));
            if (polled < 0 && errno == EINTR) continue;
            if (polled < 0) throw Failure(std::string("poll: ") + std::strerror(errno));
            if (polled == 0) continue;
            const ssize_t got = ::read(read_end.get(), buffer, sizeof buffer);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) break;  // EOF: the child closed its stdout
            for (ssize_t i = 0; i < got; ++i) *lines += buffer[i] == '\n';
        }
        if (timed_out) ::kill(pid, SIGKILL);
        ChildOutcome outcome = wait_for(pid, started);
        outcome.timed_out = timed_out;
        return outcome;
    }
    for (;;) {  // poll the child's state; 1 ms granularity on a multi-second measurement
        int status = 0;
        struct rusage usage {};
        const pid_t got = ::wait4(pid, &status, WNOHANG, &usage);
        if (got < 0 && errno != EINTR) throw Failure(std::string("wait4: ") + std::strerror(errno));
        if (got == pid) {
            ChildOutcome outcome;
            outcome.wall_seconds = seconds_since(started);
            outcome.max_rss_kb = usage.ru_maxrss;
            if (WIFEXITED(status)) outcome.exit_code = WEXITSTATUS(status);
            if (WIFSIGNALED(status)) outcome.signal = WTERMSIG(status);
            outcome.timed_out = timed_out;
            return outcome;
        }
        if (!timed_out && Clock::now() >= deadline) {
            timed_out = true;
            ::kill(pid, SIGKILL);
        }
        ::usleep(1000);
    }
}

std::string describe(const ChildOutcome& outcome) {
    if (outcome.timed_out) return "killed at the deadline";
    if (outcome.exit_code >= 0) return "exit code " + std::to_string(outcome.exit_code);
    return "killed by signal " + std::to_string(outcome.signal);
}

// ---- Formatting ----

namespace {

std::string printf_string(const char* format, double value) {
    char text[64];
    std::snprintf(text, sizeof text, format, value);
    return text;
}

// Display width: code points, not bytes (µ, ×, ≤ and ≥ are one column each).
std::size_t display_width(const std::string& text) {
    std::size_t width = 0;
    for (const unsigned char c : text) {
        if ((c & 0xC0) != 0x80) ++width;
    }
    return width;
}

std::string pad(const std::string& text, std::size_t width) {
    const std::size_t have = display_width(text);
    return have >= width ? text : text + std::string(width - have, ' ');
}

}  // namespace

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds)) return "n/a";
    if (seconds < 1e-6) return printf_string("%.0f ns", seconds * 1e9);
    if (seconds < 1e-4) return printf_string("%.2f µs", seconds * 1e6);
    if (seconds < 1e-3) return printf_string("%.1f µs", seconds * 1e6);
    if (seconds < 1) return printf_string("%.2f ms", seconds * 1e3);
    return printf_string("%.2f s", seconds);
}

std::string format_count(double value) {
    if (!std::isfinite(value)) return "n/a";
    const std::string digits = printf_string("%.0f", value);
    std::string result;
    const std::size_t start = (!digits.empty() && digits[0] == '-') ? 1 : 0;
    for (std::size_t i = 0; i < digits.size(); ++i) {
        if (i > start && (digits.size() - i) % 3 == 0) result += ',';
        result += digits[i];
    }
    return result;
}

std::string format_rate(double per_second, const std::string& unit) {
    return format_count(per_second) + " " + unit;
}

std::string format_ratio(double ratio) {
    if (!std::isfinite(ratio)) return "n/a";
    if (ratio < 0.01) return printf_string("%.2g×", ratio);
    if (ratio >= 100) return format_count(ratio) + "×";
    if (ratio >= 10) return printf_string("%.1f×", ratio);
    return printf_string("%.2f×", ratio);
}

std::string render_table(const std::vector<Row>& rows) {
    const std::vector<std::string> header = {"operation", "ours", "baseline",
                                             "ratio",     "goal", "met?"};
    std::vector<std::vector<std::string>> cells;
    for (const Row& row : rows) {
        std::string met = row.met ? (*row.met ? "yes" : "NO") : "info";
        if (!row.error.empty()) met = "ERROR";
        cells.push_back({row.operation, row.error.empty() ? row.ours : "error: " + row.error,
                         row.baseline, row.ratio, row.goal, met});
    }
    std::vector<std::size_t> widths;
    for (const std::string& title : header) widths.push_back(display_width(title));
    for (const auto& line : cells) {
        for (std::size_t i = 0; i < line.size(); ++i)
            widths[i] = std::max(widths[i], display_width(line[i]));
    }
    auto render_line = [&](const std::vector<std::string>& line) {
        std::string text = "|";
        for (std::size_t i = 0; i < line.size(); ++i) {
            text += ' ';
            text += pad(line[i], widths[i]);
            text += " |";
        }
        text += '\n';
        return text;
    };
    std::string text = render_line(header);
    text += "|";
    for (const std::size_t width : widths) text += std::string(width + 2, '-') + "|";
    text += "\n";
    for (const auto& line : cells) text += render_line(line);
    return text;
}

}  // namespace bench
