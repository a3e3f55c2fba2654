// The PostgreSQL server of the tests, and a fresh database on it per test case.
//
// tools/test.sh starts one throwaway server (tools/pg_server.sh) for the whole run and
// exports CHECKPOINT_TEST_PG_URL (and the other CHECKPOINT_TEST_PG_* variables that
// tools/pg_server.sh documents). A [postgres] test that finds no server FAILS, saying how
// to start one: by hand,
//     eval "$(tools/pg_server.sh start)"
//     (cd build && ctest -L postgres)
//     tools/pg_server.sh stop "$CHECKPOINT_TEST_PG_DIR"
// (`ctest -LE postgres` runs everything else without a server.)
#pragma once

#include <string>

namespace checkpoint::test {

// The value of the environment variable `name` (one of CHECKPOINT_TEST_PG_*). Throws
// std::runtime_error, saying how to start a server, when it is unset or empty.
std::string pg_env(const char* name);

// CHECKPOINT_TEST_PG_URL: "postgresql://postgres@127.0.0.1:PORT/postgres", the superuser
// over TCP with trust authentication.
std::string pg_server_url();

// "127.0.0.1:PORT", the server's TCP endpoint as ServerLocation::endpoint names it.
std::string pg_server_endpoint();

// "test_" + 16 random lower-case hex digits: a name no other test uses.
std::string pg_unique_name(const std::string& prefix = "test_");

// A URI component with every byte but [A-Za-z0-9-._~] percent-encoded.
std::string percent_encode(const std::string& text);

// Runs `sql` on `database` as the superuser over a short connection of its own; returns
// the first column of the first row ("" when there is none or it is NULL).
std::string pg_exec(const std::string& database, const std::string& sql);

// A fresh, empty database for one test case: CREATE DATABASE test_<random> on
// construction, DROP DATABASE ... WITH (FORCE) on destruction (which also ends any
// connection a test left open). Not copyable. Throws std::runtime_error when there is no
// server.
class PgDatabase {
public:
    PgDatabase();
    ~PgDatabase();
    PgDatabase(const PgDatabase&) = delete;
    PgDatabase& operator=(const PgDatabase&) = delete;

    const std::string& name() const { return name_; }
    // postgresql://postgres@127.0.0.1:PORT/<name>
    std::string url() const;
    // postgresql://<user>:<password>@127.0.0.1:PORT/<name>, both percent-encoded.
    std::string url_as(const std::string& user, const std::string& password) const;
    // pg_exec(name(), sql)
    std::string exec(const std::string& sql) const { return pg_exec(name_, sql); }

private:
    std::string name_;
};

}  // namespace checkpoint::test
