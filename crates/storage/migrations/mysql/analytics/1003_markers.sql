-- Rasa Pro's marker tables: the patterns (markers uploaded by `colloquy markers upload`) and where they
-- applied (written by the consumer with --analytics, in the batch transaction, once per pattern and event).
-- A pattern's config is one marker as JSON: {"<name>": <condition or operator>} (Rasa's marker language).

CREATE TABLE IF NOT EXISTS rasa_pattern (
    id VARCHAR(36) PRIMARY KEY,
    name VARCHAR(255) NOT NULL UNIQUE,
    description TEXT,
    config LONGTEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    created_at DATETIME(6) NOT NULL,
    updated_at DATETIME(6) NOT NULL
);

-- One row per (pattern, event) where the pattern applied; id: UUID v5 of (pattern, sender, position);
-- created_at: the event's timestamp (so a rebuild gives the same rows).
CREATE TABLE IF NOT EXISTS rasa_marker (
    id VARCHAR(36) PRIMARY KEY,
    pattern_id VARCHAR(36) NOT NULL,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    num_preceding_user_turns BIGINT NOT NULL,
    created_at DATETIME(6),
    INDEX rasa_marker_pattern_id (pattern_id),
    INDEX rasa_marker_session_id (session_id)
);

