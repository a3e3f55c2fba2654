// Applies the embedded SQLite migrations (migrations.hpp) to a database.
#pragma once

#include <optional>

#include <filesystem>

namespace SQLite {
class Database;
}

namespace checkpoint::detail {

// PRAGMA application_id of every checkpoint database: "CHKP".
inline constexpr int application_id = 0x43484B50;

// Applies every migration newer than the database's PRAGMA user_version, all in one
// BEGIN IMMEDIATE transaction, and records them in schema_migrations. A database already
// at the latest version is left untouched. Throws Error(SchemaTooNew) without writing
// when the database is newer than this library; SQLite::Exception on SQLite failures.
std::optional<int> migrate(SQLite::Database& db, const std::filesystem::path& path);

}  // namespace checkpoint::detail
