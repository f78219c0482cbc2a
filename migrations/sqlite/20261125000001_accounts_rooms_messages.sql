-- Parley's first schema (SQLite). The PostgreSQL twin lives in migrations/postgres with the same
-- file name; keep them in step. Times are BIGINT unix milliseconds (UTC): sqlx's Any driver cannot
-- decode timestamptz, and one representation for both engines keeps the queries identical.
-- Flags are integers 0/1 for the same reason: Any cannot decode SQLite's BOOLEAN, and a flag that
-- decodes as bool on one engine and as an integer on the other would split every query in two.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL,
    -- lower(username): names are unique without regard to case, and the database keeps that
    -- rule (a racing second registration fails on this index, not on a check-then-insert).
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_staff      INTEGER NOT NULL DEFAULT 0 CHECK (is_staff IN (0, 1)),
    is_superuser  INTEGER NOT NULL DEFAULT 0 CHECK (is_superuser IN (0, 1)),
    is_active     INTEGER NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_ms    BIGINT  NOT NULL,
    -- Presence: written at most every few seconds per user; "online" = seen in the last minute.
    last_seen_ms  BIGINT  NOT NULL DEFAULT 0
);

-- A room is either public (it has a name) or a direct conversation between exactly two people
-- (it has a direct_key "lowerid:higherid", so each pair has one room, as in Campfire).
CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('public', 'direct')),
    name        TEXT,
    name_key    TEXT    UNIQUE,
    topic       TEXT    NOT NULL DEFAULT '',
    direct_key  TEXT    UNIQUE,
    created_by  INTEGER REFERENCES users (id) ON DELETE SET NULL,
    created_ms  BIGINT  NOT NULL,
    -- The last message sequence number handed out in this room. A send increments it in the
    -- same transaction that inserts the message, which makes per-room cursors commit-ordered.
    last_seq    BIGINT  NOT NULL DEFAULT 0,
    CHECK ((kind = 'public' AND name IS NOT NULL AND name_key IS NOT NULL AND direct_key IS NULL)
        OR (kind = 'direct' AND name IS NULL AND name_key IS NULL AND direct_key IS NOT NULL))
);

CREATE TABLE memberships (
    room_id       INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Unread count = rooms.last_seq - last_read_seq.
    last_read_seq BIGINT  NOT NULL DEFAULT 0,
    joined_ms     BIGINT  NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    -- Per-room sequence number: the long-poll cursor (data-message-id in the HTML).
    seq         BIGINT  NOT NULL,
    author_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body        TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    edited_ms   BIGINT,
    -- Chosen by the client so that a retried send stores one message, not two.
    client_key  TEXT,
    UNIQUE (room_id, seq),
    UNIQUE (author_id, client_key)
);
CREATE INDEX messages_author ON messages (author_id);
CREATE INDEX messages_created ON messages (created_ms);

-- What staff did in the admin area (Django's LogEntry). action_flag: 1 add, 2 change, 3 delete.
CREATE TABLE admin_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    action_time_ms BIGINT  NOT NULL,
    user_id        INTEGER REFERENCES users (id) ON DELETE SET NULL,
    model          TEXT    NOT NULL,
    object_id      TEXT    NOT NULL,
    object_repr    TEXT    NOT NULL,
    action_flag    INTEGER NOT NULL CHECK (action_flag IN (1, 2, 3)),
    change_message TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX admin_log_object ON admin_log (model, object_id);
CREATE INDEX admin_log_user ON admin_log (user_id, action_time_ms);
