//! Every refusal and failure is Parley's own page, with the header of whoever is looking, a
//! sentence that says what happened and a way on; an htmx request gets a short fragment.

use crate::on_both_engines;
use crate::support::{Client, PASSWORD, Page, TestApp};

on_both_engines!(
    every_refusal_is_the_apps_page_with_the_header_of_who_is_looking,
    a_refusal_to_someone_logged_out_is_the_apps_page_with_a_way_to_log_in,
    an_htmx_request_that_fails_gets_a_fragment_not_a_page,
    a_failure_says_so_without_internals,
    busy_password_checks_answer_the_page_of_who_is_looking,
    an_error_page_under_assets_is_never_stored,
);

/// The app's page for `name` (or nobody logged in): HTML, the header, a heading, a sentence,
/// a way on.
#[track_caller]
fn assert_app_page(page: &Page, status: u16, viewer: Option<&str>, what: &str) {
    assert_eq!(page.status, status, "{what}: {}", page.body);
    let kind = page
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap());
    assert_eq!(kind, Some("text/html; charset=utf-8"), "{what}");
    assert!(
        page.body.starts_with("<!DOCTYPE html>"),
        "{what}: {}",
        page.body
    );
    let me: Vec<String> = viewer.into_iter().map(str::to_owned).collect();
    assert_eq!(
        page.select(".topbar .me"),
        me,
        "{what}: the header of who looks"
    );
    assert_eq!(page.count("main h1"), 1, "{what}: {}", page.body);
    let said = page.select("main p").join(" ");
    assert!(said.len() > 20, "{what}: a sentence: {said}");
    let on = if viewer.is_some() { "/" } else { "/login" };
    assert!(
        page.attrs("main a", "href").iter().any(|h| h == on),
        "{what}: a way on to {on}: {}",
        page.body
    );
}

