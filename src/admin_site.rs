//! Parley's models as the admin area shows them. The `parley-admin` crate knows nothing about
//! chat; this file tells it about users, rooms and messages.
//!
//! What the app's `AdminHost` must do (see `parley_admin::AdminHost`):
//! - `current_user`: the session's user, read from the database on every request (so a user
//!   deactivated or demoted a moment ago is refused at once), with its staff/superuser/active flags.
//! - `csrf_token`: the session's CSRF token; the app's middleware checks it on every POST, the
//!   admin only puts it in its forms and in `<meta name="csrf-token">`.
//! - `login_url(next)`: `/login?next=…` (URL-encode `next`; only ever redirect to a local path).
//! - `set_password(id, raw)`: `Password::parse(raw, Some(username))`, argon2id in
//!   `spawn_blocking`, `UPDATE users SET password_hash = $1 WHERE id = $2`; return the parse
//!   error's text on refusal.
//!   When the user is the one acting, keep their session under the new password.
//!
//! What each write means for Parley's caches lives on the models, in their `after_save`,
//! `after_delete` and `delete_model` hooks below: one function per model.
//!
//! Messages of direct conversations are for superusers only: the `rooms` and `messages` row
//! filters hide direct rooms and their messages from plain staff in every view (lists, counts,
//! search, change, delete, history), which then answer 404, as for a row that does not exist.
//!
//! Mount it with `Route::new().nest("/admin", admin.routes())`, and redirect `/admin` to
//! `/admin/` (the nested endpoint only sees paths below the prefix).

use parley_admin::{
    AdminUser, Field, FieldErrors, ModelAdmin, Perms, Related, STR_COLUMN, SaveKind, Value, Values,
    WriteAction, now_ms,
};

use crate::domain::{Bio, DisplayName, MessageBody, RoomName, Topic, Username};
use crate::store::{attachments, joining, messages};
use crate::web::AppState;

/// Parley's models, with hooks that keep the app's caches true to what the admin wrote.
pub fn models(app: &AppState) -> Vec<ModelAdmin> {
    vec![
        users(app),
        rooms(app),
        messages(app),
        attachments(app),
        invites(),
        password_resets(),
    ]
}

/// Users written or deleted: their sessions are re-checked against the database on their next
/// request (and end if they may no longer log in). A deleted user's messages go with them, and a
/// renamed one's show the new name: no room's recent window may serve the old ones.
async fn users_written(app: AppState, ids: Vec<i64>) {
    for id in ids {
        crate::web::session::revoke(&app, id).await;
    }
    app.directory.clear();
    app.hub.invalidate_everywhere(app.db.pg.as_ref()).await;
}

/// Users saved in the admin: an account staff add joins the first room, as one that registers
/// does (with registration closed or by invitation, staff make most accounts).
async fn users_saved(app: AppState, ids: Vec<i64>, action: WriteAction) {
    if action == WriteAction::Added {
        for &id in &ids {
            match crate::store::rooms::join_first_room(&app.db.pool, id).await {
                Ok(Some(room)) => app.hub.joined(room, id),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(%err, id, "could not put a new account in the first room")
                }
            }
        }
    }
    users_written(app, ids).await;
}

/// Rooms renamed, re-topicked or deleted (with their messages).
async fn rooms_written(app: AppState) {
    app.directory.clear();
    app.hub.invalidate_everywhere(app.db.pg.as_ref()).await;
}

/// Messages written by staff. An edit is a change of the conversation like the author's own:
/// marked "edited", whom it names worked out again, delivered live to every open page on every
/// process. (A message added here has no place in the live sequence; the windows are dropped.)
async fn messages_written(app: AppState, ids: Vec<i64>, action: WriteAction) {
    if action != WriteAction::Changed {
        app.hub.invalidate_everywhere(app.db.pg.as_ref()).await;
        return;
    }
    for id in ids {
        if let Err(err) = announce_staff_edit(&app, id).await {
            tracing::warn!(%err, id, "could not announce a staff edit; dropping the windows");
            app.hub.invalidate_everywhere(app.db.pg.as_ref()).await;
        }
    }
}

