// The PostgreSQL backend's prepared statements: prepared once on every connection (see
// PostgresBackend::Impl::connection), executed by name. Column lists match read_checkpoint.
#pragma once

namespace checkpoint::detail::pg_sql {

struct Statement {
    const char* name;
    const char* sql;
};

// One history row for a stage, and its stage_heads row moved to it, in one statement. The
// row lock that UPDATE (or INSERT ... ON CONFLICT DO UPDATE) takes on stage_heads is held
// before the new id is drawn from the sequence (the SET list is evaluated under it), so a
// stage's ids and versions grow together whatever the concurrency. An existing stage takes
// the UPDATE; a new one the INSERT, whose nextval is evaluated only when the UPDATE found no
// row (so that, as on SQLite, a save draws one id, and ids have no gaps); a first save of a
// stage that races another inserts once and takes the update path in the other.
// First of all it takes its pipeline's row FOR SHARE (the CTE `lock`, which both paths read
// before they draw an id), as every write transaction does: see lock_pipeline_shared.
// $1 pipeline, $2 stage, $3 status, $4 1 for completed (the version grows) else 0,
// $5 timestamp, $6 run_id, $7 duration_ms, $8 message, $9 metadata (jsonb text),
// $10 fingerprint, $11 output_size, $12 output_sha256, $13 output_in_database,
// $14 input_count, $15 checks, $16 lease_token, $17 write_id (the client's id of the write:
// a UUID, or NULL on the further rows of a write that appends several).
inline constexpr Statement append{
    "checkpoint_append",
    "WITH lock AS MATERIALIZED ("
    " SELECT pipeline FROM pipelines WHERE pipeline = $1 FOR SHARE), "
    "moved AS ("
    " UPDATE stage_heads h SET status = $3, version = h.version + $4,"
    "  head_id = nextval(pg_get_serial_sequence('checkpoints', 'id')), checks = $15"
    " FROM lock WHERE h.pipeline = $1 AND h.stage = $2 RETURNING head_id, version), "
    "created AS ("
    " INSERT INTO stage_heads AS h (pipeline, stage, status, version, head_id, checks)"
    " SELECT $1, $2, $3, $4, nextval(pg_get_serial_sequence('checkpoints', 'id')), $15"
    " FROM lock WHERE NOT EXISTS (SELECT 1 FROM moved)"
    " ON CONFLICT (pipeline, stage) DO UPDATE SET status = excluded.status,"
    "  version = h.version + $4,"
    "  head_id = nextval(pg_get_serial_sequence('checkpoints', 'id')),"
    "  checks = excluded.checks"
    " RETURNING head_id, version), "
    "head AS (SELECT * FROM moved UNION ALL SELECT * FROM created) "
    "INSERT INTO checkpoints (id, pipeline, stage, status, version, timestamp, run_id,"
    " duration_ms, message, metadata, fingerprint, output_size, output_sha256,"
    " output_in_database, input_count, lease_token, write_id) "
    "SELECT head.head_id, $1, $2, $3, head.version, $5, $6, $7, $8, $9::jsonb, $10, $11, $12,"
    " $13, $14, $16::bigint, $17::uuid FROM head RETURNING id, version"};

// ---- A single stage write in two round trips (PostgresBackend::Impl::write_stage): the
// first sends BEGIN, the locks and write_state in one simple query (EXECUTE of these
// prepared statements, see executed_as_sql); the client then computes the row, its version
// and its chain hash, and the second sends write_row (and the row's inputs) with the
// COMMIT. Every writer of checkpoints and stage_heads holds the chain's lock
// (lock_chain), so what write_state reads stays true until the commit.

// The chain's head row, locked until the transaction ends (after the pipeline's lock).
inline constexpr Statement lock_chain{"checkpoint_lock_chain",
                                      "SELECT start_id FROM history_chain FOR UPDATE"};

// A fenced write's lease row, locked (FOR SHARE) until the write commits, so that no
// claim can take the stage over in between; write_state checks the claim once it is held.
inline constexpr Statement lock_lease{
    "checkpoint_lock_lease",
    "SELECT 1 FROM stage_leases WHERE pipeline = $1 AND stage = $2 FOR SHARE"};

// Run after the locks, as its own statement (so its snapshot sees every commit made before
// the locks were granted): the recorded key's id (NULL: none), the chain's start, the
// newest history row (id, hex hash: NULL when it has none), the stage's latest completed
// version (NULL: a new stage), whether claim $4 of run $5 is the stage's live claim (true
// when $4 is NULL), the jsonb rendering of metadata $3 (what the chain hashes), and, when
// $6 and the claim holds, the new row's id (drawn from the sequence).
inline constexpr Statement write_state{
    "checkpoint_write_state",
    "WITH claim AS (SELECT $4::bigint IS NULL OR EXISTS (SELECT 1 FROM stage_leases"
    " WHERE pipeline = $1 AND stage = $2 AND token = $4::bigint AND run_id = $5"
    " AND expires_at > to_char(clock_timestamp() AT TIME ZONE 'UTC',"
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')) AS held) "
    "SELECT (SELECT key_id FROM encryption_keys WHERE role = 'current'),"
    " (SELECT start_id FROM history_chain),"
    " n.id, encode(n.chain_hash, 'hex'),"
    " (SELECT version FROM stage_heads WHERE pipeline = $1 AND stage = $2),"
    " claim.held, $3::jsonb::text,"
    " CASE WHEN $6::boolean AND claim.held"
    "  THEN nextval(pg_get_serial_sequence('checkpoints', 'id')) END "
    "FROM claim LEFT JOIN LATERAL (SELECT id, chain_hash FROM checkpoints"
    " ORDER BY id DESC LIMIT 1) n ON true"};

// A new id for the row of a write that checked its inputs first.
inline constexpr Statement draw_id{"checkpoint_draw_id",
                                   "SELECT nextval(pg_get_serial_sequence('checkpoints', 'id'))"};

// The history row, with its id, version and chain hash computed by the client under the
// chain's lock, and the stage's stage_heads row moved to it. $1 id, $2 pipeline, $3 stage,
// $4 status, $5 version, $6 timestamp, $7 run_id, $8 duration_ms, $9 message, $10 metadata
// (jsonb text), $11 fingerprint, $12 output_size, $13 output_sha256, $14
// output_in_database, $15 input_count, $16 lease_token, $17 write_id, $18 key_id, $19
// chain_hash (hex), $20 checks.
inline constexpr Statement write_row{
    "checkpoint_write_row",
    "WITH head AS (INSERT INTO stage_heads AS h (pipeline, stage, status, version, head_id,"
    " checks) VALUES ($2, $3, $4, $5, $1, $20) ON CONFLICT (pipeline, stage) DO UPDATE SET"
    " status = excluded.status, version = excluded.version, head_id = excluded.head_id,"
    " checks = excluded.checks) "
    "INSERT INTO checkpoints (id, pipeline, stage, status, version, timestamp, run_id,"
    " duration_ms, message, metadata, fingerprint, output_size, output_sha256,"
    " output_in_database, input_count, lease_token, write_id, key_id, chain_hash) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, $11, $12, $13, $14, $15, $16,"
    " $17::uuid, $18, decode($19, 'hex'))"};

// After a stage write committed without waiting for the WAL flush (write_stage, with
// Durability::Full): a write of its own, committed with the session's synchronous_commit,
// whose commit waits for the WAL flush (and a synchronous standby) up to a position past
// the write's. It writes whatever the run's state (a commit that wrote nothing would not
// wait), and the run's row exists: the write's history row references it.
inline constexpr Statement flush_run{"checkpoint_flush_run",
                                     "UPDATE runs SET heartbeat_at = $2 WHERE run_id = $1"};

// A pipeline-wide clear: its row, and the pipeline's cleared_id moved to it (never back:
// two clears racing keep the larger id). It takes its pipeline's row alone (`lock`, read
// before the row's id is drawn): see lock_pipeline_alone. $1 pipeline, $2 timestamp,
// $3 run_id, $4 write_id.
inline constexpr Statement append_pipeline_clear{
    "checkpoint_append_pipeline_clear",
    "WITH lock AS MATERIALIZED ("
    " SELECT pipeline FROM pipelines WHERE pipeline = $1 FOR NO KEY UPDATE), "
    "c AS (INSERT INTO checkpoints (pipeline, stage, status, version, timestamp, run_id,"
    " write_id) SELECT $1, NULL, 'cleared', 0, $2, $3, $4::uuid FROM lock RETURNING id) "
    "UPDATE pipelines p SET cleared_id = GREATEST(p.cleared_id, c.id) FROM c"
    " WHERE p.pipeline = $1 RETURNING c.id"};

// Every write transaction locks its pipeline's row first (see "Ordering" in
// migrations/postgres/0001_initial.sql): saves share the lock, a pipeline-wide clear takes
// it alone. So no save draws its id while a clear is in flight, and a clear draws its id
// only once every save that drew one before it has committed: within a pipeline, a save
// that commits after a clear gets an id above the clear's (and stays current), and a clear
// that commits after a save gets an id above the save's (and clears it).
inline constexpr Statement lock_pipeline_shared{
    "checkpoint_lock_pipeline_shared",
    "SELECT cleared_id FROM pipelines WHERE pipeline = $1 FOR SHARE"};
inline constexpr Statement lock_pipeline_alone{
    "checkpoint_lock_pipeline_alone",
    "SELECT cleared_id FROM pipelines WHERE pipeline = $1 FOR NO KEY UPDATE"};

// ON CONFLICT: a transaction whose commit's outcome was unknown, written again after a
// reconnect, may find its run recorded already.
inline constexpr Statement insert_run{
    "checkpoint_insert_run",
    "INSERT INTO runs (run_id, pipeline, host, pid, \"user\", started_at, heartbeat_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (run_id) DO NOTHING"};

// The rows that writes with these client ids appended (their first rows): after a lost
// connection, which of them committed. $1 the ids, as a text array '{uuid,uuid,...}'.
inline constexpr Statement find_writes{
    "checkpoint_find_writes",
    "SELECT write_id::text, id, version FROM checkpoints WHERE write_id = ANY($1::uuid[])"};

inline constexpr Statement insert_pipeline{
    "checkpoint_insert_pipeline",
    "INSERT INTO pipelines (pipeline) VALUES ($1) ON CONFLICT DO NOTHING"};

inline constexpr Statement close_run{
    "checkpoint_close_run", "UPDATE runs SET ended_at = $2, outcome = $3 WHERE run_id = $1"};

inline constexpr Statement touch_run{
    "checkpoint_touch_run",
    "UPDATE runs SET heartbeat_at = $2 WHERE run_id = $1 AND outcome = 'running'"};

inline constexpr Statement find_import{
    "checkpoint_find_import",
    "SELECT 1 FROM checkpoints WHERE pipeline = $1 AND stage = $2 AND status = 'completed' "
    "AND timestamp = $3 AND message = $4"};

inline constexpr Statement insert_input{
    "checkpoint_insert_input",
    "INSERT INTO checkpoint_inputs (checkpoint_id, position, input_stage, input_id,"
    " input_version) VALUES ($1, $2, $3, $4, $5)"};

inline constexpr Statement insert_chunk{
    "checkpoint_insert_chunk",
    "INSERT INTO output_chunks (checkpoint_id, chunk, data) VALUES ($1, $2, $3)"};

// The stage's current completed row (none when its last row is not completed, or a
// pipeline-wide clear came after it).
inline constexpr Statement completed_head{
    "checkpoint_completed_head",
    "SELECT h.head_id, h.version, h.checks FROM stage_heads h "
    "JOIN pipelines p ON p.pipeline = h.pipeline "
    "WHERE h.pipeline = $1 AND h.stage = $2 AND h.status = 'completed' "
    "AND h.head_id > p.cleared_id"};

// The same, locking the stage's head until the transaction ends (a save's inputs: they
// cannot move on before the save commits).
inline constexpr Statement lock_completed_head{
    "checkpoint_lock_completed_head",
    "SELECT h.head_id, h.version, h.checks FROM stage_heads h "
    "JOIN pipelines p ON p.pipeline = h.pipeline "
    "WHERE h.pipeline = $1 AND h.stage = $2 AND h.status = 'completed' "
    "AND h.head_id > p.cleared_id FOR SHARE OF h"};

inline constexpr Statement row_facts{
    "checkpoint_row_facts",
    "SELECT output_size, output_sha256, output_in_database, input_count, fingerprint "
    "FROM checkpoints WHERE id = $1"};

// The inputs a row recorded, with the current state of each input stage.
inline constexpr Statement input_facts{
    "checkpoint_input_facts",
    "SELECT i.input_stage, i.input_id, i.input_version, h.head_id, h.status, h.version, "
    "p.cleared_id FROM checkpoint_inputs i "
    "LEFT JOIN stage_heads h ON h.pipeline = $1 AND h.stage = i.input_stage "
    "LEFT JOIN pipelines p ON p.pipeline = $1 "
    "WHERE i.checkpoint_id = $2 ORDER BY i.position"};

inline constexpr Statement completed_version{
    "checkpoint_completed_version",
    "SELECT id, output_size, output_sha256, output_in_database FROM checkpoints "
    "WHERE pipeline = $1 AND stage = $2 AND status = 'completed' AND version = $3"};

inline constexpr Statement output_chunks{
    "checkpoint_output_chunks",
    "SELECT data FROM output_chunks WHERE checkpoint_id = $1 ORDER BY chunk"};

// The stages downstream of $2: whose current completed row (not cleared since) recorded
// $2, or a stage downstream of it, as an input.
inline constexpr Statement downstream{
    "checkpoint_downstream",
    "WITH RECURSIVE down(stage) AS (SELECT $2::text COLLATE \"C\" UNION "
    "  SELECT h.stage FROM down d "
    "  JOIN checkpoint_inputs i ON i.input_stage = d.stage "
    "  JOIN checkpoints c ON c.id = i.checkpoint_id AND c.pipeline = $1 "
    "  JOIN stage_heads h ON h.pipeline = $1 AND h.stage = c.stage AND h.head_id = c.id "
    "  WHERE h.head_id > (SELECT cleared_id FROM pipelines WHERE pipeline = $1)) "
    "SELECT stage FROM down WHERE stage <> $2 ORDER BY stage"};

// Columns read by read_checkpoint (the history and current_state views).
#define CHECKPOINT_PG_COLUMNS                                                               \
    "id, pipeline, stage, status, version, timestamp, run_id, duration_ms, message, host, " \
    "pid, run_outcome, metadata::text, fingerprint, output_size, output_sha256, "           \
    "output_in_database, inputs::text, "                                                    \
    "(SELECT heartbeat_at FROM runs r WHERE r.run_id = v.run_id), "                         \
    "(SELECT l.lease_token FROM checkpoints l WHERE l.id = v.id)"

inline constexpr Statement current{"checkpoint_current",
                                   "SELECT " CHECKPOINT_PG_COLUMNS
                                   " FROM current_state v WHERE pipeline = $1 AND stage = $2"};

inline constexpr Statement current_all{"checkpoint_current_all",
                                       "SELECT " CHECKPOINT_PG_COLUMNS
                                       " FROM current_state v WHERE pipeline = $1 ORDER BY stage"};

// History in pages of $3 rows: after id $2 in id order (history_page), or below id $2
// newest first (history_page_desc). $1 pipeline (NULL: every pipeline), $4 stage (NULL:
// any; a stage also gets the pipeline-wide clears), $5 run id, $6 status (NULL: any;
// 'started' also gets 'incomplete' rows, told apart when read), $7 since, $8 until, $9 only
// ids below it (NULL: no bound).
#define CHECKPOINT_PG_HISTORY_FILTER                                                       \
    "AND ($1::text IS NULL OR pipeline = $1) "                                             \
    "AND ($4::text IS NULL OR stage = $4 OR stage IS NULL) "                               \
    "AND ($5::text IS NULL OR run_id = $5) "                                               \
    "AND ($6::text IS NULL OR status = $6 OR ($6 = 'started' AND status = 'incomplete')) " \
    "AND ($7::text IS NULL OR timestamp >= $7) AND ($8::text IS NULL OR timestamp < $8) "  \
    "AND ($9::bigint IS NULL OR id < $9) "

inline constexpr Statement history_page{
    "checkpoint_history_page",
    "SELECT " CHECKPOINT_PG_COLUMNS
    ", open_attempt FROM history v WHERE id > $2 " CHECKPOINT_PG_HISTORY_FILTER
    "ORDER BY id LIMIT $3"};

inline constexpr Statement history_page_desc{
    "checkpoint_history_page_desc",
    "SELECT " CHECKPOINT_PG_COLUMNS
    ", open_attempt FROM history v WHERE id < $2 " CHECKPOINT_PG_HISTORY_FILTER
    "ORDER BY id DESC LIMIT $3"};

#undef CHECKPOINT_PG_HISTORY_FILTER
#undef CHECKPOINT_PG_COLUMNS

inline constexpr Statement pipelines{"checkpoint_pipelines",
                                     "SELECT pipeline FROM pipelines ORDER BY pipeline"};

inline constexpr Statement runs{
    "checkpoint_runs",
    "SELECT run_id, pipeline, host, pid, \"user\", started_at, ended_at, outcome, "
    "(SELECT count(*) FROM checkpoints c WHERE c.run_id = r.run_id AND c.status = 'completed'), "
    "(SELECT count(*) FROM checkpoints c WHERE c.run_id = r.run_id AND c.status = 'failed'), "
    "heartbeat_at FROM runs r WHERE pipeline = $1 ORDER BY started_at, run_id"};

// ---- Leases (postgres_leases.cpp). Expiry is decided by the server's clock:
// clock_timestamp() in the stored timestamp form, taken once the lease row is locked. ----
#define CHECKPOINT_PG_NOW \
    "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

// The stage's lease row, created (token 0, unheld) when missing.
inline constexpr Statement create_lease{
    "checkpoint_create_lease",
    "INSERT INTO stage_leases (pipeline, stage, token) VALUES ($1, $2, 0) "
    "ON CONFLICT DO NOTHING"};

// Takes the stage for run $3 (host $4, pid $5) for $6 ms unless a live claim holds it: the
// UPDATE locks the row, then re-checks the condition on its latest version.
inline constexpr Statement take_lease{
    "checkpoint_take_lease",
    "UPDATE stage_leases SET token = token + 1, run_id = $3, host = $4, pid = $5,"
    " claimed_at = " CHECKPOINT_PG_NOW
    ","
    " expires_at = to_char((clock_timestamp() + $6::bigint * interval '1 millisecond')"
    "  AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    " WHERE pipeline = $1 AND stage = $2 AND (run_id IS NULL OR expires_at <= " CHECKPOINT_PG_NOW
    ") RETURNING token"};

inline constexpr Statement lease_holder{
    "checkpoint_lease_holder",
    "SELECT token, run_id, host, pid, claimed_at, expires_at FROM stage_leases "
    "WHERE pipeline = $1 AND stage = $2 AND run_id IS NOT NULL"};

// Extends claim $3 of run $4 to $5 ms from now, if it is the stage's live claim.
inline constexpr Statement renew_lease{
    "checkpoint_renew_lease",
    "UPDATE stage_leases SET"
    " expires_at = to_char((clock_timestamp() + $5::bigint * interval '1 millisecond')"
    "  AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
    " WHERE pipeline = $1 AND stage = $2 AND token = $3 AND run_id = $4"
    " AND expires_at > " CHECKPOINT_PG_NOW " RETURNING token"};

inline constexpr Statement release_lease{
    "checkpoint_release_lease",
    "UPDATE stage_leases SET run_id = NULL, host = NULL, pid = NULL, claimed_at = NULL,"
    " expires_at = NULL WHERE pipeline = $1 AND stage = $2 AND token = $3 AND run_id = $4"};

// The fencing check of a write made under claim $3 of run $4: the row stays locked (FOR
// SHARE) until the write commits, so no claim can take the stage over in between.
inline constexpr Statement check_lease{
    "checkpoint_check_lease",
    "SELECT 1 FROM stage_leases WHERE pipeline = $1 AND stage = $2 AND token = $3"
    " AND run_id = $4 AND expires_at > " CHECKPOINT_PG_NOW " FOR SHARE"};

inline constexpr Statement leases{"checkpoint_leases",
                                  "SELECT stage, token, run_id, host, pid, claimed_at, expires_at,"
                                  " expires_at > " CHECKPOINT_PG_NOW
                                  " FROM stage_leases"
                                  " WHERE pipeline = $1 AND run_id IS NOT NULL ORDER BY stage"};

#undef CHECKPOINT_PG_NOW

inline constexpr Statement all[] = {
    create_lease,
    take_lease,
    lease_holder,
    renew_lease,
    release_lease,
    check_lease,
    leases,
    append,
    lock_chain,
    lock_lease,
    write_state,
    draw_id,
    write_row,
    flush_run,
    append_pipeline_clear,
    lock_pipeline_shared,
    lock_pipeline_alone,
    insert_run,
    insert_pipeline,
    close_run,
    touch_run,
    find_import,
    insert_input,
    insert_chunk,
    completed_head,
    lock_completed_head,
    row_facts,
    input_facts,
    completed_version,
    output_chunks,
    downstream,
    current,
    current_all,
    history_page,
    history_page_desc,
    pipelines,
    runs,
    find_writes,
};

// The statements write_stage runs with SQL EXECUTE (several in one round trip): prepared
// at once on every connection (libpqxx prepares the others on first use). Each is in all[].
inline constexpr Statement executed_as_sql[] = {
    insert_run,  insert_pipeline, lock_pipeline_shared, lock_chain, lock_lease,
    write_state, write_row,       insert_input,         flush_run,
};

}  // namespace checkpoint::detail::pg_sql
