-- The outbox refers to events by `id`: where `id` is BIGINT (a new database, see events/0003), so is the
-- reference. The outbox holds only unconfirmed events, so the change is quick whatever the events table
-- holds.
DO $$
BEGIN
    IF (SELECT data_type FROM information_schema.columns
        WHERE table_schema = current_schema() AND table_name = 'events' AND column_name = 'id') = 'bigint'
    THEN
        ALTER TABLE outbox ALTER COLUMN event_row_id TYPE BIGINT;
    END IF;
END $$;
