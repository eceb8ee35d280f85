-- The events of one conversation after the last one it has seen, in stored order: ?1 sender_id, ?2 last_row_id.
SELECT id, data FROM events WHERE sender_id = ?1 AND id > ?2 ORDER BY id
