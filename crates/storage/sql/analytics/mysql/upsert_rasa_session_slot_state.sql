-- One row of Rows::session_slot_states: ?1 id, ?2 sender_id, ?3 session_id, ?4 name, ?5 value, ?6 timestamp (unix seconds).
INSERT INTO rasa_session_slot_state (id, sender_id, session_id, name, value, timestamp)
VALUES (?, ?, ?, ?, ?, TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'))
ON DUPLICATE KEY UPDATE value = VALUES(value), timestamp = VALUES(timestamp)
