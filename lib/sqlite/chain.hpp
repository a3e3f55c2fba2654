// The history chain on SQLite (lib/history_chain.hpp has the rules): reading rows for it,
// extending it inside a write transaction, anchoring it across a prune.
#pragma once

#include "history_chain.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace SQLite {
class Database;
}

namespace checkpoint::detail {

class SecretKey;

// Inside a write transaction (BEGIN IMMEDIATE: the lock that serializes every writer):
// hashes every row after the chain head, in id order, and moves the head to the newest.
void extend_sqlite_chain(SQLite::Database& db, const SecretKey* key);

// The same with statements prepared once, for a connection's every write.
class SqliteChainWriter {
public:
    explicit SqliteChainWriter(SQLite::Database& db);
    ~SqliteChainWriter();
    SqliteChainWriter(const SqliteChainWriter&) = delete;
    SqliteChainWriter& operator=(const SqliteChainWriter&) = delete;

    // The id of the key the database records ("" for none).
    std::string recorded_key_id();
    // Chains the rows after the head, which must all be of run `run_id` (this write's).
    void extend(const SecretKey* key, const std::string& run_id);

private:
    struct Statements;
    std::unique_ptr<Statements> statements_;
};

// The chain's bookkeeping. Throws SQLite::Exception.
ChainState read_sqlite_chain_state(SQLite::Database& db);

// Every row with id > after_id, in id order, as the chain sees it.
void for_each_sqlite_chain_row(SQLite::Database& db, std::int64_t after_id,
                               const std::function<void(const ChainRow&)>& visit);

// Inside the prune's transaction, before the rows in temp.prune_ids are deleted: records
// an anchor for every surviving row whose chain predecessor is about to go, and drops the
// anchors of the rows that go.
void anchor_sqlite_chain_for_prune(SQLite::Database& db, const SecretKey* key);

}  // namespace checkpoint::detail
