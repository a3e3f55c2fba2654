// The consistency check behind CheckpointManager::verify and `checkpointctl verify`.
#pragma once

#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace checkpoint::detail {

// Checks SQLite's integrity and the invariants of the checkpoint tables, in every
// pipeline. Returns one line per problem (at most `max_problems`); empty when all hold.
// Only reads. Throws SQLite::Exception when even the integrity check cannot run.
std::vector<std::string> verify_database(SQLite::Database& db, std::size_t max_problems = 1000);

}  // namespace checkpoint::detail
