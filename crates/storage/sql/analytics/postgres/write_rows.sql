-- Rows of some conversations and their new derivation states, all tables in one statement (one round trip per
-- batch instead of ten; each part is one data-modifying CTE, all see the same snapshot: no part reads what
-- another writes, and no id appears twice in one part). Arrays, one per column, in the order of `Rows`:
-- senders      $1 id, $2 sender_key, $3 channel: text[]; $4 first_seen, $5 last_seen: float8[] (unix seconds)
-- sessions     $6 id, $7 sender_id: text[]; $8 timestamp: float8[]; $9 start, $10 end sequence number: int8[]
-- turns        $11 id, $12 sender_id, $13 session_id: text[]; $14 start, $15 end sequence number: int8[]
-- events       $16 id, $17 sender_id, $18 session_id: text[]; $19 timestamp: float8[]; $20 model_id,
--              $21 environment: text[]; $22 sequence_number: int8[]; $23 event_type: text[]
-- the event-derived tables (user messages from $24, bot messages from $36, actions from $45, slots from $55)
-- begin with the same seven columns: id, sender_id, session_id, event_id: text[]; timestamp: float8[];
-- model_id: text[]; sequence_number: int8[]; then
-- user messages $31 intent, $32 retrieval_intent: text[]; $33 confidence: float8[]; $34 text, $35 message_id: text[]
-- bot messages  $43 template_name, $44 text: text[]
-- actions       $52 name: text[]; $53 confidence: float8[]; $54 policy: text[]
-- slots         $62 slot_path, $63 name, $64 value: text[]
-- session slot states $65 id, $66 sender_id, $67 session_id, $68 name, $69 value: text[]; $70 timestamp: float8[]
-- states       $71 sender_key, $72 state: text[]; $73 last_row_id: int8[]
-- Sender, session, turn and slot-state rows replace the row with the same id (they grow as events arrive);
-- event-derived rows are inserted once (`ON CONFLICT (id) DO NOTHING`).
WITH senders AS (
    INSERT INTO rasa_sender (id, sender_key, channel, first_seen, last_seen)
    SELECT r.id, r.sender_key, r.channel,
           to_timestamp(r.first_seen) AT TIME ZONE 'UTC', to_timestamp(r.last_seen) AT TIME ZONE 'UTC'
    FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[])
         AS r(id, sender_key, channel, first_seen, last_seen)
    ON CONFLICT (id) DO UPDATE SET
        channel = EXCLUDED.channel, first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen
), sessions AS (
    INSERT INTO rasa_session (id, sender_id, timestamp, start_sequence_number, end_sequence_number)
    SELECT r.id, r.sender_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.start_sequence_number,
           r.end_sequence_number
    FROM UNNEST($6::text[], $7::text[], $8::float8[], $9::int8[], $10::int8[])
         AS r(id, sender_id, ts, start_sequence_number, end_sequence_number)
    ON CONFLICT (id) DO UPDATE SET
        timestamp = EXCLUDED.timestamp, end_sequence_number = EXCLUDED.end_sequence_number
), turns AS (
    INSERT INTO rasa_turn (id, sender_id, session_id, start_sequence_number, end_sequence_number)
    SELECT r.id, r.sender_id, r.session_id, r.start_sequence_number, r.end_sequence_number
    FROM UNNEST($11::text[], $12::text[], $13::text[], $14::int8[], $15::int8[])
         AS r(id, sender_id, session_id, start_sequence_number, end_sequence_number)
    ON CONFLICT (id) DO UPDATE SET end_sequence_number = EXCLUDED.end_sequence_number
), events AS (
    INSERT INTO rasa_event (id, sender_id, session_id, timestamp, model_id, environment, sequence_number,
                            event_type)
    SELECT r.id, r.sender_id, r.session_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id, r.environment,
           r.sequence_number, r.event_type
    FROM UNNEST($16::text[], $17::text[], $18::text[], $19::float8[], $20::text[], $21::text[], $22::int8[],
                $23::text[])
         AS r(id, sender_id, session_id, ts, model_id, environment, sequence_number, event_type)
    ON CONFLICT (id) DO NOTHING
), user_messages AS (
    INSERT INTO rasa_user_message (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number,
                                   intent, retrieval_intent, confidence, text, message_id)
    SELECT r.id, r.sender_id, r.session_id, r.event_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id,
           r.sequence_number, r.intent, r.retrieval_intent, r.confidence, r.text, r.message_id
    FROM UNNEST($24::text[], $25::text[], $26::text[], $27::text[], $28::float8[], $29::text[], $30::int8[],
                $31::text[], $32::text[], $33::float8[], $34::text[], $35::text[])
         AS r(id, sender_id, session_id, event_id, ts, model_id, sequence_number,
              intent, retrieval_intent, confidence, text, message_id)
    ON CONFLICT (id) DO NOTHING
), bot_messages AS (
    INSERT INTO rasa_bot_message (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number,
                                  template_name, text)
    SELECT r.id, r.sender_id, r.session_id, r.event_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id,
           r.sequence_number, r.template_name, r.text
    FROM UNNEST($36::text[], $37::text[], $38::text[], $39::text[], $40::float8[], $41::text[], $42::int8[],
                $43::text[], $44::text[])
         AS r(id, sender_id, session_id, event_id, ts, model_id, sequence_number, template_name, text)
    ON CONFLICT (id) DO NOTHING
), actions AS (
    INSERT INTO rasa_action (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number,
                             name, confidence, policy)
    SELECT r.id, r.sender_id, r.session_id, r.event_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id,
           r.sequence_number, r.name, r.confidence, r.policy
    FROM UNNEST($45::text[], $46::text[], $47::text[], $48::text[], $49::float8[], $50::text[], $51::int8[],
                $52::text[], $53::float8[], $54::text[])
         AS r(id, sender_id, session_id, event_id, ts, model_id, sequence_number, name, confidence, policy)
    ON CONFLICT (id) DO NOTHING
), slots AS (
    INSERT INTO rasa_slot (id, sender_id, session_id, event_id, timestamp, model_id, sequence_number,
                           slot_path, name, value)
    SELECT r.id, r.sender_id, r.session_id, r.event_id, to_timestamp(r.ts) AT TIME ZONE 'UTC', r.model_id,
           r.sequence_number, r.slot_path, r.name, r.value
    FROM UNNEST($55::text[], $56::text[], $57::text[], $58::text[], $59::float8[], $60::text[], $61::int8[],
                $62::text[], $63::text[], $64::text[])
         AS r(id, sender_id, session_id, event_id, ts, model_id, sequence_number, slot_path, name, value)
    ON CONFLICT (id) DO NOTHING
), session_slot_states AS (
    INSERT INTO rasa_session_slot_state (id, sender_id, session_id, name, value, timestamp)
    SELECT r.id, r.sender_id, r.session_id, r.name, r.value, to_timestamp(r.ts) AT TIME ZONE 'UTC'
    FROM UNNEST($65::text[], $66::text[], $67::text[], $68::text[], $69::text[], $70::float8[])
         AS r(id, sender_id, session_id, name, value, ts)
    ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, timestamp = EXCLUDED.timestamp
), states AS (
    INSERT INTO colloquy_analytics_state (sender_key, state, last_row_id)
    SELECT * FROM UNNEST($71::text[], $72::text[], $73::int8[])
    ON CONFLICT (sender_key) DO UPDATE SET state = EXCLUDED.state, last_row_id = EXCLUDED.last_row_id
)
SELECT 1
