-- Rows::turns. $1 id, $2 sender_id, $3 session_id: text[]; $4 start, $5 end sequence number: int8[].
INSERT INTO rasa_turn (id, sender_id, session_id, start_sequence_number, end_sequence_number)
SELECT r.id, r.sender_id, r.session_id, r.start_sequence_number, r.end_sequence_number
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[])
     AS r(id, sender_id, session_id, start_sequence_number, end_sequence_number)
ON CONFLICT (id) DO UPDATE SET end_sequence_number = EXCLUDED.end_sequence_number
