-- The active patterns, in name order: id, name, config (JSON).
SELECT id, name, config FROM rasa_pattern WHERE is_active ORDER BY name
