// One libpqxx connection to a PostgreSQL checkpoint database, with the session settings the
// backend relies on, and the translation of libpqxx / libpq / SQLSTATE failures into
// checkpoint::Error.
#pragma once

#include "postgres/location.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace pqxx {
class connection_base;
}

namespace checkpoint::detail {

// Connection defaults, unless the URI (or PGCONNECT_TIMEOUT / PGAPPNAME) says otherwise.
inline constexpr int default_connect_timeout_seconds = 10;
inline constexpr const char* default_application_name = "checkpoint";

// An open connection (RAII: closed on destruction; not copyable, movable). Opened with:
//   - connect_timeout = 10 s per host unless given, fallback_application_name=checkpoint
//     (so application_name is "checkpoint" unless the URI or PGAPPNAME names one);
//   - the session settings: lock_timeout = busy_timeout (each lock wait, row or advisory,
//     gives up after it: SQLSTATE 55P03, which throw_translated_pg turns into Busy; a
//     busy_timeout of 0 becomes 1 ms, as PostgreSQL reads 0 as "wait forever"),
//     statement_timeout = 0, TIME ZONE 'UTC', and default_transaction_read_only = on for a
//     read-only connection (any write then fails with 25006: ReadOnly).
// Throws Error (Unavailable, InvalidArgument, ...: see throw_translated_pg) when the
// connection or the settings fail. Not thread-safe: one thread at a time.
class PgConnection {
public:
    PgConnection(const ServerLocation& location, std::chrono::milliseconds busy_timeout,
                 bool read_only);
    // The same, but a failure is thrown as libpqxx threw it (pqxx::broken_connection,
    // pqxx::sql_error, ...), untranslated: for a caller that classifies it
    // (classify_failure in reconnect_policy.hpp) before translating it.
    struct RawErrors {};
    PgConnection(const ServerLocation& location, std::chrono::milliseconds busy_timeout,
                 bool read_only, RawErrors);
    ~PgConnection();
    PgConnection(PgConnection&&) noexcept;
    PgConnection& operator=(PgConnection&&) noexcept;
    PgConnection(const PgConnection&) = delete;
    PgConnection& operator=(const PgConnection&) = delete;

    // The libpqxx connection (pqxx::connection in 6.4), for transactions on it.
    pqxx::connection_base& get();

    const ServerLocation& location() const { return location_; }
    std::chrono::milliseconds busy_timeout() const { return busy_timeout_; }
    bool read_only() const { return read_only_; }

    // "HOST:PORT" of the server this connection reached (of a multi-host URI, the one libpq
    // took), for log lines: no secret.
    std::string server_reached();

    // throw_translated_pg(location(), action, busy_timeout()): call inside a catch block.
    [[noreturn]] void throw_translated(const std::string& action) const;

private:
    // Deletes the pqxx::connection it was made as: pqxx::connection_base's destructor is
    // not virtual in libpqxx 6.4.
    struct Deleter {
        void operator()(pqxx::connection_base* connection) const noexcept;
    };

    ServerLocation location_;
    std::chrono::milliseconds busy_timeout_;
    bool read_only_;
    std::unique_ptr<pqxx::connection_base, Deleter> connection_;
};

// The libpq key/value connection string for `location` with the defaults above added
// (exposed for tests). Holds the password if the URI has one: never print it.
std::string connection_string(const ServerLocation& location);

// Call inside a catch block: rethrows the exception in flight as checkpoint::Error, like
// throw_translated in lib/store.cpp does for SQLite. Messages start with
// describe_location(location) + ": " + action + " failed: ", say what to check, and never
// hold the password (libpq's and the server's texts are passed through redact_uri).
//   Error                                    rethrown unchanged
//   server unreachable, login refused (28000, 28P01, pg_hba.conf), database missing
//   (3D000), too many connections (53300), server starting or shutting down (57P01-3),
//   connection lost (08xxx, pqxx::broken_connection)             -> Unavailable
//   an invalid connection parameter in the URI (sslmode=bogus)    -> InvalidArgument
//   lock_timeout (55P03), statement cancelled (57014)             -> Busy
//   serialization failure (40001), deadlock (40P01)               -> Busy (the backend
//                                                      retries these itself; reaching the
//                                                      user means its retries ran out)
//   disk full (53100)                                             -> DiskFull
//   read-only transaction (25006: a read-only manager, or a hot standby), a missing
//   privilege (42501)                                             -> ReadOnly
//   undefined table, column or function (42P01, 42703, 42883)     -> Corrupt
//   connection lost during COMMIT (pqxx::in_doubt_error), statement completion unknown
//   (40003)                                                       -> Io (outcome unknown)
//   std::bad_alloc                                                rethrown unchanged
//   anything else                                                 -> Internal
[[noreturn]] void throw_translated_pg(const ServerLocation& location, const std::string& action,
                                      std::chrono::milliseconds busy_timeout);

}  // namespace checkpoint::detail
