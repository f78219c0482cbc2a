-- Message search. An FTS5 index over messages.body, external-content (the text lives once, in
-- messages; the index holds only tokens).
--
-- New messages are indexed off the send path, in batches (`store::search::index_new`, a few times a
-- second and before every search, so a search never misses one): FTS5 writes a segment per
-- transaction, and indexing each send in its own statement cost sends about 30%. Rows up to
-- `search_state.indexed_upto` are in the index (ids grow in commit order: SQLite has one writer).
-- An edit or a deletion of an indexed row changes the index in the statement that makes it, so
-- it is reflected in search at once; a row not indexed yet is indexed as it then is, or never
-- (a deletion removes the row, and a tombstone keeps no text).
-- unicode61 with remove_diacritics 2: "cafe" finds "café", case never matters. No prefix index
-- (prefix = '2 3'): it made sends a fifth slower again, while the word being typed is matched as
-- a prefix only from 3 letters, whose few words FTS5 merges in milliseconds.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TABLE search_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL
);

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN OLD.id <= (SELECT indexed_upto FROM search_state)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;

-- Only the text matters: a reaction also updates the row (changed_seq) and must not re-index it.
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
    WHEN OLD.id <= (SELECT indexed_upto FROM search_state)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
    INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;

-- The messages that exist already.
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
INSERT INTO search_state (id, indexed_upto) SELECT 1, COALESCE(MAX(id), 0) FROM messages;
