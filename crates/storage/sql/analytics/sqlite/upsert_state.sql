-- Conversation::to_json of one conversation: ?1 sender_key, ?2 state, ?3 last_row_id.
INSERT INTO colloquy_analytics_state (sender_key, state, last_row_id) VALUES (?1, ?2, ?3)
ON CONFLICT (sender_key) DO UPDATE SET state = excluded.state, last_row_id = excluded.last_row_id
