-- Parley's first schema (PostgreSQL). The SQLite twin lives in migrations/sqlite with the same
-- file name; keep them in step. Times are BIGINT unix milliseconds (UTC): sqlx's Any driver cannot
-- decode timestamptz, and one representation for both engines keeps the queries identical.
-- Flags are integers 0/1 for the same reason: Any cannot decode SQLite's BOOLEAN, and a flag that
-- decodes as bool on one engine and as an integer on the other would split every query in two.

CREATE TABLE users (
    id            BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT    NOT NULL,
    -- lower(username): names are unique without regard to case (see the SQLite file).
    username_key  TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    is_staff      BIGINT  NOT NULL DEFAULT 0 CHECK (is_staff IN (0, 1)),
    is_superuser  BIGINT  NOT NULL DEFAULT 0 CHECK (is_superuser IN (0, 1)),
    is_active     BIGINT  NOT NULL DEFAULT 1 CHECK (is_active IN (0, 1)),
    created_ms    BIGINT  NOT NULL,
    last_seen_ms  BIGINT  NOT NULL DEFAULT 0
);

CREATE TABLE rooms (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('public', 'direct')),
    name        TEXT,
    name_key    TEXT    UNIQUE,
    topic       TEXT    NOT NULL DEFAULT '',
    direct_key  TEXT    UNIQUE,
    created_by  BIGINT  REFERENCES users (id) ON DELETE SET NULL,
    created_ms  BIGINT  NOT NULL,
    -- Incremented under the row lock of the inserting transaction: identity values can commit
    -- out of order under concurrent writers, this per-room sequence cannot.
    last_seq    BIGINT  NOT NULL DEFAULT 0,
    CHECK ((kind = 'public' AND name IS NOT NULL AND name_key IS NOT NULL AND direct_key IS NULL)
        OR (kind = 'direct' AND name IS NULL AND name_key IS NULL AND direct_key IS NOT NULL))
);

CREATE TABLE memberships (
    room_id       BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    joined_ms     BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE messages (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id     BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    author_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body        TEXT   NOT NULL,
    created_ms  BIGINT NOT NULL,
    edited_ms   BIGINT,
    client_key  TEXT,
    UNIQUE (room_id, seq),
    UNIQUE (author_id, client_key)
);
CREATE INDEX messages_author ON messages (author_id);
CREATE INDEX messages_created ON messages (created_ms);

-- Every process LISTENs on parley_messages; the payload is "room_id:seq". NOTIFY is delivered at
-- commit, so a listener that reads the database on wake-up always finds the row.
CREATE FUNCTION parley_notify_message() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('parley_messages', NEW.room_id::text || ':' || NEW.seq::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER messages_notify AFTER INSERT ON messages
    FOR EACH ROW EXECUTE FUNCTION parley_notify_message();

CREATE TABLE admin_log (
    id             BIGINT   GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action_time_ms BIGINT   NOT NULL,
    user_id        BIGINT   REFERENCES users (id) ON DELETE SET NULL,
    model          TEXT     NOT NULL,
    object_id      TEXT     NOT NULL,
    object_repr    TEXT     NOT NULL,
    action_flag    BIGINT   NOT NULL CHECK (action_flag IN (1, 2, 3)),
    change_message TEXT     NOT NULL DEFAULT ''
);
CREATE INDEX admin_log_object ON admin_log (model, object_id);
CREATE INDEX admin_log_user ON admin_log (user_id, action_time_ms);
