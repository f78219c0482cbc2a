-- Files attached to messages. The bytes live in the file store (a directory or an S3 bucket)
-- under `storage_key`, a random name that has nothing of the uploader's file name in it; the
-- name people see is `name`, kept as sent (minus control characters) for display and download.
-- `content_type` is what the server decided from the bytes; `preview_key` names the thumbnail of
-- a picture (NULL for anything else, or a picture that could not be decoded), `width`/`height`
-- are the thumbnail's, for the page's layout.
--
-- An attachment belongs to one message and goes with it (ON DELETE CASCADE); the code deletes the
-- bytes after the rows, and a periodic sweep deletes bytes that no row names (a crash between the
-- two writes). `room_id` and `uploader_id` are the message's, kept here for the access check of a
-- download and for the uploader's hourly allowance without a join.
CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id   INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    room_id      INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    uploader_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    name         TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size         BIGINT  NOT NULL,
    storage_key  TEXT    NOT NULL UNIQUE,
    preview_key  TEXT    UNIQUE,
    width        INTEGER,
    height       INTEGER,
    created_ms   BIGINT  NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id, position);
CREATE INDEX attachments_room ON attachments (room_id);
CREATE INDEX attachments_uploader ON attachments (uploader_id, created_ms);
