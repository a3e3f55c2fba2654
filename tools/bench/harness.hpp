// checkpoint_bench — timing, statistics, child processes and the result table.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/types.h>

namespace bench {

using Clock = std::chrono::steady_clock;

// A failure of the benchmark itself: an error, or data that was lost or wrong. Timing never
// raises it.
class Failure : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

double seconds_since(Clock::time_point start);

// The median of `values` (the mean of the middle two for an even count). Throws Failure
// when empty.
double median(std::vector<double> values);

// The median of the per-repetition ratios numerator[i] / denominator[i]: each pair was
// measured back to back, so drift in the machine (another process's fsyncs) cancels out
// better than in the ratio of two medians.
double paired_ratio(const std::vector<double>& numerator, const std::vector<double>& denominator);

// Runs every variant once per repetition, rotating which one goes first, so that machine
// noise hits all of them alike. Each variant returns its sample (seconds per operation,
// operations per second, ...). `settle`, when given, runs (untimed) after every variant.
// Returns the samples of each variant, in the order of `variants`.
std::vector<std::vector<double>> interleave(int repetitions,
                                            const std::vector<std::function<double()>>& variants,
                                            const std::function<void()>& settle = {});

// ---- Filesystem ----

struct FilesystemInfo {
    std::string type;            // "ext4", "xfs", "tmpfs", ... or "unknown (0x...)"
    bool memory_backed = false;  // tmpfs or ramfs: fsync is free there
};
FilesystemInfo filesystem_of(const std::filesystem::path& path);

// syncfs() of the filesystem holding `path`: flushes what earlier steps left dirty, so that
// the kernel's write-back does not land in the next measurement.
void sync_filesystem(const std::filesystem::path& path);

// ---- Child processes (fork + exec) ----

// The running executable (/proc/self/exe), to run itself in a worker mode.
std::string self_executable();

struct ChildOutcome {
    int exit_code = -1;  // -1 when killed by a signal
    int signal = 0;
    bool timed_out = false;   // killed (SIGKILL) by us at the deadline
    double wall_seconds = 0;  // from before fork() to the return of wait4()
    long max_rss_kb = 0;      // the child's peak resident set size (ru_maxrss)
};

// Starts argv[0] with the given descriptors as its stdin and stdout (stderr is inherited).
pid_t spawn(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd);
// Waits for `pid` (wait4) and measures from `started`.
ChildOutcome wait_for(pid_t pid, Clock::time_point started);
// spawn + wait_for.
ChildOutcome run_child(const std::vector<std::string>& argv, int stdin_fd, int stdout_fd);
// spawn + wait, killing the child (SIGKILL, by its pid) if it runs longer than
// `deadline_seconds`. With `lines` given, the child's stdout is a pipe whose newlines are
// counted into *lines (stdout_fd is then ignored).
ChildOutcome run_child_with_deadline(const std::vector<std::string>& argv, int stdin_fd,
                                     int stdout_fd, double deadline_seconds,
                                     std::int64_t* lines = nullptr);
// "exit code 3", "killed by signal 9".
std::string describe(const ChildOutcome& outcome);

// A descriptor closed on scope exit.
class Fd {
public:
    explicit Fd(int fd = -1) : fd_(fd) {}
    ~Fd() { reset(); }
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = other.release();
        }
        return *this;
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    int get() const { return fd_; }
    int release() {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }
    void reset();

private:
    int fd_;
};

Fd open_dev_null(int flags);

// ---- Formatting ----

std::string format_duration(double seconds);  // "172.4 µs", "1.52 ms", "2.10 s"
std::string format_count(double value);       // "1,000,000"
std::string format_rate(double per_second, const std::string& unit);  // "5,812 saves/s"
std::string format_ratio(double ratio);                               // "1.03×"

// ---- The result table ----

struct Row {
    std::string operation;
    std::string ours;
    std::string baseline;
    std::string ratio;
    std::string goal;
    std::optional<bool> met;  // std::nullopt: informational, no goal
    std::string error;        // non-empty: the measurement failed (benchmark error)
};

// A pipe table, aligned, that is also valid Markdown.
std::string render_table(const std::vector<Row>& rows);

}  // namespace bench
