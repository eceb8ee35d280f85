-- Colloquy's SQL tracker store on MySQL/MariaDB: the outbox and the row its relay locks. The `seq` column and
-- its unique index are added by `mysql.rs` before the migrations run (MySQL has no ADD COLUMN IF NOT EXISTS).

-- Events committed but not yet confirmed by the broker, written in the same transaction as the events.
CREATE TABLE IF NOT EXISTS outbox (
    event_row_id INTEGER NOT NULL,
    enqueued_at  TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    PRIMARY KEY (event_row_id)
);

-- One row; a relay pass locks it (FOR UPDATE SKIP LOCKED) so one relay at a time works on the database.
CREATE TABLE IF NOT EXISTS outbox_relay_lock (
    id INTEGER NOT NULL PRIMARY KEY
);
INSERT IGNORE INTO outbox_relay_lock (id) VALUES (1);
