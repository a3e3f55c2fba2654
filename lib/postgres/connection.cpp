#include "postgres/connection.hpp"

#include <checkpoint/error.hpp>

#include <cstdlib>
#include <new>
#include <string_view>
#include <utility>

#include <libpq-fe.h>
#include <pqxx/pqxx>

namespace checkpoint::detail {

namespace {

// A libpq or server message on one line, without the password, at most 600 bytes.
std::string one_line(std::string_view text) {
    std::string out;
    std::string separator;  // what replaces the white space before the next character
    for (char c : text) {
        if (c == '\n' || c == '\r') {
            if (!out.empty()) separator = "; ";
            continue;
        }
        if (c == '\t' || c == ' ') {
            if (!out.empty() && separator.empty()) separator = " ";
            continue;
        }
        out += separator;
        separator.clear();
        out += c;
    }
    out = redact_uri(out);
    if (out.size() > 600) out = out.substr(0, 600) + "...";
    return out;
}

bool contains(std::string_view text, std::string_view part) {
    return text.find(part) != std::string_view::npos;
}

// The single-quoted libpq key/value form of `value`.
std::string quoted(const std::string& value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\\' || c == '\'') out += '\\';
        out += c;
    }
    return out + "'";
}

std::string milliseconds_setting(std::chrono::milliseconds timeout) {
    // 0 means "wait forever" to PostgreSQL; busy_timeout 0 means "do not wait".
    const long long ms = timeout.count() < 1 ? 1 : static_cast<long long>(timeout.count());
    return "'" + std::to_string(ms) + "ms'";
}

std::string check_server(const ServerLocation& location) {
    return "Check that the PostgreSQL server is running and accepts connections at " +
           location.endpoint +
           " (the host and port in the URI; the server's listen_addresses and port; a "
           "firewall), then retry";
}

// Why a server could not be used (all of them ErrorCode::Unavailable).
enum class Unusable {
    Login,            // authentication failed, no pg_hba.conf entry, no such role
    MissingDatabase,  // the database does not exist
    NoSlot,           // too many connections
    Transition,       // the server is starting up or shutting down
    SessionKind,      // no host gave the session target_session_attrs asks for
    Unreachable,      // refused, unknown host, no socket, timeout
    Lost,             // anything else: the connection failed or broke
};

// Which case libpq's or the server's text describes. At connect time libpq gives no
// SQLSTATE, so the text is all there is; a server answering in another language (its
// lc_messages) gets the general advice, and the same code.
Unusable unusable_from_text(std::string_view text) {
    if (contains(text, "password authentication failed") ||
        contains(text, "authentication failed") || contains(text, "no password supplied") ||
        contains(text, "no pg_hba.conf entry") || contains(text, "pg_hba.conf rejects") ||
        (contains(text, "role \"") && contains(text, "does not exist")))
        return Unusable::Login;
    if (contains(text, "database \"") && contains(text, "does not exist"))
        return Unusable::MissingDatabase;
    if (contains(text, "too many clients") || contains(text, "too many connections") ||
        contains(text, "remaining connection slots"))
        return Unusable::NoSlot;
    if (contains(text, "the database system is starting up") ||
        contains(text, "the database system is shutting down") ||
        contains(text, "the database system is in recovery mode"))
        return Unusable::Transition;
    if (contains(text, "session is read-only") || contains(text, "server is in hot standby") ||
        contains(text, "could not make a writable connection") ||
        contains(text, "is not in hot standby") || contains(text, "target_session_attrs"))
        return Unusable::SessionKind;
    if (contains(text, "connection to server") || contains(text, "could not connect") ||
        contains(text, "Connection refused") || contains(text, "could not translate host") ||
        contains(text, "timeout expired") || contains(text, "No such file or directory") ||
        contains(text, "Network is unreachable") || contains(text, "No route to host"))
        return Unusable::Unreachable;
    return Unusable::Lost;
}

