// The tamper-evident history (README, "Security"): every checkpoints row carries a hash
// over the previous row's hash and its own content, in id order over the whole database.
// This file is the one place that knows what a row's content is and how it is encoded and
// hashed; the backends only read rows (the columns listed here, in this order), store the
// hashes inside their write transaction, and hand rows to verify_chain(). Adding a column
// to checkpoints is one line in chain_row_columns.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace checkpoint::detail {

class SecretKey;

// How a backend reads a column for the chain.
enum class ChainKind {
    Integer,  // SQLite INTEGER, PostgreSQL bigint/integer
    Text,     // text, as stored
    Json,     // SQLite: the stored text; PostgreSQL jsonb: its text rendering (metadata::text)
    Boolean,  // SQLite 0/1, PostgreSQL boolean (read as an integer 0/1)
};

struct ChainColumn {
    const char* name;
    ChainKind kind;
    bool in_sqlite = true;  // false: a PostgreSQL-only column (read as NULL on SQLite)
};

// Every column of checkpoints that the chain covers (all but chain_hash), in encoding order.
// A NULL value is left out of the encoding, so that a nullable column added later (NULL in
// the rows written before it) leaves the hashes of those rows unchanged.
inline constexpr ChainColumn chain_row_columns[] = {
    {"id", ChainKind::Integer},          {"pipeline", ChainKind::Text},
    {"stage", ChainKind::Text},          {"status", ChainKind::Text},
    {"version", ChainKind::Integer},     {"timestamp", ChainKind::Text},
    {"run_id", ChainKind::Text},         {"duration_ms", ChainKind::Integer},
    {"message", ChainKind::Text},        {"metadata", ChainKind::Json},
    {"fingerprint", ChainKind::Text},    {"output_size", ChainKind::Integer},
    {"output_sha256", ChainKind::Text},  {"output_in_database", ChainKind::Boolean},
    {"input_count", ChainKind::Integer}, {"key_id", ChainKind::Text},
    {"lease_token", ChainKind::Integer}, {"write_id", ChainKind::Text, false},
};
inline constexpr std::size_t chain_row_column_count =
    sizeof(chain_row_columns) / sizeof(chain_row_columns[0]);

// The position of column `name` in chain_row_columns (chain_row_column_count if none).
constexpr std::size_t chain_column_index(std::string_view name) {
    for (std::size_t i = 0; i < chain_row_column_count; ++i)
        if (chain_row_columns[i].name == name) return i;
    return chain_row_column_count;
}

// The columns of the row's checkpoint_inputs rows (in position order), also covered.
inline constexpr ChainColumn chain_input_columns[] = {
    {"position", ChainKind::Integer},
    {"input_stage", ChainKind::Text},
    {"input_id", ChainKind::Integer},
    {"input_version", ChainKind::Integer},
};
inline constexpr std::size_t chain_input_column_count =
    sizeof(chain_input_columns) / sizeof(chain_input_columns[0]);

// A value as read: NULL, an integer (booleans as 0/1), or bytes (text).
using ChainValue = std::variant<std::monostate, std::int64_t, std::string>;

// One checkpoints row as the chain sees it.
struct ChainRow {
    std::vector<ChainValue> values;               // chain_row_columns order
    std::vector<std::vector<ChainValue>> inputs;  // chain_input_columns order, by position
    std::optional<std::string> chain_hash;        // the stored hash (32 bytes), if any

    std::int64_t id() const;
};

// A row about to be written, as views of the values that will be bound (the backend hashes
// it before its INSERT, so that the row is written once). Same values, same hash as the
// ChainRow read back from the database.
using ChainValueView = std::variant<std::monostate, std::int64_t, std::string_view>;
struct ChainRowView {
    std::array<ChainValueView, chain_row_column_count> values{};  // chain_row_columns order
    std::vector<std::array<ChainValueView, chain_input_column_count>> inputs;  // by position
};

// The 32-byte hash of the chain's start (and of a database's first row's predecessor).
std::string chain_zero_hash();

// The row's chain hash: BLAKE2b-256 over a domain tag, `previous` and the row's canonical
// encoding, keyed with `key` when there is one (see chain_key()).
std::string chain_hash(std::string_view previous, const ChainRow& row, const SecretKey* key);

std::string chain_hash(std::string_view previous, const ChainRowView& row, const SecretKey* key);

// The tag of a prune anchor (history_chain_anchors): binds row_id, prev_id and prev_hash.
std::string chain_anchor_tag(std::int64_t row_id, std::int64_t prev_id, std::string_view prev_hash,
                             const SecretKey* key);

// A prune anchor: the chain continues at row_id from prev_hash, the hash of the deleted
// row prev_id.
struct ChainAnchor {
    std::int64_t prev_id = 0;
    std::string prev_hash;
    std::string tag;
};

// The chain's bookkeeping (table history_chain and history_chain_anchors).
struct ChainState {
    std::int64_t start_id = 0;  // rows up to it predate the chain
    std::int64_t head_id = 0;   // the newest row with a chain hash (start_id when none)
    std::string head_hash;      // its hash (chain_zero_hash() when none)
    std::map<std::int64_t, ChainAnchor> anchors;  // by row_id
};

// A head as `checkpointctl seal` prints it and `verify --expect-head` takes it.
struct ChainHead {
    std::int64_t id = 0;
    std::string hash;  // 32 bytes
};
// "<id> <64 hex digits>".
std::string format_chain_head(const ChainHead& head);
// Parses format_chain_head's text; throws Error(InvalidArgument) naming what is wrong.
ChainHead parse_chain_head(std::string_view text);

// Recomputes the chain from `state` over `rows` (every row with id > state.start_id, in id
// order, fed by the backend through the callback it is given) and returns one line per
// problem: a row whose hash does not match (edited, or a row before it deleted, inserted or
// moved), a row without a hash, a forged anchor, and `expect` (when given) missing or
// different. `key`: the database's key when it has one.
std::vector<std::string> verify_chain(
    const ChainState& state,
    const std::function<void(const std::function<void(const ChainRow&)>&)>& for_each_row,
    const SecretKey* key, const std::optional<ChainHead>& expect, std::size_t max_problems);

// Computes the hashes of rows appended after the chain head, in id order: for each row,
// calls `store(id, hash)`; returns the new head. Throws Error(Corrupt) when a row's run_id
// is not `run_id` (unless empty): a write chains only its own rows, never one that something
// else inserted (that row is reported, and writes refused, until it is removed).
ChainHead extend_chain(const ChainHead& head, const std::vector<ChainRow>& rows,
                       const SecretKey* key, const std::string& run_id,
                       const std::function<void(std::int64_t, const std::string&)>& store);

}  // namespace checkpoint::detail
