//! Browser tests: real headless Chromium (Debian's `chromium` + `chromium-driver`) driven over
//! WebDriver against the running server. Screenshots of the main pages land in `screenshots/`.
//!
//! Skipped with a loud note when ChromeDriver is missing, unless PARLEY_REQUIRE_BROWSER=1
//! (as `just test` and CI set it), in which case a missing browser fails the run.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::support::{PASSWORD, Page, TestApp};

/// One browser test at a time: each starts Chromium processes, and the machine has two cores.
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub struct Driver {
    process: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole process group: the Chromium processes a session started go with their
        // driver, also when a test failed before it could close its browser.
        unsafe { libc::kill(-(self.process.id() as i32), libc::SIGKILL) };
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn find_chromedriver() -> Option<String> {
    let path = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    Command::new(&path)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .ok()?
        .success()
        .then_some(path)
}

pub async fn driver() -> Option<Driver> {
    let Some(path) = find_chromedriver() else {
        if std::env::var("PARLEY_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!(
                "PARLEY_REQUIRE_BROWSER=1 but chromedriver is missing: apt-get install chromium chromium-driver"
            );
        }
        eprintln!(
            "\n*** SKIPPED browser test: chromedriver not found (apt-get install chromium chromium-driver) ***\n"
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let process = Command::new(path)
        .process_group(0)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let deadline = Instant::now() + Duration::from_secs(15);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(Driver {
        process,
        url: format!("http://127.0.0.1:{port}"),
    })
}

pub async fn browser(driver: &Driver, javascript: bool, width: u32) -> Client {
    browser_with(driver, javascript, width, &[]).await
}

/// A browser started with extra command-line switches (e.g. fake media devices for calls).
pub async fn browser_with(driver: &Driver, javascript: bool, width: u32, extra: &[&str]) -> Client {
    let profile = tempfile::tempdir().unwrap().keep();
    let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let mut options = json!({
        "binary": binary,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            format!("--window-size={width},900"), format!("--user-data-dir={}", profile.display()),
        ],
    });
    if let Some(args) = options["args"].as_array_mut() {
        args.extend(extra.iter().map(|a| json!(a)));
    }
    if !javascript {
        options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), options);
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

pub async fn screenshot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
}

/// Makes the page believe its tab was hidden or shown again, as switching tabs does.
async fn set_visibility(c: &Client, state: &str) {
    c.execute(
        "Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => arguments[0] });
         document.dispatchEvent(new Event('visibilitychange'));",
        vec![json!(state)],
    )
    .await
    .unwrap();
}

