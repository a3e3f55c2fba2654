// Retention: SqliteBackend::prune. Rows go in one transaction; output files only in a second one
// that holds the write lock, and only once no row names them, so a prune killed at any
// point never leaves a row pointing at a deleted file, and a save in flight (which checks
// its file under the same lock) never commits a row whose file was just deleted.
#include "clock.hpp"
#include "sqlite/chain.hpp"
#include "sqlite/output_files.hpp"
#include "sqlite/sqlite_backend_impl.hpp"

#include <checkpoint/error.hpp>

#include <SQLiteCpp/Transaction.h>

namespace checkpoint::detail {

namespace {

// Per stage: the id of its keep_last-th newest completed row (?2 = keep_last - 1); rows
// of the stage before it may go. NULL when the stage has fewer completed versions.
constexpr const char* sql_keep_from =
    "INSERT INTO temp.prune_keep (stage, keep_from) "
    "SELECT h.stage, (SELECT k.id FROM checkpoints k WHERE k.pipeline = h.pipeline "
    "  AND k.stage = h.stage AND k.status = 'completed' ORDER BY k.id DESC LIMIT 1 OFFSET ?2) "
    "FROM stage_heads h WHERE h.pipeline = ?1";

// The rows to delete: ?2 the cutoff timestamp (NULL: any age), ?3 whether keep_last is set.
constexpr const char* sql_select_pruned =
    "INSERT INTO temp.prune_ids (id) SELECT c.id FROM checkpoints c "
    "WHERE c.pipeline = ?1 "
    "AND (?2 IS NULL OR c.timestamp < ?2) "
    "AND (NOT ?3 OR c.stage IS NULL OR c.id < (SELECT keep_from FROM temp.prune_keep k "
    "                                         WHERE k.stage = c.stage)) "
    "AND c.id NOT IN (SELECT head_id FROM stage_heads WHERE pipeline = ?1) "
    "AND c.id <> (SELECT cleared_id FROM pipelines WHERE pipeline = ?1) "
    "AND c.run_id NOT IN (SELECT run_id FROM runs WHERE outcome = 'running')";

constexpr const char* sql_pruned_files =
    "SELECT DISTINCT output_sha256 FROM checkpoints "
    "WHERE id IN (SELECT id FROM temp.prune_ids) AND output_in_database = 0";

constexpr const char* sql_pruned_inline_bytes =
    "SELECT coalesce(sum(output_size), 0) FROM checkpoints "
    "WHERE id IN (SELECT id FROM temp.prune_ids) AND output_in_database = 1";

constexpr const char* sql_delete_pruned[] = {
    "DELETE FROM checkpoint_inputs WHERE checkpoint_id IN (SELECT id FROM temp.prune_ids)",
    "DELETE FROM output_data WHERE checkpoint_id IN (SELECT id FROM temp.prune_ids)",
};
constexpr const char* sql_delete_rows =
    "DELETE FROM checkpoints WHERE id IN (SELECT id FROM temp.prune_ids)";

constexpr const char* sql_delete_empty_runs =
    "DELETE FROM runs WHERE pipeline = ?1 AND outcome <> 'running' "
    "AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.run_id = runs.run_id)";

// ?2: the key the file is encrypted with (NULL: a plaintext file).
constexpr const char* sql_file_referenced =
    "SELECT 1 FROM checkpoints WHERE output_sha256 = ?1 AND output_in_database = 0 "
    "AND key_id IS ?2 LIMIT 1";

}  // namespace

PruneResult SqliteBackend::prune(const PruneOptions& options) {
    Impl& s = *impl_;
    s.require_writable("pruning");
    if (s.key_verdict == KeyVerdict::KeyMissing) throw_key_required(s.description, "pruning");
    PruneResult result;
    std::set<std::string> pruned_files;  // named by the rows pruned: deleted at any age
    try {
        // Runs whose process died stop protecting their rows.
        s.reap_dead_runs();
        const bool any_rule = options.older_than || options.keep_last;
        if (any_rule) {
            SQLite::Transaction transaction(*s.db, SQLite::TransactionBehavior::IMMEDIATE);
            s.db->exec(
                "CREATE TEMP TABLE IF NOT EXISTS prune_keep "
                "(stage TEXT PRIMARY KEY, keep_from INTEGER) WITHOUT ROWID");
            s.db->exec("CREATE TEMP TABLE IF NOT EXISTS prune_ids (id INTEGER PRIMARY KEY)");
            s.db->exec("DELETE FROM temp.prune_keep");
            s.db->exec("DELETE FROM temp.prune_ids");
            if (options.keep_last) {
                SQLite::Statement keep(*s.db, sql_keep_from);
                keep.bind(1, s.config.pipeline);
                keep.bind(2, *options.keep_last - 1);
                keep.exec();
            }
            {
                SQLite::Statement select(*s.db, sql_select_pruned);
                select.bind(1, s.config.pipeline);
                if (options.older_than) {
                    select.bind(2, format_timestamp(std::chrono::system_clock::now() -
                                                    *options.older_than));
                }
                select.bind(3, options.keep_last ? 1 : 0);
                select.exec();
            }
            {
                SQLite::Statement files(*s.db, sql_pruned_files);
                while (files.executeStep()) pruned_files.insert(files.getColumn(0).getString());
            }
            result.bytes_freed = s.db->execAndGet(sql_pruned_inline_bytes).getInt64();
            // The chain stays verifiable across the gaps (history_chain.hpp).
            anchor_sqlite_chain_for_prune(*s.db, s.chain_key());
            for (const char* sql : sql_delete_pruned) s.db->exec(sql);
            result.rows_deleted = s.db->exec(sql_delete_rows);
            SQLite::Statement runs(*s.db, sql_delete_empty_runs);
            runs.bind(1, s.config.pipeline);
            result.runs_deleted = runs.exec();
            s.db->exec("DELETE FROM temp.prune_ids");
            transaction.commit();
        }
        // The files: under the write lock, each deleted only when no row names it (rows of
        // every pipeline: the directory is shared) — the files of the rows just pruned, and
        // those orphaned by killed writers (or by an earlier prune killed before this step).
        const auto now = std::chrono::system_clock::now();
        SQLite::Transaction transaction(*s.db, SQLite::TransactionBehavior::IMMEDIATE);
        SQLite::Statement referenced(*s.db, sql_file_referenced);
        for (const OutputFileEntry& file : list_output_files(s.outputs)) {
            // Younger unnamed files may belong to a save in flight (written, row not yet
            // committed): that is what the grace period is for.
            if (!pruned_files.count(file.sha256) && now - file.modified < options.orphan_grace)
                continue;
            if (!file.temporary) {
                referenced.bind(1, file.sha256);
                if (!file.key_id.empty()) referenced.bind(2, file.key_id);
                const bool in_use = referenced.executeStep();
                referenced.reset();
                referenced.clearBindings();
                if (in_use) continue;
            }
            if (remove_output_file(s.outputs, file.name)) {
                ++result.files_deleted;
                result.bytes_freed += static_cast<std::int64_t>(file.size);
            }
        }
        transaction.commit();
        return result;
    } catch (...) {
        s.fail("pruning pipeline '" + s.config.pipeline + "'");
    }
}

}  // namespace checkpoint::detail
