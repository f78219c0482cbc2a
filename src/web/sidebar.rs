//! What the sidebar lists for a person (their favourites, rooms with unread and mention counts,
//! people with the unread count of each private conversation), for whichever page or feed answer
//! shows it.

use std::collections::HashMap;

use super::AppState;
use super::error::AppError;
use crate::store::{favourites, rooms, users};
use crate::views::chat::{self, Favourite, Sidebar};

/// What the sidebar lists for a user.
pub struct SidebarData {
    /// Public rooms, with their unread and mention counts.
    pub rooms: Vec<rooms::RoomListing>,
    /// People, with the unread count of the private conversation with each.
    pub people: Vec<(users::Person, rooms::DirectUnread)>,
    /// What they starred, in the order starred (taken out of the two lists above).
    pub favourites: Vec<Favourite>,
    /// The moment before the lists were read (unix ms): a page's poll says it as `t`, and is
    /// sent the sidebar again only for a change after it.
    pub read_at: i64,
}

impl SidebarData {
    /// The sidebar of the page at `current`, filtered by `query`.
    pub fn sidebar<'a>(&'a self, me: &'a str, query: &'a str, current: &'a str) -> Sidebar<'a> {
        Sidebar {
            me,
            rooms: &self.rooms,
            people: &self.people,
            favourites: &self.favourites,
            now_ms: crate::now_ms(),
            query,
            current,
        }
    }
}

/// What the sidebar lists for `user`, filtered by `query` (part of a name). Their feed is made
/// first, so that every change after `read_at` reaches the polls of the page that shows it.
pub async fn sidebar_data(app: &AppState, user: i64, query: &str) -> Result<SidebarData, AppError> {
    let read_at = app.hub.watch_person(user).await?;
    // Names are at most 64 letters, digits and `_ . -`: a longer search, or one with a control
    // character (which PostgreSQL cannot even compare), matches nobody.
    if query.len() > 64 || query.contains(char::is_control) {
        return Ok(SidebarData {
            rooms: Vec::new(),
            people: Vec::new(),
            favourites: Vec::new(),
            read_at,
        });
    }
    let pool = &app.db.pool;
    let room_list = rooms::public_rooms(pool, user, query).await?;
    let people = users::people(pool, user, query).await?;
    let starred = favourites::urls(pool, user).await?;
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
    Ok(pick_favourites(room_list, people, &starred, read_at))
}

/// Moves the starred conversations out of the lists into Favourites, in the order starred.
fn pick_favourites(
    rooms: Vec<rooms::RoomListing>,
    people: Vec<(users::Person, rooms::DirectUnread)>,
    starred: &[String],
    read_at: i64,
) -> SidebarData {
    let rank = |url: String| starred.iter().position(|s| *s == url);
    let mut favourites: Vec<(usize, Favourite)> = Vec::new();
    let mut room_list = Vec::with_capacity(rooms.len());
    for room in rooms {
        match rank(format!("/rooms/{}", room.name)) {
            Some(i) => favourites.push((i, Favourite::Room(room))),
            None => room_list.push(room),
        }
    }
    let mut people_list = Vec::with_capacity(people.len());
    for (person, counts) in people {
        match rank(format!("/dm/{}", person.username)) {
            Some(i) => favourites.push((i, Favourite::Person(person, counts))),
            None => people_list.push((person, counts)),
        }
    }
    favourites.sort_by_key(|(i, _)| *i);
    SidebarData {
        rooms: room_list,
        people: people_list,
        favourites: favourites.into_iter().map(|(_, f)| f).collect(),
        read_at,
    }
}

/// The sidebar's lists, to be swapped in out of band by a feed answer.
pub async fn sidebar_oob(
    app: &AppState,
    user: i64,
    current: &str,
) -> Result<maud::Markup, AppError> {
    let data = sidebar_data(app, user, "").await?;
    let me = data
        .people
        .iter()
        .find(|(p, _)| p.id == user)
        .map_or(String::new(), |(p, _)| p.username.clone());
    Ok(chat::sidebar_lists(&data.sidebar(&me, "", current), true))
}
