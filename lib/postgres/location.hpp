// Where a PostgreSQL checkpoint database is: a libpq connection URI, parsed, and redacted
// for every message, log line and tool output.
#pragma once

#include <string>
#include <string_view>

namespace checkpoint::detail {

// True when `location` names a PostgreSQL database: it starts with "postgresql://" or
// "postgres://" (the two URI schemes libpq accepts; case-sensitive, as in libpq). Anything
// else is a directory for the SQLite backend.
bool is_postgres_location(std::string_view location);

// A parsed PostgreSQL location. Only `uri` may hold a secret: print `redacted` or
// `endpoint` and `database`, never `uri`.
struct ServerLocation {
    // The URI as given (may hold a password): for connecting only, never to print.
    std::string uri;
    // `uri` with every password replaced by "***" (see redact_uri): safe to print.
    std::string redacted;
    // The server(s) as a user would name them, with libpq's defaults filled in (the
    // PGHOST / PGPORT environment variables, else the socket directory
    // /var/run/postgresql and port 5432): "db.example.com:5432",
    // "10.0.0.1:5432,10.0.0.2:5433", "[::1]:5432", "/var/run/postgresql:5432".
    std::string endpoint;
    // The database name (percent-decoded; default: PGDATABASE, else the user name as
    // libpq derives it).
    std::string database;
};

// Parses `uri` with libpq's own parser (PQconninfoParse), so all of libpq's URI syntax is
// accepted: several hosts ("host1:5432,host2:5433"), query parameters such as
// target_session_attrs, sslmode, application_name, connect_timeout, and percent-encoding
// anywhere. Throws Error(InvalidArgument) when `uri` is not a PostgreSQL URI
// (is_postgres_location), is malformed, or names a port that is not a number from 1 to
// 65535; the message holds the redacted URI and never the password (libpq's own
// complaint, which may quote the password, is redacted too). Does not connect.
ServerLocation parse_location(std::string uri);

// "checkpoint database 'DATABASE' on ENDPOINT": how messages name a location (no secret).
std::string describe_location(const ServerLocation& location);

// `text` with every password it may contain replaced by "***": the password of a
// "postgresql://user:password@..." URI, or of any other "scheme://user:password@..."
// (wherever the URI appears in the text), and the value of a "password=" / "sslpassword=" keyword,
// in a URI's query
// ("?password=x&...") or in a key/value connection string ("host=h password='x y'").
// Usable on any message that may quote a location. Never throws but std::bad_alloc.
std::string redact_uri(std::string_view text);

}  // namespace checkpoint::detail
