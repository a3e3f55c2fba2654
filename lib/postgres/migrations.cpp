#include "postgres/migrations.hpp"

#include "../migrations.hpp"  // lib/migrations.hpp: Migration, embedded_postgres_migrations()

#include <checkpoint/error.hpp>

#include <string>

#include <pqxx/pqxx>

namespace checkpoint::detail {

namespace {

// The key of the transaction-level advisory lock that serializes migrations (advisory
// locks are per database): "CHKP", then 1 for "schema".
constexpr int lock_key_application = 0x43484B50;
constexpr int lock_key_schema = 1;

// What the database holds, as far as migrations care.
struct SchemaState {
    std::string schema;       // current_schema(): where the tables are, or go
    long long objects = 0;    // its tables, views, sequences, ...
    bool has_marker = false;  // checkpoint_schema exists in it
    bool marker_row = false;  // ... and has its row
    std::string application;  // the marker's application
    int version = 0;          // the marker's version
};

SchemaState read_state(pqxx::transaction_base& tx, const ServerLocation& location) {
    SchemaState state;
    const pqxx::row row = tx.exec1(
        "SELECT current_schema(), "
        "(SELECT count(*) FROM pg_catalog.pg_class c "
        " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')), "
        "to_regclass(quote_ident(current_schema()) || '.checkpoint_schema') IS NOT NULL");
    if (row[0].is_null()) {
        throw Error(ErrorCode::InvalidArgument,
                    describe_location(location) +
                        ": no schema to keep checkpoint's tables in: the role's search_path "
                        "names no existing schema. Create one, or set search_path (e.g. "
                        "?options=-csearch_path%3Dpublic in the URI)");
    }
    state.schema = row[0].as<std::string>();
    state.objects = row[1].as<long long>();
    state.has_marker = row[2].as<bool>();
    if (state.has_marker) {
        const pqxx::result marker = tx.exec("SELECT application, version FROM " +
                                            tx.quote_name(state.schema) + ".checkpoint_schema");
        if (!marker.empty()) {
            state.marker_row = true;
            state.application = marker[0][0].as<std::string>();
            state.version = marker[0][1].as<int>();
        }
    }
    return state;
}

// Throws when the database may not be used (see migrate_postgres); returns whether it
// needs migrating.
bool check_state(const SchemaState& state, const ServerLocation& location, bool read_only) {
    const int latest = latest_postgres_schema_version();
    const std::string where = describe_location(location);
    if (!state.has_marker) {
        if (state.objects > 0) {
            throw Error(ErrorCode::NotADatabase,
                        where + ": not a checkpoint database: schema '" + state.schema +
                            "' holds " + std::to_string(state.objects) +
                            " tables, views or sequences but no checkpoint_schema marker; it "
                            "was left unchanged. Point the URI at an empty database, or at "
                            "another schema (options=-csearch_path%3DNAME)");
        }
        if (read_only) {
            throw Error(ErrorCode::NotFound,
                        where +
                            ": is empty (no checkpoint was ever recorded; a read-only "
                            "open creates nothing)");
        }
        return true;
    }
    if (!state.marker_row || state.application != postgres_application) {
        throw Error(ErrorCode::NotADatabase,
                    where + ": not a checkpoint database: its checkpoint_schema marker names " +
                        (state.marker_row ? "the application '" + state.application + "'"
                                          : std::string("no application (the table is empty)")) +
                        "; it was left unchanged. Point the URI at another database");
    }
    if (state.version > latest) {
        throw Error(ErrorCode::SchemaTooNew,
                    where + ": its schema version " + std::to_string(state.version) +
                        " is newer than this library knows (" + std::to_string(latest) +
                        "); nothing was written. Upgrade the checkpoint library");
    }
    if (state.version < latest && read_only) {
        throw Error(ErrorCode::SchemaTooOld,
                    where + ": its schema version " + std::to_string(state.version) +
                        " is older than this library's (" + std::to_string(latest) +
                        ") and a read-only open does not migrate. Run `checkpointctl "
                        "migrate`, or open it once for writing");
    }
    return state.version < latest;
}

}  // namespace

int latest_postgres_schema_version() {
    return embedded_postgres_migrations().back().number;
}

std::optional<int> migrate_postgres(PgConnection& connection) {
    const ServerLocation& location = connection.location();
    try {
        {
            // The common case: up to date. One query, no lock, nothing written.
            pqxx::nontransaction tx(connection.get());
            if (!check_state(read_state(tx, location), location, connection.read_only()))
                return std::nullopt;
        }
        pqxx::work tx(connection.get());
        tx.exec_params("SELECT pg_advisory_xact_lock($1, $2)", lock_key_application,
                       lock_key_schema);
        // Read again under the lock: another opener may have migrated meanwhile.
        const SchemaState state = read_state(tx, location);
        if (!check_state(state, location, false)) return std::nullopt;  // rolled back
        for (const Migration& migration : embedded_postgres_migrations()) {
            if (migration.number <= state.version) continue;
            tx.exec(migration.sql);
            tx.exec_params(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, "
                "to_char(clock_timestamp() AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))",
                migration.number, std::string(migration.name));
        }
        tx.exec_params(
            "INSERT INTO checkpoint_schema (application, version) VALUES ($1, $2) "
            "ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
            std::string(postgres_application), latest_postgres_schema_version());
        tx.commit();
        return state.version;
    } catch (...) {
        connection.throw_translated("opening (checking and migrating its schema)");
    }
}

}  // namespace checkpoint::detail
