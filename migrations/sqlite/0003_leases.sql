-- 0003_leases.sql — stage leases (issue 10): a worker claims a stage before it runs it, so
-- that N workers run each stage once; a claim lapses when it is not renewed in time, and
-- every write made under a claim is fenced by its token.
--
-- Frozen once landed: change the schema only by adding a new numbered file.

-- The lease token a Started, Completed or Failed row was written under (NULL: written
-- without a lease, and every row written before this migration). Within a stage, tokens
-- only grow: an audit proves that no two completions came from overlapping claims.
ALTER TABLE checkpoints ADD COLUMN lease_token INTEGER CHECK (lease_token >= 1);

-- The current claim of each stage that was ever claimed. `token` is the last token handed
-- out for the stage (1, 2, 3, ...: strictly increasing over every holder, never reused);
-- the holder columns and expires_at are NULL once the claim was released. A claim is live
-- while expires_at is later than the clock of the process holding the write lock (the
-- stored timestamp form, compared as text); an expired claim may be taken over.
CREATE TABLE stage_leases (
    pipeline   TEXT NOT NULL,
    stage      TEXT NOT NULL,
    token      INTEGER NOT NULL CHECK (token >= 1),
    run_id     TEXT,      -- the holder's run (runs.run_id)
    host       TEXT,      -- the holder's host and process id
    pid        INTEGER,
    claimed_at TEXT,      -- when the holder claimed it
    expires_at TEXT,      -- when the claim lapses unless renewed
    CHECK ((run_id IS NULL) = (expires_at IS NULL)),
    PRIMARY KEY (pipeline, stage)
) WITHOUT ROWID;
