-- Every event of one conversation in stored order: $1 sender_id.
SELECT id::int8, data FROM events WHERE sender_id = $1 ORDER BY id
