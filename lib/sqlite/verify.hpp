// The consistency check behind CheckpointManager::verify and `checkpointctl verify`.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace SQLite {
class Database;
}

namespace checkpoint::detail {

struct DatabaseKey;

// Checks SQLite's integrity and the invariants of the checkpoint tables, in every
// pipeline, and that every output file a row names (in `outputs`) is there with its size
// and SHA-256. Returns one line per problem (at most `max_problems`); empty when all hold.
// Only reads. Throws SQLite::Exception when even the integrity check cannot run.
// With `key` (an encrypted database) output files and outputs in the database are decrypted.
std::vector<std::string> verify_database(SQLite::Database& db, const std::filesystem::path& outputs,
                                         const DatabaseKey* key, std::size_t max_problems = 1000);

}  // namespace checkpoint::detail
