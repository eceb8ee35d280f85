-- Rows::senders. $1 id, $2 sender_key, $3 channel: text[]; $4 first_seen, $5 last_seen: float8[] (unix seconds).
INSERT INTO rasa_sender (id, sender_key, channel, first_seen, last_seen)
SELECT r.id, r.sender_key, r.channel,
       to_timestamp(r.first_seen) AT TIME ZONE 'UTC', to_timestamp(r.last_seen) AT TIME ZONE 'UTC'
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[])
     AS r(id, sender_key, channel, first_seen, last_seen)
ON CONFLICT (id) DO UPDATE SET
    channel = EXCLUDED.channel, first_seen = EXCLUDED.first_seen, last_seen = EXCLUDED.last_seen
