-- The events of some conversations after the last one each has seen, in stored order:
-- $1 sender_id text[], $2 last_row_id int8[] (same order).
SELECT e.id::int8, e.sender_id, e.data
FROM events e JOIN UNNEST($1::text[], $2::int8[]) AS s(sender_id, after_id)
     ON e.sender_id = s.sender_id AND e.id > s.after_id
ORDER BY e.id
