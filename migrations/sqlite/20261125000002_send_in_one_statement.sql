-- On SQLite a send is one INSERT: the message takes seq = rooms.last_seq + 1 in the INSERT itself,
-- and this trigger moves the room's last_seq and the sender's membership (joined, and their own
-- message counted as read) inside the same statement. SQLite runs one writer at a time, so the
-- sequence cannot be taken twice; and each statement the app sends costs a round trip to sqlx's
-- SQLite worker thread, which is what bounded send throughput (5 per send before, 1 now).
-- PostgreSQL keeps the explicit transaction with a row lock (see src/store/messages.rs).
CREATE TRIGGER messages_after_insert AFTER INSERT ON messages
BEGIN
    UPDATE rooms SET last_seq = NEW.seq WHERE id = NEW.room_id AND last_seq < NEW.seq;
    INSERT OR IGNORE INTO memberships (room_id, user_id, last_read_seq, joined_ms)
        VALUES (NEW.room_id, NEW.author_id, NEW.seq, NEW.created_ms);
    UPDATE memberships SET last_read_seq = NEW.seq
        WHERE room_id = NEW.room_id AND user_id = NEW.author_id AND last_read_seq < NEW.seq;
END;
