-- One row of Rows::turns: ?1 id, ?2 sender_id, ?3 session_id, ?4 start_sequence_number, ?5 end_sequence_number.
INSERT INTO rasa_turn (id, sender_id, session_id, start_sequence_number, end_sequence_number)
VALUES (?, ?, ?, ?, ?)
ON DUPLICATE KEY UPDATE end_sequence_number = VALUES(end_sequence_number)
