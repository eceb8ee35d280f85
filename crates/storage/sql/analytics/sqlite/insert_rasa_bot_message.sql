-- One row of Rows::bot_messages: ?1 id, ?2 sender_id, ?3 session_id, ?4 event_id, ?5 timestamp (unix seconds), ?6 model_id, ?7 sequence_number, ?8 template_name, ?9 text.
INSERT INTO rasa_bot_message (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number, template_name, text)
VALUES (?1, ?2, ?3, ?4, strftime('%Y-%m-%d %H:%M:%f', ?5, 'unixepoch'), ?6, ?7, ?8, ?9)
ON CONFLICT (id) DO NOTHING
