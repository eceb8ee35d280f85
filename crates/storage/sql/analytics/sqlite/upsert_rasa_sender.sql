-- One row of Rows::senders: ?1 id, ?2 sender_key, ?3 channel, ?4 first_seen (unix seconds), ?5 last_seen (unix seconds).
INSERT INTO rasa_sender (id, sender_key, channel, first_seen, last_seen)
VALUES (?1, ?2, ?3, strftime('%Y-%m-%d %H:%M:%f', ?4, 'unixepoch'), strftime('%Y-%m-%d %H:%M:%f', ?5, 'unixepoch'))
ON CONFLICT (id) DO UPDATE SET channel = excluded.channel, first_seen = excluded.first_seen, last_seen = excluded.last_seen
