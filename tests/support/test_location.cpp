#include "test_location.hpp"

#include "raw_db.hpp"

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <thread>

namespace checkpoint::test {

TestBackend test_backend() {
    static const TestBackend backend = [] {
        const char* text = std::getenv("CHECKPOINT_TEST_BACKEND");
        if (text == nullptr || *text == '\0' || std::string(text) == "sqlite")
            return TestBackend::Sqlite;
        if (std::string(text) == "postgres") return TestBackend::Postgres;
        std::cerr << "CHECKPOINT_TEST_BACKEND=" << text
                  << ": expected sqlite (the default) or postgres\n";
        std::exit(2);
    }();
    return backend;
}

const char* test_backend_name() {
    return test_backend() == TestBackend::Postgres ? "postgres" : "sqlite";
}

TestLocation::TestLocation() : TestLocation(test_backend()) {}

TestLocation::TestLocation(TestBackend backend) : backend_(backend) {
    if (backend_ == TestBackend::Postgres) {
        pg_ = std::make_unique<PgDatabase>();
        location_ = pg_->url();
    } else {
        location_ = scratch_.path();
    }
}

TestLocation::~TestLocation() = default;

std::string TestLocation::described() const {
    if (backend_ == TestBackend::Sqlite) return "checkpoints.db";
    return "checkpoint database '" + pg_->name() + "'";
}

void TestLocation::settle() const {
    if (backend_ == TestBackend::Sqlite) return;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::string others;
    for (;;) {
        try {
            pqxx::connection connection(pg_->url());
            pqxx::nontransaction tx(connection);
            others = tx.exec1(
                           "SELECT count(*) FROM pg_stat_activity WHERE datname = "
                           "current_database() AND pid <> pg_backend_pid()")[0]
                         .as<std::string>();
        } catch (const std::exception& e) {
            FAIL("settle(): PostgreSQL refused the query: " << e.what());
        }
        if (others == "0") return;
        if (std::chrono::steady_clock::now() > deadline) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::string sessions;
    for (const auto& row :
         rows("SELECT pid, state, backend_start, wait_event_type, wait_event, "
              "application_name, client_port, left(query, 200) FROM pg_stat_activity WHERE "
              "datname = current_database() AND pid <> pg_backend_pid()"))
        sessions += row + "\n";
    FAIL("settle(): " << others << " sessions still open after 60 s:\n" << sessions);
}

std::vector<std::string> TestLocation::rows(const std::string& sql) const {
    INFO("on " << test_backend_name() << ": " << sql);
    if (backend_ == TestBackend::Sqlite) {
        RawDb db(location_ / "checkpoints.db", SQLITE_OPEN_READONLY);
        return db.rows(sql);
    }
    std::vector<std::string> result;
    try {
        pqxx::connection connection(pg_->url());
        pqxx::nontransaction tx(connection);
        for (const auto& row : tx.exec(sql)) {
            std::string line;
            for (pqxx::row::size_type i = 0; i < row.size(); ++i) {
                if (i > 0) line += '|';
                if (!row[i].is_null()) line += row[i].as<std::string>();
            }
            result.push_back(line);
        }
    } catch (const std::exception& e) {
        FAIL("PostgreSQL refused the query: " << e.what());
    }
    return result;
}

std::string TestLocation::query(const std::string& sql) const {
    const auto result = rows(sql);
    INFO(sql);
    REQUIRE(result.size() == 1);
    return result.front();
}

void TestLocation::exec(const std::string& sql) const {
    if (backend_ == TestBackend::Sqlite) {
        exec_sql(location_ / "checkpoints.db", sql);
        return;
    }
    try {
        pqxx::connection connection(pg_->url());
        pqxx::nontransaction tx(connection);
        tx.exec(sql);
    } catch (const std::exception& e) {
        FAIL("PostgreSQL refused " << sql << ": " << e.what());
    }
}

}  // namespace checkpoint::test
