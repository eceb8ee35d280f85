-- Rows::session_slot_states. $1 id, $2 sender_id, $3 session_id, $4 name, $5 value: text[]; $6 timestamp: float8[].
INSERT INTO rasa_session_slot_state (id, sender_id, session_id, name, value, timestamp)
SELECT r.id, r.sender_id, r.session_id, r.name, r.value, to_timestamp(r.ts) AT TIME ZONE 'UTC'
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::float8[])
     AS r(id, sender_id, session_id, name, value, ts)
ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, timestamp = EXCLUDED.timestamp
