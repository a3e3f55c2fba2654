// A cache of per-stage answers read from an SQLite database (the stage heads that
// has_checkpoint looks up), valid for as long as the database has not changed: a lookup that
// nothing changed since costs no query, only the check that nothing changed.
//
// "Changed" is judged by two counters: PRAGMA data_version, which moves with every commit of
// any other connection (another manager, another process), and sqlite3_total_changes64() of
// this connection, which moves with every row it inserts, updates or deletes (rolled back or
// not). The cache is used only outside a transaction (autocommit): inside one, answers may
// reflect writes that a rollback takes back, so they are neither served nor kept.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>

namespace checkpoint::detail {

// Tells whether the database of a connection may have changed since the last call.
class ChangeWatch {
public:
    explicit ChangeWatch(SQLite::Database& db);
    // Outside a transaction: true when the database may have changed since the previous call
    // (and on the first call). Reads PRAGMA data_version: one short read transaction.
    bool changed();
    // True inside a transaction (the connection is not in autocommit mode).
    bool in_transaction() const;

private:
    SQLite::Database& db_;
    SQLite::Statement data_version_;
    std::optional<std::int64_t> version_;
    std::int64_t own_changes_ = -1;
};

// Answers (std::nullopt: "none") per stage name, dropped whenever the database changed.
template <typename Value>
class StageCache {
public:
    // At most this many stages are kept; past it the cache starts again empty.
    static constexpr std::size_t max_entries = 65536;

    explicit StageCache(SQLite::Database& db) : watch_(db) {}

    // The answer `read(stage)` gives, from the cache when nothing changed since it was kept.
    template <typename Read>
    std::optional<Value> get(const std::string& stage, Read&& read) {
        if (watch_.in_transaction()) return read(stage);
        if (watch_.changed()) entries_.clear();
        const auto found = entries_.find(stage);
        if (found != entries_.end()) return found->second;
        std::optional<Value> answer = read(stage);
        if (entries_.size() >= max_entries) entries_.clear();
        entries_.emplace(stage, answer);
        return answer;
    }

private:
    ChangeWatch watch_;
    std::unordered_map<std::string, std::optional<Value>> entries_;
};

}  // namespace checkpoint::detail
