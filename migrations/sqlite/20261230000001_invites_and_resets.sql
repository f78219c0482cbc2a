-- Who may join, and getting back in.
--
-- `invites`: links staff make in the admin when registration is by invitation
-- (`--registration invite`): `/register?invite={code}`. Each may be used `max_uses` times until
-- `expires_ms`; `uses` counts the accounts made with it.
CREATE TABLE invites (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    code       TEXT    NOT NULL UNIQUE,
    note       TEXT    NOT NULL DEFAULT '',
    max_uses   INTEGER NOT NULL DEFAULT 1,
    uses       INTEGER NOT NULL DEFAULT 0,
    expires_ms BIGINT  NOT NULL,
    created_ms BIGINT  NOT NULL
);

-- `password_resets`: one-time links staff make in the admin for someone who forgot their
-- password (there is no email): `/reset/{token}`, good once, until `expires_ms` (a day).
CREATE TABLE password_resets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token      TEXT    NOT NULL UNIQUE,
    expires_ms BIGINT  NOT NULL,
    used_ms    BIGINT,
    created_ms BIGINT  NOT NULL
);
CREATE INDEX password_resets_user ON password_resets (user_id);