[[noreturn]] void unavailable(const ServerLocation& location, const std::string& where,
                              Unusable why, std::string_view text) {
    const std::string said = one_line(text);
    const std::string server = "the server at " + location.endpoint;
    switch (why) {
        case Unusable::Login:
            throw Error(ErrorCode::Unavailable,
                        where + server + " refused the login (" + said +
                            "). Check the user name and the password (in the URI, PGPASSWORD "
                            "or ~/.pgpass), and that the server's pg_hba.conf lets this user "
                            "reach database '" +
                            location.database + "' from this host");
        case Unusable::MissingDatabase:
            throw Error(ErrorCode::Unavailable,
                        where + "the database '" + location.database + "' does not exist on " +
                            location.endpoint + " (" + said +
                            "). Create it (createdb, or CREATE DATABASE as a role allowed to), "
                            "or fix the database name in the URI; checkpoint creates its "
                            "tables, not the database");
        case Unusable::NoSlot:
            throw Error(ErrorCode::Unavailable,
                        where + server + " has no free connection slot (" + said +
                            "). Retry later, close idle connections, or raise the server's "
                            "max_connections (or the role's or database's connection limit)");
        case Unusable::Transition:
            throw Error(ErrorCode::Unavailable, where + server +
                                                    " is starting up or shutting down (" + said +
                                                    "). Retry once it runs");
        case Unusable::SessionKind:
            throw Error(ErrorCode::Unavailable,
                        where + "no server at " + location.endpoint +
                            " accepted the session that target_session_attrs asks for (" + said +
                            "). Check which server is the primary, and the URI's hosts");
        case Unusable::Unreachable:
            throw Error(ErrorCode::Unavailable, where + "cannot reach the server (" + said + "). " +
                                                    check_server(location));
        case Unusable::Lost:
            break;
    }
    throw Error(ErrorCode::Unavailable,
                where + "the connection to the server failed or was lost (" + said +
                    "); nothing of this call was committed. " + check_server(location));
}

[[noreturn]] void translate_sqlstate(const ServerLocation& location, const std::string& where,
                                     const std::string& state, std::string_view text,
                                     std::chrono::milliseconds busy_timeout) {
    const std::string said = one_line(text);
    if (state.rfind("28", 0) == 0) unavailable(location, where, Unusable::Login, text);
    if (state == "3D000") unavailable(location, where, Unusable::MissingDatabase, text);
    if (state == "53300") unavailable(location, where, Unusable::NoSlot, text);
    if (state == "57P03") unavailable(location, where, Unusable::Transition, text);
    if (state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02")  // lost, shut down
        unavailable(location, where, unusable_from_text(text), text);
    if (state == "55P03" || state == "57014") {
        throw Error(ErrorCode::Busy,
                    where +
                        "another connection held a lock it needed for longer than the busy "
                        "timeout (" +
                        std::to_string(busy_timeout.count()) + " ms: " + said +
                        "); nothing was written. Retry, or raise Options::busy_timeout");
    }
    if (state == "40001" || state == "40P01") {
        throw Error(ErrorCode::Busy,
                    where + "a concurrent transaction conflicted with this one (" + said +
                        ") and checkpoint's own retries ran out; nothing was written. Retry");
    }
    if (state == "53100") {
        throw Error(ErrorCode::DiskFull,
                    where + "the database server's disk is full (" + said +
                        "); nothing was written. Free space on the server at " + location.endpoint +
                        " and retry");
    }
    if (state == "25006") {
        throw Error(ErrorCode::ReadOnly,
                    where + "the transaction is read-only (" + said +
                        "): the manager is read-only, or the server is a hot standby. Open "
                        "it for writing, or reach the primary (target_session_attrs="
                        "read-write in the URI)");
    }
    if (state == "42501") {
        throw Error(ErrorCode::ReadOnly,
                    where + "the role lacks a privilege (" + said +
                        "). Grant it CREATE on the database's schema for the first open, "
                        "then SELECT, INSERT, UPDATE and DELETE on checkpoint's tables");
    }
    if (state == "42P01" || state == "42703" || state == "42883") {
        throw Error(ErrorCode::Corrupt,
                    where + "the database's tables do not match its schema version (" + said +
                        "); they were altered outside the library. Restore the database "
                        "from a backup, or point the URI at another database");
    }
    throw Error(ErrorCode::Internal, where + "unexpected PostgreSQL error SQLSTATE " +
                                         (state.empty() ? std::string("(none)") : state) + " (" +
                                         said + "). Please report this");
}

[[noreturn]] void outcome_unknown(const ServerLocation& location, const std::string& where,
                                  std::string_view text) {
    throw Error(ErrorCode::Io,
                where + "the connection was lost while the server committed (" + one_line(text) +
                    "): the write may or may not have been committed. Once the server at " +
                    location.endpoint +
                    " is reachable, read the stage back (has_checkpoint, latest, or "
                    "checkpointctl history) before retrying");
}

}  // namespace

