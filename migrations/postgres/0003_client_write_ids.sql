-- 0002_client_write_ids.sql — exactly-once writes across a failover (issue 11).
--
-- Frozen once landed: change the schema only by adding a new numbered file.
--
-- Each write the library sends carries an id its client drew (a UUID): the first history
-- row the write appends (the row save_checkpoint(), clear_stage() ... report) keeps it.
-- When the connection is lost while a COMMIT is in flight, the client cannot know whether
-- the write committed; once it has reconnected (to the same server or to a promoted
-- standby) it looks this id up: found, the write committed and its result stands; not
-- found, it did not, and the client writes it again. The unique index makes a second copy
-- of one write impossible whatever happens.
--
-- NULL on rows written before this migration, by a copy (copy_history keeps no write ids),
-- and on the further rows of a write that appends several (a clear's downstream stages).
ALTER TABLE checkpoints ADD COLUMN write_id uuid;
CREATE UNIQUE INDEX checkpoints_write_id ON checkpoints (write_id) WHERE write_id IS NOT NULL;
