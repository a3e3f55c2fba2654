#include "postgres/postgres_chain.hpp"

#include "sha256.hpp"

#include <checkpoint/error.hpp>

#include <map>

namespace checkpoint::detail {

namespace {

constexpr std::int64_t page_rows = 1000;

std::string column_expression(const ChainColumn& column) {
    switch (column.kind) {
        case ChainKind::Json:
            return std::string(column.name) + "::text";
        case ChainKind::Boolean:
            return std::string(column.name) + "::int";
        case ChainKind::Text:
            return std::string(column.name) + "::text";  // write_id is a uuid
        default:
            return column.name;
    }
}

std::string rows_sql() {
    std::string sql = "SELECT ";
    for (const ChainColumn& column : chain_row_columns) sql += column_expression(column) + ", ";
    return sql + "encode(chain_hash, 'hex') FROM checkpoints WHERE id > $1 ORDER BY id LIMIT " +
           std::to_string(page_rows);
}

std::string inputs_sql() {
    std::string sql = "SELECT checkpoint_id";
    for (const ChainColumn& column : chain_input_columns) sql += ", " + column_expression(column);
    return sql +
           " FROM checkpoint_inputs WHERE checkpoint_id > $1 AND checkpoint_id <= $2 "
           "ORDER BY checkpoint_id, position";
}

ChainValue read_value(const pqxx::field& field, ChainKind kind) {
    if (field.is_null()) return std::monostate{};
    if (kind == ChainKind::Integer || kind == ChainKind::Boolean) return field.as<std::int64_t>();
    return field.as<std::string>();
}

std::string from_hex(const std::string& hex) {
    std::string bytes;
    const auto digit = [](char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; };
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        bytes.push_back(static_cast<char>(digit(hex[i]) * 16 + digit(hex[i + 1])));
    return bytes;
}

[[noreturn]] void missing_head() {
    throw Error(ErrorCode::Corrupt,
                "the history chain's head (table history_chain) is missing: the database was "
                "edited by something other than this library");
}

}  // namespace

std::string lock_pg_chain(pqxx::transaction_base& tx) {
    const pqxx::result head = tx.exec("SELECT start_id FROM history_chain FOR UPDATE");
    if (head.empty()) missing_head();
    const pqxx::result key = tx.exec("SELECT key_id FROM encryption_keys WHERE role = 'current'");
    return key.empty() ? std::string() : key[0][0].as<std::string>();
}

std::optional<RecordedKey> read_pg_recorded_key(pqxx::transaction_base& tx) {
    const pqxx::result key = tx.exec(
        "SELECT key_id, encode(check_value, 'hex') FROM encryption_keys WHERE role = 'current'");
    if (key.empty()) return std::nullopt;
    return RecordedKey{key[0][0].as<std::string>(), from_hex(key[0][1].as<std::string>())};
}

void for_each_pg_chain_row(pqxx::transaction_base& tx, std::int64_t after_id,
                           const std::function<void(const ChainRow&)>& visit) {
    const std::string rows_query = rows_sql();
    const std::string inputs_query = inputs_sql();
    for (;;) {
        const pqxx::result rows = tx.exec_params(rows_query, after_id);
        if (rows.empty()) return;
        const std::int64_t last = rows[rows.size() - 1][0].as<std::int64_t>();
        std::map<std::int64_t, std::vector<std::vector<ChainValue>>> inputs;
        for (const auto& input : tx.exec_params(inputs_query, after_id, last)) {
            std::vector<ChainValue> values;
            for (std::size_t i = 0; i < chain_input_column_count; ++i)
                values.push_back(
                    read_value(input[static_cast<int>(i + 1)], chain_input_columns[i].kind));
            inputs[input[0].as<std::int64_t>()].push_back(std::move(values));
        }
        ChainRow row;
        for (const auto& record : rows) {
            row.values.clear();
            for (std::size_t i = 0; i < chain_row_column_count; ++i)
                row.values.push_back(
                    read_value(record[static_cast<int>(i)], chain_row_columns[i].kind));
            const pqxx::field hash = record[static_cast<int>(chain_row_column_count)];
            row.chain_hash = hash.is_null()
                                 ? std::nullopt
                                 : std::optional<std::string>(from_hex(hash.as<std::string>()));
            const auto found = inputs.find(row.id());
            row.inputs = found == inputs.end() ? std::vector<std::vector<ChainValue>>{}
                                               : std::move(found->second);
            visit(row);
        }
        if (static_cast<std::int64_t>(rows.size()) < page_rows) return;
        after_id = last;
    }
}

namespace {

// The chain's head: its newest row with a hash (its start while none).
ChainHead read_pg_head(pqxx::transaction_base& tx) {
    const pqxx::result start = tx.exec("SELECT start_id FROM history_chain");
    if (start.empty()) missing_head();
    ChainHead head{start[0][0].as<std::int64_t>(), chain_zero_hash()};
    const pqxx::result newest = tx.exec_params(
        "SELECT id, encode(chain_hash, 'hex') FROM checkpoints WHERE id > $1 "
        "AND chain_hash IS NOT NULL ORDER BY id DESC LIMIT 1",
        head.id);
    if (!newest.empty())
        head = {newest[0][0].as<std::int64_t>(), from_hex(newest[0][1].as<std::string>())};
    return head;
}

}  // namespace

ChainState read_pg_chain_state(pqxx::transaction_base& tx) {
    const pqxx::result start = tx.exec("SELECT start_id FROM history_chain");
    if (start.empty()) missing_head();
    ChainState state;
    state.start_id = start[0][0].as<std::int64_t>();
    const ChainHead head = read_pg_head(tx);
    state.head_id = head.id;
    state.head_hash = head.hash;
    for (const auto& anchor :
         tx.exec("SELECT row_id, prev_id, encode(prev_hash, 'hex'), encode(tag, 'hex') "
                 "FROM history_chain_anchors")) {
        state.anchors[anchor[0].as<std::int64_t>()] =
            ChainAnchor{anchor[1].as<std::int64_t>(), from_hex(anchor[2].as<std::string>()),
                        from_hex(anchor[3].as<std::string>())};
    }
    return state;
}

ChainHead extend_pg_chain(pqxx::transaction_base& tx, const SecretKey* key,
                          const std::string& run_id) {
    const ChainHead head = read_pg_head(tx);
    std::vector<ChainRow> rows;
    for_each_pg_chain_row(tx, head.id, [&](const ChainRow& row) { rows.push_back(row); });
    if (rows.empty()) return head;
    std::string ids = "{", hashes = "{";
    const ChainHead next =
        extend_chain(head, rows, key, run_id, [&](std::int64_t id, const std::string& hash) {
            ids += (ids.size() > 1 ? "," : "") + std::to_string(id);
            hashes += (hashes.size() > 1 ? "," : "") + to_hex(hash);
        });
    // One statement for every row of the transaction.
    tx.exec_params0(
        "UPDATE checkpoints c SET chain_hash = decode(u.hash, 'hex') "
        "FROM unnest($1::bigint[], $2::text[]) AS u(id, hash) WHERE c.id = u.id",
        ids + "}", hashes + "}");
    return next;
}

void anchor_pg_chain_for_prune(pqxx::transaction_base& tx, const SecretKey* key) {
    tx.exec0("DELETE FROM history_chain_anchors WHERE row_id IN (SELECT id FROM prune_ids)");
    const pqxx::result gaps = tx.exec(
        "SELECT d.id, encode(d.chain_hash, 'hex'), n.id FROM checkpoints d "
        "JOIN LATERAL (SELECT s.id FROM checkpoints s WHERE s.id > d.id ORDER BY s.id LIMIT 1) n "
        "ON true WHERE d.id IN (SELECT id FROM prune_ids) AND d.chain_hash IS NOT NULL "
        "AND n.id NOT IN (SELECT id FROM prune_ids) "
        "AND n.id NOT IN (SELECT row_id FROM history_chain_anchors)");
    for (const auto& gap : gaps) {
        const std::int64_t row_id = gap[2].as<std::int64_t>();
        const std::int64_t prev_id = gap[0].as<std::int64_t>();
        const std::string prev_hash = from_hex(gap[1].as<std::string>());
        tx.exec_params0(
            "INSERT INTO history_chain_anchors (row_id, prev_id, prev_hash, tag) "
            "VALUES ($1, $2, decode($3, 'hex'), decode($4, 'hex')) ON CONFLICT (row_id) DO "
            "UPDATE SET prev_id = excluded.prev_id, prev_hash = excluded.prev_hash, "
            "tag = excluded.tag",
            row_id, prev_id, to_hex(prev_hash),
            to_hex(chain_anchor_tag(row_id, prev_id, prev_hash, key)));
    }
}

}  // namespace checkpoint::detail
