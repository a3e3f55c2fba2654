// `checkpointctl rekey` on PostgreSQL: PostgresBackend::rekey and finish_rekey. Outputs live
// in the database (output_chunks), so a rekey is one transaction: it takes every pipeline's
// lock alone and the chain's head (as writes do, in that order), checks the chain with the
// old key, re-encrypts every message, metadata and output under the new key (row by row,
// one output chunk at a time), re-keys the chain hashes and prune anchors, records the new key in
// encryption_keys, and commits. Readers see the old key's database or the new one's, never
// a mix; a rekey killed before its commit changed nothing (the server rolls it back), and
// one killed after it is done.
#include "crypto/field_cipher.hpp"
#include "postgres/postgres_backend_impl.hpp"
#include "postgres/postgres_chain.hpp"
#include "sha256.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint::detail {

namespace {

constexpr int page_rows = 500;

std::string bytes_of(const pqxx::field& field) {
    const pqxx::binarystring bytes(field);
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

// Messages and metadata (a JSON string in jsonb when encrypted), page by page.
void rekey_text_fields(pqxx::transaction_base& tx, const DatabaseKey& old_key,
                       const DatabaseKey& new_key, const std::string& description) {
    std::int64_t after = 0;
    for (;;) {
        const pqxx::result rows = tx.exec_params(
            "SELECT id, pipeline, coalesce(stage, ''), version, message, "
            "CASE WHEN jsonb_typeof(metadata) = 'string' THEN metadata #>> '{}' END "
            "FROM checkpoints WHERE id > $1 AND key_id IS NOT NULL AND "
            "(message IS NOT NULL OR metadata IS NOT NULL) ORDER BY id LIMIT $2",
            after, page_rows);
        for (const auto& row : rows) {
            const std::int64_t id = row[0].as<std::int64_t>();
            const std::string pipeline = row[1].as<std::string>();
            const std::string stage = row[2].as<std::string>();
            const std::int64_t version = row[3].as<std::int64_t>();
            const std::string where = description + ": history row " + std::to_string(id);
            std::optional<std::string> fields[2];
            const char* names[2] = {"message", "metadata"};
            for (int i = 0; i < 2; ++i) {
                const pqxx::field column = row[4 + i];
                if (column.is_null()) continue;
                const std::string text = column.as<std::string>();
                if (!is_sealed_text(text)) continue;
                const FieldContext context{pipeline, stage, version, names[i]};
                fields[i] = seal_text_field(new_key, context,
                                            open_text_field(old_key, context, text, where));
            }
            if (!fields[0] && !fields[1]) continue;
            PgParams params;
            params.integer(id).optional_text(fields[0]).optional_text(fields[1]);
            params.exec_sql(tx,
                            "UPDATE checkpoints SET message = coalesce($2, message), "
                            "metadata = coalesce(to_jsonb($3::text), metadata) WHERE id = $1");
        }
        if (rows.size() < static_cast<std::size_t>(page_rows)) return;
        after = rows[rows.size() - 1][0].as<std::int64_t>();
    }
}

// Outputs, one at a time, one chunk at a time: an output's chunks are one ciphertext
// (seal_field over the whole output), re-sealed piece by piece (FieldResealer) and written
// back over the same chunks, so that no output is ever held whole. The chunks that hold the
// tag (the last 16 bytes) are written once the old tag has been checked; a tag that does not
// check throws, and the transaction rolls back.
void rekey_outputs(pqxx::transaction_base& tx, const DatabaseKey& old_key,
                   const DatabaseKey& new_key, const std::string& description) {
    std::int64_t after = 0;
    for (;;) {
        const pqxx::result rows = tx.exec_params(
            "SELECT id, pipeline, coalesce(stage, ''), version FROM checkpoints "
            "WHERE id > $1 AND key_id IS NOT NULL AND output_size IS NOT NULL "
            "ORDER BY id LIMIT $2",
            after, page_rows);
        for (const auto& row : rows) {
            const std::int64_t id = row[0].as<std::int64_t>();
            const std::string pipeline = row[1].as<std::string>();
            const std::string stage = row[2].as<std::string>();
            const FieldContext context{pipeline, stage, row[3].as<std::int64_t>(), "output"};
            const pqxx::result chunks = tx.exec_params(
                "SELECT chunk, length(data) FROM output_chunks WHERE checkpoint_id = $1 "
                "ORDER BY chunk",
                id);
            std::uint64_t sealed_size = 0;
            for (const auto& chunk : chunks) sealed_size += chunk[1].as<std::uint64_t>();
            FieldResealer resealer(
                old_key, new_key, context, sealed_size,
                description + ": the output of history row " + std::to_string(id));
            struct Held {
                int chunk;
                std::string bytes;
            };
            std::vector<Held> held;  // the chunks that hold part of the tag
            const auto update = [&](int chunk, const std::string& bytes) {
                tx.exec_params0(
                    "UPDATE output_chunks SET data = $3 WHERE checkpoint_id = $1 AND chunk = $2",
                    id, chunk, pqxx::binarystring(bytes.data(), bytes.size()));
            };
            std::uint64_t end = 0;
            for (const auto& chunk : chunks) {
                const int number = chunk[0].as<int>();
                const pqxx::result data = tx.exec_params(
                    "SELECT data FROM output_chunks WHERE checkpoint_id = $1 AND chunk = $2", id,
                    number);
                std::string bytes = resealer.reseal(bytes_of(data[0][0]));
                end += bytes.size();
                if (end + 16 > sealed_size) {
                    held.push_back({number, std::move(bytes)});
                } else {
                    update(number, bytes);
                }
            }
            std::string tag = resealer.finish();
            for (auto it = held.rbegin(); it != held.rend() && !tag.empty(); ++it) {
                const std::size_t n = std::min(tag.size(), it->bytes.size());
                it->bytes.replace(it->bytes.size() - n, n, tag.substr(tag.size() - n));
                tag.resize(tag.size() - n);
            }
            for (const Held& chunk : held) update(chunk.chunk, chunk.bytes);
        }
        if (rows.size() < static_cast<std::size_t>(page_rows)) return;
        after = rows[rows.size() - 1][0].as<std::int64_t>();
    }
}

// The chain, re-keyed from its start (anchors keep the pruned rows' hashes), after every
// row names the new key. Hashes are written a page at a time.
void rekey_chain(pqxx::transaction_base& tx, const ChainState& state, const DatabaseKey& new_key) {
    std::string ids, hashes;
    const auto flush = [&] {
        if (ids.empty()) return;
        tx.exec_params0(
            "UPDATE checkpoints c SET chain_hash = decode(u.hash, 'hex') "
            "FROM unnest($1::bigint[], $2::text[]) AS u(id, hash) WHERE c.id = u.id",
            "{" + ids + "}", "{" + hashes + "}");
        ids.clear();
        hashes.clear();
    };
    ChainHead head{state.start_id, chain_zero_hash()};
    int pending = 0;
    for_each_pg_chain_row(tx, state.start_id, [&](const ChainRow& row) {
        const auto anchor = state.anchors.find(row.id());
        if (anchor != state.anchors.end()) {
            head.hash = anchor->second.prev_hash;
            tx.exec_params0(
                "UPDATE history_chain_anchors SET tag = decode($2, 'hex') WHERE row_id = $1",
                row.id(),
                to_hex(chain_anchor_tag(row.id(), anchor->second.prev_id, anchor->second.prev_hash,
                                        &new_key.chain)));
        }
        head.hash = chain_hash(head.hash, row, &new_key.chain);
        head.id = row.id();
        ids += (ids.empty() ? "" : ",") + std::to_string(head.id);
        hashes += (hashes.empty() ? "" : ",") + to_hex(head.hash);
        if (++pending == 1000) {
            flush();
            pending = 0;
        }
    });
    flush();
}

}  // namespace

void PostgresBackend::rekey(std::shared_ptr<const DatabaseKey> new_key) {
    Impl& s = *impl_;
    s.require_writable("re-encrypting the database (rekey)");
    const DatabaseKey* old_key = s.data_key();  // encrypted: checked by checkpoint::rekey
    if (!old_key) throw Error(ErrorCode::Internal, s.description + ": rekey without a key");
    // Not retried after a lost connection: the transaction is rolled back (or committed);
    // `checkpointctl rekey` run again finds out which (checkpoint::rekey, lib/rekey.cpp).
    try {
        pqxx::work tx(s.connection());
        // Every pipeline's lock alone, in a fixed order, then the chain's head: as writes
        // take them (pipeline, then chain), so no write is in between.
        for (const auto& pipeline : tx.exec("SELECT pipeline FROM pipelines ORDER BY pipeline"))
            PgParams()
                .text(pipeline[0].as<std::string>())
                .exec(tx, pg_sql::lock_pipeline_alone.name);
        s.lock_chain(tx);
        // The chain must verify with the old key first: rekey re-keys it, and would otherwise
        // launder an edit.
        const ChainState state = read_pg_chain_state(tx);
        const auto problems = detail::verify_chain(
            state,
            [&](const std::function<void(const ChainRow&)>& visit) {
                for_each_pg_chain_row(tx, state.start_id, visit);
            },
            &old_key->chain, std::nullopt, 1);
        if (!problems.empty()) {
            throw Error(ErrorCode::Corrupt,
                        s.description + ": rekey refused, nothing was changed: " +
                            problems.front() + ". Run `checkpointctl verify` and look into it");
        }
        rekey_text_fields(tx, *old_key, *new_key, s.description);
        rekey_outputs(tx, *old_key, *new_key, s.description);
        tx.exec_params0("UPDATE checkpoints SET key_id = $1 WHERE key_id IS NOT NULL",
                        new_key->key_id);
        tx.exec0("DELETE FROM encryption_keys");
        tx.exec_params0(
            "INSERT INTO encryption_keys (key_id, check_value, role) "
            "VALUES ($1, decode($2, 'hex'), 'current')",
            new_key->key_id, to_hex(new_key->check_value));
        rekey_chain(tx, state, *new_key);
        tx.commit();
    } catch (...) {
        s.fail("re-encrypting the database (rekey)");
    }
    s.config.key = std::move(new_key);
}

// Nothing to do on PostgreSQL: the rekey's one transaction left nothing of the old key
// behind (there are no output files).
void PostgresBackend::finish_rekey() {}

}  // namespace checkpoint::detail
