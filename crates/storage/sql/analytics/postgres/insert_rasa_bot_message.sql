-- Rows::bot_messages.
-- $1 id, $2 sender_id, $3 session_id, $4 event_id: text[]; $5 timestamp: float8[]; $6 model_id: text[];
-- $7 sequence_number: int8[]; $8 template_name, $9 text: text[].
INSERT INTO rasa_bot_message (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number,
                              template_name, text)
SELECT r.id, r.sender_id, r.session_id, r.event_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id,
       r.sequence_number, r.template_name, r.text
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::text[], $7::int8[],
            $8::text[], $9::text[])
     AS r(id, sender_id, session_id, event_id, ts, model_id, sequence_number, template_name, text)
ON CONFLICT (id) DO NOTHING
