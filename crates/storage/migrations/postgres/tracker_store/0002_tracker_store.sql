-- Colloquy's tracker store: each event's position in its conversation, and the transactional outbox.
-- Idempotent like 0001; Rasa ignores both.

-- The 0-based position of the event in its conversation (NULL for rows Rasa or the consumer inserted). The
-- store assigns it under a per-conversation lock; the unique index is a second guard against duplicates.
ALTER TABLE events ADD COLUMN IF NOT EXISTS seq BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS events_sender_id_seq ON events (sender_id, seq) WHERE seq IS NOT NULL;

-- Events committed but not yet confirmed by the broker. A save adds its events here in the same
-- transaction; the relay publishes them in `event_row_id` order, waits for the broker's confirms, then deletes
-- them.
CREATE TABLE IF NOT EXISTS outbox (
    event_row_id INTEGER PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    enqueued_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
