-- Conversations that change (see the SQLite twin for the model): edits, deletions and reactions
-- share one commit-ordered sequence per room with new messages, taken under the room's row lock.
ALTER TABLE messages ADD COLUMN changed_seq BIGINT NOT NULL DEFAULT 0;
UPDATE messages SET changed_seq = seq;
CREATE INDEX messages_room_changed ON messages (room_id, changed_seq);
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';

CREATE TABLE message_tombstones (
    room_id     BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    deleted_seq BIGINT NOT NULL,
    PRIMARY KEY (room_id, seq)
);
CREATE INDEX message_tombstones_room_deleted ON message_tombstones (room_id, deleted_seq);

CREATE TABLE reactions (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji      TEXT   NOT NULL,
    created_ms BIGINT NOT NULL,
    CONSTRAINT reactions_once PRIMARY KEY (message_id, user_id, emoji)
);

CREATE TABLE mentions (
    message_id BIGINT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    CONSTRAINT mentions_once PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_user_room ON mentions (user_id, room_id, seq);

-- Every change moves its room's last_seq under the row lock, so one trigger there announces them
-- all ("room:seq", delivered at commit); the per-message trigger it replaces announced sends only.
DROP TRIGGER messages_notify ON messages;
DROP FUNCTION parley_notify_message();
CREATE FUNCTION parley_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('parley_messages', NEW.id::text || ':' || NEW.last_seq::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER rooms_notify_change AFTER UPDATE OF last_seq ON rooms
    FOR EACH ROW WHEN (NEW.last_seq > OLD.last_seq) EXECUTE FUNCTION parley_notify_change();
