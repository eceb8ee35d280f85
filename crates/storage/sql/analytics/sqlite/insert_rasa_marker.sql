-- One marker hit: ?1 id, ?2 pattern_id, ?3 sender_id, ?4 session_id, ?5 event_id, ?6 num_preceding_user_turns, ?7 created_at (unix seconds).
INSERT INTO rasa_marker (id, pattern_id, sender_id, session_id, event_id, num_preceding_user_turns, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, strftime('%Y-%m-%d %H:%M:%f', ?7, 'unixepoch'))
ON CONFLICT (id) DO NOTHING
