// PostgreSQL locations: which strings are URIs, how they are parsed (libpq's syntax, the
// defaults filled in), and that no password ever reaches a message or a redacted string.
#include "postgres/location.hpp"

#include <checkpoint/error.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

using checkpoint::Error;
using checkpoint::ErrorCode;
using checkpoint::detail::is_postgres_location;
using checkpoint::detail::parse_location;
using checkpoint::detail::redact_uri;
using checkpoint::detail::ServerLocation;

namespace {

// The message of the InvalidArgument error that parsing `uri` throws ("" if none).
std::string parse_error(const std::string& uri) {
    try {
        parse_location(uri);
    } catch (const Error& e) {
        CHECK(e.code() == ErrorCode::InvalidArgument);
        return e.what();
    }
    FAIL("parse_location accepted " << redact_uri(uri));
    return "";
}

// Unsets the libpq environment variables that change the defaults, for the test's duration.
struct NoLibpqEnvironment {
    NoLibpqEnvironment() {
        for (const char* name : {"PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER"})
            ::unsetenv(name);
    }
};

}  // namespace

TEST_CASE("postgresql:// and postgres:// are locations, anything else a directory",
          "[postgres][location]") {
    CHECK(is_postgres_location("postgresql://host/db"));
    CHECK(is_postgres_location("postgres://host/db"));
    CHECK(is_postgres_location("postgresql://"));
    CHECK_FALSE(is_postgres_location("checkpoints"));
    CHECK_FALSE(is_postgres_location("/data/postgresql://x"));
    CHECK_FALSE(is_postgres_location("postgresql:/host/db"));
    CHECK_FALSE(is_postgres_location("POSTGRESQL://host/db"));  // libpq: lower case only
    CHECK_FALSE(is_postgres_location("host=h dbname=d"));
    CHECK_FALSE(is_postgres_location(""));
}

TEST_CASE("a URI's endpoint and database, with libpq's defaults filled in",
          "[postgres][location]") {
    NoLibpqEnvironment clean;
    struct Case {
        std::string uri, endpoint, database;
    };
    const Case cases[] = {
        {"postgresql://u@db.example.com/orders", "db.example.com:5432", "orders"},
        {"postgres://u@db.example.com:6543/orders", "db.example.com:6543", "orders"},
        {"postgresql://u:pw@h1:5432,h2:5433/d?target_session_attrs=read-write",
         "h1:5432,h2:5433", "d"},
        {"postgresql://u@h1,h2:7000/d", "h1:5432,h2:7000", "d"},
        {"postgresql://u@h1,h2/d?port=7001", "h1:7001,h2:7001", "d"},
        {"postgresql://u@[::1]:5433/d", "[::1]:5433", "d"},
        {"postgresql:///d?host=/tmp/sockets&port=5999", "/tmp/sockets:5999", "d"},
        {"postgresql://%2Ftmp%2Fsock/d", "/tmp/sock:5432", "d"},
        {"postgresql:///d", "/var/run/postgresql:5432", "d"},
        {"postgresql://alice@h", "h:5432", "alice"},  // the database defaults to the user
        {"postgresql://u@h/my%20db?sslmode=disable&application_name=etl", "h:5432", "my db"},
        {"postgresql://u@h/d?hostaddr=10.0.0.5", "h:5432", "d"},
        {"postgresql:///d?hostaddr=10.0.0.5&port=6000", "10.0.0.5:6000", "d"},
    };
    for (const Case& c : cases) {
        INFO(c.uri);
        const ServerLocation location = parse_location(c.uri);
        CHECK(location.uri == c.uri);
        CHECK(location.endpoint == c.endpoint);
        CHECK(location.database == c.database);
    }
}

TEST_CASE("PGHOST, PGPORT and PGDATABASE fill in what the URI leaves out",
          "[postgres][location]") {
    NoLibpqEnvironment clean;
    ::setenv("PGHOST", "envhost", 1);
    ::setenv("PGPORT", "6111", 1);
    ::setenv("PGDATABASE", "envdb", 1);
    const ServerLocation defaults = parse_location("postgresql://");
    const ServerLocation given = parse_location("postgresql://h:1234/d");
    NoLibpqEnvironment restore;
    CHECK(defaults.endpoint == "envhost:6111");
    CHECK(defaults.database == "envdb");
    CHECK(given.endpoint == "h:1234");
    CHECK(given.database == "d");
}

