// A raw SQLite connection for tests: an independent view of a database file, outside the
// library, for checking what is on disk and for damaging it on purpose.
#pragma once

#include <sqlite3.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace checkpoint::test {

class RawDb {
public:
    explicit RawDb(const std::filesystem::path& path, int flags = SQLITE_OPEN_READWRITE) {
        const int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
        if (rc != SQLITE_OK) {
            const std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
            sqlite3_close(db_);
            db_ = nullptr;
            FAIL("sqlite3_open_v2(" << path << "): " << message);
        }
    }
    ~RawDb() { sqlite3_close(db_); }
    RawDb(const RawDb&) = delete;
    RawDb& operator=(const RawDb&) = delete;

    // Runs `sql` (one or more statements without results); returns the SQLite result code.
    int exec(const std::string& sql) {
        return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
    }
    std::string error() const { return sqlite3_errmsg(db_); }

    // The rows of one query (with `params` bound as text), each row's columns joined by
    // '|'; NULL reads as an empty string.
    std::vector<std::string> rows(const std::string& sql,
                                  const std::vector<std::string>& params = {}) {
        sqlite3_stmt* statement = nullptr;
        const int prepared = sqlite3_prepare_v2(db_, sql.c_str(), -1, &statement, nullptr);
        INFO(sql);
        REQUIRE(prepared == SQLITE_OK);
        for (std::size_t i = 0; i < params.size(); ++i) {
            sqlite3_bind_text(statement, static_cast<int>(i + 1), params[i].c_str(), -1,
                              SQLITE_TRANSIENT);
        }
        std::vector<std::string> result;
        int rc = SQLITE_OK;
        while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
            std::string row;
            for (int i = 0; i < sqlite3_column_count(statement); ++i) {
                if (i > 0) row += '|';
                const auto* text = sqlite3_column_text(statement, i);
                row += text ? reinterpret_cast<const char*>(text) : "";
            }
            result.push_back(row);
        }
        const std::string message = sqlite3_errmsg(db_);
        sqlite3_finalize(statement);
        INFO(message);
        REQUIRE(rc == SQLITE_DONE);
        return result;
    }

    // The one row of a query (see rows()).
    std::string value(const std::string& sql, const std::vector<std::string>& params = {}) {
        const auto result = rows(sql, params);
        REQUIRE(result.size() == 1);
        return result.front();
    }

private:
    sqlite3* db_ = nullptr;
};

// Runs `sql` on the file (created if missing) through a raw connection; the test fails if
// SQLite refuses it.
inline void exec_sql(const std::filesystem::path& path, const std::string& sql) {
    RawDb db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    const int rc = db.exec(sql);
    INFO(sql << ": " << db.error());
    REQUIRE(rc == SQLITE_OK);
}

// The one row of `sql`, read through a raw read-only connection.
inline std::string query_value(const std::filesystem::path& path, const std::string& sql) {
    RawDb db(path, SQLITE_OPEN_READONLY);
    return db.value(sql);
}

}  // namespace checkpoint::test
