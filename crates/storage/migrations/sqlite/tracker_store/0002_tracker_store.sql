-- Colloquy's SQL tracker store on SQLite: each event's position in its conversation, and the transactional
-- outbox. Idempotent; Rasa ignores both.

-- The 0-based position of the event in its conversation (NULL for rows Rasa or the consumer inserted). A save
-- inserts only if the conversation holds exactly the rows the tracker expects; the unique index is a second
-- guard against two saves claiming the same positions.
ALTER TABLE events ADD COLUMN seq BIGINT;
CREATE UNIQUE INDEX IF NOT EXISTS events_sender_id_seq ON events (sender_id, seq) WHERE seq IS NOT NULL;

-- Events committed but not yet confirmed by the broker, written in the same transaction as the events.
CREATE TABLE IF NOT EXISTS outbox (
    event_row_id INTEGER NOT NULL PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    enqueued_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
