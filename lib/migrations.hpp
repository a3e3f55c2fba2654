// The SQLite schema migrations in migrations/sqlite/*.sql, embedded at build time, and
// their runner.
#pragma once

#include <filesystem>
#include <vector>

namespace SQLite {
class Database;
}

namespace checkpoint::detail {

// PRAGMA application_id of every checkpoint database: "CHKP".
inline constexpr int application_id = 0x43484B50;

struct Migration {
    int number;        // NNNN of NNNN_name.sql: 1, 2, 3, ... without gaps
    const char* name;  // the file name
    const char* sql;   // its text
};

// Every SQLite migration, in order (generated from migrations/sqlite/ by
// cmake/EmbedMigrations.cmake).
const std::vector<Migration>& embedded_sqlite_migrations();

// Every PostgreSQL migration, in order (generated from migrations/postgres/; applied by
// lib/postgres/migrations.cpp).
const std::vector<Migration>& embedded_postgres_migrations();

// The schema version this library writes: the number of the last migration.
int latest_schema_version();

// Applies every migration newer than the database's PRAGMA user_version, all in one
// BEGIN IMMEDIATE transaction, and records them in schema_migrations. A database already
// at the latest version is left untouched. Throws Error(SchemaTooNew) without writing
// when the database is newer than this library; SQLite::Exception on SQLite failures.
void migrate(SQLite::Database& db, const std::filesystem::path& path);

}  // namespace checkpoint::detail
