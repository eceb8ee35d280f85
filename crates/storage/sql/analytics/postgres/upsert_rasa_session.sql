-- Rows::sessions. $1 id, $2 sender_id: text[]; $3 timestamp: float8[]; $4 start, $5 end sequence number: int8[].
INSERT INTO rasa_session (id, sender_id, timestamp, start_sequence_number, end_sequence_number)
SELECT r.id, r.sender_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.start_sequence_number, r.end_sequence_number
FROM UNNEST($1::text[], $2::text[], $3::float8[], $4::int8[], $5::int8[])
     AS r(id, sender_id, ts, start_sequence_number, end_sequence_number)
ON CONFLICT (id) DO UPDATE SET
    timestamp = EXCLUDED.timestamp, end_sequence_number = EXCLUDED.end_sequence_number
