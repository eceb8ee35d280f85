-- Rasa's `events` table, exactly as Rasa's SQLTrackerStore creates it (SQLAlchemy model `SQLEvent`),
-- so that Rasa can read what we write and we can adopt a database Rasa already created.
-- Every statement is idempotent: on a Rasa database the table exists already and only our column is added.
CREATE TABLE IF NOT EXISTS events (
    id          SERIAL PRIMARY KEY,
    sender_id   VARCHAR(255) NOT NULL,
    type_name   VARCHAR(255) NOT NULL,
    "timestamp" DOUBLE PRECISION,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data        TEXT
);
CREATE INDEX IF NOT EXISTS ix_events_sender_id ON events (sender_id);

-- Colloquy's columns (Rasa ignores them).
-- The dedupe key: NULL for rows Rasa inserted itself; UNIQUE lets NULLs repeat.
ALTER TABLE events ADD COLUMN IF NOT EXISTS event_id TEXT;
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id_key ON events (event_id);
CREATE INDEX IF NOT EXISTS events_sender_id_id ON events (sender_id, id);

-- Messages that could not be stored as events: kept with everything needed to inspect or requeue them.
CREATE TABLE IF NOT EXISTS dead_letters (
    id          BIGSERIAL PRIMARY KEY,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    source      TEXT NOT NULL,
    body        BYTEA NOT NULL,
    properties  TEXT NOT NULL,
    error       TEXT NOT NULL
);