async fn big_post(c: &Client, path: &str) -> Page {
    let body = format!("body={}&csrf_token={}", "x".repeat(70 * 1024), c.token());
    let resp = c
        .http
        .post(format!("{}{path}", c.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    Client::page(resp).await
}

async fn every_refusal_is_the_apps_page_with_the_header_of_who_is_looking(app: &mut TestApp) {
    app.restart_with(|s| s.messages_per_minute = 1).await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    let me = Some("alice");
    alice.post("/rooms", &[("name", "general")]).await;

    let page = alice.get("/rooms/general?before=abc").await;
    assert_app_page(&page, 400, me, "?before=abc");
    assert!(!page.body.contains("invalid digit"), "{}", page.body);

    let page = alice
        .post_raw("/rooms/general/messages", &[("body", "hi")], false)
        .await;
    assert_app_page(&page, 403, me, "a post without its token");
    let id = bob.say("/rooms/general", "bob's words").await;
    let page = alice
        .get(&format!("/rooms/general/messages/{id}/edit"))
        .await;
    assert_app_page(&page, 403, me, "someone else's message");

    let page = alice.get("/nowhere").await;
    assert_app_page(&page, 404, me, "no route");
    assert!(page.body.contains("There is no page at this address."));
    let page = alice.get("/rooms/general/messages/999/edit").await;
    assert_app_page(&page, 404, me, "no such message");
    // A room nobody opened: the offer to create it, on the person's own page.
    let page = alice.get("/rooms/genral").await;
    assert_app_page(&page, 404, me, "no such room");
    assert_eq!(
        page.select("main form[action='/rooms'] button"),
        ["Create #genral"]
    );

    let page = alice.get("/logout").await;
    assert_app_page(&page, 405, me, "GET of a POST-only address");

    let page = big_post(&alice, "/rooms/general/messages").await;
    assert_app_page(&page, 413, me, "a body over the cap");

    let page = alice
        .post("/rooms/general/topic", &[("topic", &"t".repeat(201))])
        .await;
    assert_eq!(page.status, 422);
    assert_eq!(
        page.select(".topbar .me"),
        ["alice"],
        "a refused form, in place"
    );

    let page = alice
        .post("/rooms/general/messages", &[("body", "one")])
        .await;
    assert_eq!(page.status, 303);
    let page = alice
        .post("/rooms/general/messages", &[("body", "two")])
        .await;
    assert_app_page(&page, 429, me, "past the pace");
    assert!(page.headers.contains_key("retry-after"));
    assert!(page.body.contains("Try again in"), "{}", page.body);
}

async fn a_refusal_to_someone_logged_out_is_the_apps_page_with_a_way_to_log_in(app: &mut TestApp) {
    let visitor = app.client().await;
    let page = visitor.get("/nowhere").await;
    assert_app_page(&page, 404, None, "no route");
    let page = visitor.get("/logout").await;
    assert_app_page(&page, 405, None, "GET of a POST-only address");
    let page = visitor
        .post_raw(
            "/login",
            &[("username", "alice"), ("password", PASSWORD)],
            false,
        )
        .await;
    assert_app_page(&page, 403, None, "a post without its token");
    let page = big_post(&visitor, "/login").await;
    assert_app_page(&page, 413, None, "a body over the cap");
    let resp = visitor
        .http
        .get(format!("{}/login", visitor.base))
        .header("Host", "elsewhere.example")
        .send()
        .await
        .unwrap();
    assert_app_page(&Client::page(resp).await, 400, None, "a host name not ours");
    // Logging in still leads on from where a conversation sent them.
    let page = visitor.get("/rooms/general").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/login?next=/rooms/general"));
}

async fn an_htmx_request_that_fails_gets_a_fragment_not_a_page(app: &mut TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    for (path, status) in [
        ("/nowhere", 404),
        ("/rooms/general/messages/999/edit", 404),
        ("/rooms/general/messages?before=abc", 400),
    ] {
        let page = alice.get_htmx(path).await;
        assert_eq!(page.status, status, "{path}");
        assert!(!page.body.contains("<html"), "{path}: {}", page.body);
        assert_eq!(
            page.count("p.error-note[role=alert]"),
            1,
            "{path}: {}",
            page.body
        );
    }
    let page = alice
        .post_raw("/rooms/general/messages", &[("body", "hi")], true)
        .await;
    assert_eq!(page.status, 403);
    assert_eq!(
        page.select("p.error-note"),
        ["CSRF token missing or incorrect. Reload the page and try again."]
    );
    // Someone logged out is sent to log in, as htmx does it.
    let visitor = app.client().await;
    let page = visitor.get_htmx("/rooms/general").await;
    assert_eq!(page.status, 401);
    assert_eq!(
        page.headers.get("hx-redirect").unwrap(),
        "/login?next=/rooms/general"
    );
}

async fn a_failure_says_so_without_internals(app: &mut TestApp) {
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    sqlx::query("DROP TABLE favourites")
        .execute(&app.pool().await)
        .await
        .unwrap();
    let page = alice.get("/rooms/general").await;
    assert_app_page(&page, 500, Some("alice"), "a query that fails");
    assert!(page.body.contains("unexpected error"), "{}", page.body);
    for inner in [
        "favourites",
        "no such table",
        "relation",
        "sqlx",
        "error returned",
    ] {
        assert!(!page.body.contains(inner), "{inner}: {}", page.body);
    }
}

async fn busy_password_checks_answer_the_page_of_who_is_looking(app: &mut TestApp) {
    app.restart_with(|s| {
        s.hash_workers = 1;
        s.hash_queue = 1;
    })
    .await;
    let alice = app.member("alice").await;
    let form = [
        ("current_password", "not the password"),
        ("new_password", "another good password"),
    ];
    let tries = (0..6).map(|_| alice.post("/account/password", &form));
    let pages = futures_util::future::join_all(tries).await;
    let busy: Vec<_> = pages.iter().filter(|p| p.status == 503).collect();
    assert!(
        !busy.is_empty(),
        "{:?}",
        pages.iter().map(|p| p.status).collect::<Vec<_>>()
    );
    for page in busy {
        assert_app_page(page, 503, Some("alice"), "password workers busy");
        assert_eq!(page.headers.get("retry-after").unwrap(), "1");
    }
}

/// An error page shows who is looking (their name, their token in the log-out form), even at an
/// address under /assets/, whose answers shared caches may keep: it is never stored.
async fn an_error_page_under_assets_is_never_stored(app: &mut TestApp) {
    let alice = app.member("alice").await;
    let page = alice.get("/assets/x/nothing-here.css").await;
    assert_app_page(&page, 404, Some("alice"), "a missing asset");
    assert_eq!(
        page.headers
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
}
