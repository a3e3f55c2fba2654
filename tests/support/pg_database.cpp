#include "pg_database.hpp"

#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include <pqxx/pqxx>

namespace checkpoint::test {

namespace {

// "postgresql://postgres@127.0.0.1:PORT" of CHECKPOINT_TEST_PG_URL (without the database).
std::string server_prefix() {
    const std::string url = pg_server_url();
    const std::size_t slash = url.rfind('/');
    if (slash == std::string::npos || slash < 13)
        throw std::runtime_error("CHECKPOINT_TEST_PG_URL is not postgresql://USER@HOST:PORT/DB: " +
                                 url);
    return url.substr(0, slash);
}

std::string database_url(const std::string& database) { return server_prefix() + "/" + database; }

}  // namespace

std::string pg_env(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') {
        throw std::runtime_error(
            std::string(name) +
            " is not set: this test needs the throwaway PostgreSQL server that tools/test.sh "
            "starts. Run tools/test.sh, or start one by hand: eval \"$(tools/pg_server.sh "
            "start)\"; then ctest; then tools/pg_server.sh stop \"$CHECKPOINT_TEST_PG_DIR\" "
            "(ctest -LE postgres skips the PostgreSQL tests)");
    }
    return value;
}

std::string pg_server_url() { return pg_env("CHECKPOINT_TEST_PG_URL"); }

std::string pg_server_endpoint() {
    const std::string prefix = server_prefix();
    return prefix.substr(prefix.rfind('@') + 1);
}

std::string pg_unique_name(const std::string& prefix) {
    static thread_local std::mt19937_64 random{std::random_device{}()};
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(random()));
    return prefix + hex;
}

std::string percent_encode(const std::string& text) {
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    return out;
}

std::string pg_exec(const std::string& database, const std::string& sql) {
    pqxx::connection connection(database_url(database));
    pqxx::nontransaction tx(connection);
    const pqxx::result result = tx.exec(sql);
    if (result.empty() || result.columns() == 0 || result[0][0].is_null()) return "";
    return result[0][0].as<std::string>();
}

PgDatabase::PgDatabase() : name_(pg_unique_name()) {
    pg_exec("postgres", "CREATE DATABASE " + name_);
}

PgDatabase::~PgDatabase() {
    try {
        pg_exec("postgres", "DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "PgDatabase: could not drop %s: %s\n", name_.c_str(), e.what());
    }
}

std::string PgDatabase::url() const { return database_url(name_); }

std::string PgDatabase::url_as(const std::string& user, const std::string& password) const {
    return "postgresql://" + percent_encode(user) + ":" + percent_encode(password) + "@" +
           pg_server_endpoint() + "/" + name_;
}

}  // namespace checkpoint::test
