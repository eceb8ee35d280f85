-- The stored states of some conversations (no row = Conversation::new): $1 sender_key text[].
SELECT sender_key, state, last_row_id FROM colloquy_analytics_state WHERE sender_key = ANY($1::text[])
