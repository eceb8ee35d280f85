-- Every event of one conversation in stored order: ?1 sender_id.
SELECT id, data FROM events WHERE sender_id = ? ORDER BY id
