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

// A connection's writer of the chain: each row's hash is computed before its INSERT (the
// row is written once, hash included), from the chain's tail, which is cached between
// write transactions.
//
// Inside a write transaction (BEGIN IMMEDIATE: the lock that serializes every writer):
// begin() brings the tail up to date, link() gives each new row its id and hash, in order;
// after the COMMIT, committed() keeps the tail for the next transaction. The cached tail
// is used again only when nothing else can have changed the database since: PRAGMA
// data_version (which changes when another connection, of this process or another,
// commits) and sqlite3_total_changes64() (which changes when this connection writes
// outside this writer: prune, leases, rekey, close_run) are both what they were at the
// last committed(). Otherwise the tail is read again: the recorded key, the chain's start
// and head, the newest row id.
class SqliteChainWriter {
public:
    explicit SqliteChainWriter(SQLite::Database& db);
    ~SqliteChainWriter();
    SqliteChainWriter(const SqliteChainWriter&) = delete;
    SqliteChainWriter& operator=(const SqliteChainWriter&) = delete;

    // Where the next row goes: its id (the newest row's + 1, as SQLite would choose) and
    // the hash it chains from.
    struct Tail {
        std::int64_t next_id = 1;
        std::string hash;  // the chain head's hash (chain_zero_hash() at the start)
    };

    // At the start of a write transaction: brings the tail up to date and returns the id
    // of the key the database records ("" for none). Rows after the chain head without a
    // hash (inserted by something else) are chained first when they are of run `run_id`,
    // and refused with Error(Corrupt) otherwise (extend_chain()). Throws SQLite::Exception.
    const std::string& begin(const SecretKey* key, const std::string& run_id);
    // The id the next row must be inserted with.
    std::int64_t next_id() const { return tail_.next_id; }
    // The hash of `row` (whose id, values[0], is next_id()), which becomes the chain's head.
    std::string link(const ChainRowView& row, const SecretKey* key);
    // Before and after a write that may be rolled back alone (a savepoint).
    Tail save() const { return tail_; }
    void restore(Tail tail) { tail_ = std::move(tail); }
    // After the transaction committed: the tail stays valid for the next one.
    void committed();
    // After a rollback or any failure: the next begin() reads the tail again.
    void forget() noexcept { cached_ = false; }

private:
    struct Statements;
    SQLite::Database& db_;
    std::unique_ptr<Statements> statements_;
    Tail tail_;
    std::string key_id_;
    bool cached_ = false;
    std::int64_t data_version_ = 0;
    std::int64_t total_changes_ = 0;

    std::int64_t data_version();
    void read_tail(const SecretKey* key, const std::string& run_id);
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
