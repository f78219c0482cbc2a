-- Favourites: the conversations (a public room, or the private conversation with a person) a user
-- has starred, listed first in their sidebar in the order starred (the id keeps that order, even
-- for two stars in the same millisecond). The pair is unique: starring twice is one star.
CREATE TABLE favourites (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id    INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    created_ms BIGINT  NOT NULL,
    UNIQUE (user_id, room_id)
);
CREATE INDEX favourites_room ON favourites (room_id);
