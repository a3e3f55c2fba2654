#include "sqlite/chain.hpp"

#include <checkpoint/error.hpp>

#include <map>
#include <string>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Statement.h>
#include <sqlite3.h>

namespace checkpoint::detail {

namespace {

// "SELECT <chain_row_columns>, chain_hash FROM checkpoints WHERE id > ?1 ORDER BY id"
std::string rows_sql() {
    std::string sql = "SELECT ";
    for (const ChainColumn& column : chain_row_columns)
        sql += std::string(column.in_sqlite ? column.name : "NULL") + ", ";
    return sql + "chain_hash FROM checkpoints WHERE id > ?1 ORDER BY id";
}

std::string inputs_sql() {
    std::string sql = "SELECT ";
    for (std::size_t i = 0; i < chain_input_column_count; ++i)
        sql += std::string(i ? ", " : "") + chain_input_columns[i].name;
    return sql + " FROM checkpoint_inputs WHERE checkpoint_id = ?1 ORDER BY position";
}

// A value by its storage class: what an edit with sqlite3 stored is what gets hashed.
ChainValue read_value(const SQLite::Column& column) {
    switch (column.getType()) {
        case SQLITE_NULL:
            return std::monostate{};
        case SQLITE_INTEGER:
            return column.getInt64();
        case SQLITE_BLOB:
            return std::string(static_cast<const char*>(column.getBlob()),
                               static_cast<std::size_t>(column.getBytes()));
        default:  // TEXT, and REAL as its text
            return column.getString();
    }
}

std::string blob(const SQLite::Column& column) {
    if (column.isNull()) return {};
    return std::string(static_cast<const char*>(column.getBlob()),
                       static_cast<std::size_t>(column.getBytes()));
}

}  // namespace

void for_each_sqlite_chain_row(SQLite::Database& db, std::int64_t after_id,
                               const std::function<void(const ChainRow&)>& visit) {
    SQLite::Statement rows(db, rows_sql());
    SQLite::Statement inputs(db, inputs_sql());
    rows.bind(1, after_id);
    ChainRow row;
    while (rows.executeStep()) {
        row.values.clear();
        row.inputs.clear();
        for (std::size_t i = 0; i < chain_row_column_count; ++i)
            row.values.push_back(read_value(rows.getColumn(static_cast<int>(i))));
        const SQLite::Column hash = rows.getColumn(static_cast<int>(chain_row_column_count));
        row.chain_hash = hash.isNull() ? std::nullopt : std::optional<std::string>(blob(hash));
        inputs.bind(1, row.id());
        while (inputs.executeStep()) {
            std::vector<ChainValue> input;
            for (std::size_t i = 0; i < chain_input_column_count; ++i)
                input.push_back(read_value(inputs.getColumn(static_cast<int>(i))));
            row.inputs.push_back(std::move(input));
        }
        inputs.reset();
        visit(row);
    }
}

namespace {

// The chain's start, and its head: the newest row with a hash (the start while none).
constexpr const char* sql_chain_start = "SELECT start_id FROM history_chain";
constexpr const char* sql_chain_head =
    "SELECT id, chain_hash FROM checkpoints WHERE id > ?1 AND chain_hash IS NOT NULL "
    "ORDER BY id DESC LIMIT 1";

// Resets a statement kept for reuse when its use ends, however it ends (SQLiteCpp refuses
// to step a statement that failed and was not reset: SQLITE_MISUSE on the next write).
class ResetOnExit {
public:
    explicit ResetOnExit(SQLite::Statement& statement) : statement_(statement) {}
    ~ResetOnExit() { statement_.tryReset(); }
    ResetOnExit(const ResetOnExit&) = delete;
    ResetOnExit& operator=(const ResetOnExit&) = delete;

private:
    SQLite::Statement& statement_;
};

ChainHead read_head(SQLite::Statement& start, SQLite::Statement& head) {
    ResetOnExit start_use(start), head_use(head);
    if (!start.executeStep()) {
        start.reset();
        throw Error(ErrorCode::Corrupt,
                    "the history chain's start (table history_chain) is missing: the database "
                    "was edited by something other than this library");
    }
    ChainHead result{start.getColumn(0).getInt64(), chain_zero_hash()};
    start.reset();
    head.bind(1, result.id);
    if (head.executeStep()) result = {head.getColumn(0).getInt64(), blob(head.getColumn(1))};
    head.reset();
    return result;
}

}  // namespace

ChainState read_sqlite_chain_state(SQLite::Database& db) {
    ChainState state;
    SQLite::Statement start(db, sql_chain_start);
    SQLite::Statement head_query(db, sql_chain_head);
    if (!start.executeStep()) {
        throw Error(ErrorCode::Corrupt,
                    "the history chain's start (table history_chain) is missing: the database "
                    "was edited by something other than this library");
    }
    state.start_id = start.getColumn(0).getInt64();
    start.reset();
    const ChainHead head = read_head(start, head_query);
    state.head_id = head.id;
    state.head_hash = head.hash;
    SQLite::Statement anchors(db,
                              "SELECT row_id, prev_id, prev_hash, tag FROM history_chain_anchors");
    while (anchors.executeStep()) {
        state.anchors[anchors.getColumn(0).getInt64()] =
            ChainAnchor{anchors.getColumn(1).getInt64(), blob(anchors.getColumn(2)),
                        blob(anchors.getColumn(3))};
    }
    return state;
}

struct SqliteChainWriter::Statements {
    explicit Statements(SQLite::Database& db)
        : key(db, "SELECT key_id FROM encryption_keys WHERE role = 'current'"),
          start(db, sql_chain_start),
          head(db, sql_chain_head),
          newest(db, "SELECT max(id) FROM checkpoints"),
          data_version(db, "PRAGMA data_version") {}
    SQLite::Statement key, start, head, newest, data_version;
};

SqliteChainWriter::SqliteChainWriter(SQLite::Database& db)
    : db_(db), statements_(std::make_unique<Statements>(db)) {}

SqliteChainWriter::~SqliteChainWriter() = default;

std::int64_t SqliteChainWriter::data_version() {
    SQLite::Statement& query = statements_->data_version;
    ResetOnExit use(query);
    query.executeStep();
    const std::int64_t version = query.getColumn(0).getInt64();
    query.reset();
    return version;
}

const std::string& SqliteChainWriter::begin(const SecretKey* key, const std::string& run_id) {
    const std::int64_t version = data_version();
    if (!cached_ || version != data_version_ ||
        sqlite3_total_changes64(db_.getHandle()) != total_changes_) {
        cached_ = false;
        read_tail(key, run_id);
        data_version_ = version;
    }
    return key_id_;
}

void SqliteChainWriter::read_tail(const SecretKey* key, const std::string& run_id) {
    Statements& s = *statements_;
    {
        ResetOnExit use(s.key);
        key_id_ = s.key.executeStep() ? s.key.getColumn(0).getString() : "";
    }
    const auto newest = [&] {
        ResetOnExit use(s.newest);
        const std::int64_t id = s.newest.executeStep() ? s.newest.getColumn(0).getInt64() : 0;
        s.newest.reset();
        return id;
    };
    ChainHead head = read_head(s.start, s.head);
    std::int64_t last = newest();
    if (last > head.id) {
        // Rows after the head without a hash: chain them the way every write used to (they
        // must be this run's), or refuse (extend_chain throws Error(Corrupt)).
        std::vector<ChainRow> rows;
        for_each_sqlite_chain_row(db_, head.id, [&](const ChainRow& row) { rows.push_back(row); });
        SQLite::Statement store(db_, "UPDATE checkpoints SET chain_hash = ?2 WHERE id = ?1");
        head = extend_chain(head, rows, key, run_id, [&](std::int64_t id, const std::string& hash) {
            store.bind(1, id);
            store.bind(2, hash.data(), static_cast<int>(hash.size()));
            store.exec();
            store.reset();
        });
        last = newest();
    }
    tail_ = Tail{last + 1, head.hash};
}

std::string SqliteChainWriter::link(const ChainRowView& row, const SecretKey* key) {
    std::string hash = chain_hash(tail_.hash, row, key);
    tail_.next_id = std::get<std::int64_t>(row.values[0]) + 1;
    tail_.hash = hash;
    return hash;
}

void SqliteChainWriter::committed() {
    total_changes_ = sqlite3_total_changes64(db_.getHandle());
    cached_ = true;
}

void extend_sqlite_chain(SQLite::Database& db, const SecretKey* key) {
    SQLite::Statement start(db, sql_chain_start);
    SQLite::Statement head_query(db, sql_chain_head);
    const ChainHead head = read_head(start, head_query);
    std::vector<ChainRow> rows;
    for_each_sqlite_chain_row(db, head.id, [&](const ChainRow& row) { rows.push_back(row); });
    if (rows.empty()) return;
    SQLite::Statement store(db, "UPDATE checkpoints SET chain_hash = ?2 WHERE id = ?1");
    extend_chain(head, rows, key, "", [&](std::int64_t id, const std::string& hash) {
        store.bind(1, id);
        store.bind(2, hash.data(), static_cast<int>(hash.size()));
        store.exec();
        store.reset();
    });
}

void anchor_sqlite_chain_for_prune(SQLite::Database& db, const SecretKey* key) {
    db.exec("DELETE FROM history_chain_anchors WHERE row_id IN (SELECT id FROM temp.prune_ids)");
    // A survivor's chain predecessor is the row just before it (the rows between were never
    // there), unless a prune took that one already (then the survivor has its anchor). So:
    // every deleted chained row whose next row stays, and has no anchor, becomes its anchor.
    SQLite::Statement gaps(db,
                           "SELECT d.id, d.chain_hash, n.id FROM checkpoints d "
                           "JOIN checkpoints n ON n.id = (SELECT min(s.id) FROM checkpoints s "
                           "WHERE s.id > d.id) "
                           "WHERE d.id IN (SELECT id FROM temp.prune_ids) "
                           "AND d.chain_hash IS NOT NULL "
                           "AND n.id NOT IN (SELECT id FROM temp.prune_ids) "
                           "AND n.id NOT IN (SELECT row_id FROM history_chain_anchors)");
    std::map<std::int64_t, std::pair<std::int64_t, std::string>> anchors;  // survivor → last
    while (gaps.executeStep()) {
        anchors[gaps.getColumn(2).getInt64()] = {gaps.getColumn(0).getInt64(),
                                                 blob(gaps.getColumn(1))};
    }
    SQLite::Statement insert(db,
                             "INSERT OR REPLACE INTO history_chain_anchors "
                             "(row_id, prev_id, prev_hash, tag) VALUES (?1, ?2, ?3, ?4)");
    for (const auto& [row_id, last] : anchors) {
        const std::string tag = chain_anchor_tag(row_id, last.first, last.second, key);
        insert.bind(1, row_id);
        insert.bind(2, last.first);
        insert.bind(3, last.second.data(), static_cast<int>(last.second.size()));
        insert.bind(4, tag.data(), static_cast<int>(tag.size()));
        insert.exec();
        insert.reset();
    }
}

}  // namespace checkpoint::detail
