//! Every page of the app, at a desktop's and a phone's width, in the light and the dark: axe
//! (node_modules/axe-core, `npm ci`) finds nothing serious or critical on any of them, and a
//! screenshot of each lands in `screenshots/` (`room-phone-dark.png`) for people to look at.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};
use serde_json::{Value, json};

use crate::browser::{ONE_AT_A_TIME, browser_with, click, driver, log_in, screenshot};
use crate::support::TestApp;

/// What the sweep visits: a name for the screenshot, and how to get there.
enum Visit {
    Path(&'static str),
    /// A page a form leads to: the home page's "Open or create a room" with a new name.
    NewRoom,
    /// A room with its members' panel open.
    Members,
    /// The home page with the person menu open.
    PersonMenu,
    /// The call panel as a ring shows it (calls.js's own steps, without a second browser).
    Ringing,
}

/// Pages someone logged out sees.
const LOGGED_OUT: &[(&str, Visit)] = &[
    ("login", Visit::Path("/login")),
    ("register", Visit::Path("/register")),
    ("not-found-logged-out", Visit::Path("/nowhere")),
];

/// Pages the cast's superuser, alice, sees. In #general, message 1 is the topic's record, 2 is
/// bob's and 3 is hers.
const LOGGED_IN: &[(&str, Visit)] = &[
    ("home", Visit::Path("/")),
    ("room", Visit::Path("/rooms/general")),
    ("room-members", Visit::Members),
    ("dm", Visit::Path("/dm/bob")),
    ("call-ringing", Visit::Ringing),
    ("browse-rooms", Visit::Path("/rooms")),
    ("search", Visit::Path("/search?q=hello")),
    ("mentions", Visit::Path("/mentions")),
    ("password", Visit::Path("/account/password")),
    ("profile", Visit::Path("/profile")),
    ("person-menu", Visit::PersonMenu),
    (
        "message-actions",
        Visit::Path("/rooms/general/messages/3/actions"),
    ),
    (
        "message-edit",
        Visit::Path("/rooms/general/messages/3/edit"),
    ),
    ("new-room-confirm", Visit::NewRoom),
    ("no-such-room", Visit::Path("/rooms/nothere")),
    ("not-found", Visit::Path("/nowhere")),
    ("bad-request", Visit::Path("/rooms/general?before=abc")),
    ("forbidden", Visit::Path("/rooms/general/messages/2/edit")),
    ("admin-index", Visit::Path("/admin/")),
    ("admin-users", Visit::Path("/admin/users/")),
    ("admin-room-edit", Visit::Path("/admin/rooms/1/change/")),
];

/// What sticks out of the page sideways (past its right edge a phone would scroll; past its left
/// edge nobody can reach), if anything.
async fn overflow(c: &Client) -> Option<String> {
    let found = c
        .execute(
            r#"const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
                 + (typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(' ').join('.') : '');
             const scrolls = e => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
                 const x = getComputedStyle(p).overflowX; if (x === 'auto' || x === 'scroll' || x === 'hidden') return true; }
               return false; };
             const shown = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().width > 1
               && !e.closest('[hidden], .skip, details:not([open]) > :not(summary)') && !scrolls(e));
             const out = [];
             if (document.documentElement.scrollWidth > innerWidth) {
               const wide = shown.filter(e => e.getBoundingClientRect().right > innerWidth + 1).slice(0, 5)
                 .map(e => name(e) + ' to ' + Math.round(e.getBoundingClientRect().right));
               out.push('the page is ' + document.documentElement.scrollWidth + ' wide: ' + wide.join(', '));
             }
             const cut = shown.filter(e => e.getBoundingClientRect().left < -1).slice(0, 5)
               .map(e => name(e) + ' from ' + Math.round(e.getBoundingClientRect().left));
             if (cut.length) out.push('cut off on the left: ' + cut.join(', '));
             return out.length ? out.join('; ') : null;"#,
            vec![],
        )
        .await
        .expect("overflow measured");
    found.as_str().map(str::to_owned)
}

/// Runs axe on the page and returns its serious and critical violations, one line each.
async fn axe(c: &Client, source: &str) -> Vec<String> {
    c.execute(source, vec![]).await.expect("axe loads");
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] }).then(r => done(r.violations
               .filter(v => v.impact === 'serious' || v.impact === 'critical')
               .map(v => v.impact + ' ' + v.id + ': ' + v.help + ' — ' + v.nodes.slice(0, 4)
                 .map(n => n.target.join(' ') + ' (' + (n.failureSummary || '').split('\\n').slice(1).join(' ').trim() + ')')
                 .join('; '))), e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("axe runs");
    match found {
        Value::Array(lines) => lines
            .into_iter()
            .map(|l| l.as_str().unwrap_or_default().to_owned())
            .collect(),
        other => vec![format!("axe answered {other}")],
    }
}

