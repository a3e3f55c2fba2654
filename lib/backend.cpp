#include "backend.hpp"

#include "postgres/location.hpp"
#include "postgres/postgres_backend.hpp"
#include "sqlite/sqlite_backend.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint::detail {

std::unique_ptr<Backend> open_backend(const BackendConfig& config, RunIdentity run) {
    if (is_postgres_location(config.directory.native()))
        return std::make_unique<PostgresBackend>(config, std::move(run));
    return std::make_unique<SqliteBackend>(config, std::move(run));
}

void Backend::backup(const std::filesystem::path&) {
    throw Error(ErrorCode::InvalidArgument,
                description() +
                    ": backup copies SQLite databases only; back up a PostgreSQL database "
                    "with pg_dump (or copy its history into an SQLite directory with "
                    "`checkpointctl copy`)");
}

}  // namespace checkpoint::detail

namespace checkpoint::detail {

Error lease_lost_error(const std::string& description, const std::string& action,
                       const std::string& stage, std::int64_t token) {
    return Error(ErrorCode::LeaseLost,
                 description + ": " + action + " refused: the lease (token " +
                     std::to_string(token) + ") on stage '" + stage +
                     "' is lost — it lapsed (not renewed within its ttl) or another worker "
                     "took the stage over. Nothing was written; stop working on the stage, and "
                     "claim it again if it still needs to run");
}

}  // namespace checkpoint::detail