/// Fires the sidebar's periodic refresh for the page at `current` at once, and waits until its
/// answer has been swapped in.
async fn refresh_sidebar(c: &Client, current: &str) {
    c.execute(
        "document.getElementById('sidebar-lists').dataset.stale = '1';
         htmx.ajax('GET', '/sidebar?current=' + arguments[0], { target: '#sidebar-lists', swap: 'outerHTML' });",
        vec![json!(current)],
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c
        .find(Locator::Css("#sidebar-lists[data-stale]"))
        .await
        .is_ok()
    {
        assert!(Instant::now() < deadline, "the sidebar was not refreshed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the element's text contains `text`.
pub async fn wait_for_text(c: &Client, css: &str, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(el) = c.find(Locator::Css(css)).await
            && el.text().await.unwrap_or_default().contains(text)
        {
            return;
        }
        if Instant::now() > deadline {
            let source = c.source().await.unwrap_or_default();
            panic!("“{text}” did not appear in {css} within 10 s; page: {source}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn click(c: &Client, css: &str) {
    let el = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("{css} on the page"));
    el.click().await.unwrap();
}

pub async fn fill(c: &Client, css: &str, text: &str) {
    let el = c
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("{css} on the page"));
    el.clear().await.ok();
    el.send_keys(text).await.unwrap();
}

pub async fn register(c: &Client, base: &str, name: &str) {
    c.goto(&format!("{base}/register")).await.unwrap();
    fill(c, "#username", name).await;
    fill(c, "#password", PASSWORD).await;
    click(c, "form button[type=submit]").await;
    wait_for_text(c, ".me", name).await;
}

/// Logs `name` (a member with the usual password) in with the log-in form.
pub async fn log_in(c: &Client, base: &str, name: &str) {
    c.goto(&format!("{base}/login")).await.unwrap();
    fill(c, "#username", name).await;
    fill(c, "#password", PASSWORD).await;
    c.find(Locator::Css("main form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.find(Locator::Css(".topbar .me")).await.is_err() {
        assert!(Instant::now() < deadline, "{name} did not log in");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens room `name` with the sidebar's form; one nobody has opened yet is created on the
/// second, deliberate click the form asks for.
pub async fn open_or_create(c: &Client, name: &str) {
    fill(c, "#new-room-name", name).await;
    click(c, ".new-room button").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(title) = c.find(Locator::Css("#conversation-title")).await
            && title.text().await.unwrap_or_default() == format!("#{name}")
        {
            return;
        }
        if let Ok(create) = c
            .find(Locator::Css("main form[action='/rooms'] button"))
            .await
        {
            create.click().await.ok();
        }
        assert!(Instant::now() < deadline, "#{name} did not open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn path(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_see_each_others_messages_live() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = browser(&driver, true, 1280).await;
    let bob = browser(&driver, true, 1280).await;

    alice.goto(&format!("{}/register", app.base)).await.unwrap();
    screenshot(&alice, "register").await;
    // The form's parts stack (a rule for the header's account menu once laid them out in a row).
    let top = |css: &'static str| {
        let alice = alice.clone();
        async move {
            let el = alice.find(Locator::Css(css)).await.unwrap();
            let (_, y, _, h) = el.rectangle().await.unwrap();
            (y, y + h)
        }
    };
    let (title, form) = (top("main h1").await, top("main form").await);
    assert!(
        title.1 <= form.0,
        "the title above the form: {title:?} {form:?}"
    );
    register(&alice, &app.base, "alice").await;
    register(&bob, &app.base, "bob").await;
    screenshot(&alice, "home").await;

    // Alice opens a room with the sidebar form; Bob follows the link in his room list.
    open_or_create(&alice, "general").await;
    wait_for_text(&alice, "#conversation-title", "#general").await;
    bob.goto(&format!("{}/rooms/general", app.base))
        .await
        .unwrap();
    wait_for_text(&bob, "#conversation-title", "#general").await;

    // Alice's member list, open, learns of Bob at the sidebar's next refresh (every 15 s; fired
    // here at once) and stays open.
    click(&alice, ".members summary").await;
    refresh_sidebar(&alice, "/rooms/general").await;
    wait_for_text(&alice, "#member-count", "2 members").await;
    wait_for_text(&alice, "#member-list", "bob").await;
    let open = alice.find(Locator::Css(".members")).await.unwrap();
    assert!(
        open.attr("open").await.unwrap().is_some(),
        "the list stays open"
    );
    // The list and the topic's form are one panel, one above the other.
    let rect = |css: &'static str| {
        let alice = alice.clone();
        async move {
            let el = alice.find(Locator::Css(css)).await.unwrap();
            el.rectangle().await.unwrap()
        }
    };
    let (list, form) = (rect("#member-list").await, rect(".topic-form").await);
    assert!(
        list.1 + list.3 <= form.1,
        "the topic form covers the list: {list:?} {form:?}"
    );
    screenshot(&alice, "members").await;
    // Escape closes it.
    alice
        .find(Locator::Css("#topic"))
        .await
        .unwrap()
        .send_keys("\u{E00C}")
        .await
        .unwrap();
    let open = alice.find(Locator::Css(".members")).await.unwrap();
    assert!(
        open.attr("open").await.unwrap().is_none(),
        "Escape closes the members"
    );

    // A search from the room keeps the room as the sidebar's current page, so the refresh that
    // follows still updates its header.
    fill(&alice, "#search-q", "bo").await;
    wait_for_text(&alice, "#sidebar-lists", "Results for").await;
    let lists = alice.find(Locator::Css("#sidebar-lists")).await.unwrap();
    assert_eq!(
        lists.attr("hx-get").await.unwrap().as_deref(),
        Some("/sidebar?current=/rooms/general")
    );
    alice
        .find(Locator::Css("#search-q"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();

    // Enter sends; the composer clears and keeps focus; Bob sees it without reloading.
    fill(&alice, "#composer-body", "Hello Bob, this is live!\u{E007}").await;
    wait_for_text(&bob, "#messages", "Hello Bob, this is live!").await;
    wait_for_text(&alice, "#messages", "Hello Bob, this is live!").await;
    let composer = alice.find(Locator::Css("#composer-body")).await.unwrap();
    assert_eq!(
        composer.prop("value").await.unwrap().unwrap_or_default(),
        "",
        "the composer clears"
    );
    let focused = alice.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("composer-body"),
        "focus stays in the composer"
    );
    // A message of six lines grows the composer; once sent, it is one line tall again.
    let height = || async {
        alice
            .execute(
                "return document.getElementById('composer-body').getBoundingClientRect().height;",
                vec![],
            )
            .await
            .unwrap()
            .as_f64()
            .unwrap()
    };
    let one_line = height().await;
    alice
        .execute(
            "var t = document.getElementById('composer-body');
             t.value = 'one\\ntwo\\nthree\\nfour\\nfive\\nsix';
             t.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        height().await > one_line * 2.0,
        "the composer grows with its text"
    );
    let composer = alice.find(Locator::Css("#composer-body")).await.unwrap();
    composer.send_keys("\u{E007}").await.unwrap();
    wait_for_text(&bob, "#messages", "six").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while height().await > one_line + 1.0 {
        assert!(
            Instant::now() < deadline,
            "the composer stays {} px tall",
            height().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(path(&bob).await, "/rooms/general", "no navigation happened");

    // Shift+Enter makes a new line rather than sending (in WebDriver, Shift stays down until NULL).
    fill(
        &bob,
        "#composer-body",
        "line one\u{E008}\u{E007}\u{E000}line two\u{E007}",
    )
    .await;
    wait_for_text(&alice, "#messages", "line two").await;
    let html = alice
        .find(Locator::Css("#messages"))
        .await
        .unwrap()
        .html(true)
        .await
        .unwrap();
    let bodies = Page::of_html(html).inner_html(".message .body");
    assert!(
        bodies.iter().any(|b| b == "<p>line one<br>line two</p>"),
        "{bodies:?}"
    );
    screenshot(&alice, "room").await;

    // A private conversation, opened from the people list.
    alice.goto(&format!("{}/", app.base)).await.unwrap();
    click(&alice, "#people-list a[href='/dm/bob']").await;
    wait_for_text(&alice, "#conversation-title", "bob").await;
    bob.goto(&format!("{}/dm/alice", app.base)).await.unwrap();
    wait_for_text(&bob, "#conversation-title", "alice").await;
    fill(&alice, "#composer-body", "Just between us.\u{E007}").await;
    wait_for_text(&bob, "#messages", "Just between us.").await;
    screenshot(&bob, "direct").await;

    // Bob switches to another tab: what Alice sends meanwhile is counted in his tab's title,
    // until he comes back.
    let plain = bob.title().await.unwrap();
    set_visibility(&bob, "hidden").await;
    fill(&alice, "#composer-body", "Are you there?\u{E007}").await;
    fill(&alice, "#composer-body", "Hello?\u{E007}").await;
    wait_for_text(&bob, "#messages", "Hello?").await;
    assert_eq!(bob.title().await.unwrap(), format!("(2) {plain}"));
    // The sidebar's refresh (every 15 s; fired here at once) lists the conversation being read,
    // whose two messages were already counted from the page: they are not counted again.
    refresh_sidebar(&bob, "/dm/alice").await;
    assert_eq!(bob.title().await.unwrap(), format!("(2) {plain}"));
    set_visibility(&bob, "visible").await;
    assert_eq!(bob.title().await.unwrap(), plain);

    // Phone width: one pane at a time, with a way back.
    bob.set_window_size(390, 844).await.unwrap();
    let back = bob.find(Locator::Css(".back")).await.unwrap();
    assert!(
        back.is_displayed().await.unwrap(),
        "a way back at phone width"
    );
    assert!(
        !bob.find(Locator::Css("#sidebar"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    screenshot(&bob, "direct-phone").await;

    // The person menu's password page.
    click(&alice, "#person-menu summary").await;
    click(&alice, "#person-menu a[href='/account/password']").await;
    wait_for_text(&alice, "h1", "Change your password").await;
    screenshot(&alice, "password").await;

    alice.close().await.ok();
    bob.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_works_with_javascript_disabled() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let c = browser(&driver, false, 1280).await;
    register(&c, &app.base, "nojs").await;
    open_or_create(&c, "plain").await;
    wait_for_text(&c, "#conversation-title", "#plain").await;
    fill(&c, "#composer-body", "sent by a plain form").await;
    click(&c, "#composer button[type=submit]").await;
    wait_for_text(&c, "#messages", "sent by a plain form").await;
    assert_eq!(path(&c).await, "/rooms/plain");
    // An empty message comes back with an error, nothing stored.
    click(&c, "#composer button[type=submit]").await;
    screenshot(&c, "nojs-room").await;
    // No dead Call button in a private conversation: the page says calls need JavaScript.
    app.member("someone").await;
    c.goto(&format!("{}/dm/someone", app.base)).await.unwrap();
    wait_for_text(&c, ".call-start", "Calls need JavaScript.").await;
    let button = c.find(Locator::Css("#call-button")).await.unwrap();
    assert!(!button.is_displayed().await.unwrap());
    c.close().await.ok();
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 1);
}

/// #history with 120 messages by `writer` (whose client this is), message i saying `text(i)`.
async fn history(app: &TestApp, text: impl Fn(i64) -> String) -> crate::support::Client {
    let writer = app.member("writer").await;
    writer.post("/rooms", &[("name", "history")]).await;
    for i in 1..=120 {
        writer.say("/rooms/history", &text(i)).await;
    }
    writer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolling_up_loads_older_messages() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let writer = history(&app, |i| format!("message number {i}")).await;
    let c = browser(&driver, true, 1280).await;
    register(&c, &app.base, "reader").await;
    c.goto(&format!("{}/rooms/history", app.base))
        .await
        .unwrap();
    wait_for_text(&c, "#messages", "message number 120").await;
    // The newest are in view; scrolling to the top pulls in older pages until the first.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        c.execute(
            "document.getElementById('scroller').scrollTop = -1e9; return null;",
            vec![],
        )
        .await
        .unwrap();
        let count = c
            .find_all(Locator::Css("#scroller [data-message-id]"))
            .await
            .unwrap()
            .len();
        if count == 120 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {count} of 120 messages loaded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids = message_ids_shown(&c).await;
    assert_eq!(ids, (1..=120).collect::<Vec<_>>(), "in order, none twice");
    // Still live after paging back.
    writer.say("/rooms/history", "and a new one").await;
    wait_for_text(&c, "#messages", "and a new one").await;
    c.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_edits_a_room_and_deletes_a_message_and_users_see_it() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "a fine message").await;
    alice.say("/rooms/general", "an unfortunate message").await;
    app.member("boss").await;
    sqlx::query("UPDATE users SET is_staff = 1, is_superuser = 1 WHERE username = 'boss'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    let room: i64 = sqlx::query_scalar("SELECT id FROM rooms WHERE name = 'general'")
        .fetch_one(&app.pool().await)
        .await
        .unwrap();
    let message: i64 =
        sqlx::query_scalar("SELECT id FROM messages WHERE body = 'an unfortunate message'")
            .fetch_one(&app.pool().await)
            .await
            .unwrap();

    let c = browser(&driver, true, 1280).await;
    c.goto(&format!("{}/admin/", app.base)).await.unwrap();
    assert_eq!(
        path(&c).await,
        "/admin/login/",
        "strangers are sent to the admin login"
    );
    fill(&c, "#username", "boss").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "form button[type=submit]").await;
    wait_for_text(&c, "body", "Recent actions").await;
    screenshot(&c, "admin-index").await;

    // Rooms › general › change the topic.
    click(&c, "a[href='/admin/rooms/']").await;
    click(&c, &format!("a[href='/admin/rooms/{room}/change/']")).await;
    fill(&c, "#id_topic", "Set in the admin").await;
    click(&c, "button[name=_save]").await;
    wait_for_text(&c, "body", "was changed successfully").await;
    screenshot(&c, "admin-rooms").await;

    // Messages › the unfortunate one › delete, confirmed.
    c.goto(&format!("{}/admin/messages/{message}/delete/", app.base))
        .await
        .unwrap();
    wait_for_text(&c, "body", "Are you sure").await;
    click(&c, "button.deletelink").await;
    wait_for_text(&c, "body", "was deleted successfully").await;

    // What users see.
    let page = alice.get("/rooms/general").await;
    assert!(page.body.contains("Set in the admin"));
    assert!(page.body.contains("a fine message") && !page.body.contains("an unfortunate message"));
    c.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_send_is_shown_and_the_text_is_kept() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let mut app = TestApp::sqlite().await;
    let c = browser(&driver, true, 1280).await;
    register(&c, &app.base, "writer").await;
    open_or_create(&c, "general").await;
    wait_for_text(&c, "#conversation-title", "#general").await;

    // Refused by the server (only spaces): its reason is shown, nothing is stored.
    fill(&c, "#composer-body", "   ").await;
    click(&c, "#composer button[type=submit]").await;
    wait_for_text(&c, "#composer-error", "A message cannot be empty.").await;

    // The server is gone: the text stays in the composer and the failure is said.
    app.shut_down().await;
    fill(&c, "#composer-body", "this must not be lost\u{E007}").await;
    wait_for_text(&c, "#composer-error", "Could not send").await;
    let composer = c.find(Locator::Css("#composer-body")).await.unwrap();
    assert_eq!(
        composer.prop("value").await.unwrap().unwrap_or_default(),
        "this must not be lost"
    );
    screenshot(&c, "send-failed").await;
    c.close().await.ok();
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_past_the_pace_says_why_and_a_topic_change_is_said_in_the_room() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite_with(|s| s.messages_per_minute = 2).await;
    let c = browser(&driver, true, 1280).await;
    register(&c, &app.base, "writer").await;
    open_or_create(&c, "general").await;
    for text in ["one", "two"] {
        fill(&c, "#composer-body", &format!("{text}\u{E007}")).await;
        wait_for_text(&c, "#messages", text).await;
    }
    fill(&c, "#composer-body", "three, too soon\u{E007}").await;
    wait_for_text(
        &c,
        "#composer-error",
        "You are sending messages faster than Parley takes them. Try again in",
    )
    .await;
    let composer = c.find(Locator::Css("#composer-body")).await.unwrap();
    assert_eq!(
        composer.prop("value").await.unwrap().unwrap_or_default(),
        "three, too soon",
        "the text is kept for a retry"
    );
    screenshot(&c, "send-too-fast").await;

    // The topic, set from the members panel, is said in the room as well as shown above it.
    click(&c, "details.members summary").await;
    fill(&c, "#topic", "Plans for Friday").await;
    click(&c, ".topic-form button").await;
    wait_for_text(&c, "#conversation-topic", "Plans for Friday").await;
    wait_for_text(
        &c,
        "#messages .topic-record",
        "set the topic to “Plans for Friday”",
    )
    .await;
    c.close().await.ok();
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 3);
}

/// Waits until nothing on the page matches `css`.
pub async fn wait_gone(c: &Client, css: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.find(Locator::Css(css)).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "{css} still on the page after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletions_reactions_and_mentions_reach_the_other_person_live() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = browser(&driver, true, 1280).await;
    let bob = browser(&driver, true, 1280).await;
    register(&alice, &app.base, "alice").await;
    register(&bob, &app.base, "bob").await;
    for c in [&alice, &bob] {
        open_or_create(c, "general").await;
        wait_for_text(c, "#conversation-title", "#general").await;
    }
    fill(&alice, "#composer-body", "hello").await;
    click(&alice, "#composer button[type=submit]").await;
    wait_for_text(&bob, "#m-1 .body", "hello").await;

    // Bob may react to Alice's message, but neither edit nor delete it.
    click(&bob, "#m-1 .more").await;
    wait_for_text(&bob, "#m-1 .message-menu", "React").await;
    screenshot(&bob, "message-menu").await;
    assert!(
        bob.find(Locator::Css("#m-1 .message-menu a[href$='/edit']"))
            .await
            .is_err()
    );
    assert!(
        bob.find(Locator::Css("#m-1 .message-menu a[href$='/delete']"))
            .await
            .is_err()
    );
    click(&bob, "#m-1 .message-menu button.emoji[value='👍']").await;
    wait_for_text(&bob, "#r-1 .count", "1").await;
    wait_for_text(&alice, "#r-1 .count", "1").await;
    screenshot(&alice, "reaction").await;

    // Alice edits her message in place; Bob sees the new text, marked.
    click(&alice, "#m-1 .more").await;
    wait_for_text(&alice, "#m-1 .message-menu", "Edit").await;
    click(&alice, "#m-1 .message-menu a[href$='/edit']").await;
    wait_for_text(&alice, "form.editing", "Edit your message").await;
    screenshot(&alice, "message-edit").await;
    // Bob takes his reaction back meanwhile: Alice's form stays as it is.
    click(&bob, "#r-1 .chip").await;
    wait_gone(&bob, "#r-1 .chip").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        alice
            .find(Locator::Css("form.editing textarea"))
            .await
            .is_ok()
    );
    assert!(
        alice
            .find(Locator::Css("form.editing .reactions"))
            .await
            .is_err()
    );
    fill(&alice, "form.editing textarea", "hello, edited").await;
    click(&alice, "form.editing button[type=submit]").await;
    wait_for_text(&alice, "#m-1 .body", "hello, edited").await;
    wait_for_text(&bob, "#m-1 .body", "hello, edited").await;
    wait_for_text(&bob, "#m-1 .edited", "edited").await;

    // Bob goes to the home page; a mention raises his count there within two seconds.
    bob.goto(&app.base).await.unwrap();
    wait_for_text(&bob, "#room-list", "general").await;
    // What Bob saw in the room is read: his read position arrives as he leaves, and his sidebar
    // here hears of it through its feed.
    let deadline = Instant::now() + Duration::from_secs(3);
    let unread =
        "return document.querySelector(\"#room-list a[href='/rooms/general']\").dataset.unread";
    while bob.execute(unread, vec![]).await.ok() != Some(json!("0")) {
        assert!(Instant::now() < deadline, "general still counts as unread");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    fill(&alice, "#composer-body", "@bob have a look").await;
    click(&alice, "#composer button[type=submit]").await;
    let sent = Instant::now();
    wait_for_text(
        &bob,
        "#room-list a[href='/rooms/general'] .badge.mentions",
        "@1",
    )
    .await;
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    screenshot(&bob, "mention-count").await;

    // Alice deletes her first message; it leaves Bob's page of the room.
    bob.goto(&format!("{}/rooms/general", app.base))
        .await
        .unwrap();
    wait_for_text(&bob, "#m-1 .body", "hello, edited").await;
    click(&alice, "#m-1 .more").await;
    wait_for_text(&alice, "#m-1 .message-menu", "Delete").await;
    click(&alice, "#m-1 .message-menu a[href$='/delete']").await;
    wait_for_text(&alice, "form.confirm", "Delete this message?").await;
    click(&alice, "form.confirm button[type=submit]").await;
    wait_gone(&alice, "#m-1").await;
    wait_gone(&bob, "#m-1").await;
}

/// The ids of the messages on the page, in order.
async fn message_ids_shown(c: &Client) -> Vec<i64> {
    let mut ids = Vec::new();
    for el in c
        .find_all(Locator::Css("#scroller [data-message-id]"))
        .await
        .unwrap()
    {
        let id = el.attr("data-message-id").await.unwrap().unwrap();
        ids.push(id.parse().unwrap());
    }
    ids
}

/// Whether the element is inside the visible part of the message scroller.
pub async fn in_view(c: &Client, css: &str) -> bool {
    c.execute(
        "var el = document.querySelector(arguments[0]);
         var box = document.getElementById('scroller').getBoundingClientRect();
         if (!el) return false;
         var r = el.getBoundingClientRect();
         return r.bottom > box.top && r.top < box.bottom;",
        vec![json!(css)],
    )
    .await
    .unwrap()
    .as_bool()
    .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_result_opens_its_message_in_place_and_the_conversation_stays_live() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let writer = history(&app, |i| match i {
        30 => "the quarterly numbers are in".to_owned(),
        _ => format!("message number {i}"),
    })
    .await;
    let c = browser(&driver, true, 1280).await;
    register(&c, &app.base, "reader").await;
    // The reader belongs to the room and has read none of it.
    sqlx::query(
        "INSERT INTO memberships (room_id, user_id, last_read_seq, joined_ms)
         SELECT r.id, u.id, 0, 0 FROM rooms r, users u WHERE r.name = 'history' AND u.username = 'reader'",
    )
    .execute(&app.pool().await)
    .await
    .unwrap();
    // The header's box: Enter searches messages.
    fill(&c, "#search-q", "quarterly\u{E007}").await;
    wait_for_text(&c, "#search-results", "quarterly numbers").await;
    assert_eq!(path(&c).await, "/search");
    let marked = c.find(Locator::Css("#search-results mark")).await.unwrap();
    assert_eq!(marked.text().await.unwrap(), "quarterly");
    // As you type in the search page's own box, the results follow.
    fill(&c, "#message-q", "numb").await;
    wait_for_text(&c, "#search-results", "message number 120").await;
    fill(&c, "#message-q", "quarterly numbers").await;
    wait_for_text(&c, "#search-results", "quarterly").await;
    screenshot(&c, "search").await;
    click(&c, "#search-results li.hit a").await;
    wait_for_text(&c, "#m-30.focused", "quarterly numbers").await;
    assert_eq!(path(&c).await, "/rooms/history");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(in_view(&c, "#m-30").await, "the message is scrolled to");
    assert!(!in_view(&c, "#m-5").await, "not the top of the window");
    screenshot(&c, "search-result-opened").await;
    // What the reader has seen ends where the gap to the newest begins: the messages behind
    // "Load newer messages" stay unread.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let read = app
        .count(
            "SELECT m.last_read_seq FROM memberships m JOIN users u ON u.id = m.user_id
             JOIN rooms r ON r.id = m.room_id WHERE u.username = 'reader' AND r.name = 'history'",
        )
        .await;
    assert!((30..100).contains(&read), "read up to {read}");
    // Live messages arrive while the reader is back in history; newer pages fill the gap.
    writer.say("/rooms/history", "fresh after the jump").await;
    wait_for_text(&c, "#messages", "fresh after the jump").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Ok(more) = c.find(Locator::Css("#newer a")).await {
        more.click().await.ok();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(Instant::now() < deadline, "the newer pages did not end");
    }
    wait_for_text(&c, "#messages", "message number 120").await;
    let ids = message_ids_shown(&c).await;
    let first = ids[0];
    assert!(first <= 30, "{ids:?}");
    assert_eq!(
        ids,
        (first..=121).collect::<Vec<_>>(),
        "in order, none twice"
    );
    c.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starring_a_room_and_a_person_lists_them_first_and_unstarring_takes_them_away() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    app.member("bob").await;
    for javascript in [true, false] {
        let c = browser(&driver, javascript, 1280).await;
        let me = if javascript { "alice" } else { "carol" };
        register(&c, &app.base, me).await;
        open_or_create(&c, "general").await;
        wait_for_text(&c, "#conversation-title", "#general").await;
        wait_for_text(&c, "#star-form", "Star").await;
        click(&c, "#star-form button").await;
        wait_for_text(&c, "#favourite-list", "general").await;
        wait_for_text(&c, "#star-form", "Starred").await;
        c.goto(&format!("{}/dm/bob", app.base)).await.unwrap();
        wait_for_text(&c, "#star-form", "Star").await;
        click(&c, "#star-form button").await;
        wait_for_text(&c, "#favourite-list", "bob").await;
        let names = c
            .find_all(Locator::Css("#favourite-list .name"))
            .await
            .unwrap();
        let mut shown = Vec::new();
        for n in names {
            shown.push(n.text().await.unwrap());
        }
        assert_eq!(shown, ["general", "bob"], "in the order starred");
        screenshot(&c, "favourites").await;
        click(&c, "#star-form button").await;
        wait_for_text(&c, "#star-form", "Star").await;
        wait_for_text(&c, "#favourite-list", "general").await;
        assert!(
            !c.find(Locator::Css("#favourite-list"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .contains("bob")
        );
        c.close().await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_reader_sees_counts_as_read_while_someone_keeps_writing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let writer = app.member("writer").await;
    writer.post("/rooms", &[("name", "busy")]).await;
    let c = browser(&driver, true, 1280).await;
    register(&c, &app.base, "reader").await;
    c.goto(&format!("{}/rooms/busy", app.base)).await.unwrap();
    wait_for_text(&c, "#conversation-title", "#busy").await;
    let read = || {
        app.count(
            "SELECT m.last_read_seq FROM memberships m JOIN users u ON u.id = m.user_id
             JOIN rooms r ON r.id = m.room_id WHERE u.username = 'reader' AND r.name = 'busy'",
        )
    };
    // A message every 300 ms for 4 s: the read position follows within a second or two, not
    // only once the writing stops.
    let mut last = 0;
    for i in 1..=14 {
        last = writer.say("/rooms/busy", &format!("line {i}")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    wait_for_text(&c, "#messages", "line 14").await;
    let seen = read().await;
    assert!(
        seen >= last - 7,
        "read up to {seen} of {last} while the writing went on"
    );
    c.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_touch_screen_return_is_a_new_line_and_send_sends() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    // A phone: a coarse pointer and no hover, at phone width.
    let touch = "--blink-settings=primaryPointerType=2,availablePointerTypes=2,primaryHoverType=1,availableHoverTypes=1";
    let c = browser_with(&driver, true, 390, &[touch]).await;
    register(&c, &app.base, "thumbs").await;
    open_or_create(&c, "phone").await;
    wait_for_text(&c, "#conversation-title", "#phone").await;
    let coarse = c
        .execute("return matchMedia('(pointer: coarse)').matches;", vec![])
        .await
        .unwrap();
    assert_eq!(coarse, json!(true), "the browser is a touch screen");
    let body = c.find(Locator::Css("#composer-body")).await.unwrap();
    body.send_keys("first line\u{E007}second line")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        body.prop("value").await.unwrap().as_deref(),
        Some("first line\nsecond line"),
        "Return made a new line, and sent nothing"
    );
    assert_eq!(app.count("SELECT COUNT(*) FROM messages").await, 0);
    click(&c, "#composer button[type=submit]").await;
    wait_for_text(&c, "#messages", "second line").await;
    c.close().await.ok();
}

/// The first message whose bottom is below the top of the scrolling pane: where the reader is.
async fn first_visible(c: &Client) -> i64 {
    c.execute(
        "var top = document.getElementById('scroller').getBoundingClientRect().top;
         var all = document.querySelectorAll('#scroller [data-message-id]');
         for (var i = 0; i < all.length; i++) {
           if (all[i].getBoundingClientRect().bottom > top + 4) return Number(all[i].dataset.messageId);
         }
         return 0;",
        vec![],
    )
    .await
    .unwrap()
    .as_i64()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolling_back_with_the_wheel_keeps_the_readers_place_when_older_messages_load() {
    use fantoccini::actions::{WheelAction, WheelActions};
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    history(&app, |i| format!("message number {i}")).await;
    for width in [1280, 390] {
        let c = browser(&driver, true, width).await;
        register(&c, &app.base, &format!("reader{width}")).await;
        c.goto(&format!("{}/rooms/history", app.base))
            .await
            .unwrap();
        wait_for_text(&c, "#messages", "message number 120").await;
        let count = || async {
            c.find_all(Locator::Css("#scroller [data-message-id]"))
                .await
                .unwrap()
                .len()
        };
        let shown = count().await;
        // The mouse wheel, a notch at a time, over the messages, until the older page comes.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut before;
        loop {
            before = first_visible(&c).await;
            let mut wheel = WheelActions::new("wheel".into());
            wheel.push(WheelAction::Scroll {
                duration: None,
                x: (width / 2) as i64,
                y: 300,
                delta_x: 0,
                delta_y: -240,
            });
            c.perform_actions(wheel).await.unwrap();
            tokio::time::sleep(Duration::from_millis(250)).await;
            if count().await > shown {
                break;
            }
            assert!(Instant::now() < deadline, "the older page never loaded");
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
        let after = first_visible(&c).await;
        assert!(
            after <= before + 2 && after > 0,
            "at {width} px the reader was at message {before} and is shown {after} after the load"
        );
        c.close().await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_htmx_request_is_said_next_to_what_was_tried() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    let c = browser(&driver, true, 1280).await;
    log_in(&c, &app.base, "alice").await;
    c.goto(&format!("{}/rooms/general", app.base))
        .await
        .unwrap();
    // A token gone stale (the person logged out and in again in another tab): the star is
    // refused, and the refusal is said where they clicked.
    let token = c
        .execute(
            "const meta = document.querySelector('meta[name=csrf-token]');
             const token = meta.content; meta.content = 'stale'; return token;",
            vec![],
        )
        .await
        .unwrap();
    click(&c, "#star-form button").await;
    wait_for_text(
        &c,
        "#star-form + #request-error[role=alert]",
        "CSRF token missing or incorrect. Reload the page and try again.",
    )
    .await;
    screenshot(&c, "refused-star-desktop-light").await;
    // The next request that works takes it away.
    c.execute(
        "document.querySelector('meta[name=csrf-token]').content = arguments[0];",
        vec![token],
    )
    .await
    .unwrap();
    click(&c, "#star-form button").await;
    wait_gone(&c, "#request-error").await;
    c.close().await.unwrap();
}
