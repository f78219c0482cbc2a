//! Rooms that stay tidy: a fresh installation has "general", which newcomers join.

use crate::on_both_engines;
use crate::support::TestApp;

on_both_engines!(a_fresh_installation_has_general_and_every_newcomer_joins_it);

async fn is_member(app: &TestApp, who: &str, room: &str) -> bool {
    app.count(&format!(
        "SELECT COUNT(*) FROM memberships s JOIN users u ON u.id = s.user_id
         JOIN rooms r ON r.id = s.room_id WHERE u.username = '{who}' AND r.name = '{room}'"
    ))
    .await
        == 1
}

fn in_sidebar(page: &crate::support::Page, room: &str) -> bool {
    page.has(&format!("#sidebar-lists a[href='/rooms/{room}']"))
}

async fn a_fresh_installation_has_general_and_every_newcomer_joins_it(app: &TestApp) {
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE kind = 'public' AND name = 'general'")
            .await,
        1,
        "the migration made it"
    );
    let alice = app.user("alice").await;
    assert!(is_member(app, "alice", "general").await);
    let home = alice.get("/").await;
    assert!(in_sidebar(&home, "general"), "{}", home.body);
    assert!(!home.has("#rooms .empty"), "no \"No rooms yet\"");
    // Nobody made it: it counts against nobody's allowance of rooms.
    assert_eq!(
        app.count("SELECT COUNT(*) FROM rooms WHERE created_by IS NOT NULL")
            .await,
        0
    );
}
