-- 0002_outputs_fingerprints_inputs.sql — what a save may carry besides "done" (issue 4):
-- the user's metadata, a fingerprint, the stage's output, the upstream versions it used.
--
-- Frozen once landed: change the schema only by adding a new numbered file.
-- Every new column is NULL (or 0) on rows written before, which read as saves without
-- any of these.

-- The user's metadata: a JSON object as compact text (json_extract() reads it); NULL
-- when the save carried none.
ALTER TABLE checkpoints ADD COLUMN metadata TEXT;
-- SaveOptions::fingerprint; NULL when none.
ALTER TABLE checkpoints ADD COLUMN fingerprint TEXT;
-- The stage's output: its size in bytes, its SHA-256 (64 lower-case hex digits), and
-- where its bytes are: 1 in output_data, 0 in the file <database>-outputs/<sha256>.
-- All three NULL when the save stored no output.
ALTER TABLE checkpoints ADD COLUMN output_size INTEGER CHECK (output_size >= 0);
ALTER TABLE checkpoints ADD COLUMN output_sha256 TEXT;
ALTER TABLE checkpoints ADD COLUMN output_in_database INTEGER
    CHECK (output_in_database IN (0, 1));
-- How many rows of checkpoint_inputs the row has (so that reads skip the lookup).
ALTER TABLE checkpoints ADD COLUMN input_count INTEGER NOT NULL DEFAULT 0
    CHECK (input_count >= 0);

-- Per stage: 1 when its last row is Completed and has something to check before it counts
-- as up to date (an output file, or inputs), so has_checkpoint reads only stage_heads for
-- every other stage.
ALTER TABLE stage_heads ADD COLUMN checks INTEGER NOT NULL DEFAULT 0 CHECK (checks IN (0, 1));

-- Outputs stored in the database (at most Options::max_inline_output bytes each).
CREATE TABLE output_data (
    checkpoint_id INTEGER PRIMARY KEY REFERENCES checkpoints (id),
    data          BLOB NOT NULL
);

-- Which upstream version each save consumed (SaveOptions::inputs), in the order given.
-- input_id may name a row that retention has since deleted.
CREATE TABLE checkpoint_inputs (
    checkpoint_id INTEGER NOT NULL REFERENCES checkpoints (id),
    position      INTEGER NOT NULL,  -- 0, 1, 2, ... in SaveOptions::inputs order
    input_stage   TEXT NOT NULL,
    input_id      INTEGER NOT NULL,  -- checkpoints.id of the upstream version used
    input_version INTEGER NOT NULL CHECK (input_version >= 1),
    PRIMARY KEY (checkpoint_id, position)
) WITHOUT ROWID;
-- Downstream lookups: which saves consumed stage X.
CREATE INDEX checkpoint_inputs_by_stage ON checkpoint_inputs (input_stage, checkpoint_id);
-- Whether any row still references an output file.
CREATE INDEX checkpoints_by_output_file ON checkpoints (output_sha256)
    WHERE output_in_database = 0;

-- The views gain the new columns; inputs as a JSON array of
-- {"stage": ..., "version": ..., "id": ...} (NULL when none).
DROP VIEW history;
CREATE VIEW history AS
SELECT id, pipeline, stage,
       CASE WHEN open_attempt AND run_outcome <> 'running' THEN 'incomplete'
            ELSE status END AS status,
       version, timestamp, run_id, duration_ms, message,
       host, pid, run_outcome, open_attempt,
       metadata, fingerprint, output_size, output_sha256, output_in_database, inputs
FROM (
    SELECT c.id, c.pipeline, c.stage, c.status, c.version, c.timestamp, c.run_id,
           c.duration_ms, c.message, r.host, r.pid, r.outcome AS run_outcome,
           -- Only 'started' rows pay for the subquery, which walks the stage's later rows
           -- (checkpoints_by_stage; the '+' keeps SQLite off the per-run index).
           CASE WHEN c.status = 'started' THEN NOT EXISTS (
               SELECT 1 FROM checkpoints n
               WHERE n.pipeline = c.pipeline AND n.stage = c.stage AND n.id > c.id
                 AND +n.run_id = c.run_id AND n.status IN ('completed', 'failed')
           ) ELSE 0 END AS open_attempt,
           c.metadata, c.fingerprint, c.output_size, c.output_sha256, c.output_in_database,
           CASE WHEN c.input_count > 0 THEN (
               SELECT json_group_array(json_object('stage', i.input_stage,
                                                   'version', i.input_version,
                                                   'id', i.input_id))
               FROM (SELECT * FROM checkpoint_inputs WHERE checkpoint_id = c.id
                     ORDER BY position) i
           ) END AS inputs
    FROM checkpoints c JOIN runs r ON r.run_id = c.run_id
);

DROP VIEW current_state;
CREATE VIEW current_state AS
SELECT h.pipeline, h.stage,
       CASE WHEN h.head_id < p.cleared_id THEN 'cleared'
            WHEN h.status = 'started' AND r.outcome <> 'running' THEN 'incomplete'
            ELSE h.status END AS status,
       h.version, c.id, c.timestamp, c.run_id, c.duration_ms, c.message,
       r.host, r.pid, r.outcome AS run_outcome,
       c.metadata, c.fingerprint, c.output_size, c.output_sha256, c.output_in_database,
       CASE WHEN c.input_count > 0 THEN (
           SELECT json_group_array(json_object('stage', i.input_stage,
                                               'version', i.input_version,
                                               'id', i.input_id))
           FROM (SELECT * FROM checkpoint_inputs WHERE checkpoint_id = c.id
                 ORDER BY position) i
       ) END AS inputs
FROM stage_heads h
JOIN pipelines p ON p.pipeline = h.pipeline
JOIN checkpoints c ON c.id = max(h.head_id, p.cleared_id)
JOIN runs r ON r.run_id = c.run_id;
