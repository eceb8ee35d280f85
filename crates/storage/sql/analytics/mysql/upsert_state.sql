-- Conversation::to_json of one conversation: ?1 sender_key, ?2 state, ?3 last_row_id.
INSERT INTO colloquy_analytics_state (sender_key, state, last_row_id) VALUES (?, ?, ?)
ON DUPLICATE KEY UPDATE state = VALUES(state), last_row_id = VALUES(last_row_id)
