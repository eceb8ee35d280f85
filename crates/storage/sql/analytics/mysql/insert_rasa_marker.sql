-- One marker hit: ?1 id, ?2 pattern_id, ?3 sender_id, ?4 session_id, ?5 event_id, ?6 num_preceding_user_turns, ?7 created_at (unix seconds).
INSERT INTO rasa_marker (id, pattern_id, sender_id, session_id, event_id, num_preceding_user_turns, created_at)
VALUES (?, ?, ?, ?, ?, ?, TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'))
ON DUPLICATE KEY UPDATE id = id
