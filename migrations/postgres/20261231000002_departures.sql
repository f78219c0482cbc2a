-- Who left which public room (see the SQLite twin).
CREATE TABLE departures (
    room_id BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    left_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, room_id)
);
CREATE INDEX departures_room ON departures (room_id);
