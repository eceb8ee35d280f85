-- Run by Database::migrate_analytics after the migrations, every time (idempotent): an index on events
-- (sender_id, id), so that select_new_events.sql reads only a conversation's events after the last one
-- derived. With Rasa's ix_events_sender_id alone it reads every event of the conversation, which grows with
-- the conversation's length at each batch. A table that kept the legacy events_sender_id_id (same columns)
-- needs no second one. Only databases with analytics get it: the plain consumer keeps one index on sender_id.
-- A database without `events` yet (`colloquy markers upload` before the first consumer) gets it with the table.
DO $$
BEGIN
    IF to_regclass('events') IS NOT NULL AND to_regclass('events_sender_id_id') IS NULL THEN
        CREATE INDEX IF NOT EXISTS colloquy_analytics_events_sender_id_id ON events (sender_id, id);
    END IF;
END $$