std::string connection_string(const ServerLocation& location) {
    char* error = nullptr;
    PQconninfoOption* options = PQconninfoParse(location.uri.c_str(), &error);
    if (options == nullptr) {
        if (error != nullptr) PQfreemem(error);
        throw Error(ErrorCode::InvalidArgument, "invalid PostgreSQL location " + location.redacted);
    }
    std::string text;
    bool has_timeout = std::getenv("PGCONNECT_TIMEOUT") != nullptr;
    bool has_fallback_name = false;
    for (const PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
        if (o->val == nullptr) continue;
        const std::string_view keyword = o->keyword;
        if (keyword == "connect_timeout") has_timeout = true;
        if (keyword == "fallback_application_name") has_fallback_name = true;
        text += std::string(keyword) + "=" + quoted(o->val) + " ";
    }
    PQconninfoFree(options);
    if (!has_timeout)
        text += "connect_timeout=" + std::to_string(default_connect_timeout_seconds) + " ";
    // application_name (from the URI or PGAPPNAME) wins over a fallback name.
    if (!has_fallback_name)
        text += std::string("fallback_application_name=") + default_application_name;
    return text;
}

PgConnection::PgConnection(const ServerLocation& location, std::chrono::milliseconds busy_timeout,
                           bool read_only)
    : location_(location), busy_timeout_(busy_timeout), read_only_(read_only) {
    try {
        PgConnection raw(location, busy_timeout, read_only, RawErrors{});
        connection_ = std::move(raw.connection_);
    } catch (...) {
        throw_translated("connecting");
    }
}

PgConnection::PgConnection(const ServerLocation& location, std::chrono::milliseconds busy_timeout,
                           bool read_only, RawErrors)
    : location_(location), busy_timeout_(busy_timeout), read_only_(read_only) {
    connection_.reset(new pqxx::connection(connection_string(location_)));
    std::string settings = "SET lock_timeout = " + milliseconds_setting(busy_timeout_) +
                           "; SET statement_timeout = 0; SET TIME ZONE 'UTC';";
    if (read_only_) settings += " SET default_transaction_read_only = on;";
    pqxx::nontransaction session(*connection_);
    session.exec(settings);
}

std::string PgConnection::server_reached() {
    const char* host = connection_ ? connection_->hostname() : nullptr;
    const char* port = connection_ ? connection_->port() : nullptr;
    std::string text = host ? host : "?";
    if (text.find(':') != std::string::npos) text = "[" + text + "]";
    return text + ":" + (port ? port : "?");
}

void PgConnection::Deleter::operator()(pqxx::connection_base* connection) const noexcept {
    delete static_cast<pqxx::connection*>(connection);
}

PgConnection::~PgConnection() = default;
PgConnection::PgConnection(PgConnection&&) noexcept = default;
PgConnection& PgConnection::operator=(PgConnection&&) noexcept = default;

pqxx::connection_base& PgConnection::get() {
    return *connection_;
}

void PgConnection::throw_translated(const std::string& action) const {
    throw_translated_pg(location_, action, busy_timeout_);
}

void throw_translated_pg(const ServerLocation& location, const std::string& action,
                         std::chrono::milliseconds busy_timeout) {
    const std::string where = describe_location(location) + ": " + action + " failed: ";
    try {
        throw;
    } catch (const Error&) {
        throw;
    } catch (const std::bad_alloc&) {
        throw;
    } catch (const pqxx::in_doubt_error& e) {
        outcome_unknown(location, where, e.what());
    } catch (const pqxx::statement_completion_unknown& e) {
        outcome_unknown(location, where, e.what());
    } catch (const pqxx::serialization_failure& e) {
        translate_sqlstate(location, where, "40001", e.what(), busy_timeout);
    } catch (const pqxx::deadlock_detected& e) {
        translate_sqlstate(location, where, "40P01", e.what(), busy_timeout);
    } catch (const pqxx::transaction_rollback& e) {
        translate_sqlstate(location, where, "40001", e.what(), busy_timeout);
    } catch (const pqxx::broken_connection& e) {
        // At connect time libpq gives no SQLSTATE: the text tells which case it is.
        const std::string_view text = e.what();
        if (contains(text, "invalid") &&
            (contains(text, " value") || contains(text, "connection option"))) {
            throw Error(ErrorCode::InvalidArgument,
                        where + "a connection parameter of the URI is invalid (" + one_line(text) +
                            "). Fix the URI " + location.redacted);
        }
        unavailable(location, where, unusable_from_text(text), text);
    } catch (const pqxx::sql_error& e) {
        translate_sqlstate(location, where, e.sqlstate(), e.what(), busy_timeout);
    } catch (const std::exception& e) {
        throw Error(ErrorCode::Internal,
                    where + "unexpected error (" + one_line(e.what()) + "). Please report this");
    }
}

}  // namespace checkpoint::detail
