//! The admin area against a real server and a fresh database per test.

mod support;

use reqwest::StatusCode;
use support::{CSRF, FAKE_HASH, TestApp, Who};

/// Each test runs on SQLite, and on PostgreSQL when one answers.
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let app = crate::support::TestApp::sqlite().await;
                super::$name(&app).await;
                app.finish().await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                if let Some(app) = crate::support::TestApp::postgres().await {
                    super::$name(&app).await;
                    app.finish().await;
                }
            })*
        }
    };
}

on_both_engines!(
    every_admin_view_checks_who_is_asking,
    refused_posts_change_nothing,
    a_user_deactivated_a_moment_ago_is_refused_at_once,
    plain_staff_cannot_delete_users_nor_change_superusers,
    the_change_list_searches_filters_sorts_and_pages,
    adding_with_bad_input_keeps_the_input_and_saves_nothing,
    adding_an_author_says_so_once_logs_it_and_tells_the_hooks,
    the_three_save_buttons_go_where_django_goes,
    a_taken_name_is_an_error_next_to_the_field,
    changes_are_logged_with_what_changed_and_shown_in_history,
    the_delete_page_lists_what_goes_and_only_a_confirmed_post_deletes,
    deleting_selected_rows_asks_first_then_deletes_them_together,
    passwords_are_set_through_the_host_and_hashes_never_shown,
    adding_a_user_sets_the_password_through_the_host,
    unknown_things_are_404_and_odd_requests_never_500,
    pages_carry_the_csrf_token_escape_data_and_need_no_inline_code,
    a_row_filter_hides_rows_from_some_users_in_every_view,
);

/// The cast, like Django's admin tests: one of each kind of user.
struct Cast {
    superuser: i64,
    staff: i64,
    inactive_staff: i64,
    member: i64,
}

async fn cast(app: &TestApp) -> Cast {
    let superuser = app.user("root", true, true).await;
    let staff = app.user("stella", true, false).await;
    let inactive_staff = app.user("ivan", true, false).await;
    sqlx::query("UPDATE users SET is_active = 0 WHERE id = $1")
        .bind(inactive_staff)
        .execute(&app.pool)
        .await
        .unwrap();
    let member = app.user("mia", false, false).await;
    Cast {
        superuser,
        staff,
        inactive_staff,
        member,
    }
}

fn rows(body: &str) -> usize {
    body.matches("name=\"_selected_action\"").count()
}

async fn every_admin_view_checks_who_is_asking(app: &TestApp) {
    let c = cast(app).await;
    let room = app.author("general", "chat").await;
    let msg = app.book(room, c.member, "hello", 1).await;
    let m = c.member;
    let views = [
        "/admin/".to_owned(),
        "/admin/users/".to_owned(),
        "/admin/users/add/".to_owned(),
        format!("/admin/users/{m}/change/"),
        format!("/admin/users/{m}/delete/"),
        format!("/admin/users/{m}/history/"),
        format!("/admin/users/{m}/password/"),
        "/admin/authors/".to_owned(),
        "/admin/authors/add/".to_owned(),
        format!("/admin/authors/{room}/change/"),
        format!("/admin/authors/{room}/delete/"),
        format!("/admin/authors/{room}/history/"),
        "/admin/books/".to_owned(),
        "/admin/books/add/".to_owned(),
        format!("/admin/books/{msg}/change/"),
        format!("/admin/books/{msg}/delete/"),
        format!("/admin/books/{msg}/history/"),
    ];
    // Plain staff may not delete users; nobody adds books through the admin.
    let staff_refused = |v: &str| {
        v.starts_with("/admin/users/") && v.ends_with("/delete/") || v == "/admin/books/add/"
    };
    let superuser_refused = |v: &str| v == "/admin/books/add/";
    for view in &views {
        let anon = app.browser(Who::Anonymous).get(view).await;
        assert_eq!(anon.status, StatusCode::SEE_OTHER, "anonymous {view}");
        let next = serde_urlencoded::to_string([("next", view.as_str())]).unwrap();
        assert_eq!(
            anon.location.as_deref(),
            Some(format!("/login?{next}").as_str()),
            "anonymous {view}"
        );

        for who in [c.member, c.inactive_staff] {
            let r = app.browser(Who::User(who)).get(view).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "user {who} {view}");
            assert!(
                r.body
                    .contains(&format!("<meta name=\"csrf-token\" content=\"{CSRF}\">"))
            );
        }

        let r = app.browser(Who::User(c.staff)).get(view).await;
        let expected = if staff_refused(view) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        assert_eq!(r.status, expected, "staff {view}");

        let r = app.browser(Who::User(c.superuser)).get(view).await;
        let expected = if superuser_refused(view) {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::OK
        };
        assert_eq!(r.status, expected, "superuser {view}");
    }
}

