-- One row of Rows::events: ?1 id, ?2 sender_id, ?3 session_id, ?4 timestamp (unix seconds), ?5 model_id, ?6 environment, ?7 sequence_number, ?8 event_type.
INSERT INTO rasa_event (id, sender_id, session_id, timestamp, model_id, environment, sequence_number, event_type)
VALUES (?1, ?2, ?3, strftime('%Y-%m-%d %H:%M:%f', ?4, 'unixepoch'), ?5, ?6, ?7, ?8)
ON CONFLICT (id) DO NOTHING