async fn announce_staff_edit(app: &AppState, id: i64) -> Result<(), crate::web::AppError> {
    let Some((room, seq)) = messages::locate(&app.db.pool, id).await? else {
        return Ok(());
    };
    let Some(message) = messages::find(&app.db.pool, room, seq).await? else {
        return Ok(());
    };
    // The admin validated the text as a message body when it saved it.
    let body = MessageBody::parse(&message.body)
        .map_err(|e| crate::web::AppError::Internal(Box::new(e)))?;
    crate::web::messages::edit_message(app, room, &message, body).await?;
    Ok(())
}

/// Deletes one message for the admin (its `delete_model`) as its author would: gone from the
/// database with its files, and from every open page at once.
async fn delete_message(app: AppState, id: i64) -> sqlx::Result<bool> {
    let Some((room, seq)) = messages::locate(&app.db.pool, id).await? else {
        return Ok(false);
    };
    deleted_as_its_author_would(&app, room, seq).await
}

async fn deleted_as_its_author_would(app: &AppState, room: i64, seq: i64) -> sqlx::Result<bool> {
    match crate::web::messages::delete_message(app, room, seq).await {
        Ok(deleted) => Ok(deleted),
        Err(crate::web::AppError::Db(err)) => Err(err),
        Err(err) => Err(sqlx::Error::Protocol(err.to_string())),
    }
}

/// Plain staff see public rooms only: a direct conversation is private to its two members.
fn public_rooms_unless_superuser(user: &AdminUser) -> Option<&'static str> {
    (!user.is_superuser).then_some("kind = 'public'")
}

/// Plain staff see the messages of public rooms only.
fn public_messages_unless_superuser(user: &AdminUser) -> Option<&'static str> {
    (!user.is_superuser).then_some("room_id IN (SELECT id FROM rooms WHERE kind = 'public')")
}

const ROOM_KINDS: &[(&str, &str)] = &[("public", "Public room"), ("direct", "Direct conversation")];
/// How a room is named everywhere in the admin: direct conversations have no name.
const ROOM_DISPLAY: &str = "COALESCE(name, 'direct #' || id)";
const MESSAGE_DISPLAY: &str = "'#' || id || ': ' || substr(body, 1, 40)";

fn users(app: &AppState) -> ModelAdmin {
    let (saved, deleted, removing) = (app.clone(), app.clone(), app.clone());
    ModelAdmin::new("users", "users", "user", "users")
        .field(Field::int("id", "ID").readonly())
        .field(
            Field::text("username", "Username", 32)
                .required()
                .validator(|s| Username::parse(s).map(|u| u.as_str().to_owned()).map_err(|e| e.to_string()))
                .help("3 to 32 letters, digits and the characters _ . -"),
        )
        .field(
            Field::text("username_key", "Key", 32)
                .readonly()
                .help("The username in lower case; no two accounts share it."),
        )
        .field(
            Field::text("display_name", "Display name", DisplayName::MAX_CHARS)
                .validator(|s| DisplayName::parse(s).map(|n| n.as_str().to_owned()).map_err(|e| e.to_string()))
                .help("Shown beside the username; empty shows the username alone. Up to 40 characters, one line."),
        )
        .field(
            Field::textarea("bio", "Bio", Bio::MAX_CHARS)
                .validator(|s| Bio::parse(s).map(|b| b.as_str().to_owned()).map_err(|e| e.to_string()))
                .help("What the person says about themselves, up to 200 characters."),
        )
        .field(
            Field::text("avatar", "Picture", 64)
                .validator(|s| match s.trim() {
                    "" => Ok(String::new()),
                    key if key.strip_prefix("a/").and_then(|k| k.rsplit('/').next()).and_then(crate::files::Files::avatar_key).as_deref() == Some(key) => Ok(key.to_owned()),
                    _ => Err("Only emptied here (which removes the picture): people choose their own on their profile.".to_owned()),
                })
                .help("The file store key of the person's picture; empty for none. Empty it to remove a picture."),
        )
        .field(Field::secret("password_hash", "Password"))
        .field(
            Field::flag("is_active", "Active")
                .default(Value::Bool(Some(true)))
                .help("Untick this instead of deleting the account: it ends the user's sessions and blocks their login."),
        )
        .field(Field::flag("is_staff", "Staff status").help("Whether the user can log into this admin site."))
        .field(
            Field::flag("is_superuser", "Superuser status")
                .superuser_only()
                .help("A superuser has every right in this admin site, including deleting users."),
        )
        .field(Field::timestamp("created_ms", "Created").readonly())
        .field(Field::timestamp("last_seen_ms", "Last seen").readonly())
        .list_display(&["username", "display_name", "avatar", "is_staff", "is_superuser", "is_active", "created_ms", "last_seen_ms"])
        .search_fields(&["username", "display_name"])
        .list_filter(&["is_staff", "is_superuser", "is_active"])
        .ordering("username_key", false)
        .display("username")
        .permissions(user_rights)
        .password_form("password_hash")
        .unique("users_username_key_key", "username_key", "username", "A user with that username already exists.")
        .unique("users_username_fold", "username_fold", "username", "That username is too similar to an existing name.")
        .related(Related::cascade("messages", "messages", "author_id", MESSAGE_DISPLAY).linked_to("messages"))
        .related(Related::cascade("attachments", "attachments", "uploader_id", "name").linked_to("attachments"))
        .related(Related::cascade(
            "room memberships",
            "memberships",
            "user_id",
            "(SELECT COALESCE(r.name, 'direct #' || r.id) FROM rooms r WHERE r.id = memberships.room_id)",
        ))
        .related(Related::set_null("rooms", "created_by"))
        // The admin's log keeps entries of deleted users, unattributed (the crate's table has
        // no foreign key to users; Parley's older databases also say ON DELETE SET NULL).
        .related(Related::set_null("admin_log", "user_id"))
        .before_save(user_before_save)
        .after_save(move |ids, action| users_saved(saved.clone(), ids, action))
        .delete_model(move |id| delete_user(removing.clone(), id))
        .after_delete(move |ids| users_written(deleted.clone(), ids))
}

