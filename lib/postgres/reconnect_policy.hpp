// The PostgreSQL backend's reconnect policy: which failures a reconnect can cure, how long
// to keep trying (Options::reconnect_timeout) and how long to wait between two attempts.
// No SQL here; the backend (postgres_backend.cpp) applies it.
#pragma once

#include <chrono>
#include <exception>

namespace checkpoint::detail {

// What a failure of a statement, a commit or a connection attempt means for a retry.
enum class FailureKind {
    // The connection was lost, or no usable server answered (refused, unreachable, timed
    // out, starting up, shutting down, a hot standby where a primary is needed, the
    // session terminated): nothing of the call committed. Reconnect, then retry.
    ConnectionLost,
    // The connection was lost while a COMMIT (or a single autocommit statement) was in
    // flight: it may or may not have committed. Reconnect, then look the write up.
    OutcomeUnknown,
    // Anything else (an SQL error, a login refused, a missing database, an invalid URI,
    // one of checkpoint's own Errors): retrying cannot help.
    Other,
};

// Classifies `failure`, a raw libpqxx exception (pqxx::broken_connection, pqxx::sql_error,
// pqxx::in_doubt_error, ...) or anything else. Never throws.
FailureKind classify_failure(std::exception_ptr failure) noexcept;

// The reconnect deadline of one call: reconnect_timeout from the first failure. Between
// two attempts it waits 20 ms, then twice as long each time, at most 500 ms, never past the
// deadline.
class ReconnectDeadline {
public:
    explicit ReconnectDeadline(std::chrono::milliseconds timeout) : timeout_(timeout) {}

    // Called after each failed attempt: false when the deadline has passed (give up);
    // otherwise sleeps the next back-off step and returns true (try again). The first call
    // starts the clock.
    bool wait_before_retry();

    // Attempts made so far (calls of wait_before_retry that returned true).
    int attempts() const { return attempts_; }
    std::chrono::milliseconds timeout() const { return timeout_; }

private:
    std::chrono::milliseconds timeout_;
    std::chrono::steady_clock::time_point start_{};
    std::chrono::milliseconds step_{20};
    bool started_ = false;
    int attempts_ = 0;
};

}  // namespace checkpoint::detail
