// Connections to the throwaway PostgreSQL server (tools/pg_server.sh): session settings,
// and every failure turned into the right checkpoint::Error, for real where the server can
// be made to fail, with a message that names host:port and database and never the
// password.
#include "postgres/connection.hpp"

#include "pg_database.hpp"

#include <checkpoint/error.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>

#include <pqxx/pqxx>

using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::detail::parse_location;
using checkpoint::detail::PgConnection;
using checkpoint::detail::ServerLocation;
using checkpoint::detail::throw_translated_pg;
using checkpoint::test::percent_encode;
using checkpoint::test::pg_env;
using checkpoint::test::pg_server_endpoint;
using checkpoint::test::pg_unique_name;
using checkpoint::test::PgDatabase;
using namespace std::chrono_literals;

namespace {

struct Failure {
    ErrorCode code = ErrorCode::Internal;
    std::string message;
};

// The Error that `call` throws; fails the test when it throws none.
Failure failure_of(const std::function<void()>& call) {
    try {
        call();
    } catch (const Error& e) {
        return {e.code(), e.what()};
    }
    FAIL("no checkpoint::Error was thrown");
    return {};
}

Failure connect_failure(const std::string& uri, std::chrono::milliseconds busy = 1000ms) {
    const ServerLocation location = parse_location(uri);
    return failure_of([&] { PgConnection connection(location, busy, false); });
}

// A TCP port on 127.0.0.1 that nothing listens on: bound by the kernel's choice, then
// closed (nothing else on this machine binds ports at random in the instant between).
int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t size = sizeof address;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
    ::close(fd);
    return ntohs(address.sin_port);
}

// The first column of the first row of `sql` on `connection`.
std::string query(PgConnection& connection, const std::string& sql) {
    pqxx::nontransaction tx(connection.get());
    return tx.exec1(sql)[0].as<std::string>();
}

