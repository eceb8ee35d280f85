-- Rows::events. $1 id, $2 sender_id, $3 session_id: text[]; $4 timestamp: float8[]; $5 model_id,
-- $6 environment: text[]; $7 sequence_number: int8[]; $8 event_type: text[].
INSERT INTO rasa_event (id, sender_id, session_id, timestamp, model_id, environment, sequence_number, event_type)
SELECT r.id, r.sender_id, r.session_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id, r.environment,
       r.sequence_number, r.event_type
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::text[], $7::int8[], $8::text[])
     AS r(id, sender_id, session_id, ts, model_id, environment, sequence_number, event_type)
ON CONFLICT (id) DO NOTHING
