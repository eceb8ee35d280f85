-- Metrics over Rasa Pro's analytics tables. Each view answers one question; README.md (in this folder's
-- parent) has an example query for each. Names to look for (hand-off, fallback, abandonment) are rows of
-- colloquy_metric_name.

-- How many sessions started each day (UTC)?
CREATE OR REPLACE VIEW colloquy_sessions_per_day AS
SELECT date(s.timestamp) AS day, COUNT(*) AS sessions
FROM rasa_session s
GROUP BY date(s.timestamp);

-- How many sessions came through each channel (the sender's input_channel)?
CREATE OR REPLACE VIEW colloquy_sessions_per_channel AS
SELECT r.channel AS channel, COUNT(*) AS sessions
FROM rasa_session s JOIN rasa_sender r ON r.id = s.sender_id
GROUP BY r.channel;

-- How many senders, and how many sessions each on average?
CREATE OR REPLACE VIEW colloquy_senders AS
SELECT (SELECT COUNT(*) FROM rasa_sender) AS senders,
       (SELECT COUNT(*) FROM rasa_session) AS sessions,
       CAST((SELECT COUNT(*) FROM rasa_session) AS DOUBLE)
           / NULLIF((SELECT COUNT(*) FROM rasa_sender), 0) AS sessions_per_sender;

-- How many turns (user messages) did each session have?
CREATE OR REPLACE VIEW colloquy_turns_per_session AS
SELECT s.id AS session_id, s.sender_id AS sender_id, s.timestamp AS timestamp, COUNT(t.id) AS turns
FROM rasa_session s LEFT JOIN rasa_turn t ON t.session_id = s.id
GROUP BY s.id, s.sender_id, s.timestamp;

-- Which intents do users express, how often?
CREATE OR REPLACE VIEW colloquy_top_intents AS
SELECT u.intent AS intent, COUNT(*) AS messages
FROM rasa_user_message u
WHERE u.intent IS NOT NULL
GROUP BY u.intent;

-- Per turn: seconds from the user message to the first bot message of the turn (turns without one: none).
CREATE OR REPLACE VIEW colloquy_bot_response_time AS
SELECT t.id AS turn_id, t.session_id AS session_id,
       TIMESTAMPDIFF(MICROSECOND, MIN(u.timestamp), MIN(b.timestamp)) / 1000000.0 AS seconds
FROM rasa_turn t
JOIN rasa_user_message u ON u.sender_id = t.sender_id AND u.sequence_number = t.start_sequence_number
JOIN rasa_bot_message b ON b.sender_id = t.sender_id
     AND b.sequence_number > t.start_sequence_number AND b.sequence_number <= t.end_sequence_number
GROUP BY t.id, t.session_id;

-- Per session: escalated (a hand-off intent or action), abandoned (its last bot message is an abandonment
-- template, or it ended inside an active form: requested_slot still set), contained (not escalated).
CREATE OR REPLACE VIEW colloquy_session_outcome AS
SELECT s.id AS session_id, s.sender_id AS sender_id, s.timestamp AS timestamp,
       (EXISTS (SELECT 1 FROM rasa_user_message u JOIN colloquy_metric_name m
                    ON m.metric = 'escalation' AND m.kind = 'intent' AND m.name = u.intent
                WHERE u.session_id = s.id)
        OR EXISTS (SELECT 1 FROM rasa_action a JOIN colloquy_metric_name m
                    ON m.metric = 'escalation' AND m.kind = 'action' AND m.name = a.name
                   WHERE a.session_id = s.id)) AS escalated,
       (EXISTS (SELECT 1 FROM colloquy_metric_name m
                WHERE m.metric = 'abandonment' AND m.kind = 'template'
                  AND m.name = (SELECT b.template_name FROM rasa_bot_message b WHERE b.session_id = s.id
                                ORDER BY b.sequence_number DESC LIMIT 1))
        OR EXISTS (SELECT 1 FROM rasa_session_slot_state st
                   WHERE st.session_id = s.id AND st.name = 'requested_slot' AND st.value <> 'null')) AS abandoned
FROM rasa_session s;

-- Share of sessions handed over to a human.
CREATE OR REPLACE VIEW colloquy_escalation_rate AS
SELECT COUNT(*) AS sessions,
       COUNT(CASE WHEN escalated THEN 1 END) AS escalated_sessions,
       CAST(COUNT(CASE WHEN escalated THEN 1 END) AS DOUBLE) / NULLIF(COUNT(*), 0) AS escalation_rate
FROM colloquy_session_outcome;

-- Share of sessions abandoned.
CREATE OR REPLACE VIEW colloquy_abandonment_rate AS
SELECT COUNT(*) AS sessions,
       COUNT(CASE WHEN abandoned THEN 1 END) AS abandoned_sessions,
       CAST(COUNT(CASE WHEN abandoned THEN 1 END) AS DOUBLE) / NULLIF(COUNT(*), 0) AS abandonment_rate
FROM colloquy_session_outcome;

-- Share of sessions the assistant handled alone (not escalated).
CREATE OR REPLACE VIEW colloquy_containment_rate AS
SELECT COUNT(*) AS sessions,
       COUNT(CASE WHEN NOT escalated THEN 1 END) AS contained_sessions,
       CAST(COUNT(CASE WHEN NOT escalated THEN 1 END) AS DOUBLE) / NULLIF(COUNT(*), 0) AS containment_rate
FROM colloquy_session_outcome;

-- Share of turns that fell back: a fallback intent (nlu_fallback) or a fallback action
-- (action_default_fallback) in the turn.
CREATE OR REPLACE VIEW colloquy_fallback_rate AS
SELECT COUNT(*) AS turns,
       COUNT(CASE WHEN fallback THEN 1 END) AS fallback_turns,
       CAST(COUNT(CASE WHEN fallback THEN 1 END) AS DOUBLE) / NULLIF(COUNT(*), 0) AS fallback_rate
FROM (
    SELECT t.id,
           EXISTS (SELECT 1 FROM rasa_user_message u JOIN colloquy_metric_name m
                       ON m.metric = 'fallback' AND m.kind = 'intent' AND m.name = u.intent
                   WHERE u.sender_id = t.sender_id AND u.sequence_number = t.start_sequence_number)
           OR EXISTS (SELECT 1 FROM rasa_action a JOIN colloquy_metric_name m
                       ON m.metric = 'fallback' AND m.kind = 'action' AND m.name = a.name
                      WHERE a.sender_id = t.sender_id
                        AND a.sequence_number BETWEEN t.start_sequence_number AND t.end_sequence_number)
           AS fallback
    FROM rasa_turn t
) turns;
