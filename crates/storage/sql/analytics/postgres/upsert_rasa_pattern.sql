-- One uploaded pattern, active: $1 id, $2 name, $3 description, $4 config (JSON).
INSERT INTO rasa_pattern (id, name, description, config, is_active, created_at, updated_at)
VALUES ($1, $2, $3, $4, TRUE, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')
ON CONFLICT (id) DO UPDATE SET description = EXCLUDED.description, config = EXCLUDED.config, is_active = TRUE,
    updated_at = EXCLUDED.updated_at
