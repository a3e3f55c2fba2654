#include "history_chain.hpp"

#include "crypto/secret_key.hpp"
#include "sha256.hpp"

#include <checkpoint/error.hpp>

#include <charconv>

#include <sodium.h>

namespace checkpoint::detail {

namespace {

constexpr std::size_t hash_size = 32;
constexpr std::string_view row_domain = "checkpoint history chain v1 row";
constexpr std::string_view anchor_domain = "checkpoint history chain v1 anchor";

void put_u64(std::string& out, std::uint64_t value) {
    for (int shift = 56; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((value >> shift) & 0xff));
}

// Each non-NULL value: its column's name (length-prefixed), a type byte, and the value
// (an integer as 8 bytes big-endian, bytes length-prefixed). NULLs are left out. `Values`
// holds ChainValue or ChainValueView.
template <typename Values>
void encode_values(std::string& out, const ChainColumn* columns, std::size_t count,
                   const Values& values) {
    for (std::size_t i = 0; i < count && i < values.size(); ++i) {
        const auto& value = values[i];
        if (std::holds_alternative<std::monostate>(value)) continue;
        const std::string_view name = columns[i].name;
        out.push_back(static_cast<char>(name.size()));
        out.append(name);
        if (const auto* integer = std::get_if<std::int64_t>(&value)) {
            out.push_back('i');
            put_u64(out, static_cast<std::uint64_t>(*integer));
        } else {
            const std::string_view bytes = std::get<2>(value);
            out.push_back('b');
            put_u64(out, bytes.size());
            out.append(bytes);
        }
    }
}

std::string keyed_hash(std::string_view message, const SecretKey* key) {
    unsigned char digest[hash_size];
    crypto_generichash(digest, sizeof digest,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       key ? key->data() : nullptr, key ? SecretKey::size : 0);
    return std::string(reinterpret_cast<const char*>(digest), sizeof digest);
}

std::string short_hex(const std::string& hash) {
    return to_hex(hash).substr(0, 16);
}

}  // namespace

std::int64_t ChainRow::id() const {
    if (values.empty() || !std::holds_alternative<std::int64_t>(values[0])) return 0;
    return std::get<std::int64_t>(values[0]);
}

std::string chain_zero_hash() {
    return std::string(hash_size, '\0');
}

namespace {

template <typename Row>
std::string hash_row(std::string_view previous, const Row& row, const SecretKey* key) {
    std::string message;
    message.reserve(256);
    message.append(row_domain);
    message.push_back('\0');
    put_u64(message, previous.size());
    message.append(previous);
    encode_values(message, chain_row_columns, chain_row_column_count, row.values);
    for (const auto& input : row.inputs) {
        message.append("\xffinput", 6);
        encode_values(message, chain_input_columns, chain_input_column_count, input);
    }
    return keyed_hash(message, key);
}

}  // namespace

std::string chain_hash(std::string_view previous, const ChainRow& row, const SecretKey* key) {
    return hash_row(previous, row, key);
}

std::string chain_hash(std::string_view previous, const ChainRowView& row, const SecretKey* key) {
    return hash_row(previous, row, key);
}

std::string chain_anchor_tag(std::int64_t row_id, std::int64_t prev_id, std::string_view prev_hash,
                             const SecretKey* key) {
    std::string message(anchor_domain);
    message.push_back('\0');
    put_u64(message, static_cast<std::uint64_t>(row_id));
    put_u64(message, static_cast<std::uint64_t>(prev_id));
    put_u64(message, prev_hash.size());
    message.append(prev_hash);
    return keyed_hash(message, key);
}

std::string format_chain_head(const ChainHead& head) {
    return std::to_string(head.id) + " " + to_hex(head.hash);
}

ChainHead parse_chain_head(std::string_view text) {
    const auto bad = [&](const std::string& why) {
        return Error(ErrorCode::InvalidArgument,
                     "expected head '" + std::string(text) + "': " + why +
                         "; give it as `checkpointctl seal` printed it: \"<row id> <64 hex "
                         "digits>\"");
    };
    const std::size_t space = text.find(' ');
    if (space == std::string_view::npos) throw bad("no space between the row id and the hash");
    ChainHead head;
    const std::string_view id = text.substr(0, space);
    const auto [end, error] = std::from_chars(id.data(), id.data() + id.size(), head.id);
    if (error != std::errc() || end != id.data() + id.size() || head.id <= 0)
        throw bad("the row id is not a positive integer");
    std::string_view hex = text.substr(space + 1);
    while (!hex.empty() && (hex.back() == '\n' || hex.back() == ' ')) hex.remove_suffix(1);
    if (!is_sha256_hex(hex)) throw bad("the hash is not 64 lower-case hexadecimal digits");
    for (std::size_t i = 0; i < hash_size; ++i) {
        const auto digit = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
        head.hash.push_back(static_cast<char>(digit(hex[2 * i]) * 16 + digit(hex[2 * i + 1])));
    }
    return head;
}

std::vector<std::string> verify_chain(
    const ChainState& state,
    const std::function<void(const std::function<void(const ChainRow&)>&)>& for_each_row,
    const SecretKey* key, const std::optional<ChainHead>& expect, std::size_t max_problems) {
    std::vector<std::string> problems;
    const auto problem = [&](std::string text) {
        if (problems.size() < max_problems) problems.push_back("history chain: " + std::move(text));
    };
    std::string previous = chain_zero_hash();
    std::int64_t previous_id = state.start_id;
    bool expect_seen = false;
    for_each_row([&](const ChainRow& row) {
        const std::int64_t id = row.id();
        const auto anchor = state.anchors.find(id);
        std::string link = previous;
        if (anchor != state.anchors.end()) {
            const ChainAnchor& a = anchor->second;
            if (a.tag != chain_anchor_tag(id, a.prev_id, a.prev_hash, key) ||
                a.prev_id <= previous_id || a.prev_id >= id) {
                problem("row " + std::to_string(id) +
                        ": its prune anchor (history_chain_anchors) is forged or was edited");
            } else {
                link = a.prev_hash;
            }
        }
        if (!row.chain_hash) {
            problem("row " + std::to_string(id) +
                    " has no chain hash: it was inserted by something other than this library");
        } else if (chain_hash(link, row, key) != *row.chain_hash) {
            problem("row " + std::to_string(id) +
                    " does not match its hash (the chain before it "
                    "ends at row " +
                    std::to_string(anchor != state.anchors.end() ? anchor->second.prev_id
                                                                 : previous_id) +
                    "): row " + std::to_string(id) +
                    " was edited, or rows before it were deleted, inserted or moved");
        }
        previous = row.chain_hash ? *row.chain_hash : chain_zero_hash();
        previous_id = id;
        if (expect && id == expect->id) {
            expect_seen = true;
            if (!row.chain_hash || *row.chain_hash != expect->hash) {
                problem("row " + std::to_string(id) + " differs from the expected head (" +
                        short_hex(expect->hash) + "...): the history up to it was changed");
            }
        }
    });
    if (expect && !expect_seen) {
        problem(expect->id <= state.start_id
                    ? "the expected head row " + std::to_string(expect->id) +
                          " predates the chain (it starts after row " +
                          std::to_string(state.start_id) + ")"
                    : "the expected head row " + std::to_string(expect->id) +
                          " is missing: the newest rows were deleted (truncated), or it was "
                          "renumbered");
    }
    return problems;
}

ChainHead extend_chain(const ChainHead& head, const std::vector<ChainRow>& rows,
                       const SecretKey* key, const std::string& run_id,
                       const std::function<void(std::int64_t, const std::string&)>& store) {
    constexpr std::size_t run_column = chain_column_index("run_id");
    static_assert(run_column < chain_row_column_count);
    ChainHead next = head;
    for (const ChainRow& row : rows) {
        const auto* run = std::get_if<std::string>(&row.values[run_column]);
        if (!run_id.empty() && (!run || *run != run_id)) {
            throw Error(ErrorCode::Corrupt,
                        "history row " + std::to_string(row.id()) +
                            " has no chain hash and was not written by this write: something "
                            "other than this library inserted it. Nothing was written; run "
                            "`checkpointctl verify` and remove it");
        }
        next.hash = chain_hash(next.hash, row, key);
        next.id = row.id();
        store(next.id, next.hash);
    }
    return next;
}

}  // namespace checkpoint::detail
