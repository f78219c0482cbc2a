-- Message search (see the SQLite twin for the rules). A generated tsvector column, so it is
-- computed in the statement that writes the text (an edit is searchable at once, a deleted row
-- takes its entry with it) and for the rows that exist already when this runs. The `english`
-- configuration stems ("searching" finds "search") and drops stop words; the queries in
-- src/store/search.rs name the same configuration, and must change with it.
-- The text is indexed HTML-escaped: PostgreSQL's parser takes `<b>` for a tag and skips it, but
-- a message is plain text, so "<script>" must be found by "script" as on SQLite. The snippets
-- (ts_headline) are made from the same escaped text, which keeps every character of it.
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    to_tsvector('english'::regconfig,
                replace(replace(replace(body, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'))
) STORED;
CREATE INDEX messages_search ON messages USING GIN (search);
