-- One row of Rows::senders: ?1 id, ?2 sender_key, ?3 channel, ?4 first_seen (unix seconds), ?5 last_seen (unix seconds).
INSERT INTO rasa_sender (id, sender_key, channel, first_seen, last_seen)
VALUES (?, ?, ?, TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'), TIMESTAMPADD(MICROSECOND, ROUND(? * 1000000), '1970-01-01 00:00:00'))
ON DUPLICATE KEY UPDATE channel = VALUES(channel), first_seen = VALUES(first_seen), last_seen = VALUES(last_seen)