bool contains(const std::string& text, const std::string& part) {
    return text.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("a connection has the session settings the backend relies on", "[postgres]") {
    PgDatabase db;
    const ServerLocation location = parse_location(db.url());
    PgConnection writer(location, 1500ms, false);
    CHECK(query(writer, "SELECT current_database()") == db.name());
    CHECK(query(writer, "SHOW lock_timeout") == "1500ms");
    CHECK(query(writer, "SHOW statement_timeout") == "0");
    CHECK(query(writer, "SHOW TimeZone") == "UTC");
    CHECK(query(writer, "SHOW default_transaction_read_only") == "off");
    CHECK(query(writer, "SHOW application_name") == "checkpoint");
    CHECK(writer.location().endpoint == pg_server_endpoint());
    CHECK(writer.busy_timeout() == 1500ms);
    CHECK_FALSE(writer.read_only());

    PgConnection reader(location, 0ms, true);  // 0: do not wait (PostgreSQL's 0 is forever)
    CHECK(query(reader, "SHOW default_transaction_read_only") == "on");
    CHECK(query(reader, "SHOW lock_timeout") == "1ms");
    CHECK(reader.read_only());

    // The URI's own application_name and connect_timeout win over the defaults.
    PgConnection named(parse_location(db.url() + "?application_name=etl-worker&connect_timeout=3"),
                       1000ms, false);
    CHECK(query(named, "SHOW application_name") == "etl-worker");
    const std::string conninfo = checkpoint::detail::connection_string(named.location());
    CHECK(contains(conninfo, "connect_timeout='3'"));
    CHECK_FALSE(contains(conninfo, "connect_timeout=10"));
    CHECK(contains(checkpoint::detail::connection_string(location), "connect_timeout=10"));

    // A connection moves; the moved-to one works.
    PgConnection moved = std::move(writer);
    CHECK(query(moved, "SELECT 41 + 1") == "42");
}

TEST_CASE("the password-protected role logs in with its percent-encoded password",
          "[postgres][auth]") {
    PgDatabase db;
    const std::string user = pg_env("CHECKPOINT_TEST_PG_AUTH_USER");
    const std::string password = pg_env("CHECKPOINT_TEST_PG_AUTH_PASSWORD");
    REQUIRE(percent_encode(password) != password);  // it holds characters to encode
    PgConnection connection(parse_location(db.url_as(user, password)), 1000ms, false);
    CHECK(query(connection, "SELECT current_user") == user);
}

TEST_CASE("Unavailable: nothing listens on the port", "[postgres][unavailable]") {
    const std::string endpoint = "127.0.0.1:" + std::to_string(closed_port());
    const Failure f = connect_failure("postgresql://someone:hunter2@" + endpoint +
                                      "/orders?connect_timeout=5");
    CHECK(f.code == ErrorCode::Unavailable);
    CHECK(contains(f.message, endpoint));
    CHECK(contains(f.message, "'orders'"));
    CHECK(contains(f.message, "is running"));
    CHECK_FALSE(contains(f.message, "hunter2"));
}

TEST_CASE("Unavailable: the database does not exist", "[postgres][unavailable]") {
    const std::string missing = pg_unique_name("missing_");
    const Failure f = connect_failure("postgresql://postgres@" + pg_server_endpoint() + "/" +
                                      missing);
    CHECK(f.code == ErrorCode::Unavailable);
    CHECK(contains(f.message, pg_server_endpoint()));
    CHECK(contains(f.message, "'" + missing + "' does not exist"));
    CHECK(contains(f.message, "createdb"));
}

TEST_CASE("Unavailable: a wrong password, and the message never holds it",
          "[postgres][unavailable][auth]") {
    PgDatabase db;
    const std::string user = pg_env("CHECKPOINT_TEST_PG_AUTH_USER");
    const std::string wrong = "Wr0ng-" + pg_unique_name("") + "@:/";
    const Failure f = connect_failure(db.url_as(user, wrong));
    CHECK(f.code == ErrorCode::Unavailable);
    CHECK(contains(f.message, pg_server_endpoint()));
    CHECK(contains(f.message, "'" + db.name() + "'"));
    CHECK(contains(f.message, "refused the login"));
    CHECK(contains(f.message, "pg_hba.conf"));
    CHECK(contains(f.message, "PGPASSWORD"));
    CHECK_FALSE(contains(f.message, wrong));
    CHECK_FALSE(contains(f.message, percent_encode(wrong)));
    CHECK_FALSE(contains(f.message, pg_env("CHECKPOINT_TEST_PG_AUTH_PASSWORD")));
}

TEST_CASE("Unavailable: no free connection slot for the role", "[postgres][unavailable]") {
    PgDatabase db;
    const std::string role = pg_unique_name("limited_");
    db.exec("CREATE ROLE " + role + " LOGIN CONNECTION LIMIT 0");
    const Failure f = connect_failure("postgresql://" + role + "@" + pg_server_endpoint() + "/" +
                                      db.name());
    db.exec("DROP ROLE " + role);
    CHECK(f.code == ErrorCode::Unavailable);
    CHECK(contains(f.message, "no free connection slot"));
    CHECK(contains(f.message, pg_server_endpoint()));
}

TEST_CASE("Unavailable: the server ends the session (connection lost mid-call)",
          "[postgres][unavailable]") {
    PgDatabase db;
    PgConnection connection(parse_location(db.url()), 1000ms, false);
    const std::string pid = query(connection, "SELECT pg_backend_pid()");
    REQUIRE(db.exec("SELECT pg_terminate_backend(" + pid + ")") == "t");
    const Failure f = failure_of([&] {
        try {
            query(connection, "SELECT 1");
        } catch (...) {
            connection.throw_translated("reading stage 'x'");
        }
    });
    CHECK(f.code == ErrorCode::Unavailable);
    CHECK(contains(f.message, "reading stage 'x' failed"));
    CHECK(contains(f.message, pg_server_endpoint()));
}

TEST_CASE("InvalidArgument: a connection parameter libpq rejects", "[postgres]") {
    const Failure f = connect_failure("postgresql://u:hunter2@" + pg_server_endpoint() +
                                      "/d?sslmode=bogus");
    CHECK(f.code == ErrorCode::InvalidArgument);
    CHECK(contains(f.message, "sslmode"));
    CHECK_FALSE(contains(f.message, "hunter2"));
}

TEST_CASE("Busy: a row lock held by another connection past lock_timeout", "[postgres][busy]") {
    PgDatabase db;
    db.exec("CREATE TABLE t (id integer PRIMARY KEY, v integer); INSERT INTO t VALUES (1, 0)");
    pqxx::connection holder(db.url());
    pqxx::work holding(holder);
    holding.exec("SELECT v FROM t WHERE id = 1 FOR UPDATE");  // held until rolled back

    PgConnection waiter(parse_location(db.url()), 200ms, false);
    const auto start = std::chrono::steady_clock::now();
    const Failure f = failure_of([&] {
        try {
            pqxx::work tx(waiter.get());
            tx.exec("UPDATE t SET v = 1 WHERE id = 1");
            tx.commit();
        } catch (...) {
            waiter.throw_translated("recording stage 's' as completed");
        }
    });
    const auto waited = std::chrono::steady_clock::now() - start;
    CHECK(f.code == ErrorCode::Busy);
    CHECK(contains(f.message, "200 ms"));
    CHECK(contains(f.message, "Options::busy_timeout"));
    CHECK(waited >= 200ms);
    holding.abort();
    CHECK(db.exec("SELECT v FROM t WHERE id = 1") == "0");  // nothing was written
}

TEST_CASE("ReadOnly: a write on a read-only connection", "[postgres][readonly]") {
    PgDatabase db;
    db.exec("CREATE TABLE t (v integer)");
    PgConnection reader(parse_location(db.url()), 1000ms, true);
    const Failure f = failure_of([&] {
        try {
            pqxx::work tx(reader.get());
            tx.exec("INSERT INTO t VALUES (1)");
            tx.commit();
        } catch (...) {
            reader.throw_translated("saving");
        }
    });
    CHECK(f.code == ErrorCode::ReadOnly);
    CHECK(contains(f.message, "read-only"));
    CHECK(db.exec("SELECT count(*) FROM t") == "0");
}

TEST_CASE("Corrupt: a table altered outside the library", "[postgres]") {
    PgDatabase db;
    db.exec("CREATE TABLE t (v integer, w integer); ALTER TABLE t DROP COLUMN w");
    PgConnection connection(parse_location(db.url()), 1000ms, false);
    for (const std::string sql :
         {"SELECT w FROM t", "SELECT * FROM missing_table", "SELECT missing_function(1)"}) {
        INFO(sql);
        const Failure f = failure_of([&] {
            try {
                query(connection, sql);
            } catch (...) {
                connection.throw_translated("reading");
            }
        });
        CHECK(f.code == ErrorCode::Corrupt);
        CHECK(contains(f.message, "altered outside the library"));
    }
}

TEST_CASE("every SQLSTATE and libpqxx exception maps to its code", "[postgres]") {
    const ServerLocation location =
        parse_location("postgresql://u:hunter2@db.example.com:5433/orders");
    const auto translated = [&](const std::function<void()>& raise) {
        return failure_of([&] {
            try {
                raise();
            } catch (...) {
                throw_translated_pg(location, "saving", 250ms);
            }
        });
    };
    struct Case {
        const char* sqlstate;
        ErrorCode code;
        const char* says;  // a part of the advice
    };
    const Case cases[] = {
        {"28P01", ErrorCode::Unavailable, "refused the login"},
        {"28000", ErrorCode::Unavailable, "pg_hba.conf"},
        {"3D000", ErrorCode::Unavailable, "'orders' does not exist"},
        {"53300", ErrorCode::Unavailable, "no free connection slot"},
        {"57P03", ErrorCode::Unavailable, "starting up or shutting down"},
        {"08006", ErrorCode::Unavailable, "failed or was lost"},
        {"57P01", ErrorCode::Unavailable, "failed or was lost"},
        {"55P03", ErrorCode::Busy, "(250 ms"},
        {"57014", ErrorCode::Busy, "Options::busy_timeout"},
        {"40001", ErrorCode::Busy, "retries ran out"},
        {"40P01", ErrorCode::Busy, "retries ran out"},
        {"53100", ErrorCode::DiskFull, "disk is full"},
        {"25006", ErrorCode::ReadOnly, "target_session_attrs=read-write"},
        {"42501", ErrorCode::ReadOnly, "privilege"},
        {"42P01", ErrorCode::Corrupt, "altered outside the library"},
        {"42703", ErrorCode::Corrupt, "altered outside the library"},
        {"42883", ErrorCode::Corrupt, "altered outside the library"},
        {"XX000", ErrorCode::Internal, "SQLSTATE XX000"},
        {"23505", ErrorCode::Internal, "Please report this"},
    };
    for (const Case& c : cases) {
        INFO(c.sqlstate);
        const Failure f = translated([&] {
            throw pqxx::sql_error("ERROR: something (postgresql://u:hunter2@h/d)", "SELECT 1",
                                  c.sqlstate);
        });
        CHECK(f.code == c.code);
        CHECK(contains(f.message, c.says));
        CHECK(contains(f.message, "checkpoint database 'orders' on db.example.com:5433: saving failed"));
        CHECK_FALSE(contains(f.message, "hunter2"));
    }
    Failure f = translated([] { throw pqxx::in_doubt_error("lost connection during COMMIT"); });
    CHECK(f.code == ErrorCode::Io);
    CHECK(contains(f.message, "may or may not have been committed"));
    f = translated([] { throw pqxx::statement_completion_unknown("unknown"); });
    CHECK(f.code == ErrorCode::Io);
    f = translated([] { throw pqxx::serialization_failure("could not serialize"); });
    CHECK(f.code == ErrorCode::Busy);
    CHECK(contains(f.message, "retries ran out"));
    f = translated([] { throw pqxx::deadlock_detected("deadlock detected"); });
    CHECK(f.code == ErrorCode::Busy);
    f = translated([] { throw pqxx::broken_connection("server closed the connection"); });
    CHECK(f.code == ErrorCode::Unavailable);
    f = translated([] { throw pqxx::too_many_connections("FATAL: sorry, too many clients already"); });
    CHECK(f.code == ErrorCode::Unavailable);
    CHECK(contains(f.message, "max_connections"));
    f = translated([] { throw pqxx::usage_error("misuse"); });
    CHECK(f.code == ErrorCode::Internal);
    f = translated([] { throw Error(ErrorCode::NotFound, "as is"); });
    CHECK(f.code == ErrorCode::NotFound);
    CHECK(f.message == "as is");
}

TEST_CASE("without a server, a PostgreSQL test fails saying how to start one", "[postgres]") {
    const std::string url = pg_env("CHECKPOINT_TEST_PG_URL");
    ::unsetenv("CHECKPOINT_TEST_PG_URL");
    std::string message;
    try {
        PgDatabase db;
    } catch (const std::runtime_error& e) {
        message = e.what();
    }
    ::setenv("CHECKPOINT_TEST_PG_URL", url.c_str(), 1);
    CHECK(contains(message, "CHECKPOINT_TEST_PG_URL is not set"));
    CHECK(contains(message, "tools/pg_server.sh start"));
    CHECK(contains(message, "tools/test.sh"));
}
