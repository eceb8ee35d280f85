-- Rows the derivation rewrites at each batch of their conversation (the sender, its open session and turn, its
-- derivation state) are updated in place, without new index entries (HOT), only when their page has room:
-- leave some in each page.
ALTER TABLE rasa_sender SET (fillfactor = 70);
ALTER TABLE rasa_session SET (fillfactor = 70);
ALTER TABLE rasa_turn SET (fillfactor = 70);
ALTER TABLE colloquy_analytics_state SET (fillfactor = 70);
