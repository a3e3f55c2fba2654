-- 0002_leases.sql — stage leases (issue 10): a worker claims a stage before it runs it, so
-- that N workers run each stage once; a claim lapses when it is not renewed in time, and
-- every write made under a claim is fenced by its token. Mirrors migrations/sqlite/0003.
--
-- Frozen once landed: change the schema only by adding a new numbered file.

-- The lease token a Started, Completed or Failed row was written under (NULL: written
-- without a lease, and every row written before this migration). Within a stage, tokens
-- only grow: an audit proves that no two completions came from overlapping claims.
ALTER TABLE checkpoints ADD COLUMN lease_token bigint CHECK (lease_token >= 1);

-- The current claim of each stage that was ever claimed. `token` is the last token handed
-- out for the stage (1, 2, 3, ...: strictly increasing over every holder, never reused);
-- the holder columns and expires_at are NULL once the claim was released. A claim is live
-- while expires_at is later than the server's clock_timestamp() (both in the stored
-- timestamp form, compared as text); an expired claim may be taken over. Writers lock the
-- row: a claim or renewal updates it, a fenced write reads it FOR SHARE until it commits.
CREATE TABLE stage_leases (
    pipeline   text COLLATE "C" NOT NULL,
    stage      text COLLATE "C" NOT NULL,
    token      bigint NOT NULL CHECK (token >= 0),  -- 0: created, never handed out yet
    run_id     text COLLATE "C",   -- the holder's run (runs.run_id)
    host       text COLLATE "C",   -- the holder's host and process id
    pid        bigint,
    claimed_at text COLLATE "C",   -- when the holder claimed it
    expires_at text COLLATE "C",   -- when the claim lapses unless renewed
    CHECK ((run_id IS NULL) = (expires_at IS NULL)),
    PRIMARY KEY (pipeline, stage)
);
