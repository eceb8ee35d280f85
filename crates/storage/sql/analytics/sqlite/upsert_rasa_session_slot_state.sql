-- One row of Rows::session_slot_states: ?1 id, ?2 sender_id, ?3 session_id, ?4 name, ?5 value, ?6 timestamp (unix seconds).
INSERT INTO rasa_session_slot_state (id, sender_id, session_id, name, value, timestamp)
VALUES (?1, ?2, ?3, ?4, ?5, strftime('%Y-%m-%d %H:%M:%f', ?6, 'unixepoch'))
ON CONFLICT (id) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp
