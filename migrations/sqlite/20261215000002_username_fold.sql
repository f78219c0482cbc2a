-- Look-alike names: `aIice` (capital i), `a1ice` and `alice.` pass for `alice`. Each name has a
-- fold (domain::Username::fold: lower case, `.` `_` `-` dropped, i/1/| as l, 0 as o, 5 as s,
-- rn as m, vv as w) and only one account may have each fold. The expression below is that
-- function in SQL, step for step.
ALTER TABLE users ADD COLUMN username_fold TEXT;

-- Accounts that already collide keep working: the oldest of each fold gets it, the others keep
-- none (NULL never collides) and so reserve nothing.
UPDATE users SET username_fold =
    REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(
        LOWER(username), '.', ''), '_', ''), '-', ''), 'i', 'l'), '1', 'l'), '|', 'l'),
        '0', 'o'), '5', 's'), 'rn', 'm'), 'vv', 'w')
WHERE id IN (
    SELECT MIN(id) FROM users GROUP BY
    REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(REPLACE(
        LOWER(username), '.', ''), '_', ''), '-', ''), 'i', 'l'), '1', 'l'), '|', 'l'),
        '0', 'o'), '5', 's'), 'rn', 'm'), 'vv', 'w')
);

CREATE UNIQUE INDEX users_username_fold ON users (username_fold);
