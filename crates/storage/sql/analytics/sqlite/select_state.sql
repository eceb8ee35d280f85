-- The stored state of one conversation (no row = Conversation::new): ?1 sender_key.
SELECT state, last_row_id FROM colloquy_analytics_state WHERE sender_key = ?1
