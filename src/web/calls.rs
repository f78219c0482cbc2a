//! Voice calls between the two people of a private conversation. The audio goes from browser to
//! browser (WebRTC); Parley carries the signalling and keeps the call's record.
//!
//! Every step is a POST below the conversation, so the [`Conv`] extractor has checked the viewer
//! may see it; a call is then found only in that conversation and only by its two people (404
//! for anyone else, as if it did not exist). What one side sends reaches the other as a signal on
//! their personal feed (`Hub::signal`): JSON in the answer of every page's held poll, never in the
//! conversation's messages or the database. Answers are JSON for `calls.js`.

use std::sync::Arc;
use std::time::Duration;

use poem::http::StatusCode;
use poem::{Body, Request, Response, handler};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::conversation::{Conv, Target};
use super::error::AppError;
use super::{AppState, Ctx};
use crate::store::calls::{self, ACTIVE, Call, Ended, Outcome, RINGING, Started};
use crate::store::messages::Change;

/// The largest session description accepted (a browser's offer with audio and video is 3–8 KB).
const MAX_SDP: usize = 16 * 1024;
/// The largest ICE candidate line accepted.
const MAX_CANDIDATE: usize = 2 * 1024;

/// A JSON answer for calls.js: `{"error": "…"}` with a status, or what succeeded.
fn reply(status: StatusCode, body: serde_json::Value) -> Response {
    Response::builder()
        .status(status)
        .content_type("application/json")
        .header("cache-control", "no-store")
        .body(body.to_string())
}

fn refuse(status: StatusCode, why: &str) -> Response {
    reply(status, json!({ "error": why }))
}

fn done() -> Response {
    Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("cache-control", "no-store")
        .finish()
}

/// A conversation's call routes: [`Conv`], except that someone logged out is told nothing
/// exists here (404), as anyone else who is not one of the call's two people is.
pub struct Party(Conv);

impl<'a> poem::FromRequest<'a> for Party {
    async fn from_request(req: &'a Request, body: &mut poem::RequestBody) -> poem::Result<Self> {
        match Conv::from_request(req, body).await {
            Ok(conv) => Ok(Party(conv)),
            Err(err)
                if err.status() == StatusCode::SEE_OTHER
                    || err.status() == StatusCode::UNAUTHORIZED =>
            {
                Err(AppError::NotFound("There is no such call.").into())
            }
            Err(err) => Err(err),
        }
    }
}

/// What starting a call says: `{"video": true}` (JSON, as calls.js sends it) or `video=1`.
#[derive(Deserialize, Default)]
struct StartForm {
    #[serde(default)]
    video: serde_json::Value,
}

impl StartForm {
    fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body)
            .or_else(|_| {
                serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).map(|pairs| {
                    let video = pairs
                        .iter()
                        .any(|(k, v)| k == "video" && matches!(v.as_str(), "1" | "true" | "on"));
                    StartForm {
                        video: video.into(),
                    }
                })
            })
            .unwrap_or_default()
    }
}

/// `POST /dm/{username}/calls`: ring the other person. 201 `{"call": id}`; 409 when either of
/// them is in a call already (the other person's busy call is recorded in the conversation).
#[handler]
#[tracing::instrument(level = "debug", skip_all)]
pub async fn start(Party(Conv { ctx, target }): Party, body: Body) -> Result<Response, AppError> {
    let Some(peer) = target.peer else {
        return Err(AppError::NotFound(
            "Calls are between the two people of a private conversation.",
        ));
    };
    let body = body
        .into_bytes()
        .await
        .map_err(|e| AppError::Internal(Box::new(e)))?;
    let video = StartForm::parse(&body).video == serde_json::Value::Bool(true);
    let (app, room, me) = (ctx.app.clone(), target.room, ctx.user.id);
    let ring_ms = app.settings.ring_ms();
    let started = detached(async move {
        let turn = app.db.write_turn().await;
        let started = calls::start(
            &app.db.pool,
            app.db.engine,
            room,
            (me, peer),
            video,
            ring_ms,
        )
        .await?;
        if let Started::CalleeBusy = started {
            let ended = calls::busy(&app.db.pool, room, me, peer).await?;
            drop(turn);
            finished(&app, &ended);
        }
        Ok(started)
    })
    .await?;
    let call = match started {
        Started::Ringing(call) => call,
        Started::CallerBusy => {
            return Ok(refuse(StatusCode::CONFLICT, "You are in a call already."));
        }
        Started::CalleeBusy => {
            let why = format!("{} is in another call.", target.title);
            return Ok(reply(
                StatusCode::CONFLICT,
                json!({ "error": why, "busy": true }),
            ));
        }
    };
    let app = &ctx.app;
    app.hub.signal(
        peer,
        json!({
            "type": "ring",
            "call": call.id,
            "from": ctx.user.username,
            "conv": format!("/dm/{}", ctx.user.username),
            "video": video,
            "ring_ms": ring_ms,
        })
        .to_string(),
    );
    ring_out(app.clone(), call.id);
    Ok(reply(
        StatusCode::CREATED,
        json!({ "call": call.id, "video": video, "ring_ms": ring_ms }),
    ))
}

