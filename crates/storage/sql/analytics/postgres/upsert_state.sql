-- Conversation::to_json of some conversations: $1 sender_key, $2 state: text[]; $3 last_row_id: int8[].
INSERT INTO colloquy_analytics_state (sender_key, state, last_row_id)
SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[])
ON CONFLICT (sender_key) DO UPDATE SET state = EXCLUDED.state, last_row_id = EXCLUDED.last_row_id
