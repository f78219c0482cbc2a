-- Who left which public room. Leaving removes the membership (the person is no longer among the
-- room's members; its messages stay) and keeps the room out of their sidebar, which otherwise
-- lists every public room, until they open or join it again (which deletes the row).
CREATE TABLE departures (
    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    left_ms BIGINT  NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX departures_room ON departures (room_id);
