-- One row of Rows::bot_messages: ?1 id, ?2 sender_id, ?3 session_id, ?4 event_id, ?5 timestamp (unix seconds), ?6 model_id, ?7 sequence_number, ?8 template_name, ?9 text.
INSERT INTO rasa_bot_message (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number, template_name, text)
VALUES (?, ?, ?, ?, TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'), ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE id = id
