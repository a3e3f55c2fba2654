// `checkpointctl rekey` on SQLite: SqliteBackend::rekey and finish_rekey. Crash safety: the
// new output files (<sha256>.<new key id>) are written (streamed chunk by chunk from the old
// ones: reseal_output_file) and fsynced beside the old ones,
// then one transaction re-encrypts every row, re-keys the history chain and records the new
// key; only after its commit do the old files go. A reader sees the old key's database
// (with its files) or the new one's, never a mix; a rekey killed before the commit left the
// database as it was (the next rekey writes the new files again), one killed after it left
// only old files, which the next rekey (or prune) deletes.
#include "crypto/field_cipher.hpp"
#include "sqlite/chain.hpp"
#include "sqlite/output_files.hpp"
#include "sqlite/sqlite_backend_impl.hpp"

#include <checkpoint/error.hpp>

#include <SQLiteCpp/Transaction.h>

namespace checkpoint::detail {

namespace {

std::string blob_of(const SQLite::Column& column) {
    return std::string(static_cast<const char*>(column.getBlob()),
                       static_cast<std::size_t>(column.getBytes()));
}

}  // namespace

void SqliteBackend::rekey(std::shared_ptr<const DatabaseKey> new_key) {
    Impl& s = *impl_;
    s.require_writable("re-encrypting the database (rekey)");
    const DatabaseKey* old_key = s.data_key();  // encrypted: checked by checkpoint::rekey
    if (!old_key) throw Error(ErrorCode::Internal, s.description + ": rekey without a key");
    std::set<std::string> rewritten;  // the outputs whose files were written with the new key
    try {
        // The write lock for the whole rekey: writers wait (up to their busy timeout).
        SQLite::Transaction transaction(*s.db, SQLite::TransactionBehavior::IMMEDIATE);
        // The chain must verify with the old key first: rekey re-keys it, and would otherwise
        // launder an edit.
        const ChainState state = read_sqlite_chain_state(*s.db);
        const auto problems = detail::verify_chain(
            state,
            [&](const std::function<void(const ChainRow&)>& visit) {
                for_each_sqlite_chain_row(*s.db, state.start_id, visit);
            },
            &old_key->chain, std::nullopt, 1);
        if (!problems.empty()) {
            throw Error(ErrorCode::Corrupt,
                        s.description + ": rekey refused, nothing was changed: " +
                            problems.front() + ". Run `checkpointctl verify` and look into it");
        }
        // 1. The output files, written beside the old ones.
        {
            SQLite::Statement files(*s.db,
                                    "SELECT DISTINCT output_sha256, output_size FROM checkpoints "
                                    "WHERE output_in_database = 0");
            while (files.executeStep()) {
                const std::string sha = files.getColumn(0).getString();
                const auto size = static_cast<std::uint64_t>(files.getColumn(1).getInt64());
                // Streamed, one secretstream chunk at a time: never the whole file in memory.
                reseal_output_file(s.outputs, sha, size, *old_key, *new_key, s.config.file_mode);
                rewritten.insert(sha);
            }
        }
        // 2. Messages and metadata.
        {
            SQLite::Statement rows(*s.db,
                                   "SELECT id, pipeline, coalesce(stage, ''), version, message, "
                                   "metadata FROM checkpoints WHERE message IS NOT NULL OR "
                                   "metadata IS NOT NULL");
            SQLite::Statement update(
                *s.db, "UPDATE checkpoints SET message = ?2, metadata = ?3 WHERE id = ?1");
            while (rows.executeStep()) {
                const std::int64_t id = rows.getColumn(0).getInt64();
                const std::string pipeline = rows.getColumn(1).getString();
                const std::string stage = rows.getColumn(2).getString();
                const std::int64_t version = rows.getColumn(3).getInt64();
                const std::string where = s.description + ": history row " + std::to_string(id);
                update.bind(1, id);
                std::string fields[2];
                const char* names[2] = {"message", "metadata"};
                for (int i = 0; i < 2; ++i) {
                    const SQLite::Column column = rows.getColumn(4 + i);
                    if (column.isNull()) continue;
                    const FieldContext old_context{pipeline, stage, version, names[i]};
                    fields[i] = seal_text_field(
                        *new_key, old_context,
                        open_text_field(*old_key, old_context, column.getString(), where));
                    update.bind(2 + i, fields[i]);
                }
                update.exec();
                update.reset();
                update.clearBindings();
            }
        }
        // 3. Outputs in the database.
        {
            SQLite::Statement data(*s.db,
                                   "SELECT d.checkpoint_id, c.pipeline, coalesce(c.stage, ''), "
                                   "c.version, d.data FROM output_data d JOIN checkpoints c "
                                   "ON c.id = d.checkpoint_id");
            SQLite::Statement update(*s.db,
                                     "UPDATE output_data SET data = ?2 WHERE checkpoint_id = ?1");
            while (data.executeStep()) {
                const std::int64_t id = data.getColumn(0).getInt64();
                const std::string pipeline = data.getColumn(1).getString();
                const std::string stage = data.getColumn(2).getString();
                const FieldContext context{pipeline, stage, data.getColumn(3).getInt64(), "output"};
                const std::string sealed =
                    seal_field(*new_key, context,
                               open_field(*old_key, context, blob_of(data.getColumn(4)),
                                          s.description + ": history row " + std::to_string(id)));
                update.bind(1, id);
                update.bind(2, sealed.data(), static_cast<int>(sealed.size()));
                update.exec();
                update.reset();
            }
        }
        // 4. Every row names the new key, which the database records.
        {
            SQLite::Statement rows(*s.db, "UPDATE checkpoints SET key_id = ?1");
            rows.bind(1, new_key->key_id);
            rows.exec();
            s.db->exec("DELETE FROM encryption_keys");
            SQLite::Statement insert(*s.db,
                                     "INSERT INTO encryption_keys (key_id, check_value, role) "
                                     "VALUES (?1, ?2, 'current')");
            insert.bind(1, new_key->key_id);
            insert.bind(2, new_key->check_value.data(),
                        static_cast<int>(new_key->check_value.size()));
            insert.exec();
        }
        // 5. The chain, re-keyed from its start (anchors keep the deleted rows' hashes).
        {
            std::vector<ChainRow> rows;
            for_each_sqlite_chain_row(*s.db, state.start_id,
                                      [&](const ChainRow& row) { rows.push_back(row); });
            SQLite::Statement store(*s.db, "UPDATE checkpoints SET chain_hash = ?2 WHERE id = ?1");
            SQLite::Statement tag(*s.db,
                                  "UPDATE history_chain_anchors SET tag = ?2 WHERE row_id = ?1");
            ChainHead head{state.start_id, chain_zero_hash()};
            for (const ChainRow& row : rows) {
                const auto anchor = state.anchors.find(row.id());
                if (anchor != state.anchors.end()) {
                    head.hash = anchor->second.prev_hash;
                    const std::string new_tag =
                        chain_anchor_tag(row.id(), anchor->second.prev_id, anchor->second.prev_hash,
                                         &new_key->chain);
                    tag.bind(1, row.id());
                    tag.bind(2, new_tag.data(), static_cast<int>(new_tag.size()));
                    tag.exec();
                    tag.reset();
                }
                head.hash = chain_hash(head.hash, row, &new_key->chain);
                head.id = row.id();
                store.bind(1, head.id);
                store.bind(2, head.hash.data(), static_cast<int>(head.hash.size()));
                store.exec();
                store.reset();
            }
        }
        transaction.commit();
    } catch (...) {
        s.fail("re-encrypting the database (rekey)");
    }
    s.config.key = std::move(new_key);
    finish_rekey();
}

void SqliteBackend::finish_rekey() {
    Impl& s = *impl_;
    const DatabaseKey* key = s.data_key();
    if (!key) return;
    try {
        // Under the write lock: no save can be naming an old file meanwhile (none does: every
        // row names the current key).
        SQLite::Transaction transaction(*s.db, SQLite::TransactionBehavior::IMMEDIATE);
        for (const OutputFileEntry& file : list_output_files(s.outputs)) {
            if (file.temporary || file.key_id.empty() || file.key_id == key->key_id) continue;
            remove_output_file(s.outputs, file.name);
        }
        transaction.commit();
    } catch (...) {
        s.fail("deleting the output files of the old key (rekey)");
    }
}

}  // namespace checkpoint::detail
