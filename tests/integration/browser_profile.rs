//! The person menu in a browser: open and shut by keyboard, a display name set from it, a theme
//! chosen from it that the page is drawn in and that stays; with JavaScript and without.

use std::time::{Duration, Instant};

use fantoccini::{Client, Locator};

use crate::browser::{
    ONE_AT_A_TIME, browser, browser_with, click, driver, fill, path, register, screenshot,
    wait_for_text,
};
use crate::support::TestApp;

/// `--bg` of each palette, as the browser computes the page's background.
const LIGHT_BG: &str = "rgb(246, 247, 249)";
const DARK_BG: &str = "rgb(20, 23, 28)";

async fn theme(c: &Client) -> (Option<String>, String) {
    let found = c
        .execute(
            "return [document.documentElement.getAttribute('data-theme'),
                     getComputedStyle(document.body).backgroundColor];",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(found).unwrap()
}

/// Waits until the page is drawn in `bg`, with `data-theme` saying `attr`.
async fn wait_for_theme(c: &Client, attr: Option<&str>, bg: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = theme(c).await;
        if now.0.as_deref() == attr && now.1 == bg {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the page stays {now:?}, not {attr:?} {bg}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn shown(c: &Client, css: &str) -> bool {
    let el = c.find(Locator::Css(css)).await.unwrap();
    el.is_displayed().await.unwrap()
}

/// Picks a theme from the person menu.
async fn choose_theme(c: &Client, value: &str) {
    click(c, "#person-menu summary").await;
    click(
        c,
        &format!("#person-menu .theme-form button[value={value}]"),
    )
    .await;
}

/// Sets the display name on the profile page, reached from the person menu.
async fn set_display_name(c: &Client, name: &str) {
    click(c, "#person-menu summary").await;
    click(c, "#person-menu a[href='/profile']").await;
    wait_for_text(c, "h1", "Your profile").await;
    fill(c, "#display-name", name).await;
    fill(c, "#bio", "Reads a lot.").await;
    click(c, "main form[action='/profile'] button[type=submit]").await;
    wait_for_text(c, "p.notice", "Your profile was saved.").await;
    wait_for_text(c, ".topbar .me-display", name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_menu_sets_a_display_name_and_a_theme_that_stays() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    // The system prefers dark: "system" follows it, "light" overrides it.
    let c = browser_with(&driver, true, 1280, &["--force-dark-mode"]).await;
    register(&c, &app.base, "alice").await;
    wait_for_theme(&c, None, DARK_BG).await;

    // Shut at first; the name opens it; Escape shuts it, back on the name.
    assert!(!shown(&c, "#person-menu a[href='/profile']").await);
    click(&c, "#person-menu summary").await;
    assert!(shown(&c, "#person-menu a[href='/profile']").await);
    assert!(shown(&c, "#person-menu a[href='/account/password']").await);
    screenshot(&c, "person-menu").await;
    c.active_element()
        .await
        .unwrap()
        .send_keys("\u{E00C}")
        .await
        .unwrap();
    assert!(!shown(&c, "#person-menu a[href='/profile']").await);
    let focused = c.active_element().await.unwrap();
    assert_eq!(focused.tag_name().await.unwrap(), "summary");

    set_display_name(&c, "Alice Smith").await;
    c.goto(&format!("{}/rooms/general", app.base))
        .await
        .unwrap();
    fill(&c, "#composer-body", "hello, named\u{E007}").await;
    wait_for_text(&c, "#messages .message .display-name", "Alice Smith").await;

    choose_theme(&c, "light").await;
    wait_for_theme(&c, Some("light"), LIGHT_BG).await;
    assert_eq!(path(&c).await, "/rooms/general", "back where it was chosen");
    choose_theme(&c, "dark").await;
    wait_for_theme(&c, Some("dark"), DARK_BG).await;
    screenshot(&c, "dark-room").await;
    // Remembered: a reload and another page are dark too.
    c.refresh().await.unwrap();
    wait_for_theme(&c, Some("dark"), DARK_BG).await;
    c.goto(&format!("{}/profile", app.base)).await.unwrap();
    wait_for_theme(&c, Some("dark"), DARK_BG).await;
    let pressed = c
        .find(Locator::Css("#person-menu button[aria-pressed=true]"))
        .await
        .unwrap();
    assert_eq!(
        pressed.attr("value").await.unwrap().as_deref(),
        Some("dark")
    );
    c.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_menu_works_without_javascript() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let c = browser(&driver, false, 1280).await;
    register(&c, &app.base, "plain").await;
    wait_for_theme(&c, None, LIGHT_BG).await;
    set_display_name(&c, "Plain Person").await;
    choose_theme(&c, "dark").await;
    wait_for_theme(&c, Some("dark"), DARK_BG).await;
    assert_eq!(path(&c).await, "/profile");
    screenshot(&c, "nojs-profile-dark").await;
    click(&c, "#person-menu summary").await;
    click(&c, "#person-menu form[action='/logout'] button").await;
    wait_for_text(&c, "h1", "Log in").await;
    wait_for_theme(&c, None, LIGHT_BG).await;
    c.close().await.ok();
}
