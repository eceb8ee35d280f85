-- One uploaded pattern, active: ?1 id, ?2 name, ?3 description, ?4 config (JSON).
INSERT INTO rasa_pattern (id, name, description, config, is_active, created_at, updated_at)
VALUES (?, ?, ?, ?, TRUE, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))
ON DUPLICATE KEY UPDATE description = VALUES(description), config = VALUES(config), is_active = TRUE,
    updated_at = VALUES(updated_at)
