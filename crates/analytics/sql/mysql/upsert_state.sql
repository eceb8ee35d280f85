-- Conversation::to_json of one conversation: ?1 sender_key, ?2 state.
INSERT INTO colloquy_analytics_state (sender_key, state) VALUES (?, ?)
ON DUPLICATE KEY UPDATE state = VALUES(state)
