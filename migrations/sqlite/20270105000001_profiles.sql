-- What a person says about themselves, and how Parley looks to them. An empty display name is
-- none: the username shows alone, as before. The username stays who someone is (in URLs,
-- mentions, search's from:); the display name is only shown beside it.
-- The lengths are the domain's (`DisplayName`, `Bio`); the database keeps the theme to the three
-- the pages know, so that a bad value can never reach the <html> attribute.
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN bio TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN theme TEXT NOT NULL DEFAULT 'system'
    CHECK (theme IN ('system', 'light', 'dark'));