TEST_CASE("the redacted URI hides the password, percent-encoded or not, and nothing else",
          "[postgres][location][redaction]") {
    const ServerLocation location =
        parse_location("postgresql://alice:s%40cr%3At%2Fx@h1:5432,h2:5433/d?sslmode=require");
    CHECK(location.redacted == "postgresql://alice:***@h1:5432,h2:5433/d?sslmode=require");
    CHECK(location.redacted.find("cr") == std::string::npos);

    CHECK(redact_uri("postgresql://u:secret@h/d") == "postgresql://u:***@h/d");
    CHECK(redact_uri("postgres://u:secret@h/d") == "postgres://u:***@h/d");
    CHECK(redact_uri("postgresql://:secret@h/d") == "postgresql://:***@h/d");
    CHECK(redact_uri("postgresql://u@h/d") == "postgresql://u@h/d");  // no password
    CHECK(redact_uri("postgresql://h:5432/d") == "postgresql://h:5432/d");
    CHECK(redact_uri("postgresql://h1:5432,h2:5433/d") == "postgresql://h1:5432,h2:5433/d");
    // A password with an unencoded '@' or '/': hidden all the same.
    CHECK(redact_uri("postgresql://u:p@ss@h/d") == "postgresql://u:***@h/d");
    CHECK(redact_uri("postgresql://u:pa/ss@h/d") == "postgresql://u:***@h/d");
    // In a query, and in key/value connection strings, quoted or not.
    CHECK(redact_uri("postgresql://u@h/d?password=secret&sslmode=require") ==
          "postgresql://u@h/d?password=***&sslmode=require");
    CHECK(redact_uri("host=h password=secret dbname=d") == "host=h password=*** dbname=d");
    CHECK(redact_uri("host=h password = 'se cr\\'et' dbname=d") ==
          "host=h password = *** dbname=d");
    CHECK(redact_uri("sslpassword=keypass host=h") == "sslpassword=*** host=h");
    CHECK(redact_uri("PGPASSWORD=secret psql") == "PGPASSWORD=*** psql");
    // Anywhere in a longer text, several times.
    CHECK(redact_uri("copy from postgresql://a:one@h/x to postgres://b:two@g/y: failed") ==
          "copy from postgresql://a:***@h/x to postgres://b:***@g/y: failed");
    CHECK(redact_uri("error near \"postgresql://a:one@h/x\"") ==
          "error near \"postgresql://a:***@h/x\"");
    CHECK(redact_uri("no secrets here") == "no secrets here");
    CHECK(redact_uri("") == "");
}

TEST_CASE("a malformed URI is refused with InvalidArgument, and its message has no password",
          "[postgres][location][redaction]") {
    struct Case {
        std::string uri, secret;
    };
    const Case cases[] = {
        // libpq's own complaint quotes the bad token, which is the password here...
        {"postgresql://u:pa%zzss@h/db", "pa%zzss"},
        // ... or the whole URI.
        {"postgresql://u:hunter2@[::1/db", "hunter2"},
        {"postgresql://u:hunter2@h/db?bogus=1", "hunter2"},
        {"postgresql://u:hunter2@h/db?password=p2%zz", "p2%zz"},
        {"postgresql://u:hunter2@h:notaport/db", "hunter2"},
        {"postgresql://u:hunter2@h:70000/db", "hunter2"},
        {"postgresql://u:pa/ss@h/db", "pa/ss"},
        {"postgresql://u:hunter2@h/db?port=1,2,3&host=a,b", "hunter2"},
    };
    for (const Case& c : cases) {
        INFO(redact_uri(c.uri));
        const std::string message = parse_error(c.uri);
        CHECK(message.find("invalid PostgreSQL location") != std::string::npos);
        CHECK(message.find(c.secret) == std::string::npos);
        CHECK(message.find("hunter2") == std::string::npos);
    }
    // Not a URI at all: a key/value string, another scheme.
    CHECK(parse_error("host=h password=hunter2").find("hunter2") == std::string::npos);
    CHECK(parse_error("mysql://u:hunter2@h/d").find("hunter2") == std::string::npos);
}
