// The PostgreSQL schema: the migrations in migrations/postgres/*.sql (embedded at build
// time, see embedded_postgres_migrations() in lib/migrations.hpp) and their runner.
#pragma once

#include <optional>

#include "postgres/connection.hpp"

#include <string_view>

namespace checkpoint::detail {

// checkpoint_schema.application of every checkpoint database on PostgreSQL.
inline constexpr std::string_view postgres_application = "checkpoint";

// The PostgreSQL schema version this library writes: the number of the last migration.
int latest_postgres_schema_version();

// Brings the database's schema, in the connection's current schema (the first existing
// schema of search_path, normally "public"), to latest_postgres_schema_version(), or
// refuses it. Every refusal happens before anything is written:
//   - tables, views or sequences but no checkpoint_schema marker, or a marker naming
//     another application        -> Error(NotADatabase), the database left unchanged;
//   - a marker version newer than this library's -> Error(SchemaTooNew);
//   - a read-only connection: an empty database -> Error(NotFound); an older version ->
//     Error(SchemaTooOld) (a read-only open never migrates, and writes nothing at all).
// A writable connection applies every migration newer than the marker's version in one
// transaction, records each in schema_migrations and writes the marker, serialized
// against concurrent openers (in any process, on any host) by a transaction-level
// advisory lock, so a database is migrated exactly once; a database already at the latest
// version costs one query and takes no lock. Waiting for that lock is bounded by the
// connection's lock_timeout (busy_timeout: Error(Busy)). Other failures: Error as
// throw_translated_pg says.
//
// Privileges: the first open (creating the tables) needs CREATE on the schema — on
// PostgreSQL 15 the database's owner has it on "public" (createdb -O ROLE DB), anyone else
// needs GRANT CREATE ON SCHEMA public TO ROLE. Afterwards, writing needs SELECT, INSERT,
// UPDATE and DELETE on checkpoint's tables (and USAGE on the sequence of checkpoints.id);
// a read-only open needs SELECT only.
std::optional<int> migrate_postgres(PgConnection& connection);

}  // namespace checkpoint::detail
