-- Conversation::to_json of each conversation of the batch. $1 sender_key, $2 state: text[].
INSERT INTO colloquy_analytics_state (sender_key, state)
SELECT r.sender_key, r.state FROM UNNEST($1::text[], $2::text[]) AS r(sender_key, state)
ON CONFLICT (sender_key) DO UPDATE SET state = EXCLUDED.state
