#include "backend.hpp"

#include "sqlite/sqlite_backend.hpp"

namespace checkpoint::detail {

std::unique_ptr<Backend> open_backend(const BackendConfig& config, RunIdentity run) {
    return std::make_unique<SqliteBackend>(config, std::move(run));
}

}  // namespace checkpoint::detail