/// Deletes a user for the admin. Their messages go first, each as its author's own deletion
/// would, so that open pages drop them at once instead of showing them until a reload; then the
/// user, whose other rows the database's own rules remove or unlink (the admin's log is unlinked
/// here: the admin crate's table has no foreign key).
async fn delete_user(app: AppState, id: i64) -> sqlx::Result<bool> {
    let pool = &app.db.pool;
    let theirs: Vec<(i64, i64)> =
        sqlx::query_as("SELECT room_id, seq FROM messages WHERE author_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(pool)
            .await?;
    for (room, seq) in theirs {
        deleted_as_its_author_would(&app, room, seq).await?;
    }
    let turn = app.db.write_turn().await;
    sqlx::query("UPDATE admin_log SET user_id = NULL WHERE user_id = $1")
        .bind(id)
        .execute(pool)
        .await?;
    let gone = sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(pool)
        .await?
        .rows_affected();
    drop(turn);
    Ok(gone > 0)
}

/// Superusers may do everything. Plain staff manage ordinary accounts: they may add and change
/// users but delete none (deactivating is the reversible way), and they may not change a
/// superuser's account, since setting its password would be a way to take it over.
fn user_rights(user: &AdminUser, target: Option<&Values>) -> Perms {
    if user.is_superuser {
        return Perms::ALL;
    }
    let target_is_superuser = target.and_then(|t| t.bool("is_superuser")).unwrap_or(false);
    Perms {
        view: true,
        add: true,
        change: !target_is_superuser,
        delete: false,
    }
}

fn user_before_save(values: &mut Values, kind: SaveKind) -> Result<(), FieldErrors> {
    let name = values.text("username").unwrap_or_default().to_owned();
    // On a change the values hold the stored row (the read-only key is not in the form): the
    // name's key before this edit.
    let renamed = values.text("username_key") != Some(name.to_ascii_lowercase().as_str());
    values.set("username_key", Value::text(name.to_ascii_lowercase()));
    if kind == SaveKind::Add {
        values.set("created_ms", Value::Int(Some(now_ms())));
    }
    // A new account, or a new name, may not look like another's. (An edit that keeps the name
    // keeps the fold it had: an old account that collides, with none, stays editable.)
    if (kind == SaveKind::Add || renamed)
        && let Ok(name) = Username::parse(&name)
    {
        values.set("username_fold", Value::text(name.fold()));
    }
    Ok(())
}

fn rooms(app: &AppState) -> ModelAdmin {
    let (saved, deleted, removing) = (app.clone(), app.clone(), app.clone());
    ModelAdmin::new("rooms", "rooms", "room", "rooms")
        .field(Field::int("id", "ID").readonly())
        .field(Field::choice("kind", "Kind", ROOM_KINDS).readonly())
        .field(
            Field::text("name", "Name", 64)
                .nullable()
                .validator(|s| {
                    RoomName::parse(s)
                        .map(|n| n.as_str().to_owned())
                        .map_err(|e| e.to_string())
                })
                .help("Public rooms only: 1 to 64 letters, digits, - and _."),
        )
        .field(Field::text("topic", "Topic", 200).validator(|s| {
            Topic::parse(s)
                .map(|t| t.as_str().to_owned())
                .map_err(|e| e.to_string())
        }))
        .field(
            Field::foreign_key("created_by", "Created by", "users", "users", "username").nullable(),
        )
        .field(Field::timestamp("created_ms", "Created").readonly())
        .field(
            Field::int("last_seq", "Changes")
                .readonly()
                .help("Messages sent in the room so far."),
        )
        .list_display(&[
            STR_COLUMN,
            "kind",
            "topic",
            "created_by",
            "created_ms",
            "last_seq",
        ])
        .search_fields(&["name", "topic"])
        .list_filter(&["kind", "created_ms"])
        .ordering("created_ms", true)
        .display(ROOM_DISPLAY)
        .unique(
            "rooms_name_key_key",
            "name_key",
            "name",
            "A room with that name already exists.",
        )
        .related(
            Related::cascade("messages", "messages", "room_id", MESSAGE_DISPLAY)
                .linked_to("messages"),
        )
        .related(Related::cascade(
            "memberships",
            "memberships",
            "room_id",
            "(SELECT u.username FROM users u WHERE u.id = memberships.user_id)",
        ))
        .related(
            Related::cascade("attachments", "attachments", "room_id", "name")
                .linked_to("attachments"),
        )
        .before_save(room_before_save)
        .row_filter(public_rooms_unless_superuser)
        .after_save(move |_, _| rooms_written(saved.clone()))
        .delete_model(move |id| delete_room(removing.clone(), id))
        .after_delete(move |_| rooms_written(deleted.clone()))
}

/// Deletes a room for the admin, with its messages, and then the bytes of their files (which the
/// database cannot delete).
async fn delete_room(app: AppState, id: i64) -> sqlx::Result<bool> {
    let turn = app.db.write_turn().await;
    let mut tx = app.db.pool.begin().await?;
    // In the same transaction, so that a file sent meanwhile is either in the list or refused.
    let files = attachments::delete_in_room(&mut tx, id).await?;
    let gone = sqlx::query("DELETE FROM rooms WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    drop(turn);
    app.files.delete(&files).await;
    Ok(gone > 0)
}

/// The admin only adds public rooms: a direct conversation is the single room of its pair of
/// members, made by the chat when one of them first writes.
fn room_before_save(values: &mut Values, kind: SaveKind) -> Result<(), FieldErrors> {
    if kind == SaveKind::Add {
        values.set("kind", Value::text("public"));
        values.set("created_ms", Value::Int(Some(now_ms())));
    }
    let name = values.text("name").map(str::to_owned);
    match (values.text("kind"), &name) {
        (Some("public"), None) => {
            return Err(vec![("name", "A public room needs a name.".to_owned())]);
        }
        (Some("direct"), Some(_)) => {
            return Err(vec![(
                "name",
                "A direct conversation has no name; leave this empty.".to_owned(),
            )]);
        }
        _ => {}
    }
    values.set(
        "name_key",
        Value::Text(name.map(|n| n.to_ascii_lowercase())),
    );
    Ok(())
}

fn messages(app: &AppState) -> ModelAdmin {
    let (saved, deleting) = (app.clone(), app.clone());
    ModelAdmin::new("messages", "messages", "message", "messages")
        .field(Field::int("id", "ID").readonly())
        .field(Field::foreign_key("room_id", "Room", "rooms", "rooms", ROOM_DISPLAY).readonly())
        .field(Field::foreign_key("author_id", "Author", "users", "users", "username").readonly())
        .field(
            Field::textarea("body", "Body", MessageBody::MAX_CHARS)
                .required()
                .validator(|s| {
                    MessageBody::parse(s)
                        .map(|b| b.as_str().to_owned())
                        .map_err(|e| e.to_string())
                }),
        )
        .field(Field::int("seq", "Sequence in room").readonly())
        .field(Field::timestamp("created_ms", "Created").readonly())
        .field(Field::timestamp("edited_ms", "Edited").readonly())
        .list_display(&["id", "room_id", "author_id", "body", "created_ms"])
        .search_fields(&["body"])
        .list_filter(&["room_id", "author_id", "created_ms"])
        .ordering("id", true)
        .display(MESSAGE_DISPLAY)
        .permissions(message_rights)
        .row_filter(public_messages_unless_superuser)
        .after_save(move |ids, action| messages_written(saved.clone(), ids, action))
        .delete_model(move |id| delete_message(deleting.clone(), id))
}

/// Messages are only ever sent through the chat, which numbers them within their room and wakes
/// the room's listeners; the admin reads, corrects and deletes them.
fn message_rights(_: &AdminUser, _: Option<&Values>) -> Perms {
    Perms {
        add: false,
        ..Perms::ALL
    }
}

/// Plain staff see the files of public rooms only.
fn public_attachments_unless_superuser(user: &AdminUser) -> Option<&'static str> {
    (!user.is_superuser).then_some("room_id IN (SELECT id FROM rooms WHERE kind = 'public')")
}

fn attachments(app: &AppState) -> ModelAdmin {
    let deleting = app.clone();
    ModelAdmin::new("attachments", "attachments", "attachment", "attachments")
        .field(Field::int("id", "ID").readonly())
        .field(Field::text("name", "File name", 1024).readonly())
        .field(Field::int("size", "Size (bytes)").readonly())
        .field(Field::text("content_type", "Type", 255).readonly())
        .field(
            Field::foreign_key("uploader_id", "Uploaded by", "users", "users", "username")
                .readonly(),
        )
        .field(
            Field::foreign_key("room_id", "Conversation", "rooms", "rooms", ROOM_DISPLAY)
                .readonly(),
        )
        .field(
            Field::foreign_key(
                "message_id",
                "Message",
                "messages",
                "messages",
                MESSAGE_DISPLAY,
            )
            .readonly(),
        )
        .field(Field::timestamp("created_ms", "Uploaded").readonly())
        .list_display(&[
            "name",
            "size",
            "content_type",
            "uploader_id",
            "room_id",
            "created_ms",
        ])
        .search_fields(&["name", "content_type"])
        .list_filter(&["room_id", "uploader_id", "created_ms"])
        .ordering("id", true)
        .display("name")
        .permissions(attachment_rights)
        .row_filter(public_attachments_unless_superuser)
        .delete_model(move |id| delete_attachment(deleting.clone(), id))
}

/// Files are only ever added by sending them; staff look at them and delete them.
fn attachment_rights(_: &AdminUser, _: Option<&Values>) -> Perms {
    Perms {
        view: true,
        add: false,
        change: false,
        delete: true,
    }
}

/// Deletes one file for the admin: its row and bytes, and from every open page at once (its
/// message is shown again without it). A message that held nothing else goes with it.
async fn delete_attachment(app: AppState, id: i64) -> sqlx::Result<bool> {
    let Some((room, seq, only)) = attachments::place(&app.db.pool, id).await? else {
        return Ok(false);
    };
    if only {
        return deleted_as_its_author_would(&app, room, seq).await;
    }
    let turn = app.db.write_turn().await;
    let detached = messages::detach(&app.db.pool, room, seq, id).await?;
    drop(turn);
    let Some((message, files)) = detached else {
        return Ok(false);
    };
    app.hub.published(&messages::Change::Updated(message));
    app.files.delete(&files).await;
    Ok(true)
}

/// Invite links, for `--registration invite`: staff add one (a note of whom it is for, how many
/// accounts it may make, until when) and hand out the link the list shows.
fn invites() -> ModelAdmin {
    ModelAdmin::new("invites", "invites", "invite", "invites")
        .field(Field::int("id", "ID").readonly())
        .field(Field::text("code", "Code", 32).readonly().help(
            "Made when the invite is first saved; the link is /register?invite= and this code.",
        ))
        .field(Field::text("note", "For", 200).help("Whom the link is for: a note for staff."))
        .field(
            Field::int("max_uses", "Accounts it may make")
                .default(Value::Int(Some(1)))
                .help("1 for one person; more for a link shared with a group."),
        )
        .field(Field::int("uses", "Accounts made").readonly())
        .field(
            Field::timestamp("expires_ms", "Expires")
                .nullable()
                .help("Left empty: a week after it is made."),
        )
        .field(Field::timestamp("created_ms", "Created").readonly())
        .list_display(&[
            STR_COLUMN,
            "note",
            "uses",
            "max_uses",
            "expires_ms",
            "created_ms",
        ])
        .search_fields(&["note"])
        .list_filter(&["expires_ms", "created_ms"])
        .ordering("created_ms", true)
        .display("'/register?invite=' || code")
        .before_save(invite_before_save)
}

fn invite_before_save(values: &mut Values, kind: SaveKind) -> Result<(), FieldErrors> {
    if values.int("max_uses").is_none_or(|n| n < 1) {
        return Err(vec![("max_uses", "At least 1.".to_owned())]);
    }
    if kind == SaveKind::Add {
        let now = now_ms();
        values.set("code", Value::text(joining::new_code()));
        values.set("uses", Value::Int(Some(0)));
        values.set("created_ms", Value::Int(Some(now)));
        if values.int("expires_ms").is_none() {
            let week = joining::INVITE_DAYS * 24 * 60 * 60 * 1000;
            values.set("expires_ms", Value::Int(Some(now + week)));
        }
    } else if values.int("expires_ms").is_none() {
        return Err(vec![(
            "expires_ms",
            "An invite needs an expiry.".to_owned(),
        )]);
    }
    Ok(())
}

/// One-time password-reset links (there is no email): a superuser adds one for a user and
/// hands over the link the list shows; it works once, for a day, and ends the user's sessions.
/// Superusers only: plain staff set ordinary users' passwords in the user's password form, and
/// a link for a superuser's account made by plain staff would be a way to take it over.
fn password_resets() -> ModelAdmin {
    ModelAdmin::new(
        "password_resets",
        "password_resets",
        "password-reset link",
        "password-reset links",
    )
    .field(Field::int("id", "ID").readonly())
    .field(Field::foreign_key("user_id", "User", "users", "users", "username").required())
    .field(
        Field::text("token", "Token", 32)
            .readonly()
            .help("Made when the link is saved; the link is /reset/ and this token."),
    )
    .field(Field::timestamp("expires_ms", "Expires").readonly())
    .field(Field::timestamp("used_ms", "Used").readonly())
    .field(Field::timestamp("created_ms", "Created").readonly())
    .list_display(&[STR_COLUMN, "user_id", "expires_ms", "used_ms", "created_ms"])
    .list_filter(&["created_ms"])
    .ordering("created_ms", true)
    .display("'/reset/' || token")
    .permissions(superusers_only_add_and_delete)
    .before_save(reset_before_save)
}

fn superusers_only_add_and_delete(user: &AdminUser, _: Option<&Values>) -> Perms {
    Perms {
        view: user.is_superuser,
        add: user.is_superuser,
        change: false,
        delete: user.is_superuser,
    }
}

fn reset_before_save(values: &mut Values, kind: SaveKind) -> Result<(), FieldErrors> {
    if kind == SaveKind::Add {
        let now = now_ms();
        values.set("token", Value::text(joining::new_code()));
        values.set("created_ms", Value::Int(Some(now)));
        values.set("expires_ms", Value::Int(Some(now + joining::RESET_MS)));
        values.set("used_ms", Value::Int(None));
    }
    Ok(())
}
