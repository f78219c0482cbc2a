-- Favourites (see the SQLite twin).
CREATE TABLE favourites (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    UNIQUE (user_id, room_id)
);
CREATE INDEX favourites_room ON favourites (room_id);