async fn refused_posts_change_nothing(app: &TestApp) {
    let c = cast(app).await;
    let room = app.author("general", "chat").await;
    for who in [
        Who::Anonymous,
        Who::User(c.member),
        Who::User(c.inactive_staff),
    ] {
        let b = app.browser(who);
        let r = b
            .post(
                &format!("/admin/authors/{room}/delete/"),
                &[("post", "yes")],
            )
            .await;
        assert!(matches!(
            r.status,
            StatusCode::SEE_OTHER | StatusCode::FORBIDDEN
        ));
        let r = b
            .post(
                &format!("/admin/authors/{room}/change/"),
                &[("name", "hacked"), ("bio", "x")],
            )
            .await;
        assert!(matches!(
            r.status,
            StatusCode::SEE_OTHER | StatusCode::FORBIDDEN
        ));
        let r = b
            .post("/admin/authors/add/", &[("name", "new"), ("bio", "x")])
            .await;
        assert!(matches!(
            r.status,
            StatusCode::SEE_OTHER | StatusCode::FORBIDDEN
        ));
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM authors").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM authors WHERE name = 'general'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_log").await, 0);
}

async fn a_user_deactivated_a_moment_ago_is_refused_at_once(app: &TestApp) {
    let c = cast(app).await;
    let root = app.browser(Who::User(c.superuser));
    let stella = app.browser(Who::User(c.staff));
    assert_eq!(stella.get("/admin/").await.status, StatusCode::OK);
    let r = root
        .post(
            &format!("/admin/users/{}/change/", c.staff),
            &[("username", "stella"), ("is_staff", "on"), ("_save", "1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(stella.get("/admin/").await.status, StatusCode::FORBIDDEN);
    let writes = app.host.writes();
    assert!(writes.contains(&("users".to_owned(), vec![c.staff], "Changed".to_owned())));
    let message: String =
        sqlx::query_scalar("SELECT change_message FROM admin_log WHERE object_id = $1")
            .bind(c.staff.to_string())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(message, "Changed active.");
}

async fn plain_staff_cannot_delete_users_nor_change_superusers(app: &TestApp) {
    let c = cast(app).await;
    let stella = app.browser(Who::User(c.staff));

    let r = stella
        .post(
            &format!("/admin/users/{}/delete/", c.member),
            &[("post", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = stella
        .post(
            "/admin/users/",
            &[
                ("action", "delete_selected"),
                ("_selected_action", &c.member.to_string()),
                ("post", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 4);
    let list = stella.get("/admin/users/").await;
    assert!(
        !list.body.contains("delete_selected"),
        "no delete action offered"
    );

    // A superuser's account is view-only for plain staff.
    let page = stella
        .get(&format!("/admin/users/{}/change/", c.superuser))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("View user") && !page.body.contains("name=\"_save\""));
    let r = stella
        .post(
            &format!("/admin/users/{}/change/", c.superuser),
            &[("username", "taken")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = stella
        .post(
            &format!("/admin/users/{}/password/", c.superuser),
            &[("password1", "p4ssw0rd!"), ("password2", "p4ssw0rd!")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Nor can staff make anyone a superuser: the field is not theirs to change.
    let r = stella
        .post(
            &format!("/admin/users/{}/change/", c.member),
            &[
                ("username", "mia"),
                ("is_active", "on"),
                ("is_superuser", "on"),
                ("_save", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE is_superuser = 1")
            .await,
        1
    );

    // Nobody deletes their own account here.
    let root = app.browser(Who::User(c.superuser));
    let r = root
        .get(&format!("/admin/users/{}/delete/", c.superuser))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // The superuser may delete others.
    let r = root
        .post(
            &format!("/admin/users/{}/delete/", c.member),
            &[("post", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 3);
}

async fn the_change_list_searches_filters_sorts_and_pages(app: &TestApp) {
    let c = cast(app).await;
    let alice = app.user("alice", false, false).await;
    let general = app.author("general", "").await;
    let random = app.author("random", "").await;
    let now = parley_admin::now_ms();
    for i in 0..45 {
        app.book(general, alice, &format!("note {i}"), now).await;
    }
    app.book(random, c.member, "100% sure", now).await;
    app.book(random, c.member, "100 percent sure", now).await;
    app.book(random, c.member, "an OLD_ONE", 1_000_000).await;
    let b = app.browser(Who::User(c.staff));

    let page1 = b.get("/admin/books/").await;
    assert_eq!(page1.status, StatusCode::OK);
    assert!(page1.body.contains("48 books"));
    assert_eq!(rows(&page1.body), 20);
    let page3 = b.get("/admin/books/?p=3").await;
    assert_eq!(rows(&page3.body), 8);
    assert!(page3.body.contains("Page 3 of 3"));
    // Out-of-range and malformed parameters are ignored or clamped, never a 500.
    for q in [
        "?p=99",
        "?p=abc",
        "?p=-1",
        "?o=99",
        "?o=x",
        "?author_id=abc",
        "?created_ms=someday",
        "?zzz=1",
        "?q=",
    ] {
        assert_eq!(
            b.get(&format!("/admin/books/{q}")).await.status,
            StatusCode::OK,
            "{q}"
        );
    }

    // Search is case-insensitive, and % and _ are literal.
    let r = b.get("/admin/books/?q=100%25").await;
    assert!(
        r.body.contains("1 book") && r.body.contains("100% sure"),
        "{}",
        r.body
    );
    let r = b.get("/admin/books/?q=old_one").await;
    assert!(r.body.contains("1 book"));
    assert!(r.body.contains("(48 total)"));
    let r = b.get("/admin/books/?q=_").await;
    assert!(r.body.contains("1 book"));

    // Filters: by related object, and by date.
    let r = b.get(&format!("/admin/books/?author_id={random}")).await;
    assert!(r.body.contains("3 books"));
    let r = b.get(&format!("/admin/books/?added_by={alice}&p=3")).await;
    assert_eq!(rows(&r.body), 5);
    let r = b.get("/admin/books/?created_ms=today").await;
    assert!(r.body.contains("47 books"));
    let r = b
        .get(&format!(
            "/admin/books/?created_ms=past7&author_id={random}&q=sure"
        ))
        .await;
    assert!(r.body.contains("2 books"));
    let r = b.get("/admin/users/?is_staff=1").await;
    assert!(r.body.contains("3 users"));
    let r = b.get("/admin/users/?is_active=0").await;
    assert!(r.body.contains("1 user") && r.body.contains("ivan"));
    let r = b.get("/admin/authors/?kind=private").await;
    assert!(r.body.contains("0 authors"));

    // Sorting by the first column (username), then reversed.
    let up = b.get("/admin/users/?o=1").await.body;
    let down = b.get("/admin/users/?o=-1").await.body;
    assert!(up.find("\">alice</a>").unwrap() < up.find("\">stella</a>").unwrap());
    assert!(down.find("\">alice</a>").unwrap() > down.find("\">stella</a>").unwrap());
    assert!(
        up.contains("href=\"?o=-1\""),
        "clicking the sorted header again reverses it"
    );
    // Sorting by a related column sorts by its name.
    let by_room = b.get("/admin/books/?o=-2").await.body;
    assert!(
        by_room.contains("100% sure"),
        "random sorts before general when descending"
    );
}

async fn adding_with_bad_input_keeps_the_input_and_saves_nothing(app: &TestApp) {
    let c = cast(app).await;
    let b = app.browser(Who::User(c.staff));
    let r = b
        .post(
            "/admin/authors/add/",
            &[
                ("name", "bad name!"),
                ("bio", "<b>kept</b>"),
                ("_save", "1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        r.body
            .contains("An author name may contain only letters, digits, - and _")
    );
    assert!(r.body.contains("value=\"bad name!\""));
    assert!(r.body.contains("value=\"&lt;b&gt;kept&lt;/b&gt;\""));
    let r = b
        .post("/admin/authors/add/", &[("name", ""), ("bio", "x")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("A public author needs a name."));
    let r = b
        .post(
            "/admin/authors/add/",
            &[("name", "ok"), ("bio", &"t".repeat(201))],
        )
        .await;
    assert!(
        r.body
            .contains("Ensure this value has at most 200 characters (it has 201).")
    );
    let r = b
        .post("/admin/authors/add/", &[("name", "ok"), ("bio", "a\0b")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Null characters are not allowed."));
    assert_eq!(app.count("SELECT COUNT(*) FROM authors").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_log").await, 0);
}

async fn adding_an_author_says_so_once_logs_it_and_tells_the_hooks(app: &TestApp) {
    let c = cast(app).await;
    let b = app.browser(Who::User(c.staff));
    let r = b
        .post(
            "/admin/authors/add/",
            &[
                ("name", "General"),
                ("bio", "all things"),
                ("added_by", &c.member.to_string()),
                ("_save", "1"),
            ],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/admin/authors/"));
    let list = b.follow(&r).await;
    assert!(
        list.body
            .contains("The author “General” was added successfully.")
    );
    assert!(
        !b.get("/admin/authors/")
            .await
            .body
            .contains("was added successfully"),
        "a flash shows once"
    );
    let (kind, key, by): (String, String, i64) =
        sqlx::query_as("SELECT kind, name_key, added_by FROM authors")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (kind.as_str(), key.as_str(), by),
        ("public", "general", c.member)
    );
    let (flag, repr, msg, who): (i64, String, String, i64) =
        sqlx::query_as("SELECT action_flag, object_repr, change_message, user_id FROM admin_log")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (flag, repr.as_str(), msg.as_str(), who),
        (1, "General", "Added.", c.staff)
    );
    let room: i64 = app.count("SELECT id FROM authors").await;
    assert!(
        app.host
            .writes()
            .contains(&("authors".to_owned(), vec![room], "Added".to_owned()))
    );
    let index = b.get("/admin/").await;
    assert!(
        index.body.contains("Recent actions")
            && index
                .body
                .contains(&format!("/admin/authors/{room}/change/"))
    );
}

async fn the_three_save_buttons_go_where_django_goes(app: &TestApp) {
    let c = cast(app).await;
    let b = app.browser(Who::User(c.superuser));
    let r = b
        .post(
            "/admin/authors/add/",
            &[("name", "one"), ("bio", ""), ("_addanother", "1")],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/admin/authors/add/"));
    assert!(
        b.follow(&r)
            .await
            .body
            .contains("You may add another author below.")
    );
    let r = b
        .post(
            "/admin/authors/add/",
            &[("name", "two"), ("bio", ""), ("_continue", "1")],
        )
        .await;
    let id: i64 = app.count("SELECT id FROM authors WHERE name = 'two'").await;
    assert_eq!(r.location, Some(format!("/admin/authors/{id}/change/")));
    let page = b.follow(&r).await;
    assert!(page.body.contains("You may edit it again below."));
    assert!(page.body.contains("value=\"two\""));
}

async fn a_taken_name_is_an_error_next_to_the_field(app: &TestApp) {
    let c = cast(app).await;
    app.author("general", "").await;
    let random = app.author("random", "").await;
    let b = app.browser(Who::User(c.superuser));
    let r = b
        .post(
            "/admin/users/add/",
            &[
                ("username", "MIA"),
                ("password1", "long enough"),
                ("password2", "long enough"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("A user with that username already exists."));
    assert!(r.body.contains("value=\"MIA\""));
    let r = b
        .post(
            &format!("/admin/authors/{random}/change/"),
            &[("name", "General"), ("bio", "")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("An author with that name already exists."));
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 4);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM authors WHERE name = 'random'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_log").await, 0);
}

async fn changes_are_logged_with_what_changed_and_shown_in_history(app: &TestApp) {
    let c = cast(app).await;
    let room = app.author("general", "old topic").await;
    let b = app.browser(Who::User(c.staff));
    let r = b
        .post(
            &format!("/admin/authors/{room}/change/"),
            &[("name", "lobby"), ("bio", "new topic"), ("_save", "1")],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/admin/authors/"));
    assert!(
        b.follow(&r)
            .await
            .body
            .contains("The author “lobby” was changed successfully.")
    );
    let r = b
        .post(
            &format!("/admin/authors/{room}/change/"),
            &[("name", "lobby"), ("bio", "new topic")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM authors WHERE name_key = 'lobby'")
            .await,
        1
    );
    let history = b.get(&format!("/admin/authors/{room}/history/")).await;
    assert!(history.body.contains("Changed name and bio."));
    assert!(history.body.contains("No fields changed."));
    assert!(history.body.contains("stella"));
    // A deleted object keeps its history page.
    let root = app.browser(Who::User(c.superuser));
    root.post(
        &format!("/admin/authors/{room}/delete/"),
        &[("post", "yes")],
    )
    .await;
    let history = root.get(&format!("/admin/authors/{room}/history/")).await;
    assert_eq!(history.status, StatusCode::OK);
    assert!(history.body.contains("Deleted."));
}

async fn the_delete_page_lists_what_goes_and_only_a_confirmed_post_deletes(app: &TestApp) {
    let c = cast(app).await;
    let room = app.author("general", "").await;
    for i in 0..12 {
        app.book(room, c.member, &format!("book number {i}"), 1)
            .await;
    }
    app.fan(room, c.member).await;
    app.fan(room, c.staff).await;
    let b = app.browser(Who::User(c.staff));
    let page = b.get(&format!("/admin/authors/{room}/delete/")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("Are you sure you want to delete the author “general”?")
    );
    assert!(page.body.contains("Books: 12"));
    assert!(page.body.contains("Fans: 2"));
    assert!(page.body.contains("Fans: mia"));
    assert!(page.body.contains("#1: book number 0"));
    assert!(page.body.contains("… and 2 more books"));
    let r = b.post(&format!("/admin/authors/{room}/delete/"), &[]).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "a POST without post=yes asks again"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM books").await, 12);

    let r = b
        .post(
            &format!("/admin/authors/{room}/delete/"),
            &[("post", "yes")],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/admin/authors/"));
    assert!(
        b.follow(&r)
            .await
            .body
            .contains("The author “general” was deleted successfully.")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM authors").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM books").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM fans").await, 0);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_log WHERE action_flag = 3")
            .await,
        1
    );
    assert_eq!(
        b.get(&format!("/admin/authors/{room}/delete/"))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

async fn deleting_selected_rows_asks_first_then_deletes_them_together(app: &TestApp) {
    let c = cast(app).await;
    let room = app.author("general", "").await;
    let a = app.book(room, c.member, "first", 1).await.to_string();
    let b_ = app.book(room, c.member, "second", 1).await.to_string();
    app.book(room, c.member, "third", 1).await;
    let b = app.browser(Who::User(c.staff));

    let r = b
        .post("/admin/books/", &[("action", "delete_selected")])
        .await;
    assert!(b.follow(&r).await.body.contains("Items must be selected"));

    let picked = [
        ("action", "delete_selected"),
        ("_selected_action", a.as_str()),
        ("_selected_action", b_.as_str()),
    ];
    let confirm = b.post("/admin/books/", &picked).await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(
        confirm
            .body
            .contains("Are you sure you want to delete the selected books?")
    );
    assert!(confirm.body.contains("Books: 2"));
    assert_eq!(app.count("SELECT COUNT(*) FROM books").await, 3);

    let mut confirmed = picked.to_vec();
    confirmed.push(("post", "yes"));
    let r = b.post("/admin/books/", &confirmed).await;
    assert!(
        b.follow(&r)
            .await
            .body
            .contains("Successfully deleted 2 books.")
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM books").await, 1);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_log WHERE action_flag = 3 AND model = 'books'")
            .await,
        2
    );
    let writes = app.host.writes();
    assert!(
        writes
            .iter()
            .any(|(m, ids, w)| m == "books" && ids.len() == 2 && w == "Deleted")
    );
    // The books model deletes through its own delete_model, not the admin's DELETE.
    let mut gone = app.host.deleted_books();
    gone.sort_unstable();
    assert_eq!(
        gone,
        vec![a.parse::<i64>().unwrap(), b_.parse::<i64>().unwrap()]
    );
}

async fn passwords_are_set_through_the_host_and_hashes_never_shown(app: &TestApp) {
    let c = cast(app).await;
    let b = app.browser(Who::User(c.staff));
    let change = b.get(&format!("/admin/users/{}/change/", c.member)).await;
    assert!(!change.body.contains("SECRETHASHPART") && !change.body.contains(FAKE_HASH));
    assert!(change.body.contains("algorithm: argon2id"));
    assert!(
        change
            .body
            .contains(&format!("/admin/users/{}/password/", c.member))
    );
    // The change form takes no hash.
    let r = b
        .post(
            &format!("/admin/users/{}/change/", c.member),
            &[
                ("username", "mia"),
                ("is_active", "on"),
                ("password_hash", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE password_hash = 'x'")
            .await,
        0
    );

    let url = format!("/admin/users/{}/password/", c.member);
    let page = b.get(&url).await;
    assert!(!page.body.contains("SECRETHASHPART"));
    let r = b
        .post(
            &url,
            &[("password1", "abcdefgh1"), ("password2", "different")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("The two password fields didn’t match."));
    let r = b
        .post(&url, &[("password1", "short"), ("password2", "short")])
        .await;
    assert!(r.body.contains("A password has at least 8 characters."));
    assert!(
        !r.body.contains("value=\"short\""),
        "a password is never echoed back"
    );
    let r = b
        .post(
            &url,
            &[
                ("password1", "correct horse"),
                ("password2", "correct horse"),
            ],
        )
        .await;
    assert_eq!(
        r.location,
        Some(format!("/admin/users/{}/change/", c.member))
    );
    assert!(
        b.follow(&r)
            .await
            .body
            .contains("Password changed successfully.")
    );
    assert_eq!(
        app.host.passwords(),
        vec![(c.member, "correct horse".to_owned())]
    );
    assert!(app.host.writes().contains(&(
        "users".to_owned(),
        vec![c.member],
        "PasswordChanged".to_owned()
    )));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_log WHERE change_message = 'Changed password.'")
            .await,
        1
    );
    // Models without a password form have no such page.
    assert_eq!(
        b.get("/admin/authors/1/password/").await.status,
        StatusCode::NOT_FOUND
    );
}

async fn adding_a_user_sets_the_password_through_the_host(app: &TestApp) {
    let c = cast(app).await;
    let b = app.browser(Who::User(c.staff));
    let form = b.get("/admin/users/add/").await.body;
    assert!(form.contains("name=\"password1\"") && form.contains("name=\"password2\""));
    let r = b
        .post(
            "/admin/users/add/",
            &[
                ("username", "newbie"),
                ("password1", "short"),
                ("password2", "short"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("A password has at least 8 characters."));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE username = 'newbie'")
            .await,
        0
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM admin_log").await, 0);

    let r = b
        .post(
            "/admin/users/add/",
            &[
                ("username", "Newbie"),
                ("is_active", "on"),
                ("password1", "long enough"),
                ("password2", "long enough"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let id: i64 = app
        .count("SELECT id FROM users WHERE username_key = 'newbie'")
        .await;
    assert_eq!(app.host.passwords(), vec![(id, "long enough".to_owned())]);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE password_hash = '!'")
            .await,
        0
    );
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_log WHERE action_flag = 1")
            .await,
        1
    );
}

async fn unknown_things_are_404_and_odd_requests_never_500(app: &TestApp) {
    let c = cast(app).await;
    let room = app.author("general", "").await;
    let b = app.browser(Who::User(c.superuser));
    for path in [
        "/admin/authors/999/change/",
        "/admin/authors/abc/change/",
        "/admin/nope/",
        "/admin/authors/1/nope/",
        "/admin/a/b/c/d/",
    ] {
        assert_eq!(b.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let r = b.get("/admin/authors").await;
    assert_eq!(
        (r.status, r.location.as_deref()),
        (StatusCode::MOVED_PERMANENTLY, Some("/admin/authors/"))
    );
    assert_eq!(
        b.post("/admin/authors/999/change/", &[("name", "x")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        b.post("/admin/authors/999/delete/", &[("post", "yes")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let r = b
        .post(
            &format!("/admin/authors/{room}/change/"),
            &[("name", "general"), ("added_by", "12345")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("Select a valid choice."));
    let r = b.get("/admin/authors/?q=%FF%FE").await;
    assert!(r.status == StatusCode::OK || r.status == StatusCode::BAD_REQUEST);
    // PostgreSQL refuses a NUL in text; a search for one finds nothing, on both engines.
    let r = b.get("/admin/authors/?q=gen%00").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(rows(&r.body), 0);
}

async fn pages_carry_the_csrf_token_escape_data_and_need_no_inline_code(app: &TestApp) {
    let c = cast(app).await;
    let room = app.author("general", "<script>alert(1)</script>").await;
    let msg = app
        .book(room, c.member, "<img src=x onerror=alert(1)>", 1)
        .await;
    let b = app.browser(Who::User(c.superuser));
    let pages = [
        "/admin/".to_owned(),
        "/admin/authors/".to_owned(),
        format!("/admin/authors/{room}/change/"),
        format!("/admin/authors/{room}/delete/"),
        format!("/admin/authors/{room}/history/"),
        "/admin/books/".to_owned(),
        format!("/admin/books/{msg}/change/"),
        "/admin/nope/".to_owned(),
    ];
    for path in &pages {
        let body = b.get(path).await.body;
        assert!(
            body.contains(&format!("<meta name=\"csrf-token\" content=\"{CSRF}\">")),
            "{path}"
        );
        assert!(
            body.contains(&format!("name=\"csrf_token\" value=\"{CSRF}\"")),
            "{path}: the log-out form"
        );
        assert!(
            !body.contains("<script") && !body.contains(" style=") && !body.contains("<img"),
            "{path}"
        );
        assert!(
            body.contains("Home") && body.contains("Log out") && body.contains("View site"),
            "{path}"
        );
    }
    let list = b.get("/admin/authors/").await.body;
    assert!(list.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(list.contains("<nav class=\"breadcrumbs\""));

    let css = reqwest::get(format!("{}/admin/static/admin.css", app.base))
        .await
        .unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    assert!(
        css.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
}

async fn a_row_filter_hides_rows_from_some_users_in_every_view(app: &TestApp) {
    let c = cast(app).await;
    let public = app.author("known", "").await;
    let private = app.private_author().await;
    let shown = app.book(public, c.member, "a public book", 1).await;
    let hidden = app.book(private, c.member, "a secret diary", 1).await;
    let stella = app.browser(Who::User(c.staff));
    let root = app.browser(Who::User(c.superuser));

    // Plain staff: not in the list, the counts or a search, and 404 on every object view.
    let list = stella.get("/admin/books/").await.body;
    assert!(
        list.contains("1 book") && !list.contains("secret diary"),
        "{list}"
    );
    assert!(
        !stella
            .get("/admin/books/?q=diary")
            .await
            .body
            .contains("secret diary")
    );
    assert!(
        stella
            .get("/admin/authors/")
            .await
            .body
            .contains("1 author")
    );
    assert!(
        stella
            .get("/admin/")
            .await
            .body
            .contains("<td class=\"count\">1</td>")
    );
    for view in ["change", "delete", "history"] {
        let r = stella.get(&format!("/admin/books/{hidden}/{view}/")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{view}");
    }
    let r = stella
        .post(&format!("/admin/books/{hidden}/change/"), &[("title", "x")])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = stella
        .post(
            &format!("/admin/books/{hidden}/delete/"),
            &[("post", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Picked by id in "delete selected", a hidden row is as good as absent.
    let (h, s) = (hidden.to_string(), shown.to_string());
    let picked = [
        ("action", "delete_selected"),
        ("_selected_action", h.as_str()),
        ("_selected_action", s.as_str()),
    ];
    let confirm = stella.post("/admin/books/", &picked).await;
    assert!(confirm.body.contains("Books: 1") && !confirm.body.contains("secret diary"));
    let r = stella
        .get(&format!("/admin/authors/{private}/change/"))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Superusers see and manage everything; the log records it all.
    let list = root.get("/admin/books/").await.body;
    assert!(list.contains("2 books") && list.contains("secret diary"));
    let r = root
        .post(
            &format!("/admin/books/{hidden}/change/"),
            &[("title", "an edited diary"), ("_save", "1")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = root
        .post(
            &format!("/admin/books/{hidden}/delete/"),
            &[("post", "yes")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM admin_log WHERE model = 'books'")
            .await,
        2
    );
    // The deleted row's history: superusers still see it, plain staff cannot tell it existed.
    let history = root.get(&format!("/admin/books/{hidden}/history/")).await;
    assert_eq!(history.status, StatusCode::OK);
    assert!(history.body.contains("Deleted."));
    let r = stella.get(&format!("/admin/books/{hidden}/history/")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
