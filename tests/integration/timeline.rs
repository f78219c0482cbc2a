//! How a conversation reads: one person's messages within five minutes under one name, days
//! divided in the reader's time zone, initials for faces. Pages are made this way by the server
//! (so without JavaScript too); what is delivered live is the same for every listener and
//! carries what app.js needs to do the same (see browser_reading.rs).

use crate::on_both_engines;
use crate::support::TestApp;

on_both_engines!(
    one_persons_messages_within_five_minutes_are_grouped_under_one_name,
    the_live_fragment_is_the_same_for_everyone_and_carries_author_and_time,
    days_are_divided_in_the_readers_time_zone,
    people_have_initials_in_a_colour_of_their_own,
);

const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;
/// 2026-11-28 10:00 UTC: a day in the past, far from midnight.
const T: i64 = 1_795_860_000_000;

/// Says when message `seq` of #general was written.
async fn written_at(app: &TestApp, seq: i64, ms: i64) {
    sqlx::query(
        "UPDATE messages SET created_ms = $1
         WHERE seq = $2 AND room_id = (SELECT id FROM rooms WHERE name = 'general')",
    )
    .bind(ms)
    .bind(seq)
    .execute(&app.pool().await)
    .await
    .unwrap();
}

async fn one_persons_messages_within_five_minutes_are_grouped_under_one_name(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        c.post("/rooms", &[("name", "general")]).await;
    }
    let mut at = Vec::new();
    for (who, text, ms) in [
        (&alice, "first", T),
        (&alice, "a minute later", T + MINUTE),
        // Five minutes after the one before: a new group.
        (&alice, "five minutes later", T + 6 * MINUTE),
        (&alice, "just under five", T + 11 * MINUTE - 1),
        (&bob, "someone else", T + 12 * MINUTE),
        (&alice, "alice again", T + 13 * MINUTE),
    ] {
        let seq = who.say("/rooms/general", text).await;
        written_at(app, seq, ms).await;
        at.push(seq);
    }
    // A record stands alone, and so does what follows it.
    alice
        .post("/rooms/general/topic", &[("topic", "Books")])
        .await;
    let record = alice.say("/rooms/general", "after the record").await;
    let topic = record - 1;
    written_at(app, topic, T + 14 * MINUTE).await;
    written_at(app, record, T + 14 * MINUTE + 1).await;
    let page = bob.get("/rooms/general").await;
    let grouped = |seq: i64| page.has(&format!("#m-{seq}.grouped"));
    let expected = [false, true, false, true, false, false];
    for (seq, expected) in at.iter().zip(expected) {
        assert_eq!(grouped(*seq), expected, "#m-{seq}");
    }
    assert!(!grouped(topic), "a record is never grouped");
    assert!(!grouped(record), "nor is a message after one");
    // A grouped message keeps its author for screen readers and its time (with the full date
    // in its title) for hover and focus.
    let second = at[1];
    assert_eq!(page.select(&format!("#m-{second} .author")), vec!["alice"]);
    assert_eq!(
        page.attr(&format!("#m-{second} time"), "title").as_deref(),
        Some("2026-11-28 10:01 UTC")
    );
    // An older page comes grouped too.
    let older = bob
        .get_htmx(&format!("/rooms/general/messages?before={}", at[4]))
        .await;
    assert!(
        older.has(&format!("#m-{}.grouped", at[1])),
        "{}",
        older.body
    );
    assert!(!older.has(&format!("#m-{}.grouped", at[0])));
}

async fn the_live_fragment_is_the_same_for_everyone_and_carries_author_and_time(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        c.post("/rooms", &[("name", "general")]).await;
    }
    let first = alice.say("/rooms/general", "one").await;
    let second = alice.say("/rooms/general", "two").await;
    // Different time zones, the same bytes.
    alice.add_cookie("parley_tz=600; Path=/");
    bob.add_cookie("parley_tz=-300; Path=/");
    let theirs = alice.poll("/rooms/general", first).await;
    let mine = bob.poll("/rooms/general", first).await;
    assert_eq!(theirs.status, 200);
    let article = format!("#m-{second}");
    let html = |page: &crate::support::Page| page.each(&article, |el| el.html());
    assert_eq!(html(&theirs), html(&mine));
    assert_eq!(html(&theirs).len(), 1);
    // What app.js groups by is what the message shows: its author and its time.
    assert_eq!(
        theirs.select(&format!("{article} > header .author")),
        vec!["alice"]
    );
    let at = theirs
        .attr(&format!("{article} > header > time"), "datetime")
        .unwrap();
    assert!(
        at.ends_with('Z') && at.len() == 20,
        "to the second, UTC: {at}"
    );
    // Grouping and days are for app.js to apply where it lands.
    assert!(!theirs.has(".grouped"), "{}", theirs.body);
    assert!(!theirs.has(".day-divider"));
    assert_eq!(theirs.select(&format!("{article} .avatar")), vec!["A"]);
}

