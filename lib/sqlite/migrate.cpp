#include "sqlite/migrate.hpp"

#include "clock.hpp"
#include "migrations.hpp"

#include <checkpoint/error.hpp>

#include <string>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <SQLiteCpp/Transaction.h>

namespace checkpoint::detail {

int latest_schema_version() {
    return embedded_sqlite_migrations().back().number;
}

std::optional<int> migrate(SQLite::Database& db, const std::filesystem::path& path) {
    SQLite::Transaction transaction(db, SQLite::TransactionBehavior::IMMEDIATE);
    // Read again under the write lock: another process may have migrated meanwhile.
    const int current = db.execAndGet("PRAGMA user_version").getInt();
    const int latest = latest_schema_version();
    if (current > latest) {
        throw Error(ErrorCode::SchemaTooNew,
                    "checkpoint database " + path.string() + ": its schema version " +
                        std::to_string(current) + " is newer than this library knows (" +
                        std::to_string(latest) +
                        "); nothing was written. Upgrade the checkpoint library");
    }
    if (current == latest) return std::nullopt;  // rolled back: nothing was written
    const std::string now = utc_now();
    for (const Migration& migration : embedded_sqlite_migrations()) {
        if (migration.number <= current) continue;
        db.exec(migration.sql);
        SQLite::Statement record(
            db, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
        record.bind(1, migration.number);
        record.bind(2, migration.name);
        record.bind(3, now);
        record.exec();
    }
    db.exec("PRAGMA application_id = " + std::to_string(application_id));
    db.exec("PRAGMA user_version = " + std::to_string(latest));
    transaction.commit();
    return current;
}

}  // namespace checkpoint::detail
