-- One row of Rows::actions: ?1 id, ?2 sender_id, ?3 session_id, ?4 event_id, ?5 timestamp (unix seconds), ?6 model_id, ?7 sequence_number, ?8 name, ?9 confidence, ?10 policy.
INSERT INTO rasa_action (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number, name, confidence, policy)
VALUES (?, ?, ?, ?, TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'), ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE id = id