/// Runs a step that writes in a task of its own: once it has begun, a client that hangs up
/// cannot leave a change committed and its news (signals, the record) untold.
async fn detached<T: Send + 'static>(
    step: impl std::future::Future<Output = Result<T, sqlx::Error>> + Send + 'static,
) -> Result<T, AppError> {
    tokio::spawn(step)
        .await
        .map_err(|e| AppError::Internal(Box::new(e)))?
        .map_err(AppError::from)
}

/// A call nobody answers ends as missed when its ring runs out (the sweeper does the same for
/// calls whose server stopped meanwhile).
fn ring_out(app: AppState, call: i64) {
    let app = Arc::downgrade(&app);
    tokio::spawn(async move {
        let Some(ring_ms) = app.upgrade().map(|app| app.settings.ring_ms()) else {
            return;
        };
        tokio::time::sleep(Duration::from_millis(ring_ms as u64)).await;
        if let Some(app) = app.upgrade()
            && let Err(err) = end(&app, call, RINGING, Outcome::Missed).await
        {
            tracing::warn!(%err, call, "could not end a call that rang out");
        }
    });
}

/// The call a URL names (`…/calls/{id}/…`), if it belongs to this conversation and the viewer
/// is one of its two people. Anything else is not found: a call of other people does not exist.
async fn this_call(req: &Request, ctx: &Ctx, target: &Target) -> Result<Call, AppError> {
    const NONE: AppError = AppError::NotFound("There is no such call.");
    let id: i64 = req
        .raw_path_param("id")
        .and_then(|id| id.parse().ok())
        .ok_or(NONE)?;
    let call = calls::find(&ctx.app.db.pool, id).await?.ok_or(NONE)?;
    if call.room_id != target.room || !call.has(ctx.user.id) {
        return Err(NONE);
    }
    Ok(call)
}

/// Ends a call that is in state `from`, and tells both people. `None` when it had moved on.
async fn end(
    app: &AppState,
    call: i64,
    from: &'static str,
    outcome: Outcome,
) -> Result<Option<Ended>, AppError> {
    let app = app.clone();
    detached(async move {
        let turn = app.db.write_turn().await;
        let ended = calls::end(&app.db.pool, call, from, outcome).await?;
        drop(turn);
        if let Some(ended) = &ended {
            finished(&app, ended);
        }
        Ok(ended)
    })
    .await
}

/// A call's record goes to the conversation like any message, and both people's pages hear
/// that the call is over.
fn finished(app: &AppState, ended: &Ended) {
    app.hub.published(&Change::New(ended.record.clone()));
    let outcome = match ended.outcome {
        Outcome::Completed => "completed",
        Outcome::Missed => "missed",
        Outcome::Declined => "declined",
        Outcome::Busy => "busy",
    };
    let note = json!({
        "type": "ended",
        "call": ended.call.id,
        "outcome": outcome,
        "record": ended.record.body,
    })
    .to_string();
    app.hub.signal(ended.call.caller_id, note.clone());
    app.hub.signal(ended.call.callee_id, note);
}

/// The call a URL names, when the viewer is the person it calls; else the 409 saying `why`.
async fn called(
    req: &Request,
    ctx: &Ctx,
    target: &Target,
    why: &str,
) -> Result<Result<Call, Response>, AppError> {
    let call = this_call(req, ctx, target).await?;
    Ok(match call.callee_id == ctx.user.id {
        true => Ok(call),
        false => Err(refuse(StatusCode::CONFLICT, why)),
    })
}

