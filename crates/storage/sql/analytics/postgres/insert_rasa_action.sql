-- Rows::actions.
-- $1 id, $2 sender_id, $3 session_id, $4 event_id: text[]; $5 timestamp: float8[]; $6 model_id: text[];
-- $7 sequence_number: int8[]; $8 name: text[]; $9 confidence: float8[]; $10 policy: text[].
INSERT INTO rasa_action (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number,
                         name, confidence, policy)
SELECT r.id, r.sender_id, r.session_id, r.event_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id,
       r.sequence_number, r.name, r.confidence, r.policy
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::int8[],
            $8::text[], $9::float8[], $10::text[])
     AS r(id, sender_id, session_id, event_id, ts, model_id, sequence_number, name, confidence, policy)
ON CONFLICT (id) DO NOTHING
