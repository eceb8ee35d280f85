-- Rasa Pro's public analytics tables (3.x), same table and column names, derived by colloquy-analytics.
-- Ids are UUID strings; timestamps are UTC (TIMESTAMP without time zone); sequence numbers are the event's
-- 0-based position in its conversation. No foreign-key constraints: writers insert in any order, in the same
-- transaction as the events; the columns named *_id refer to rasa_sender / rasa_session / rasa_event.id.

CREATE TABLE IF NOT EXISTS rasa_sender (
    id VARCHAR(36) PRIMARY KEY,
    sender_key TEXT NOT NULL UNIQUE,
    channel TEXT,
    first_seen TIMESTAMP,
    last_seen TIMESTAMP
);

CREATE TABLE IF NOT EXISTS rasa_session (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    timestamp TIMESTAMP,
    start_sequence_number BIGINT NOT NULL,
    end_sequence_number BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rasa_session_sender_id ON rasa_session (sender_id, start_sequence_number);
CREATE INDEX IF NOT EXISTS rasa_session_timestamp ON rasa_session (timestamp);

CREATE TABLE IF NOT EXISTS rasa_turn (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    start_sequence_number BIGINT NOT NULL,
    end_sequence_number BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS rasa_turn_session_id ON rasa_turn (session_id);

CREATE TABLE IF NOT EXISTS rasa_event (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    timestamp TIMESTAMP,
    model_id TEXT,
    environment TEXT,
    sequence_number BIGINT NOT NULL,
    event_type TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rasa_event_session_id ON rasa_event (session_id);
CREATE INDEX IF NOT EXISTS rasa_event_sender_sequence ON rasa_event (sender_id, sequence_number);

CREATE TABLE IF NOT EXISTS rasa_user_message (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    timestamp TIMESTAMP,
    model_id TEXT,
    sequence_number BIGINT NOT NULL,
    intent TEXT,
    retrieval_intent TEXT,
    confidence DOUBLE PRECISION,
    text TEXT,
    message_id TEXT
);
CREATE INDEX IF NOT EXISTS rasa_user_message_session_id ON rasa_user_message (session_id);
CREATE INDEX IF NOT EXISTS rasa_user_message_sender_sequence ON rasa_user_message (sender_id, sequence_number);

CREATE TABLE IF NOT EXISTS rasa_bot_message (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    timestamp TIMESTAMP,
    model_id TEXT,
    sequence_number BIGINT NOT NULL,
    template_name TEXT,
    text TEXT
);
CREATE INDEX IF NOT EXISTS rasa_bot_message_session_id ON rasa_bot_message (session_id);
CREATE INDEX IF NOT EXISTS rasa_bot_message_sender_sequence ON rasa_bot_message (sender_id, sequence_number);

CREATE TABLE IF NOT EXISTS rasa_action (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    timestamp TIMESTAMP,
    model_id TEXT,
    sequence_number BIGINT NOT NULL,
    name TEXT,
    confidence DOUBLE PRECISION,
    policy TEXT
);
CREATE INDEX IF NOT EXISTS rasa_action_session_id ON rasa_action (session_id);
CREATE INDEX IF NOT EXISTS rasa_action_sender_sequence ON rasa_action (sender_id, sequence_number);

CREATE TABLE IF NOT EXISTS rasa_slot (
    id VARCHAR(36) PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    event_id VARCHAR(36) NOT NULL,
    timestamp TIMESTAMP,
    model_id TEXT,
    sequence_number BIGINT NOT NULL,
    slot_path TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rasa_slot_session_id ON rasa_slot (session_id);

CREATE TABLE IF NOT EXISTS rasa_session_slot_state (
    id TEXT PRIMARY KEY,
    sender_id VARCHAR(36) NOT NULL,
    session_id VARCHAR(36) NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    timestamp TIMESTAMP
);
CREATE INDEX IF NOT EXISTS rasa_session_slot_state_session_id ON rasa_session_slot_state (session_id);

-- Colloquy's own: the resumable derivation state of each conversation (colloquy_analytics::Conversation as
-- JSON) and the `events.id` of the last event it has seen, written in the same transaction as the rows derived
-- with it.
CREATE TABLE IF NOT EXISTS colloquy_analytics_state (
    sender_key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    last_row_id BIGINT NOT NULL DEFAULT 0
);

-- Colloquy's own: the names the metric views look for. metric: escalation | abandonment | fallback;
-- kind: intent | action | template. Edit the rows to match your assistant.
CREATE TABLE IF NOT EXISTS colloquy_metric_name (
    metric TEXT NOT NULL CHECK (metric IN ('escalation', 'abandonment', 'fallback')),
    kind TEXT NOT NULL CHECK (kind IN ('intent', 'action', 'template')),
    name TEXT NOT NULL,
    PRIMARY KEY (metric, kind, name)
);
INSERT INTO colloquy_metric_name (metric, kind, name) VALUES
    ('escalation', 'intent', 'human_handoff'),
    ('escalation', 'action', 'action_human_handoff'),
    ('fallback', 'intent', 'nlu_fallback'),
    ('fallback', 'action', 'action_default_fallback')
ON CONFLICT DO NOTHING;
