-- One row of Rows::actions: ?1 id, ?2 sender_id, ?3 session_id, ?4 event_id, ?5 timestamp (unix seconds), ?6 model_id, ?7 sequence_number, ?8 name, ?9 confidence, ?10 policy.
INSERT INTO rasa_action (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number, name, confidence, policy)
VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%d %H:%M:%f', ?5, 'unixepoch'), ?6, ?7, ?8, ?9, ?10)
ON CONFLICT (id) DO NOTHING
