//! Bad input changes nothing and reaches no query: unparseable addresses are 404, look-alike
//! names are refused, and text cannot turn itself around.

use crate::on_both_engines;
use crate::support::{PASSWORD, TestApp};

on_both_engines!(
    an_address_naming_nothing_parseable_is_404_before_any_query,
    a_name_that_looks_like_anothers_is_refused_but_old_look_alikes_keep_working,
    staff_cannot_rename_an_account_to_a_look_alike_but_can_edit_old_ones,
    the_migrations_fold_is_the_codes,
    text_cannot_turn_itself_around_to_disguise_a_link,
);

async fn an_address_naming_nothing_parseable_is_404_before_any_query(app: &TestApp) {
    let alice = app.member("alice").await;
    assert_eq!(
        alice.post("/rooms", &[("name", "general")]).await.status,
        303
    );
    let gets = [
        "/dm/a%00b",
        "/rooms/a%00b",
        "/rooms/general%00",
        "/rooms/general%00/messages",
        "/rooms/general%00/messages?after=0",
        "/dm/a%00b/messages?after=0",
        "/dm/a%00b/messages/1",
        "/rooms/general/messages/1%00",
        "/rooms/%E2%80%AEgeneral",
        "/dm/al%C3%AFce",
        "/rooms/general/messages/99999999999999999999999",
    ];
    for path in gets {
        let page = alice.get(path).await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
        assert_eq!(alice.get_htmx(path).await.status, 404, "{path} (htmx)");
    }
    let posts = [
        "/dm/a%00b/read",
        "/rooms/a%00b/read",
        "/rooms/general%00/messages",
        "/rooms/a%00b/topic",
        "/dm/a%00b/calls",
    ];
    for path in posts {
        let page = alice
            .post(path, &[("body", "hi"), ("seq", "1"), ("topic", "t")])
            .await;
        assert_eq!(page.status, 404, "{path}: {}", page.body);
    }
    let page = alice
        .post("/favourites", &[("conversation", "/dm/a\0b")])
        .await;
    assert_eq!(page.status, 404);
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
    assert_eq!(app.count("SELECT COUNT(*) FROM rooms").await, 1);
}

async fn a_name_that_looks_like_anothers_is_refused_but_old_look_alikes_keep_working(
    app: &TestApp,
) {
    app.user("alice").await;
    app.user("bob").await;
    let mut c = app.client().await;
    for alike in [
        "aIice", "a1ice", "al1ce", "alice.", "a-lice", "b0b", "bob_", "B0B",
    ] {
        let page = c.register(alike, PASSWORD).await;
        assert_eq!(page.status, 422, "{alike}");
        assert_eq!(
            page.select("#username-error"),
            [
                "That username is too similar to an existing name: people could take one for the other."
            ],
            "{alike}"
        );
    }
    assert_eq!(
        c.register("alicia", PASSWORD).await.status,
        303,
        "not alike"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 3);
    // Two sign-ups at once: the unique fold settles it.
    use parley::domain::Username;
    use parley::store::users::{self, CreateUserError};
    let pool = app.pool().await;
    let raced = users::create(&pool, &Username::parse("8ob.").unwrap(), "x", false).await;
    assert!(raced.is_ok(), "8 is not taken for b: {raced:?}");
    let raced = users::create(&pool, &Username::parse("b0b-").unwrap(), "x", false).await;
    assert!(
        matches!(raced, Err(CreateUserError::TooSimilar)),
        "{raced:?}"
    );
    // Accounts from before the rule that collide have no fold, and still log in.
    sqlx::query("UPDATE users SET username_fold = NULL WHERE username = 'bob'")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO users (username, username_key, password_hash, created_ms)
         SELECT 'b0b', 'b0b', password_hash, 0 FROM users WHERE username = 'bob'",
    )
    .execute(&pool)
    .await
    .unwrap();
    for name in ["bob", "b0b"] {
        let mut c = app.client().await;
        assert_eq!(c.login(name, PASSWORD).await.status, 303, "{name}");
    }
}

