-- Voice calls (see the SQLite twin for the model).
CREATE TABLE calls (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    room_id        BIGINT NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    caller_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    callee_id      BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video          BIGINT NOT NULL DEFAULT 0 CHECK (video IN (0, 1)),
    state          TEXT   NOT NULL CHECK (state IN ('ringing', 'active', 'ended')),
    outcome        TEXT   CHECK (outcome IN ('completed', 'missed', 'declined', 'busy')),
    created_ms     BIGINT NOT NULL,
    answered_ms    BIGINT,
    ended_ms       BIGINT,
    caller_seen_ms BIGINT NOT NULL,
    callee_seen_ms BIGINT NOT NULL,
    message_id     BIGINT REFERENCES messages (id) ON DELETE SET NULL
);
CREATE INDEX calls_live ON calls (state) WHERE state <> 'ended';
CREATE INDEX calls_caller ON calls (caller_id);
CREATE INDEX calls_callee ON calls (callee_id);

ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT '';
