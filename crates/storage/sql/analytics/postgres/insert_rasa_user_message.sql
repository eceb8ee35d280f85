-- Rows::user_messages.
-- $1 id, $2 sender_id, $3 session_id, $4 event_id: text[]; $5 timestamp: float8[]; $6 model_id: text[];
-- $7 sequence_number: int8[]; $8 intent, $9 retrieval_intent: text[]; $10 confidence: float8[]; $11 text, $12 message_id: text[].
INSERT INTO rasa_user_message (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number,
                               intent, retrieval_intent, confidence, text, message_id)
SELECT r.id, r.sender_id, r.session_id, r.event_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id,
       r.sequence_number, r.intent, r.retrieval_intent, r.confidence, r.text, r.message_id
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::int8[],
            $8::text[], $9::text[], $10::float8[], $11::text[], $12::text[])
     AS r(id, sender_id, session_id, event_id, ts, model_id, sequence_number,
          intent, retrieval_intent, confidence, text, message_id)
ON CONFLICT (id) DO NOTHING
