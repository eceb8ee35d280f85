-- One row of Rows::user_messages: ?1 id, ?2 sender_id, ?3 session_id, ?4 event_id, ?5 timestamp (unix seconds), ?6 model_id, ?7 sequence_number, ?8 intent, ?9 retrieval_intent, ?10 confidence, ?11 text, ?12 message_id.
INSERT INTO rasa_user_message (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number, intent, retrieval_intent, confidence, text, message_id)
VALUES (?, ?, ?, ?, TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'), ?, ?, ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE id = id