/// The screenshot `shot`, and what axe and the page's width say is wrong with the page.
async fn look(c: &Client, shot: &str, axe_source: &str, violations: &mut Vec<String>) {
    screenshot(c, shot).await;
    if let Some(wide) = overflow(c).await {
        violations.push(format!("{shot}: {wide}"));
    }
    for v in axe(c, axe_source).await {
        violations.push(format!("{shot}: {v}"));
    }
}

async fn visit(c: &Client, base: &str, visit: &Visit) {
    match visit {
        Visit::Path(path) => c.goto(&format!("{base}{path}")).await.unwrap(),
        Visit::Members => {
            c.goto(&format!("{base}/rooms/general")).await.unwrap();
            click(c, ".members summary").await;
        }
        Visit::PersonMenu => {
            c.goto(&format!("{base}/")).await.unwrap();
            click(c, "#person-menu summary").await;
        }
        Visit::Ringing => {
            c.goto(&format!("{base}/dm/bob")).await.unwrap();
            c.execute(
                "document.getElementById('call').hidden = false;
                 document.getElementById('call-status').textContent = 'bob is calling…';
                 for (const b of ['accept', 'decline']) document.getElementById('call-' + b).hidden = false;",
                vec![],
            )
            .await
            .unwrap();
        }
        Visit::NewRoom => {
            c.goto(&format!("{base}/")).await.unwrap();
            // The form's own submission (not htmx's): the page it answers with.
            c.execute(
                "const form = document.querySelector('form.new-room');
                 form.querySelector('[name=name]').value = 'brand-new';
                 form.submit();",
                vec![],
            )
            .await
            .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while c
                .find(Locator::Css("main form[action='/rooms'] button.primary"))
                .await
                .is_err()
            {
                assert!(Instant::now() < deadline, "the new room's confirmation");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_passes_axe_and_fits_at_both_widths_in_light_and_dark() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let axe_js = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/node_modules/axe-core/axe.min.js"
    );
    let axe_source = std::fs::read_to_string(axe_js)
        .unwrap_or_else(|e| panic!("{axe_js}: {e} (run `just assets`, which runs `npm ci`)"));
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    sqlx::query("UPDATE users SET is_staff = 1, is_superuser = 1 WHERE username = 'alice'")
        .execute(&app.pool().await)
        .await
        .unwrap();
    alice.post("/rooms", &[("name", "general")]).await;
    alice
        .post(
            "/rooms/general/topic",
            &[("topic", "Everything about Parley")],
        )
        .await;
    bob.post("/rooms", &[("name", "general")]).await;
    bob.say("/rooms/general", "hello @alice, a **first** message")
        .await;
    alice
        .say("/rooms/general", "hello bob: https://example.com")
        .await;
    bob.say("/dm/alice", "hello in private").await;
    let bob_id = app
        .count("SELECT id FROM users WHERE username = 'bob'")
        .await;
    sqlx::query(
        "INSERT INTO password_resets (user_id, token, expires_ms, created_ms) \
         VALUES ($1, 'reset-token-for-the-sweep', $2, $3)",
    )
    .bind(bob_id)
    .bind(i64::MAX / 2)
    .bind(0_i64)
    .execute(&app.pool().await)
    .await
    .unwrap();
    let reset = (
        "reset-password",
        Visit::Path("/reset/reset-token-for-the-sweep"),
    );

    let started = Instant::now();
    let mut violations = Vec::new();
    for (width, size) in [(1280, "desktop"), (390, "phone")] {
        for scheme in ["light", "dark"] {
            let extra: &[&str] = match scheme {
                "dark" => &["--blink-settings=preferredColorScheme=0"],
                _ => &["--blink-settings=preferredColorScheme=1"],
            };
            let c = browser_with(&driver, true, width, extra).await;
            // Chromium's window is at least 500 wide from the command line; not so when set.
            c.set_window_size(width, 900).await.unwrap();
            c.goto(&format!("{}/login", app.base)).await.unwrap();
            let inner = c.execute("return innerWidth;", vec![]).await.unwrap();
            assert_eq!(inner, json!(width), "the page is {width} wide");
            let dark = c
                .execute(
                    "return matchMedia('(prefers-color-scheme: dark)').matches;",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(dark, json!(scheme == "dark"), "the browser is in {scheme}");
            let logged_out = LOGGED_OUT.iter().chain(std::iter::once(&reset));
            for (name, how) in logged_out {
                visit(&c, &app.base, how).await;
                let shot = format!("{name}-{size}-{scheme}");
                look(&c, &shot, &axe_source, &mut violations).await;
            }
            log_in(&c, &app.base, "alice").await;
            for (name, how) in LOGGED_IN {
                visit(&c, &app.base, how).await;
                let shot = format!("{name}-{size}-{scheme}");
                look(&c, &shot, &axe_source, &mut violations).await;
            }
            c.close().await.unwrap();
        }
    }
    eprintln!("axe and screenshots: {:?}", started.elapsed());
    assert!(
        violations.is_empty(),
        "{} pages wider than the screen or with serious or critical violations:\n{}",
        violations.len(),
        violations.join("\n")
    );
}
