//! Calls between the two people of a private conversation: each call's record. Its state moves
//! `ringing` → `active` → `ended` (or `ringing` → `ended`) by conditional updates, so whichever
//! server or tab acts first wins and the others find the call already moved on; the step that
//! ends a call writes its record message in the same transaction, so a call has exactly one.

use sqlx::{Any, AnyPool, Transaction};

use crate::db::Engine;
use crate::domain::MessageBody;
use crate::store::messages::{self, Message};

/// A call whose page on either side has not said it is still there for this long has ended
/// (the tab closed or lost its connection without hanging up). Pages say so every 5 s.
pub const GONE_MS: i64 = 15_000;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Call {
    pub id: i64,
    pub room_id: i64,
    pub caller_id: i64,
    pub callee_id: i64,
    pub video: i64,
    pub state: String,
    pub created_ms: i64,
    pub answered_ms: Option<i64>,
}

impl Call {
    pub fn has(&self, user: i64) -> bool {
        self.caller_id == user || self.callee_id == user
    }

    /// The other side of the call from `user`.
    pub fn other(&self, user: i64) -> i64 {
        if self.caller_id == user {
            self.callee_id
        } else {
            self.caller_id
        }
    }
}

pub const RINGING: &str = "ringing";
pub const ACTIVE: &str = "active";

/// How a call ended, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered, then hung up (or lost) by either side.
    Completed,
    /// Nobody answered: the ring timed out, or the caller gave up.
    Missed,
    Declined,
    /// The person called was in another call.
    Busy,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Missed => "missed",
            Outcome::Declined => "declined",
            Outcome::Busy => "busy",
        }
    }

    /// The record's text: the same for both people (a message is rendered once for everyone).
    pub fn record(self, caller: &str, callee: &str, talked_ms: i64) -> String {
        match self {
            Outcome::Completed => format!("Call with {callee} · {}", duration(talked_ms)),
            Outcome::Missed => format!("Missed call from {caller}"),
            Outcome::Declined => format!("Call declined by {callee}"),
            Outcome::Busy => format!("Missed call from {caller} ({callee} was in another call)"),
        }
    }
}

/// "less than a minute", "3 min", "1 h 5 min".
fn duration(ms: i64) -> String {
    let minutes = ms / 60_000;
    match minutes {
        0 => "less than a minute".to_owned(),
        1..=59 => format!("{minutes} min"),
        _ => format!("{} h {} min", minutes / 60, minutes % 60),
    }
}

const SELECT: &str =
    "SELECT id, room_id, caller_id, callee_id, video, state, created_ms, answered_ms FROM calls";