/// `POST {conv}/calls/{id}/accept`: the person called answers (on this page; their other pages
/// stop ringing).
#[handler]
pub async fn accept(
    req: &Request,
    Party(Conv { ctx, target }): Party,
) -> Result<Response, AppError> {
    let call = match called(req, &ctx, &target, "Only the person called can answer.").await? {
        Ok(call) => call,
        Err(refused) => return Ok(refused),
    };
    let (app, me) = (ctx.app.clone(), ctx.user.id);
    let accepted = detached(async move {
        let turn = app.db.write_turn().await;
        let accepted = calls::accept(&app.db.pool, call.id, me, app.settings.ring_ms()).await?;
        drop(turn);
        if accepted.is_some() {
            let note = json!({ "type": "accepted", "call": call.id }).to_string();
            app.hub.signal(call.caller_id, note.clone());
            app.hub.signal(call.callee_id, note);
        }
        Ok(accepted.is_some())
    })
    .await?;
    if !accepted {
        return Ok(refuse(
            StatusCode::CONFLICT,
            "This call is no longer ringing.",
        ));
    }
    Ok(done())
}

/// `POST {conv}/calls/{id}/decline`: the person called says no.
#[handler]
pub async fn decline(
    req: &Request,
    Party(Conv { ctx, target }): Party,
) -> Result<Response, AppError> {
    let call = match called(req, &ctx, &target, "Only the person called can decline.").await? {
        Ok(call) => call,
        Err(refused) => return Ok(refused),
    };
    match end(&ctx.app, call.id, RINGING, Outcome::Declined).await? {
        Some(_) => Ok(done()),
        None => Ok(refuse(
            StatusCode::CONFLICT,
            "This call is no longer ringing.",
        )),
    }
}

/// `POST {conv}/calls/{id}/hangup`: either side ends the call. Before it is answered, the caller
/// giving up makes it a missed call and the callee hanging up declines it.
#[handler]
pub async fn hang_up(
    req: &Request,
    Party(Conv { ctx, target }): Party,
) -> Result<Response, AppError> {
    let call = this_call(req, &ctx, &target).await?;
    let (from, outcome) = match call.state.as_str() {
        RINGING if call.caller_id == ctx.user.id => (RINGING, Outcome::Missed),
        RINGING => (RINGING, Outcome::Declined),
        ACTIVE => (ACTIVE, Outcome::Completed),
        _ => return Ok(refuse(StatusCode::CONFLICT, "This call has ended.")),
    };
    match end(&ctx.app, call.id, from, outcome).await? {
        Some(_) => Ok(done()),
        // Answered or ended meanwhile: try once more from where it is now.
        None if from == RINGING => {
            match end(&ctx.app, call.id, ACTIVE, Outcome::Completed).await? {
                Some(_) => Ok(done()),
                None => Ok(refuse(StatusCode::CONFLICT, "This call has ended.")),
            }
        }
        None => Ok(refuse(StatusCode::CONFLICT, "This call has ended.")),
    }
}

/// `POST {conv}/calls/{id}/alive`: the page is still in the call (every few seconds). A call
/// whose page stops saying so ends (see `spawn_call_sweeper`).
#[handler]
pub async fn alive(
    req: &Request,
    Party(Conv { ctx, target }): Party,
) -> Result<Response, AppError> {
    let call = this_call(req, &ctx, &target).await?;
    let app = &ctx.app;
    let turn = app.db.write_turn().await;
    let going_on = calls::still_here(&app.db.pool, call.id, ctx.user.id).await?;
    drop(turn);
    match going_on {
        true => Ok(done()),
        false => Ok(refuse(StatusCode::CONFLICT, "This call has ended.")),
    }
}

/// What one side's browser sends the other to connect (WebRTC's offer/answer and ICE).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum SignalIn {
    Offer { sdp: String },
    Answer { sdp: String },
    Ice { candidate: Candidate },
}

/// An ICE candidate as `RTCIceCandidate.toJSON()` gives it.
#[derive(Deserialize, Serialize)]
struct Candidate {
    candidate: String,
    #[serde(rename = "sdpMid", default)]
    sdp_mid: Option<String>,
    #[serde(rename = "sdpMLineIndex", default)]
    sdp_m_line_index: Option<u16>,
    #[serde(rename = "usernameFragment", default)]
    username_fragment: Option<String>,
}

