-- The admin's log of what staff did. IF NOT EXISTS: a host may already have made this table
-- (Parley's first migration did, with a foreign key to its users).
-- user_id has no foreign key: the crate does not know the host's user table. A host that deletes
-- users through the admin lists `Related::set_null("admin_log", "user_id")` on its user model, so
-- entries outlive their author with user_id NULL, as ON DELETE SET NULL would do.
CREATE TABLE IF NOT EXISTS admin_log (
    id             BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_time_ms BIGINT   NOT NULL,
    user_id        BIGINT,
    model          TEXT     NOT NULL,
    object_id      TEXT     NOT NULL,
    object_repr    TEXT     NOT NULL,
    action_flag    BIGINT   NOT NULL CHECK (action_flag IN (1, 2, 3)),
    change_message TEXT     NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS admin_log_object ON admin_log (model, object_id);
CREATE INDEX IF NOT EXISTS admin_log_user ON admin_log (user_id, action_time_ms);
