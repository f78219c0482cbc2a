-- A person's picture: the file store key of its 96×96 PNG (`a/…`, made by Parley, never typed),
-- empty for none, when the initials avatar shows as before. The bytes live under `a/`, which the
-- attachments' sweep never lists: the picture goes when its owner (or staff) removes or replaces it.
ALTER TABLE users ADD COLUMN avatar TEXT NOT NULL DEFAULT '';
