-- The test app's own tables, the same text on SQLite and PostgreSQL (BIGINT ids are filled in
-- by the `id_column` placeholder). The admin's own admin_log comes from parley_admin::migrate.
-- Flags are BIGINT 0/1, as the crate's Field::flag expects.
CREATE TABLE users (
    id            ID_COLUMN,
    username      TEXT   NOT NULL,
    username_key  TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    is_staff      BIGINT NOT NULL DEFAULT 0,
    is_superuser  BIGINT NOT NULL DEFAULT 0,
    is_active     BIGINT NOT NULL DEFAULT 1,
    created_ms    BIGINT NOT NULL,
    last_seen_ms  BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT users_username_unique UNIQUE (username_key)
);
CREATE TABLE authors (
    id         ID_COLUMN,
    kind       TEXT   NOT NULL CHECK (kind IN ('public', 'private')),
    name       TEXT,
    name_key   TEXT,
    bio        TEXT   NOT NULL DEFAULT '',
    added_by   BIGINT REFERENCES users (id),
    created_ms BIGINT NOT NULL,
    book_count BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT authors_name_unique UNIQUE (name_key)
);
CREATE TABLE books (
    id         ID_COLUMN,
    author_id  BIGINT NOT NULL REFERENCES authors (id),
    added_by   BIGINT NOT NULL REFERENCES users (id),
    title      TEXT   NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE fans (
    author_id BIGINT NOT NULL REFERENCES authors (id),
    user_id   BIGINT NOT NULL REFERENCES users (id),
    PRIMARY KEY (author_id, user_id)
);
