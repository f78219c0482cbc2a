-- A fresh installation has a room "general" (see the SQLite twin).
INSERT INTO rooms (kind, name, name_key, created_ms)
SELECT 'public', 'general', 'general', CAST(EXTRACT(EPOCH FROM now()) * 1000 AS BIGINT)
WHERE NOT EXISTS (SELECT 1 FROM rooms WHERE name_key = 'general');
