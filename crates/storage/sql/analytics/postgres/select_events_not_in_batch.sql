-- The events of some conversations after the last one each has seen that are not the batch's own inserted
-- rows, in stored order: those before the batch's first inserted row of the conversation and after its last
-- (normally none; each range is an index probe on events (sender_id, id)).
-- $1 sender_id text[], $2 last_row_id int8[], $3 first inserted id int8[], $4 last inserted id int8[] (same
-- order; i64::MAX for both when the conversation's rows are all to be read).
SELECT e.id, e.sender_id, e.data
FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[]) AS s(sender_id, after_id, before_id, last_id)
CROSS JOIN LATERAL (
    SELECT id::int8, sender_id, data FROM events
    WHERE sender_id = s.sender_id AND id > s.after_id AND id < s.before_id
    UNION ALL
    SELECT id::int8, sender_id, data FROM events
    WHERE sender_id = s.sender_id AND id > s.last_id
) e
ORDER BY e.id