pub async fn find(pool: &AnyPool, id: i64) -> sqlx::Result<Option<Call>> {
    sqlx::query_as(&format!("{SELECT} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
}

/// A call `user` is in now (ringing for less than `ring_ms`, or talking), if any: someone in
/// one is busy.
const LIVE: &str = "state <> 'ended' AND (caller_id = $1 OR callee_id = $1)
           AND ((state = 'ringing' AND created_ms > $2)
             OR (state = 'active' AND caller_seen_ms > $3 AND callee_seen_ms > $3))";

/// How starting a call went.
#[derive(Debug)]
pub enum Started {
    Ringing(Call),
    /// The caller is in a call already.
    CallerBusy,
    /// The person called is.
    CalleeBusy,
}

/// Starts ringing `callee` from `caller` in their conversation `room`, unless either of them is
/// in a call. The look and the ring are one step: on PostgreSQL under a lock on each of the two
/// people (taken in id order), on SQLite under its single writer (the caller holds the process's
/// write turn), so two people calling each other, or two calling one, cannot both ring.
pub async fn start(
    pool: &AnyPool,
    engine: Engine,
    room: i64,
    (caller, callee): (i64, i64),
    video: bool,
    ring_ms: i64,
) -> sqlx::Result<Started> {
    let now = crate::now_ms();
    let mut tx = pool.begin().await?;
    if engine == Engine::Postgres {
        for user in [caller.min(callee), caller.max(callee)] {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(user)
                .execute(&mut *tx)
                .await?;
        }
    }
    for (user, busy) in [(caller, Started::CallerBusy), (callee, Started::CalleeBusy)] {
        let live: Option<i64> =
            sqlx::query_scalar(&format!("SELECT id FROM calls WHERE {LIVE} LIMIT 1"))
                .bind(user)
                .bind(now - ring_ms)
                .bind(now - GONE_MS)
                .fetch_optional(&mut *tx)
                .await?;
        if live.is_some() {
            return Ok(busy);
        }
    }
    let call = insert(&mut tx, room, (caller, callee), video, "ringing", now).await?;
    tx.commit().await?;
    Ok(Started::Ringing(call))
}

async fn insert(
    tx: &mut Transaction<'static, Any>,
    room: i64,
    (caller, callee): (i64, i64),
    video: bool,
    state: &str,
    now: i64,
) -> sqlx::Result<Call> {
    sqlx::query_as(
        "INSERT INTO calls (room_id, caller_id, callee_id, video, state, created_ms, caller_seen_ms, callee_seen_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $6, $6)
         RETURNING id, room_id, caller_id, callee_id, video, state, created_ms, answered_ms",
    )
    .bind(room)
    .bind(caller)
    .bind(callee)
    .bind(i64::from(video))
    .bind(state)
    .bind(now)
    .fetch_one(&mut **tx)
    .await
}

/// The callee answers a call that has rung for less than `ring_ms`: it is now active. `None`
/// when it no longer rings.
pub async fn accept(
    pool: &AnyPool,
    id: i64,
    callee: i64,
    ring_ms: i64,
) -> sqlx::Result<Option<Call>> {
    let now = crate::now_ms();
    sqlx::query_as(
        "UPDATE calls SET state = 'active', answered_ms = $3, caller_seen_ms = $3, callee_seen_ms = $3
         WHERE id = $1 AND callee_id = $2 AND state = 'ringing' AND created_ms > $4
         RETURNING id, room_id, caller_id, callee_id, video, state, created_ms, answered_ms",
    )
    .bind(id)
    .bind(callee)
    .bind(now)
    .bind(now - ring_ms)
    .fetch_optional(pool)
    .await
}

/// `user`'s page is still in the call. False when the call is no longer going on.
pub async fn still_here(pool: &AnyPool, id: i64, user: i64) -> sqlx::Result<bool> {
    let done = sqlx::query(
        "UPDATE calls SET
             caller_seen_ms = CASE WHEN caller_id = $2 THEN $3 ELSE caller_seen_ms END,
             callee_seen_ms = CASE WHEN callee_id = $2 THEN $3 ELSE callee_seen_ms END
         WHERE id = $1 AND state <> 'ended'",
    )
    .bind(id)
    .bind(user)
    .bind(crate::now_ms())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// A call that has ended, with its record.
#[derive(Debug)]
pub struct Ended {
    pub call: Call,
    pub outcome: Outcome,
    pub record: Message,
}

/// Ends call `id` if it is still in state `from`, writing its record in the caller's name.
/// `None` when it had already moved on (someone else ended or answered it first).
pub async fn end(
    pool: &AnyPool,
    id: i64,
    from: &str,
    outcome: Outcome,
) -> sqlx::Result<Option<Ended>> {
    let now = crate::now_ms();
    let mut tx = pool.begin().await?;
    let call: Option<Call> = sqlx::query_as(
        "UPDATE calls SET state = 'ended', outcome = $3, ended_ms = $4
         WHERE id = $1 AND state = $2
         RETURNING id, room_id, caller_id, callee_id, video, state, created_ms, answered_ms",
    )
    .bind(id)
    .bind(from)
    .bind(outcome.as_str())
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(call) = call else {
        return Ok(None);
    };
    let name = |user: i64| {
        sqlx::query_as::<_, (String, String, String)>(
            "SELECT username, display_name, avatar FROM users WHERE id = $1",
        )
        .bind(user)
    };
    let (caller, caller_display, caller_avatar) = name(call.caller_id).fetch_one(&mut *tx).await?;
    let (callee, _, _) = name(call.callee_id).fetch_one(&mut *tx).await?;
    let talked = now - call.answered_ms.unwrap_or(now);
    let text = outcome.record(&caller, &callee, talked);
    let body = MessageBody::parse(&text).map_err(|e| sqlx::Error::Protocol(e.0.to_owned()))?;
    let record = messages::insert_record(
        &mut tx,
        call.room_id,
        messages::Author {
            id: call.caller_id,
            username: &caller,
            display_name: &caller_display,
            avatar: &caller_avatar,
        },
        &body,
        messages::CALL_RECORD,
    )
    .await?;
    // A call the person called took part in (answered, or declined) is no news to them; a
    // missed one is.
    if matches!(outcome, Outcome::Completed | Outcome::Declined) {
        sqlx::query(
            "UPDATE memberships SET last_read_seq = $3
             WHERE room_id = $1 AND user_id = $2 AND last_read_seq >= $3 - 1",
        )
        .bind(call.room_id)
        .bind(call.callee_id)
        .bind(record.seq)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("UPDATE calls SET message_id = $2 WHERE id = $1")
        .bind(id)
        .bind(record.id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(Ended {
        call,
        outcome,
        record,
    }))
}

/// Records a call that could not ring because the person called was busy.
pub async fn busy(pool: &AnyPool, room: i64, caller: i64, callee: i64) -> sqlx::Result<Ended> {
    let mut tx = pool.begin().await?;
    let call = insert(
        &mut tx,
        room,
        (caller, callee),
        false,
        "ringing",
        crate::now_ms(),
    )
    .await?;
    tx.commit().await?;
    end(pool, call.id, RINGING, Outcome::Busy)
        .await?
        .ok_or(sqlx::Error::RowNotFound)
}

/// Calls that should have ended by now: rung for `ring_ms`, or left by a page that went away.
/// Each with how it ends.
pub async fn overdue(
    pool: &AnyPool,
    now_ms: i64,
    ring_ms: i64,
) -> sqlx::Result<Vec<(i64, &'static str, Outcome)>> {
    let rows: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, state FROM calls
         WHERE state <> 'ended'
           AND ((state = 'ringing' AND created_ms <= $1)
             OR (state = 'active' AND (caller_seen_ms <= $2 OR callee_seen_ms <= $2)))",
    )
    .bind(now_ms - ring_ms)
    .bind(now_ms - GONE_MS)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, state)| match state.as_str() {
            RINGING => (id, RINGING, Outcome::Missed),
            _ => (id, ACTIVE, Outcome::Completed),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_the_same_for_both_people() {
        assert_eq!(
            Outcome::Completed.record("alice", "bob", 3 * 60_000 + 5_000),
            "Call with bob · 3 min"
        );
        assert_eq!(
            Outcome::Completed.record("alice", "bob", 20_000),
            "Call with bob · less than a minute"
        );
        assert_eq!(
            Outcome::Completed.record("alice", "bob", 65 * 60_000),
            "Call with bob · 1 h 5 min"
        );
        assert_eq!(
            Outcome::Missed.record("alice", "bob", 0),
            "Missed call from alice"
        );
        assert_eq!(
            Outcome::Declined.record("alice", "bob", 0),
            "Call declined by bob"
        );
    }
}