async fn days_are_divided_in_the_readers_time_zone(app: &TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let now = parley::now_ms();
    let today = now - now % DAY;
    let mut at = Vec::new();
    for (text, ms) in [
        // 2025-06-01 10:00 UTC, a Sunday of another year.
        ("last year", 1_748_772_000_000),
        // Half an hour before midnight UTC: yesterday in London, today an hour east.
        ("late", today - 30 * MINUTE),
        ("early", today + 1000),
        ("a second later", today + 2000),
    ] {
        let seq = alice.say("/rooms/general", text).await;
        written_at(app, seq, ms).await;
        at.push(seq);
    }
    // Without a time zone (no JavaScript yet), UTC.
    let page = alice.get("/rooms/general").await;
    assert_eq!(
        page.select("#messages .day-divider"),
        vec!["Sun 1 Jun 2025", "Yesterday", "Today"]
    );
    for seq in &at[..3] {
        assert!(
            page.has(&format!(".day-divider + #m-{seq}")),
            "#m-{seq} opens its day: {}",
            page.body
        );
    }
    assert_eq!(
        page.attr(".day-divider", "aria-label").as_deref(),
        Some("Sun 1 Jun 2025")
    );
    assert_eq!(
        page.attr(".day-divider", "role").as_deref(),
        Some("separator")
    );
    // Across midnight, a message is never grouped with the day before.
    assert!(page.has(&format!("#m-{}.grouped", at[3])));
    // An hour east of UTC (app.js's cookie), half past eleven is already the day of the messages
    // after midnight: today there, unless it is past 23:00 UTC and the next day has begun there.
    alice.add_cookie("parley_tz=60; Path=/");
    let east = alice.get("/rooms/general").await;
    let their_day = match parley::now_ms() % DAY < DAY - 60 * MINUTE {
        true => "Today",
        false => "Yesterday",
    };
    assert_eq!(
        east.select("#messages .day-divider"),
        vec!["Sun 1 Jun 2025", their_day]
    );
    assert!(east.has(&format!(".day-divider + #m-{}", at[1])));
    assert!(!east.has(&format!(".day-divider + #m-{}", at[2])));
    // Nonsense in the cookie is UTC.
    alice.add_cookie("parley_tz=banana; Path=/");
    assert_eq!(
        alice
            .get("/rooms/general")
            .await
            .select("#messages .day-divider"),
        vec!["Sun 1 Jun 2025", "Yesterday", "Today"]
    );
}

async fn people_have_initials_in_a_colour_of_their_own(app: &TestApp) {
    let alice = app.member("alice").await;
    let mary = app.member("mary_jane").await;
    for c in [&alice, &mary] {
        c.post("/rooms", &[("name", "general")]).await;
    }
    let said = mary.say("/rooms/general", "hello").await;
    let page = alice.get("/rooms/general").await;
    let avatar = format!("#m-{said} > .avatar");
    assert_eq!(page.select(&avatar), vec!["MJ"]);
    assert_eq!(page.attr(&avatar, "aria-hidden").as_deref(), Some("true"));
    let colour = page.attr(&avatar, "class").unwrap();
    assert!(colour.starts_with("avatar c"), "{colour}");
    // The same person has the same colour in the people list and among the members, and on
    // everyone's page.
    let in_people = page.attrs("#people-list .avatar", "class");
    assert!(in_people.contains(&colour), "{in_people:?}");
    assert!(
        page.attrs("#member-list .avatar", "class")
            .contains(&colour)
    );
    let theirs = mary.get("/rooms/general").await;
    assert_eq!(theirs.attr(&avatar, "class"), Some(colour));
    assert_eq!(page.select("#member-list .avatar"), vec!["A", "MJ"]);
}
