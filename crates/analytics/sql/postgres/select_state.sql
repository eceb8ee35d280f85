-- The stored states of the batch's conversations (absent = Conversation::new). $1 sender_key: text[].
SELECT sender_key, state FROM colloquy_analytics_state WHERE sender_key = ANY($1::text[])
