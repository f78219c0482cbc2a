-- Message search. An FTS5 index over messages.body, external-content (the text lives once, in
-- messages; the index holds only tokens), kept in step by the triggers below in the statement that
-- changes the message, so an edit or a deletion is reflected in search at once. A deletion
-- removes the row (a tombstone keeps no text), so nothing deleted can ever match.
-- unicode61 with remove_diacritics 2: "cafe" finds "café", case never matters. No prefix index
-- (prefix = '2 3'): it made sends a fifth slower again, while the word being typed is matched as
-- a prefix only from 3 letters, whose few words FTS5 merges in milliseconds.
CREATE VIRTUAL TABLE messages_fts USING fts5(
    body,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;

-- Only the text matters: a reaction also updates the row (changed_seq) and must not re-index it.
CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
    INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;

-- The messages that exist already.
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
