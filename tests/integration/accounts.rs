//! Registering, logging in and out, sessions, throttling, CSRF and the headers every page carries.

use crate::on_both_engines;
use crate::support::{Client, PASSWORD, TestApp};

on_both_engines!(
    two_sign_ups_racing_for_a_name_are_settled_by_the_database,
    registering_logs_you_in_and_the_home_page_greets_you,
    a_taken_name_is_refused_whatever_its_case,
    bad_names_and_weak_passwords_get_a_clear_422_and_store_nothing,
    a_registration_without_a_confirmation_field_is_accepted,
    logging_in_gives_a_new_session_id,
    wrong_credentials_get_401_with_the_form,
    repeated_failures_are_throttled_even_with_the_right_password,
    a_burst_of_concurrent_guesses_gets_no_more_than_the_limit,
    people_change_their_password_and_their_other_sessions_end,
    logging_out_ends_the_session,
    a_session_survives_a_server_restart,
    posts_without_the_right_csrf_token_are_forbidden,
    pages_carry_the_security_headers,
    the_app_shell_sends_strangers_to_the_login_page,
    unknown_pages_get_a_404_page_and_health_answers,
    login_returns_to_the_page_that_asked_but_never_off_site,
);

async fn registering_logs_you_in_and_the_home_page_greets_you(app: &TestApp) {
    let mut c = app.client().await;
    let page = c.register("alice", PASSWORD).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/"));
    let set_cookie: Vec<_> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let session = set_cookie
        .iter()
        .find(|c| c.starts_with("parley_session="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Lax"),
        "{session}"
    );
    let home = c.get("/").await;
    assert_eq!(home.status, 200);
    assert_eq!(home.select(".welcome h1"), ["Hello, alice"]);
}

async fn a_taken_name_is_refused_whatever_its_case(app: &TestApp) {
    app.user("alice").await;
    let mut c = app.client().await;
    let page = c.register("ALICE", PASSWORD).await;
    assert_eq!(page.status, 422);
    assert_eq!(page.select("#username-error"), ["That username is taken."]);
    assert_eq!(
        page.attr("#username", "value").as_deref(),
        Some("ALICE"),
        "the input is kept"
    );
    assert!(
        !page.body.contains(PASSWORD),
        "the password is never echoed"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
}

async fn bad_names_and_weak_passwords_get_a_clear_422_and_store_nothing(app: &TestApp) {
    let cases = [
        ("al", PASSWORD, "A username has 3 to 32 characters."),
        (
            &"x".repeat(33),
            PASSWORD,
            "A username has 3 to 32 characters.",
        ),
        ("bob smith", PASSWORD, "A username may contain only"),
        ("<script>", PASSWORD, "A username may contain only"),
        ("", PASSWORD, "A username has 3 to 32 characters."),
        ("bob", "short", "A password has at least 8 characters."),
        ("bob", "", "A password has at least 8 characters."),
        (
            "bob",
            &"p".repeat(1025),
            "A password has at most 1,024 bytes.",
        ),
        (
            "bobbybob",
            "bobbybob",
            "The password must not be the username.",
        ),
    ];
    let mut c = app.client().await;
    for (name, password, message) in cases {
        let page = c.register(name, password).await;
        assert_eq!(page.status, 422, "{name:?}/{password:?}");
        assert!(
            page.body.contains(message),
            "{name:?}: expected {message:?}"
        );
        assert!(!page.body.contains("<script>"), "user input is escaped");
    }
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 0);
}

async fn a_registration_without_a_confirmation_field_is_accepted(app: &TestApp) {
    let c = app.client().await;
    let page = c
        .post(
            "/register",
            &[("username", "carol"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(page.status, 303);
}

async fn logging_in_gives_a_new_session_id(app: &TestApp) {
    let mut alice = app.member("alice").await;
    let before = session_cookie(&alice).await;
    let page = alice.login("alice", PASSWORD).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/"));
    let after = session_cookie(&alice).await;
    assert_ne!(before, after, "no session fixation: login rotates the id");
    // The old id no longer logs anyone in.
    let stale = Client::new(&app.base).await;
    let resp = stale
        .http
        .get(format!("{}/", app.base))
        .header("cookie", format!("parley_session={before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 303);
}

async fn wrong_credentials_get_401_with_the_form(app: &TestApp) {
    app.member("alice").await;
    let mut c = app.client().await;
    let page = c.login("alice", "wrong password").await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Wrong username or password."));
    assert!(page.has("form[action='/login'] input[name=username]"));
    let page = c.login("nobody", PASSWORD).await;
    assert_eq!(page.status, 401);
    assert_eq!(c.get("/").await.status, 303);
}

async fn repeated_failures_are_throttled_even_with_the_right_password(app: &TestApp) {
    app.member("alice").await;
    let mut c = app.client().await;
    for _ in 0..5 {
        assert_eq!(c.login("alice", "wrong password").await.status, 401);
    }
    let page = c.login("alice", PASSWORD).await;
    assert_eq!(page.status, 429);
    assert!(page.body.contains("Too many failed log-in attempts"));
    // Another name from the same address still may try (the address limit is higher).
    app.member("bob").await;
    let mut other = app.client().await;
    assert_eq!(other.login("bob", PASSWORD).await.status, 303);
}

async fn a_burst_of_concurrent_guesses_gets_no_more_than_the_limit(app: &TestApp) {
    app.member("alice").await;
    let pages = app.guesses_at_once("alice", 12).await;
    let checked = pages.iter().filter(|p| p.status == 401).count();
    let refused = pages.iter().filter(|p| p.status == 429).count();
    assert_eq!(
        (checked, refused),
        (5, 7),
        "five guesses checked, the rest refused"
    );
}

async fn people_change_their_password_and_their_other_sessions_end(app: &TestApp) {
    let alice = app.member("alice").await;
    let mut elsewhere = app.client().await;
    assert_eq!(elsewhere.login("alice", PASSWORD).await.status, 303);
    let form = alice.get("/account/password").await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Change your password"));
    let new = "a brand new secret";
    let page = alice
        .post(
            "/account/password",
            &[
                ("current_password", "not my password"),
                ("new_password", new),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("That is not your current password."));
    let page = alice
        .post(
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", "short")],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("A password has at least 8 characters."));
    assert_eq!(elsewhere.get("/").await.status, 200, "nothing changed yet");

    let page = alice
        .post(
            "/account/password",
            &[("current_password", PASSWORD), ("new_password", new)],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert_eq!(page.location(), Some("/account/password?changed=1"));
    assert!(
        alice
            .get("/account/password?changed=1")
            .await
            .body
            .contains("Your password was changed.")
    );
    assert_eq!(alice.get("/").await.status, 200, "this session goes on");
    assert_eq!(elsewhere.get("/").await.status, 303, "the other one ended");
    let mut fresh = app.client().await;
    assert_eq!(fresh.login("alice", PASSWORD).await.status, 401);
    assert_eq!(fresh.login("alice", new).await.status, 303);
    // Guessing the current password from a stolen session is throttled as logging in is.
    for _ in 0..5 {
        let page = fresh
            .post(
                "/account/password",
                &[
                    ("current_password", "a guess"),
                    ("new_password", "x12345678"),
                ],
            )
            .await;
        assert_eq!(page.status, 422);
    }
    let page = fresh
        .post(
            "/account/password",
            &[("current_password", new), ("new_password", "x12345678")],
        )
        .await;
    assert_eq!(page.status, 429);
    // Strangers are sent to log in first.
    let page = app.client().await.get("/account/password").await;
    assert_eq!(page.location(), Some("/login?next=/account/password"));
}

async fn logging_out_ends_the_session(app: &TestApp) {
    let alice = app.member("alice").await;
    let page = alice.post("/logout", &[]).await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/login"));
    let home = alice.get("/").await;
    assert_eq!(home.status, 303);
    assert_eq!(home.location(), Some("/login"));
}

async fn a_session_survives_a_server_restart(app: &mut TestApp) {
    let alice = app.member("alice").await;
    let cookie = session_cookie(&alice).await;
    app.restart().await;
    let c = Client::new(&app.base).await;
    let resp = c
        .http
        .get(format!("{}/", app.base))
        .header("cookie", format!("parley_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.text().await.unwrap().contains("Hello, alice"));
}

async fn posts_without_the_right_csrf_token_are_forbidden(app: &TestApp) {
    let alice = app.member("alice").await;
    let anon = app.client().await;
    let no_token = anon
        .post_raw(
            "/register",
            &[("username", "mallory"), ("password", PASSWORD)],
            false,
        )
        .await;
    assert_eq!(no_token.status, 403);
    let wrong = anon
        .post_raw(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("csrf_token", &"0".repeat(64)),
            ],
            false,
        )
        .await;
    assert_eq!(wrong.status, 403);
    // A room nobody has opened: a post that got through would create it.
    let send = alice.post_raw("/rooms", &[("name", "books")], true).await;
    assert_eq!(send.status, 403);
    let logout = alice.post_raw("/logout", &[], false).await;
    assert_eq!(logout.status, 403);
    // A cross-site form post carrying a valid token is refused too.
    let resp = alice
        .http
        .post(format!("{}/rooms", app.base))
        .header("Origin", "https://evil.example")
        .form(&[("name", "books"), ("csrf_token", alice.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(app.count("SELECT COUNT(*) FROM users").await, 1);
    // Only the #general a fresh installation has, which alice (put in directly) has not joined.
    assert_eq!(app.count("SELECT COUNT(*) FROM rooms").await, 1);
    assert_eq!(app.count("SELECT COUNT(*) FROM memberships").await, 0);
    assert_eq!(alice.get("/").await.status, 200, "still logged in");
}

async fn pages_carry_the_security_headers(app: &TestApp) {
    let c = app.client().await;
    let page = c.get("/login").await;
    let h = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert!(h("content-security-policy").contains("script-src 'self'"));
    assert!(h("content-security-policy").contains("frame-ancestors 'none'"));
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert_eq!(h("x-frame-options"), "DENY");
    assert_eq!(h("referrer-policy"), "same-origin");
    assert!(page.attr("meta[name=csrf-token]", "content").is_some());
}

async fn the_app_shell_sends_strangers_to_the_login_page(app: &TestApp) {
    let c = app.client().await;
    let page = c.get("/").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/login"));
    let page = c.get("/rooms/general").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/login?next=/rooms/general"));
}

async fn unknown_pages_get_a_404_page_and_health_answers(app: &TestApp) {
    let c = app.client().await;
    let page = c.get("/no/such/page").await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("Not found"));
    assert_eq!(c.get("/healthz").await.status, 200);
}

async fn login_returns_to_the_page_that_asked_but_never_off_site(app: &TestApp) {
    app.member("alice").await;
    let c = app.client().await;
    let page = c
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "/rooms"),
            ],
        )
        .await;
    assert_eq!(page.location(), Some("/rooms"));
    let c = app.client().await;
    let page = c
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "//evil.example/"),
            ],
        )
        .await;
    assert_eq!(page.location(), Some("/"));
    // A tab is dropped by browsers, which would then read `//evil.example`.
    let c = app.client().await;
    let page = c
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "/\t/evil.example"),
            ],
        )
        .await;
    assert_eq!(page.location(), Some("/"));
    let page = c.get("/login?next=/%09/evil.example").await;
    assert_eq!(page.status, 303, "already logged in");
    assert_eq!(page.location(), Some("/"));
}

async fn session_cookie(c: &Client) -> String {
    c.cookie("parley_session")
        .expect("a session cookie in the jar")
}

#[tokio::test]
async fn createsuperuser_makes_a_staff_account_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("su.db").display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["createsuperuser", "--username", "root_admin"])
        .env("DATABASE_URL", &url)
        .env("PARLEY_SUPERUSER_PASSWORD", PASSWORD)
        .output()
        .expect("run parley createsuperuser");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["createsuperuser", "--username", "ROOT_ADMIN"])
        .env("DATABASE_URL", &url)
        .env("PARLEY_SUPERUSER_PASSWORD", PASSWORD)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "a second user with the same name is refused"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let weak = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["createsuperuser", "--username", "other"])
        .env("DATABASE_URL", &url)
        .env("PARLEY_SUPERUSER_PASSWORD", "short")
        .output()
        .unwrap();
    assert!(!weak.status.success());

    let app = TestApp::start_on(url).await;
    let mut c = app.client().await;
    assert_eq!(c.login("root_admin", PASSWORD).await.status, 303);
    let home = c.get("/").await;
    assert!(home.has("a[href='/admin/']"), "staff see the admin link");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused_before_any_handler_reads_them() {
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let huge = "x".repeat(200 * 1024);
    let page = alice
        .post_htmx("/rooms/general/messages", &[("body", &huge)])
        .await;
    assert_eq!(page.status, 413);
    // Chunked, without a Content-Length, too.
    let chunks =
        futures_util::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 4096])));
    let resp = alice
        .http
        .post(format!("{}/rooms/general/messages", app.base))
        .header("X-CSRF-Token", &alice.csrf)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
}

