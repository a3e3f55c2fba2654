// The schema migrations of each backend (migrations/<backend>/*.sql), embedded at build
// time. Their runners are in the backends (sqlite/migrate.hpp).
#pragma once

#include <vector>

namespace checkpoint::detail {

struct Migration {
    int number;        // NNNN of NNNN_name.sql: 1, 2, 3, ... without gaps
    const char* name;  // the file name
    const char* sql;   // its text
};

// Every SQLite migration, in order (generated from migrations/sqlite/ by
// cmake/EmbedMigrations.cmake).
const std::vector<Migration>& embedded_sqlite_migrations();

// The schema version this library writes to SQLite databases: the number of the last
// SQLite migration (checkpoint::schema_version()).
int latest_schema_version();

}  // namespace checkpoint::detail
