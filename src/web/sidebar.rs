//! What the sidebar lists for a person (rooms with unread and mention counts, people with the
//! unread count of each private conversation), for whichever page or feed answer shows it.

use std::collections::HashMap;

use super::AppState;
use super::error::AppError;
use crate::store::{rooms, users};
use crate::views::chat::{self, Sidebar};

/// What the sidebar lists for a user: public rooms (with their unread and mention counts) and
/// people (with the unread count of the private conversation with each).
pub async fn sidebar_data(
    app: &AppState,
    user: i64,
    query: &str,
) -> Result<
    (
        Vec<rooms::RoomListing>,
        Vec<(users::Person, rooms::DirectUnread)>,
    ),
    AppError,
> {
    // Names are at most 64 letters, digits and `_ . -`: a longer search, or one with a control
    // character (which PostgreSQL cannot even compare), matches nobody.
    if query.len() > 64 || query.contains(char::is_control) {
        return Ok((Vec::new(), Vec::new()));
    }
    let pool = &app.db.pool;
    let room_list = rooms::public_rooms(pool, user, query).await?;
    let people = users::people(pool, query).await?;
    let mut unread: HashMap<i64, rooms::DirectUnread> = rooms::direct_unreads(pool, user)
        .await?
        .into_iter()
        .map(|d| (d.other_id, d))
        .collect();
    let people = people
        .into_iter()
        .map(|p| {
            let counts = unread.remove(&p.id).unwrap_or(rooms::DirectUnread {
                other_id: p.id,
                unread: 0,
                mentions: 0,
            });
            (p, counts)
        })
        .collect();
    Ok((room_list, people))
}

/// The sidebar's lists, to be swapped in out of band by a feed answer.
pub async fn sidebar_oob(
    app: &AppState,
    user: i64,
    current: &str,
) -> Result<maud::Markup, AppError> {
    let (rooms, people) = sidebar_data(app, user, "").await?;
    let me = people
        .iter()
        .find(|(p, _)| p.id == user)
        .map_or(String::new(), |(p, _)| p.username.clone());
    let side = Sidebar {
        me: &me,
        rooms: &rooms,
        people: &people,
        now_ms: crate::now_ms(),
        query: "",
        current,
    };
    Ok(chat::sidebar_lists(&side, true))
}