/// A failed login as forwarded by a proxy for the client at `forwarded_for`.
async fn failed_login_via_proxy(c: &Client, forwarded_for: &str, name: &str) -> u16 {
    let form = [
        ("username", name),
        ("password", "wrong password"),
        ("csrf_token", &c.csrf),
    ];
    c.http
        .post(format!("{}/login", c.base))
        .header("X-Forwarded-For", forwarded_for)
        .form(&form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_each_client_address_is_throttled_on_its_own() {
    let app =
        TestApp::sqlite_with(|s| s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let c = app.client().await;
    // Twenty failures from one client address, over many names (each under its own limit).
    for i in 0..20 {
        assert_eq!(
            failed_login_via_proxy(&c, "10.0.0.1", &format!("user{}", i / 4)).await,
            401
        );
    }
    assert_eq!(failed_login_via_proxy(&c, "10.0.0.1", "someone").await, 429);
    // What a client claims before the proxy's own entry does not change who it is.
    assert_eq!(
        failed_login_via_proxy(&c, "192.0.2.7, 10.0.0.1", "someone").await,
        429
    );
    assert_eq!(
        failed_login_via_proxy(&c, "garbage, 10.0.0.1", "someone").await,
        429
    );
    // Everyone else behind the same proxy may still log in.
    assert_eq!(failed_login_via_proxy(&c, "10.0.0.2", "someone").await, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_trusted_proxy_x_forwarded_for_is_ignored() {
    let app = TestApp::sqlite().await;
    let c = app.client().await;
    for i in 0..20 {
        let spoofed = format!("10.0.0.{i}");
        assert_eq!(
            failed_login_via_proxy(&c, &spoofed, &format!("user{}", i / 4)).await,
            401
        );
    }
    assert_eq!(
        failed_login_via_proxy(&c, "10.0.0.99", "someone").await,
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_may_make_only_so_many_accounts_an_hour() {
    let app = TestApp::sqlite().await;
    for i in 0..parley::web::SIGNUPS_PER_HOUR {
        let mut c = app.client().await;
        assert_eq!(c.register(&format!("user{i}"), PASSWORD).await.status, 303);
    }
    let mut c = app.client().await;
    let page = c.register("one-too-many", PASSWORD).await;
    assert_eq!(page.status, 429);
    assert!(
        page.body
            .contains("Too many new accounts from your address.")
    );
    // Past the limit, whether a name is taken is not said either.
    let page = c.register("user0", PASSWORD).await;
    assert_eq!(page.status, 429);
    assert!(!page.body.contains("taken"));
    assert_eq!(
        app.count("SELECT COUNT(*) FROM users").await,
        i64::from(parley::web::SIGNUPS_PER_HOUR)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_whether_names_are_taken_counts_as_signing_up() {
    let app = TestApp::sqlite().await;
    app.user("taken").await;
    let mut c = app.client().await;
    for _ in 1..parley::web::SIGNUPS_PER_HOUR {
        let page = c.register("taken", PASSWORD).await;
        assert_eq!(page.status, 422);
        assert_eq!(page.select("#username-error"), ["That username is taken."]);
    }
    let page = c.register("taken", PASSWORD).await;
    assert_eq!(
        page.status, 429,
        "a script cannot ask about names without end"
    );
    assert!(page.headers.contains_key("retry-after"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_cookies_from_other_sites_on_the_same_host_are_fine() {
    // Other apps on localhost (or a parent domain) can leave kilobytes of cookies.
    let app = TestApp::sqlite().await;
    let get = |cookie_bytes: usize| {
        let cookie = format!("other_app={}", "a".repeat(cookie_bytes));
        reqwest::Client::new()
            .get(format!("{}/login", app.base))
            .header("Cookie", cookie)
            .send()
    };
    assert_eq!(get(12 * 1024).await.unwrap().status(), 200);
    // Far past nginx's default total for request headers (32 KB), a clear refusal.
    assert_eq!(get(100 * 1024).await.unwrap().status(), 431);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_network_counts_as_one_address() {
    let app =
        TestApp::sqlite_with(|s| s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    let c = app.client().await;
    // Twenty failures, each from a different address of one /64 (a single subscriber has them all).
    for i in 1..=20 {
        let addr = format!("2001:db8:1:2::{i:x}");
        assert_eq!(
            failed_login_via_proxy(&c, &addr, &format!("user{}", i / 4)).await,
            401
        );
    }
    assert_eq!(
        failed_login_via_proxy(&c, "2001:db8:1:2:ffff::1", "someone").await,
        429
    );
    assert_eq!(
        failed_login_via_proxy(&c, "2001:db8:1:3::1", "someone").await,
        401
    );
}

/// The web layer checks for a taken name first; two sign-ups at once both pass that check, and
/// the unique rule, recognised by its name (PostgreSQL) or columns (SQLite), decides.
async fn two_sign_ups_racing_for_a_name_are_settled_by_the_database(app: &TestApp) {
    use parley::domain::Username;
    use parley::store::users::{self, CreateUserError};
    let pool = app.pool().await;
    let first = users::create(&pool, &Username::parse("zed").unwrap(), "x", false).await;
    assert!(first.is_ok());
    let second = users::create(&pool, &Username::parse("ZED").unwrap(), "x", false).await;
    assert!(matches!(second, Err(CreateUserError::Taken)), "{second:?}");
}
