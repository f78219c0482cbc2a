-- A fresh installation has a room to talk in: "general", which every new account joins (see
-- `web::auth::register`). Created only if absent: an installation that already has a room of
-- that name (any case) keeps it as it is. Nobody created it, so `created_by` stays NULL and it
-- counts against nobody's allowance of rooms.
INSERT INTO rooms (kind, name, name_key, created_ms)
SELECT 'public', 'general', 'general', CAST(strftime('%s', 'now') AS INTEGER) * 1000
WHERE NOT EXISTS (SELECT 1 FROM rooms WHERE name_key = 'general');
