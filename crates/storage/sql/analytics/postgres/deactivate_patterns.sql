-- Before an upload: every pattern inactive (the upload activates those it names).
UPDATE rasa_pattern SET is_active = FALSE, updated_at = now() AT TIME ZONE 'UTC' WHERE is_active
