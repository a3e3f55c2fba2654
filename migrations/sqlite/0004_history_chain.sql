-- 0003_history_chain.sql — a tamper-evident history and encryption at rest (README,
-- "Security").
--
-- Frozen once landed: change the schema only by adding a new numbered file.
--
-- The history chain: every checkpoints row written from now on carries chain_hash, a
-- BLAKE2b-256 hash over the previous row's chain_hash and the row's own content (every
-- column but chain_hash, and its checkpoint_inputs rows), in id order over the whole
-- database (every pipeline). The encoding is lib/history_chain.cpp's. With a key
-- (Options::key_file) the hash is keyed. Rows written before this migration have no
-- chain_hash: the chain starts at the upgrade (history_chain.start_id).
ALTER TABLE checkpoints ADD COLUMN chain_hash BLOB;  -- 32 bytes; NULL before the upgrade
-- The key whose ciphertext the row's message and metadata (and its output) hold: 16 hex
-- digits (encryption_keys.key_id); NULL when the row holds plaintext.
ALTER TABLE checkpoints ADD COLUMN key_id TEXT;

-- One row: where the chain starts. Rows with id <= start_id predate the chain (written
-- before this migration); the first row after it chains from 32 zero bytes. The chain's
-- head is its newest row (no copy of it is kept here: a write touches no extra page).
CREATE TABLE history_chain (
    singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
    start_id   INTEGER NOT NULL
);
INSERT INTO history_chain (singleton, start_id)
SELECT 1, coalesce(max(id), 0) FROM checkpoints;

-- Retention (prune) deletes rows from the middle of the chain. For each row whose
-- predecessor in the chain was deleted: that predecessor's id and chain_hash, from which
-- verification continues, and a tag over the three (keyed with the database's key, so that
-- no one without it can declare a row "pruned").
CREATE TABLE history_chain_anchors (
    row_id    INTEGER PRIMARY KEY,  -- the row after the gap
    prev_id   INTEGER NOT NULL,     -- the last deleted row before it
    prev_hash BLOB NOT NULL,        -- that row's chain_hash
    tag       BLOB NOT NULL
);

-- Encryption: the database's key, identified by key_id and checked by check_value (a
-- keyed hash of a constant: a wrong key is refused before anything is written). No row:
-- the database holds plaintext. role 'next' exists only while `checkpointctl rekey` runs.
CREATE TABLE encryption_keys (
    key_id      TEXT PRIMARY KEY NOT NULL,
    check_value BLOB NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('current', 'next'))
);
