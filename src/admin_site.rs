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
//! - `after_write(model, ids, action)`: for `"users"`, end the sessions of the users when
//!   `Deleted`, `PasswordChanged`, or `Changed` and the user is now inactive; for every model,
//!   drop the cached recent messages of every room, in every process on PostgreSQL, so that
//!   long-polls stop delivering deleted messages (a user's go with them) or stale names.
//!
//! Mount it with `Route::new().nest("/admin", admin.routes())`, and redirect `/admin` to
//! `/admin/` (the nested endpoint only sees paths below the prefix).

use parley_admin::{
    AdminUser, Field, FieldErrors, ModelAdmin, Perms, Related, STR_COLUMN, SaveKind, Value, Values,
    now_ms,
};

use crate::domain::{MessageBody, RoomName, Topic, Username};

pub fn models() -> Vec<ModelAdmin> {
    vec![users(), rooms(), messages()]
}

const ROOM_KINDS: &[(&str, &str)] = &[("public", "Public room"), ("direct", "Direct conversation")];
/// How a room is named everywhere in the admin: direct conversations have no name.
const ROOM_DISPLAY: &str = "COALESCE(name, 'direct #' || id)";
const MESSAGE_DISPLAY: &str = "'#' || id || ': ' || substr(body, 1, 40)";

fn users() -> ModelAdmin {
    ModelAdmin::new("users", "users", "user", "users")
        .field(Field::int("id", "ID").readonly())
        .field(
            Field::text("username", "Username", 32)
                .required()
                .validator(|s| Username::parse(s).map(|u| u.as_str().to_owned()).map_err(|e| e.to_string()))
                .help("3 to 32 letters, digits and the characters _ . -"),
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
        .list_display(&["username", "is_staff", "is_superuser", "is_active", "created_ms", "last_seen_ms"])
        .search_fields(&["username"])
        .list_filter(&["is_staff", "is_superuser", "is_active"])
        .ordering("username_key", false)
        .display("username")
        .permissions(user_rights)
        .password_form("password_hash")
        .unique("username_key", "username", "A user with that username already exists.")
        .related(Related::cascade("messages", "messages", "author_id", MESSAGE_DISPLAY).linked_to("messages"))
        .related(Related::cascade(
            "room memberships",
            "memberships",
            "user_id",
            "(SELECT COALESCE(r.name, 'direct #' || r.id) FROM rooms r WHERE r.id = memberships.room_id)",
        ))
        .related(Related::set_null("rooms", "created_by"))
        .related(Related::set_null("admin_log", "user_id"))
        .before_save(user_before_save)
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
    let key = values
        .text("username")
        .unwrap_or_default()
        .to_ascii_lowercase();
    values.set("username_key", Value::text(key));
    if kind == SaveKind::Add {
        values.set("created_ms", Value::Int(Some(now_ms())));
    }
    Ok(())
}

fn rooms() -> ModelAdmin {
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
            Field::int("last_seq", "Messages")
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
        .unique("name_key", "name", "A room with that name already exists.")
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
        .before_save(room_before_save)
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

fn messages() -> ModelAdmin {
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
}

/// Messages are only ever sent through the chat, which numbers them within their room and wakes
/// the room's listeners; the admin reads, corrects and deletes them.
fn message_rights(_: &AdminUser, _: Option<&Values>) -> Perms {
    Perms {
        add: false,
        ..Perms::ALL
    }
}
