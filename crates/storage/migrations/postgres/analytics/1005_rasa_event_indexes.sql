-- rasa_event keeps its primary key and its session_id index. The (sender_id, sequence_number) one served no view
-- or query of Colloquy's (the views that look events up by sender and position read rasa_user_message,
-- rasa_bot_message and rasa_action, which keep theirs) and cost every derived event an index entry at a random
-- place: a query by sender on rasa_event goes through rasa_session (sender_id) and the session_id index.
DROP INDEX IF EXISTS rasa_event_sender_sequence;
