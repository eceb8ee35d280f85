-- One row of Rows::sessions: ?1 id, ?2 sender_id, ?3 timestamp (unix seconds), ?4 start_sequence_number, ?5 end_sequence_number.
INSERT INTO rasa_session (id, sender_id, timestamp, start_sequence_number, end_sequence_number)
VALUES (?, ?, TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'), ?, ?)
ON DUPLICATE KEY UPDATE timestamp = VALUES(timestamp), end_sequence_number = VALUES(end_sequence_number)
