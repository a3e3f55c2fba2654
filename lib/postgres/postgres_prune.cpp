// Retention on PostgreSQL: PostgresBackend::prune, and the runs that died. Rows, their inputs and
// their output chunks go in one transaction; there are no output files, so there is no second step.
#include "clock.hpp"
#include "postgres/postgres_backend_impl.hpp"
#include "postgres/postgres_chain.hpp"

#include <checkpoint/error.hpp>

namespace checkpoint::detail {

namespace {

// The rows to delete, into the transaction's temporary table prune_ids: $1 pipeline,
// $2 the cutoff timestamp (NULL: any age), $3 keep_last - 1 (NULL: no limit). Never a
// stage's head, the pipeline's last clear, or a row of a run that is still running.
constexpr const char* sql_select_pruned =
    "INSERT INTO prune_ids (id) "
    "WITH keep AS (SELECT h.stage, (SELECT k.id FROM checkpoints k WHERE k.pipeline = h.pipeline "
    "  AND k.stage = h.stage AND k.status = 'completed' ORDER BY k.id DESC LIMIT 1 OFFSET $3) "
    "  AS keep_from FROM stage_heads h WHERE h.pipeline = $1 AND $3::bigint IS NOT NULL) "
    "SELECT c.id FROM checkpoints c WHERE c.pipeline = $1 "
    "AND ($2::text IS NULL OR c.timestamp < $2) "
    "AND ($3::bigint IS NULL OR c.stage IS NULL OR c.id < (SELECT keep_from FROM keep k "
    "                                                   WHERE k.stage = c.stage)) "
    "AND c.id NOT IN (SELECT head_id FROM stage_heads WHERE pipeline = $1) "
    "AND c.id <> (SELECT cleared_id FROM pipelines WHERE pipeline = $1) "
    "AND c.run_id NOT IN (SELECT run_id FROM runs WHERE outcome = 'running')";

constexpr const char* sql_pruned_bytes =
    "SELECT coalesce(sum(output_size), 0) FROM checkpoints "
    "WHERE id IN (SELECT id FROM prune_ids) AND output_size IS NOT NULL";

constexpr const char* sql_delete_pruned[] = {
    "DELETE FROM checkpoint_inputs WHERE checkpoint_id IN (SELECT id FROM prune_ids)",
    "DELETE FROM output_chunks WHERE checkpoint_id IN (SELECT id FROM prune_ids)",
};
constexpr const char* sql_delete_rows =
    "DELETE FROM checkpoints WHERE id IN (SELECT id FROM prune_ids)";

constexpr const char* sql_delete_empty_runs =
    "DELETE FROM runs WHERE pipeline = $1 AND outcome <> 'running' "
    "AND NOT EXISTS (SELECT 1 FROM checkpoints c WHERE c.run_id = runs.run_id)";

constexpr const char* sql_open_runs =
    "SELECT run_id, host, pid, heartbeat_at FROM runs WHERE outcome = 'running'";

constexpr const char* sql_mark_run_died =
    "UPDATE runs SET outcome = 'died' WHERE run_id = $1 AND outcome = 'running'";

}  // namespace

// Marks died the runs that read as died (their process is gone from this host, or their
// heartbeat stopped), so that the views (and psql) say so too.
void PostgresBackend::Impl::reap_dead_runs(pqxx::transaction_base& tx) {
    LivenessCache liveness;
    for (const auto& row : tx.exec(sql_open_runs)) {
        const RunFacts run{RunOutcome::Running, row[1].as<std::string>(), row[2].as<std::int64_t>(),
                           row[3].is_null() ? std::string() : row[3].as<std::string>()};
        if (reported_outcome(run, liveness) == RunOutcome::Died)
            tx.exec_params0(sql_mark_run_died, row[0].as<std::string>());
    }
}

PruneResult PostgresBackend::prune(const PruneOptions& options) {
    Impl& s = *impl_;
    s.require_writable("pruning");
    if (s.key_verdict == KeyVerdict::KeyMissing) throw_key_required(s.description, "pruning");
    // Run again after a lost connection: a pass whose commit's outcome was unknown deletes
    // by the same rule again (what it deleted is gone; the counts are of the second pass).
    return s.retrying("pruning pipeline '" + s.config.pipeline + "'", [&] {
        PruneResult result;
        pqxx::work tx(s.connection());
        s.lock_chain(tx);
        // Runs that read as died stop protecting their rows.
        s.reap_dead_runs(tx);
        if (options.older_than || options.keep_last) {
            tx.exec0("CREATE TEMPORARY TABLE prune_ids (id bigint PRIMARY KEY) ON COMMIT DROP");
            PgParams params;
            params.text(s.config.pipeline);
            if (options.older_than) {
                params.text(
                    format_timestamp(std::chrono::system_clock::now() - *options.older_than));
            } else {
                params.null();
            }
            if (options.keep_last) {
                params.integer(*options.keep_last - 1);
            } else {
                params.null();
            }
            params.exec_sql(tx, sql_select_pruned);
            result.bytes_freed = tx.exec1(sql_pruned_bytes)[0].as<std::int64_t>();
            // The chain stays verifiable across the gaps (history_chain.hpp).
            anchor_pg_chain_for_prune(tx, s.chain_key());
            for (const char* sql : sql_delete_pruned) tx.exec0(sql);
            result.rows_deleted =
                static_cast<std::int64_t>(tx.exec0(sql_delete_rows).affected_rows());
            result.runs_deleted = static_cast<std::int64_t>(
                tx.exec_params0(sql_delete_empty_runs, s.config.pipeline).affected_rows());
        }
        tx.commit();
        return result;
    });
}

}  // namespace checkpoint::detail
