-- One row of Rows::sessions: ?1 id, ?2 sender_id, ?3 timestamp (unix seconds), ?4 start_sequence_number, ?5 end_sequence_number.
INSERT INTO rasa_session (id, sender_id, timestamp, start_sequence_number, end_sequence_number)
VALUES (?1, ?2, strftime('%Y-%m-%d %H:%M:%f', ?3, 'unixepoch'), ?4, ?5)
ON CONFLICT (id) DO UPDATE SET timestamp = excluded.timestamp, end_sequence_number = excluded.end_sequence_number
