-- Secrets every server process shares, made once by whichever starts first (e.g. the key that
-- signs device cookies, so that a browser known to one process is known to all of them).
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
