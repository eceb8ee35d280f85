-- Rasa's `events` table on MySQL/MariaDB as Rasa's SQLTrackerStore creates it (SQLAlchemy model `SQLEvent`),
-- plus Colloquy's dedupe key. One difference, on purpose: SQLAlchemy's `Float` becomes MySQL's 4-byte FLOAT,
-- whose 24-bit mantissa rounds today's Unix timestamps to 128 s; Colloquy creates the column as DOUBLE, which
-- Rasa reads and writes the same way. A table Rasa created is adopted as it is (see `mysql.rs`): its FLOAT
-- column is left alone.
CREATE TABLE IF NOT EXISTS events (
    id          INTEGER NOT NULL AUTO_INCREMENT,
    sender_id   VARCHAR(255) NOT NULL,
    type_name   VARCHAR(255) NOT NULL,
    `timestamp` DOUBLE,
    intent_name VARCHAR(255),
    action_name VARCHAR(255),
    data        TEXT,
    -- Binary collation: ids that differ in case are different events (the table's default collation folds it).
    event_id    VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin,
    PRIMARY KEY (id),
    INDEX ix_events_sender_id (sender_id),
    UNIQUE INDEX events_event_id_key (event_id),
    INDEX events_sender_id_id (sender_id, id)
) DEFAULT CHARSET = utf8mb4;

-- Messages that could not be stored as events: kept with everything needed to inspect or requeue them.
CREATE TABLE IF NOT EXISTS dead_letters (
    id          BIGINT NOT NULL AUTO_INCREMENT,
    received_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    source      TEXT NOT NULL,
    body        LONGBLOB NOT NULL,
    properties  LONGTEXT NOT NULL,
    error       TEXT NOT NULL,
    PRIMARY KEY (id)
) DEFAULT CHARSET = utf8mb4;
