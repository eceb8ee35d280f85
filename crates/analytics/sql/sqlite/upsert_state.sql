-- Conversation::to_json of one conversation: ?1 sender_key, ?2 state.
INSERT INTO colloquy_analytics_state (sender_key, state) VALUES (?1, ?2)
ON CONFLICT (sender_key) DO UPDATE SET state = excluded.state
