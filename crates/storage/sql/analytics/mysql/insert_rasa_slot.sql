-- One row of Rows::slots: ?1 id, ?2 sender_id, ?3 session_id, ?4 event_id, ?5 timestamp (unix seconds), ?6 model_id, ?7 sequence_number, ?8 slot_path, ?9 name, ?10 value.
INSERT INTO rasa_slot (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number, slot_path, name, value)
VALUES (?, ?, ?, ?, TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'), ?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE id = id
