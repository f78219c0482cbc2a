-- Voice calls between the two people of a private conversation. The audio flows between their
-- browsers; Parley relays the signalling (never stored) and keeps each call's record here, with
-- the message that shows it in the conversation.
CREATE TABLE calls (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id        INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    caller_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    callee_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video          INTEGER NOT NULL DEFAULT 0 CHECK (video IN (0, 1)),
    -- ringing → active → ended, or ringing → ended. Each step is a conditional UPDATE, so of
    -- two servers (or two tabs) racing to end a call exactly one writes its record.
    state          TEXT    NOT NULL CHECK (state IN ('ringing', 'active', 'ended')),
    outcome        TEXT    CHECK (outcome IN ('completed', 'missed', 'declined', 'busy')),
    created_ms     BIGINT  NOT NULL,
    answered_ms    BIGINT,
    ended_ms       BIGINT,
    -- When each side's page last said it is still in the call: a call whose pages are gone ends.
    caller_seen_ms BIGINT  NOT NULL,
    callee_seen_ms BIGINT  NOT NULL,
    message_id     INTEGER REFERENCES messages (id) ON DELETE SET NULL
);
CREATE INDEX calls_live ON calls (state) WHERE state <> 'ended';
CREATE INDEX calls_caller ON calls (caller_id);
CREATE INDEX calls_callee ON calls (callee_id);

-- What a message is: '' for what someone wrote, 'call' for a call's record (not editable).
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT '';