/// `POST {conv}/calls/{id}/signal` (JSON): an offer (from the caller), an answer (from the
/// callee) or an ICE candidate (from either), passed to the other side of an answered call.
/// 413 beyond the size caps, 422 when it is not one of those, 409 when the call is not going on.
#[handler]
pub async fn signal(
    req: &Request,
    Party(Conv { ctx, target }): Party,
    body: Body,
) -> Result<Response, AppError> {
    let call = this_call(req, &ctx, &target).await?;
    let bytes = body
        .into_bytes()
        .await
        .map_err(|e| AppError::Internal(Box::new(e)))?;
    let Ok(signal) = serde_json::from_slice::<SignalIn>(&bytes) else {
        return Ok(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "A signal is JSON: an offer, an answer or an ICE candidate.",
        ));
    };
    let me = ctx.user.id;
    let out = match signal {
        SignalIn::Offer { sdp } | SignalIn::Answer { sdp } if sdp.len() > MAX_SDP => {
            return Ok(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "A session description is at most 16 KB.",
            ));
        }
        SignalIn::Ice { candidate } if candidate.candidate.len() > MAX_CANDIDATE => {
            return Ok(refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "An ICE candidate is at most 2 KB.",
            ));
        }
        SignalIn::Offer { sdp } if call.caller_id == me => {
            json!({ "type": "offer", "call": call.id, "sdp": sdp })
        }
        SignalIn::Answer { sdp } if call.callee_id == me => {
            json!({ "type": "answer", "call": call.id, "sdp": sdp })
        }
        SignalIn::Ice { candidate } => {
            json!({ "type": "ice", "call": call.id, "candidate": candidate })
        }
        SignalIn::Offer { .. } | SignalIn::Answer { .. } => {
            return Ok(refuse(
                StatusCode::CONFLICT,
                "The caller offers and the person called answers.",
            ));
        }
    };
    if call.state != ACTIVE {
        return Ok(refuse(StatusCode::CONFLICT, "This call is not going on."));
    }
    ctx.app.hub.signal(call.other(me), out.to_string());
    Ok(done())
}

/// `GET /calls/ice`: the ICE servers browsers use to reach each other (`--ice-servers`), in
/// `RTCPeerConnection`'s own form, with TURN credentials: the viewer's own, valid for a day, when
/// Parley shares a secret with coturn; else the fixed ones configured. Logged-in people only.
#[handler]
pub async fn ice_servers(ctx: Ctx) -> Response {
    let settings = &ctx.app.settings;
    let credentials = match (
        &settings.turn_secret,
        &settings.turn_username,
        &settings.turn_credential,
    ) {
        (Some(secret), _, _) => {
            let expires = crate::now_ms() / 1000 + 24 * 3600;
            let user = format!("{expires}:{}", ctx.user.id);
            Some((turn_password(secret, &user), user))
        }
        (None, Some(user), Some(password)) => Some((password.clone(), user.clone())),
        _ => None,
    };
    let servers: Vec<serde_json::Value> = settings
        .ice_servers
        .iter()
        .map(|url| match (&credentials, url.starts_with("turn")) {
            (Some((password, user)), true) => {
                json!({ "urls": url, "username": user, "credential": password })
            }
            _ => json!({ "urls": url }),
        })
        .collect();
    reply(StatusCode::OK, json!({ "iceServers": servers }))
}

/// coturn's REST API password for `user`: base64 of HMAC-SHA1 keyed with the shared secret.
fn turn_password(secret: &str, user: &str) -> String {
    use base64::Engine;
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(user.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Ends, every few seconds, the calls that rang out or whose pages went away without hanging up
/// (a closed laptop, a lost connection), on whichever server notices first.
pub fn spawn_call_sweeper(app: &AppState) {
    let app = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            let Some(app) = app.upgrade() else { return };
            let now = crate::now_ms();
            let overdue = match calls::overdue(&app.db.pool, now, app.settings.ring_ms()).await {
                Ok(overdue) => overdue,
                Err(err) => {
                    tracing::warn!(%err, "could not look for calls to end");
                    continue;
                }
            };
            for (call, from, outcome) in overdue {
                if let Err(err) = end(&app, call, from, outcome).await {
                    tracing::warn!(%err, call, "could not end an overdue call");
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    /// As coturn computes it
    /// (`echo -n "$user" | openssl dgst -binary -sha1 -hmac "$secret" | base64`).
    #[test]
    fn turn_passwords_are_coturns() {
        assert_eq!(
            super::turn_password("north", "1433895918506:alice"),
            "GPCalOXHCHJRqBRVGXzX5o/tUXE="
        );
    }
}
