-- One row of Rows::turns: ?1 id, ?2 sender_id, ?3 session_id, ?4 start_sequence_number, ?5 end_sequence_number.
INSERT INTO rasa_turn (id, sender_id, session_id, start_sequence_number, end_sequence_number)
VALUES (?1, ?2, ?3, ?4, ?5)
ON CONFLICT (id) DO UPDATE SET end_sequence_number = excluded.end_sequence_number
