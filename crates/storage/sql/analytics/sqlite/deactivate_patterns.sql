-- Before an upload: every pattern inactive (the upload activates those it names).
UPDATE rasa_pattern SET is_active = 0, updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE is_active
