// Real child processes for tests: run a command to completion, or start one, read its
// output line by line, and kill it.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <sys/types.h>

namespace checkpoint::test {

struct CommandResult {
    int exit_code = -1;  // the exit status, or 128 + signal number when killed by a signal
    std::string out;     // everything written to stdout
    std::string err;     // everything written to stderr
};

// argv that runs `argv` with its stderr appended to `err_file` (ChildProcess inherits
// stderr; the file lets a test read what the child reported). `exec` keeps the pid.
inline std::vector<std::string> with_stderr_to(const std::string& err_file,
                                               std::vector<std::string> argv) {
    std::vector<std::string> wrapped{"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>>'" + err_file + "'"};
    wrapped.insert(wrapped.end(), argv.begin(), argv.end());
    return wrapped;
}

// Runs argv[0] (searched in PATH) with `input` on stdin; waits for it to end.
CommandResult run_command(const std::vector<std::string>& argv, const std::string& input = {});

// A started child whose stdout is a pipe to us; its stderr is inherited. Killed (SIGKILL)
// and reaped on destruction if still running.
class ChildProcess {
public:
    explicit ChildProcess(const std::vector<std::string>& argv);
    ~ChildProcess();
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;

    pid_t pid() const { return pid_; }
    // The next line of stdout without its '\n'; std::nullopt at end of output or timeout.
    std::optional<std::string> read_line(
        std::chrono::milliseconds timeout = std::chrono::seconds(60));
    // Everything still to come on stdout, until the child closes it.
    std::string read_rest();
    void kill(int signal);
    // Waits for the child; returns its exit status, or 128 + signal when killed.
    int wait();

private:
    pid_t pid_ = -1;
    int out_fd_ = -1;
    std::string buffer_;
    bool reaped_ = false;
    int status_ = -1;
};

}  // namespace checkpoint::test
