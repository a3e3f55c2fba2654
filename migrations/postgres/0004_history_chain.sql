-- 0002_history_chain.sql — a tamper-evident history and encryption at rest (README,
-- "Security"). Mirrors SQLite's 0003_history_chain.sql; see there for the meaning of each
-- column.
--
-- Frozen once landed: change the schema only by adding a new numbered file.
--
-- Ordering: every write transaction locks the one history_chain row (FOR UPDATE, without
-- writing it) before it draws an id, so on PostgreSQL too ids are drawn, and the chain extended, in commit order.
ALTER TABLE checkpoints ADD COLUMN chain_hash bytea;       -- NULL before the upgrade
ALTER TABLE checkpoints ADD COLUMN key_id text COLLATE "C";

CREATE TABLE history_chain (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    start_id  bigint NOT NULL
);
INSERT INTO history_chain (singleton, start_id) SELECT true, coalesce(max(id), 0) FROM checkpoints;

CREATE TABLE history_chain_anchors (
    row_id    bigint PRIMARY KEY,
    prev_id   bigint NOT NULL,
    prev_hash bytea NOT NULL,
    tag       bytea NOT NULL
);

CREATE TABLE encryption_keys (
    key_id      text COLLATE "C" PRIMARY KEY,
    check_value bytea NOT NULL,
    role        text COLLATE "C" NOT NULL CHECK (role IN ('current', 'next'))
);
