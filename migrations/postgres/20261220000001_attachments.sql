-- Files attached to messages (see the SQLite twin for what each column means).
CREATE TABLE attachments (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    room_id      BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    uploader_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    name         TEXT   NOT NULL,
    content_type TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    storage_key  TEXT   NOT NULL UNIQUE,
    preview_key  TEXT   UNIQUE,
    width        BIGINT,
    height       BIGINT,
    created_ms   BIGINT NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id, position);
CREATE INDEX attachments_room ON attachments (room_id);
CREATE INDEX attachments_uploader ON attachments (uploader_id, created_ms);