/// The migration folded the names that existed with SQL; the code folds new ones in Rust.
async fn the_migrations_fold_is_the_codes(app: &TestApp) {
    let migration = include_str!("../../migrations/sqlite/20261215000002_username_fold.sql");
    assert_eq!(
        migration,
        include_str!("../../migrations/postgres/20261215000002_username_fold.sql")
    );
    let expr = migration
        .split("UPDATE users SET username_fold =")
        .nth(1)
        .and_then(|rest| rest.split("WHERE").next())
        .expect("the migration's fold");
    let pool = app.pool().await;
    for name in [
        "aIice", "A1.i_c-E", "b0b", "rnary", "vvendy", "5am", "x|y", "Zed-2",
    ] {
        let sql = format!("SELECT {expr} FROM (SELECT $1 AS username) AS t");
        let folded: String = sqlx::query_scalar(&sql)
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap();
        let expected = parley::domain::Username::parse(name)
            .map(|n| n.fold())
            .unwrap_or_else(|_| folded.clone());
        assert_eq!(folded, expected, "{name}");
    }
}

async fn text_cannot_turn_itself_around_to_disguise_a_link(app: &TestApp) {
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    assert_eq!(
        alice.post("/rooms", &[("name", "general")]).await.status,
        303
    );
    // Shown right-to-left from the override on, this would read
    // "https://evil.example/https://good-bank.com".
    let disguised = "pay here https://evil.example/\u{202E}moc.knab-doog//:sptth";
    let id = alice.say("/rooms/general", disguised).await;
    for page in [
        bob.get("/rooms/general").await,
        bob.poll("/rooms/general", id - 1).await,
        bob.get_htmx(&format!("/rooms/general/messages/{id}")).await,
    ] {
        assert!(!page.body.contains('\u{202E}'), "{}", page.body);
        let body = page.select(&format!("#m-{id} .body"));
        assert_eq!(
            body,
            ["pay here https://evil.example/moc.knab-doog//:sptth"]
        );
        assert_eq!(
            page.attrs(&format!("#m-{id} .body a[dir=ltr]"), "href"),
            ["https://evil.example/moc.knab-doog//:sptth"],
            "the link is isolated from the text around it"
        );
    }
    // What was typed is kept as typed (search finds it), only never shown turning around.
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 1);
    for topic in ["\u{202E}cipot", "a \u{2067}b\u{2069}"] {
        let page = alice
            .post("/rooms/general/topic", &[("topic", topic)])
            .await;
        assert_eq!(page.status, 422, "{topic:?}");
        assert!(
            page.body
                .contains("A topic cannot contain characters that change the direction of text.")
        );
    }
    let rtl = "שלום, see https://example.org/";
    let id = alice.say("/rooms/general", rtl).await;
    let page = bob.get("/rooms/general").await;
    assert_eq!(
        page.select(&format!("#m-{id} .body")),
        [rtl],
        "right-to-left text is kept"
    );
}

async fn staff_cannot_rename_an_account_to_a_look_alike_but_can_edit_old_ones(app: &TestApp) {
    let boss = crate::admin::superuser(app).await;
    app.member("alice").await;
    app.member("carol").await;
    let pool = app.pool().await;
    let id = |name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE username = $1")
                .bind(name)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let change = |who: i64, name: &'static str| {
        let boss = &boss;
        async move {
            boss.post(
                &format!("/admin/users/{who}/change/"),
                &[("username", name), ("is_active", "on"), ("_save", "1")],
            )
            .await
        }
    };
    let carol = id("carol").await;
    let refused = change(carol, "aIice").await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("too similar"), "{}", refused.body);
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users WHERE username = 'carol'")
            .await,
        1
    );
    assert_eq!(
        change(carol, "caroline").await.status,
        303,
        "a name of its own is fine"
    );
    // An account from before the rule that looks like another (no fold) stays editable under
    // its own name.
    sqlx::query(
        "INSERT INTO users (username, username_key, password_hash, created_ms)
         SELECT 'a1ice', 'a1ice', password_hash, 0 FROM users WHERE username = 'alice'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let old = id("a1ice").await;
    let kept = change(old, "a1ice").await;
    assert_eq!(kept.status, 303, "{}", kept.body);
}
