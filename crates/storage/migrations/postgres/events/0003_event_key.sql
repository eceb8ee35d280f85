-- The compact dedupe key and 64-bit ids (issue 12). See `EventRow::dedupe_key` for the key's formula.
--
-- Every database gets the `event_key` column: adding a nullable column rewrites nothing (instant at any
-- size), and the insert path then writes the same columns everywhere. A table with no row yet (a new
-- database, or an empty one Rasa created) gets the rest at once, since changing an empty table costs nothing:
-- - `id` becomes BIGINT (Rasa's SERIAL is int4 and runs out at 2,147,483,647);
-- - the unique index moves from the 64-character `event_id` text to the 16-byte `event_key`, whose leading
--   bytes follow the event's timestamp, so inserts land at the right edge of the index;
-- - one index on `sender_id` (Rasa's `ix_events_sender_id`) instead of two.
-- A table that holds rows keeps its indexes and int4 `id`: converting them rewrites or rescans the table, so
-- it runs only on request (`colloquy migrate --convert-event-key`, `--convert-ids`), which says how long
-- each step took.
ALTER TABLE events ADD COLUMN IF NOT EXISTS event_key BYTEA;

DO $$
DECLARE
    id_sequence text := pg_get_serial_sequence('events', 'id');
BEGIN
    IF NOT EXISTS (SELECT 1 FROM events) THEN
        ALTER TABLE events ALTER COLUMN id TYPE BIGINT;
        IF id_sequence IS NOT NULL THEN
            EXECUTE format('ALTER SEQUENCE %s AS BIGINT', id_sequence);
        END IF;
        CREATE UNIQUE INDEX IF NOT EXISTS events_event_key ON events (event_key);
        DROP INDEX IF EXISTS events_event_id_key;
        DROP INDEX IF EXISTS events_sender_id_id;
    END IF;
END $$;
