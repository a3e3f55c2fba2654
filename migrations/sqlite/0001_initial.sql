-- 0001_initial.sql — the first schema of a checkpoint database.
--
-- Frozen once landed: change the schema only by adding a new numbered file.
-- The migration runner applies this inside one transaction, then sets
-- PRAGMA user_version = 1 and PRAGMA application_id (0x43484B50, "CHKP").
--
-- Timestamps are ISO-8601 UTC text with milliseconds ("2026-11-27T06:37:48.123Z").
-- Statuses are lower-case text. Both are frozen on-disk values.

-- One row per run: the life of one CheckpointManager that wrote something.
CREATE TABLE runs (
    run_id     TEXT PRIMARY KEY NOT NULL,  -- UUID version 7, time-ordered
    pipeline   TEXT NOT NULL,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    user       TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT,                       -- NULL while running, or when the process died
    outcome    TEXT NOT NULL DEFAULT 'running'
               CHECK (outcome IN ('running', 'finished', 'failed', 'died'))
);
CREATE INDEX runs_by_pipeline ON runs (pipeline, started_at);
CREATE INDEX runs_open ON runs (host, pid) WHERE outcome = 'running';

-- The history: append-only. Only explicit retention ever deletes rows.
CREATE TABLE checkpoints (
    -- The rowid: orders the history. Never reused, because retention never deletes the
    -- newest row (it is always a stage's head or a pipeline's last clear).
    id          INTEGER PRIMARY KEY,
    pipeline    TEXT NOT NULL,
    stage       TEXT,              -- NULL only for a pipeline-wide clear
    status      TEXT NOT NULL
                CHECK (status IN ('started', 'completed', 'failed', 'cleared')),
    -- completed: the version this save created (1, 2, 3, ... per stage, never reused);
    -- other rows: the stage's latest completed version at that time (0 if none).
    version     INTEGER NOT NULL CHECK (version >= 0),
    timestamp   TEXT NOT NULL,
    run_id      TEXT NOT NULL REFERENCES runs (run_id),
    duration_ms INTEGER CHECK (duration_ms >= 0),  -- completed / failed after a start
    message     TEXT,                               -- failed: why
    CHECK (stage IS NOT NULL OR status = 'cleared')
);
CREATE INDEX checkpoints_by_stage ON checkpoints (pipeline, stage, id);
CREATE INDEX checkpoints_by_run ON checkpoints (run_id, id);

-- Derived state, maintained in the same transaction as each history row, so that
-- has_checkpoint is one index lookup and a clear costs the same for 10 or 10^6 stages.
-- The last row of each stage:
CREATE TABLE stage_heads (
    pipeline TEXT NOT NULL,
    stage    TEXT NOT NULL,
    status   TEXT NOT NULL,     -- status of the row head_id
    version  INTEGER NOT NULL,  -- the stage's latest completed version (0 if none)
    head_id  INTEGER NOT NULL,  -- checkpoints.id of the stage's last row
    PRIMARY KEY (pipeline, stage)
) WITHOUT ROWID;

-- Per pipeline: the id of its last pipeline-wide clear (0 if none). A stage whose
-- head_id is below cleared_id is cleared.
CREATE TABLE pipelines (
    pipeline   TEXT PRIMARY KEY NOT NULL,
    cleared_id INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Which migrations were applied, and when.
CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_at TEXT NOT NULL
);

-- Every history row with its run, and its status as reported: a 'started' row that was
-- never followed by 'completed' or 'failed' of the same stage in the same run
-- (open_attempt = 1) reads 'incomplete' once its run has ended or died.
CREATE VIEW history AS
SELECT id, pipeline, stage,
       CASE WHEN open_attempt AND run_outcome <> 'running' THEN 'incomplete'
            ELSE status END AS status,
       version, timestamp, run_id, duration_ms, message,
       host, pid, run_outcome, open_attempt
FROM (
    SELECT c.id, c.pipeline, c.stage, c.status, c.version, c.timestamp, c.run_id,
           c.duration_ms, c.message, r.host, r.pid, r.outcome AS run_outcome,
           -- Only 'started' rows pay for the subquery, which walks the stage's later rows
           -- (checkpoints_by_stage; the '+' keeps SQLite off the per-run index).
           CASE WHEN c.status = 'started' THEN NOT EXISTS (
               SELECT 1 FROM checkpoints n
               WHERE n.pipeline = c.pipeline AND n.stage = c.stage AND n.id > c.id
                 AND +n.run_id = c.run_id AND n.status IN ('completed', 'failed')
           ) ELSE 0 END AS open_attempt
    FROM checkpoints c JOIN runs r ON r.run_id = c.run_id
);

-- The current state of every stage: its last row, or the pipeline-wide clear that came
-- after it. status is one of completed, failed, started, incomplete, cleared.
CREATE VIEW current_state AS
SELECT h.pipeline, h.stage,
       CASE WHEN h.head_id < p.cleared_id THEN 'cleared'
            WHEN h.status = 'started' AND r.outcome <> 'running' THEN 'incomplete'
            ELSE h.status END AS status,
       h.version, c.id, c.timestamp, c.run_id, c.duration_ms, c.message,
       r.host, r.pid, r.outcome AS run_outcome
FROM stage_heads h
JOIN pipelines p ON p.pipeline = h.pipeline
JOIN checkpoints c ON c.id = max(h.head_id, p.cleared_id)
JOIN runs r ON r.run_id = c.run_id;
