-- Rasa's `events` table as Rasa's SQLTrackerStore creates it on SQLite, plus Colloquy's dedupe key.
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER NOT NULL PRIMARY KEY,
    sender_id   VARCHAR(255) NOT NULL,
    type_name   VARCHAR(255) NOT NULL,
    "timestamp" FLOAT,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data        TEXT,
    event_id    TEXT
);
CREATE INDEX IF NOT EXISTS ix_events_sender_id ON events (sender_id);
CREATE UNIQUE INDEX IF NOT EXISTS events_event_id_key ON events (event_id);
CREATE INDEX IF NOT EXISTS events_sender_id_id ON events (sender_id, id);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    source      TEXT NOT NULL,
    body        BLOB NOT NULL,
    properties  TEXT NOT NULL,
    error       TEXT NOT NULL
);
