-- Conversations that change: edits, deletions and reactions share one commit-ordered sequence per
-- room with new messages. `rooms.last_seq` now counts every change, not only messages; a message's
-- `seq` is the change that created it (still its id in the HTML and the long-poll cursor), and
-- `changed_seq` the last change that touched it (an edit, a reaction). A poll that has fallen
-- behind the in-memory window rebuilds what it missed from these columns and the tombstones.
ALTER TABLE messages ADD COLUMN changed_seq BIGINT NOT NULL DEFAULT 0;
UPDATE messages SET changed_seq = seq;
CREATE INDEX messages_room_changed ON messages (room_id, changed_seq);

-- The lowercase usernames a message mentions, space-separated: rendered as data-mentions so each
-- reader's own style can highlight them without rendering the message per reader.
ALTER TABLE messages ADD COLUMN mentions TEXT NOT NULL DEFAULT '';

-- A deleted message leaves no text behind, only the fact that change `deleted_seq` removed `seq`,
-- so that a poll from before the deletion removes it from the page too.
CREATE TABLE message_tombstones (
    room_id     INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq         BIGINT  NOT NULL,
    deleted_seq BIGINT  NOT NULL,
    PRIMARY KEY (room_id, seq)
);
CREATE INDEX message_tombstones_room_deleted ON message_tombstones (room_id, deleted_seq);

CREATE TABLE reactions (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    emoji      TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL,
    CONSTRAINT reactions_once PRIMARY KEY (message_id, user_id, emoji)
);

-- Who a message names: for the mention counts in the sidebar and the /mentions page.
CREATE TABLE mentions (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq        BIGINT  NOT NULL,
    CONSTRAINT mentions_once PRIMARY KEY (message_id, user_id)
);
CREATE INDEX mentions_user_room ON mentions (user_id, room_id, seq);
