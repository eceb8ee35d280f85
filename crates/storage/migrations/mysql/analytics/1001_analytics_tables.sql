-- Rasa Pro's public analytics tables (3.x), same table and column names, derived by colloquy-analytics.
-- Ids are UUID strings; timestamps are UTC (DATETIME(6), independent of the session time zone); sequence
-- numbers are the event's 0-based position in its conversation. No foreign-key constraints: writers insert in
-- any order, in the same transaction as the events; the columns named *_id refer to rasa_sender / rasa_session / rasa_event.id.

CREATE TABLE IF NOT EXISTS rasa_sender (
    id VARCHAR(36) PRIMARY KEY,
    sender_key VARCHAR(255) NOT NULL UNIQUE,
    channel TEXT,
    first_seen DATETIME(6),
    last_seen DATETIME(6)
);

CREATE TABLE IF NOT EXISTS rasa_session (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    timestamp DATETIME(6),
    start_sequence_number BIGINT NOT NULL,
    end_sequence_number BIGINT NOT NULL,
    INDEX rasa_session_sender_id (sender_id, start_sequence_number),
    INDEX rasa_session_timestamp (timestamp)
);

CREATE TABLE IF NOT EXISTS rasa_turn (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    start_sequence_number BIGINT NOT NULL,
    end_sequence_number BIGINT NOT NULL,
    INDEX rasa_turn_session_id (session_id)
);

CREATE TABLE IF NOT EXISTS rasa_event (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    timestamp DATETIME(6),
    model_id TEXT,
    environment TEXT,
    sequence_number BIGINT NOT NULL,
    event_type TEXT NOT NULL,
    INDEX rasa_event_session_id (session_id),
    INDEX rasa_event_sender_sequence (sender_id, sequence_number)
);

CREATE TABLE IF NOT EXISTS rasa_user_message (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    timestamp DATETIME(6),
    model_id TEXT,
    sequence_number BIGINT NOT NULL,
    intent TEXT,
    retrieval_intent TEXT,
    confidence DOUBLE PRECISION,
    text TEXT,
    message_id TEXT,
    INDEX rasa_user_message_session_id (session_id),
    INDEX rasa_user_message_sender_sequence (sender_id, sequence_number)
);

CREATE TABLE IF NOT EXISTS rasa_bot_message (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    timestamp DATETIME(6),
    model_id TEXT,
    sequence_number BIGINT NOT NULL,
    template_name TEXT,
    text TEXT,
    INDEX rasa_bot_message_session_id (session_id),
    INDEX rasa_bot_message_sender_sequence (sender_id, sequence_number)
);

CREATE TABLE IF NOT EXISTS rasa_action (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    timestamp DATETIME(6),
    model_id TEXT,
    sequence_number BIGINT NOT NULL,
    name TEXT,
    confidence DOUBLE PRECISION,
    policy TEXT,
    INDEX rasa_action_session_id (session_id),
    INDEX rasa_action_sender_sequence (sender_id, sequence_number)
);

CREATE TABLE IF NOT EXISTS rasa_slot (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    timestamp DATETIME(6),
    model_id TEXT,
    sequence_number BIGINT NOT NULL,
    slot_path TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    INDEX rasa_slot_session_id (session_id)
);

CREATE TABLE IF NOT EXISTS rasa_session_slot_state (
    id VARCHAR(512) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    timestamp DATETIME(6),
    INDEX rasa_session_slot_state_session_id (session_id)
);

-- Colloquy's own: the resumable derivation state of each conversation (colloquy_analytics::Conversation as
-- JSON) and the `events.id` of the last event it has seen, written in the same transaction as the rows derived
-- with it.
CREATE TABLE IF NOT EXISTS colloquy_analytics_state (
    sender_key VARCHAR(255) PRIMARY KEY,
    state LONGTEXT NOT NULL,
    last_row_id BIGINT NOT NULL DEFAULT 0
);

-- Colloquy's own: the names the metric views look for. metric: escalation | abandonment | fallback;
-- kind: intent | action | template. Edit the rows to match your assistant.
CREATE TABLE IF NOT EXISTS colloquy_metric_name (
    metric VARCHAR(16) NOT NULL CHECK (metric IN ('escalation', 'abandonment', 'fallback')),
    kind VARCHAR(16) NOT NULL CHECK (kind IN ('intent', 'action', 'template')),
    name VARCHAR(255) NOT NULL,
    PRIMARY KEY (metric, kind, name)
);
INSERT INTO colloquy_metric_name (metric, kind, name) VALUES
    ('escalation', 'intent', 'human_handoff'),
    ('escalation', 'action', 'action_human_handoff'),
    ('fallback', 'intent', 'nlu_fallback'),
    ('fallback', 'action', 'action_default_fallback')
ON DUPLICATE KEY UPDATE name = name;
