-- One uploaded pattern, active: ?1 id, ?2 name, ?3 description, ?4 config (JSON).
INSERT INTO rasa_pattern (id, name, description, config, is_active, created_at, updated_at)
VALUES (?1, ?2, ?3, ?4, 1, strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now'))
ON CONFLICT (id) DO UPDATE SET description = excluded.description, config = excluded.config, is_active = 1,
    updated_at = excluded.updated_at
