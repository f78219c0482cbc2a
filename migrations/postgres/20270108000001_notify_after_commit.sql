-- A plain message's sender announces it itself, after its commit (see `store::messages::insert`):
-- a NOTIFY in the sending transaction holds PostgreSQL's one notification lock from before its
-- commit until the commit is on disk, so every send waited for every other send's flush in turn
-- (BENCHMARKS.md, "The fifth day"). The statement
-- that stores such a message says so with `parley.notify_later`, local to its transaction; every
-- other change is announced here, at its commit, as before.
CREATE OR REPLACE FUNCTION parley_notify_change() RETURNS trigger AS $$
BEGIN
    IF current_setting('parley.notify_later', true) = 'on' THEN
        RETURN NULL;
    END IF;
    PERFORM pg_notify('parley_messages', NEW.id::text || ':' || NEW.last_seq::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
