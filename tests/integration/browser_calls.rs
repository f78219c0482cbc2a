//! Calls in real browsers with real (fake-device) media: two headless Chromium sessions, each
//! given a fake microphone, connect through Parley's signalling with no STUN or TURN server.

use std::time::{Duration, Instant};

use fantoccini::Client;
use serde_json::{Value, json};

use crate::browser::{
    ONE_AT_A_TIME, browser_with, click, driver, register, screenshot, wait_for_text,
};
use crate::support::TestApp;

const MEDIA: &[&str] = &[
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
];

async fn run(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.unwrap_or(Value::Null)
}

/// The page's call, as calls.js holds it: its state and its connection's.
async fn connection(c: &Client) -> Value {
    run(
        c,
        "var k = window.parleyCalls && parleyCalls.current();
         return k ? { state: k.state, pc: k.pc ? k.pc.connectionState : null } : null;",
    )
    .await
}

/// Audio bytes received so far on the page's call.
async fn audio_in(c: &Client) -> u64 {
    let got = c
        .execute_async(
            "var done = arguments[arguments.length - 1];
             var k = parleyCalls.current();
             if (!k || !k.pc) return done(0);
             k.pc.getStats().then(function (stats) {
               var n = 0;
               stats.forEach(function (r) {
                 if (r.type === 'inbound-rtp' && r.kind === 'audio') n += r.bytesReceived || 0;
               });
               done(n);
             });",
            vec![],
        )
        .await
        .unwrap_or(json!(0));
    got.as_u64().unwrap_or(0)
}

async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alice_calls_bob_who_answers_on_another_page_and_they_hear_each_other() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    // A short ring, so that the missed call below does not take 30 s.
    let app = TestApp::sqlite_with(|s| s.call_ring_secs = 8).await;
    let alice = browser_with(&driver, true, 1280, MEDIA).await;
    let bob = browser_with(&driver, true, 1280, MEDIA).await;
    register(&alice, &app.base, "alice").await;
    register(&bob, &app.base, "bob").await;
    alice.goto(&format!("{}/dm/bob", app.base)).await.unwrap();
    wait_for_text(&alice, "#conversation-title", "bob").await;
    // Bob is on another Parley page: his list of people.
    bob.goto(&format!("{}/people", app.base)).await.unwrap();

    // Alice calls; Bob's page rings within 2 s.
    click(&alice, "#call-button").await;
    wait_for_text(&alice, "#call-status", "Calling bob").await;
    let started = Instant::now();
    wait_for_text(&bob, "#call-status", "alice is calling").await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "rang after {:?}",
        started.elapsed()
    );
    screenshot(&bob, "call-ringing").await;
    click(&bob, "#call-accept").await;

    // Both connections come up, and audio flows both ways.
    for c in [&alice, &bob] {
        wait_until("a connected call", Duration::from_secs(10), || async {
            connection(c).await["pc"] == "connected"
        })
        .await;
    }
    wait_for_text(&alice, "#call-status", "In a call with bob").await;
    wait_for_text(&bob, "#call-status", "In a call with alice").await;
    screenshot(&alice, "call-talking").await;
    let (a1, b1) = (audio_in(&alice).await, audio_in(&bob).await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (a2, b2) = (audio_in(&alice).await, audio_in(&bob).await);
    assert!(
        a2 > a1 && b2 > b1,
        "audio flows: alice {a1}→{a2}, bob {b1}→{b2}"
    );

    // Alice mutes and unmutes; then hangs up, and both calls end within 2 s.
    click(&alice, "#call-mute").await;
    wait_for_text(&alice, "#call-mute", "Unmute").await;
    click(&alice, "#call-mute").await;
    click(&alice, "#call-hangup").await;
    let ended = Instant::now();
    wait_for_text(&alice, "#call-status", "Call ended.").await;
    wait_for_text(&bob, "#call-status", "Call ended.").await;
    assert!(ended.elapsed() < Duration::from_secs(2));
    assert_eq!(connection(&bob).await, Value::Null);
    // The conversation records it, for both.
    wait_for_text(&alice, "#messages", "Call with bob").await;
    bob.goto(&format!("{}/dm/alice", app.base)).await.unwrap();
    wait_for_text(&bob, "#messages", "Call with bob").await;

    // Bob calls back from the conversation while Alice is typing: the ring does not take her
    // keyboard (a Return meant for her message must not answer it). She declines.
    click(&alice, "#composer-body").await;
    click(&bob, "#call-button").await;
    wait_for_text(&alice, "#call-status", "bob is calling").await;
    let focused = alice.active_element().await.unwrap();
    assert_eq!(
        focused.attr("id").await.unwrap().as_deref(),
        Some("composer-body"),
        "the ring left the focus where it was"
    );
    click(&alice, "#call-decline").await;
    wait_for_text(&bob, "#call-status", "alice declined the call.").await;
    wait_for_text(&bob, "#messages", "Call declined by alice").await;

    // Bob calls again and nobody answers: when the ring runs out, both see a missed call.
    click(&bob, "#call-close").await;
    click(&bob, "#call-button").await;
    wait_for_text(&alice, "#call-status", "bob is calling").await;
    wait_for_text(&alice, "#call-status", "Missed call from bob.").await;
    wait_for_text(&bob, "#call-status", "No answer from alice.").await;
    wait_for_text(&alice, "#messages", "Missed call from bob").await;
    wait_for_text(&bob, "#messages", "Missed call from bob").await;
    screenshot(&bob, "call-missed").await;
    alice.close().await.ok();
    bob.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_tab_or_losing_the_browser_ends_the_call_for_the_other_side() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    let alice = browser_with(&driver, true, 1280, MEDIA).await;
    let bob = browser_with(&driver, true, 1280, MEDIA).await;
    register(&alice, &app.base, "alice").await;
    register(&bob, &app.base, "bob").await;
    alice.goto(&format!("{}/dm/bob", app.base)).await.unwrap();
    wait_for_text(&alice, "#conversation-title", "bob").await;
    // Bob has two tabs; the call rings in both, and he answers in the first.
    let first = bob.window().await.unwrap();
    let second = bob.new_window(true).await.unwrap().handle;
    bob.switch_to_window(second.clone()).await.unwrap();
    bob.goto(&format!("{}/", app.base)).await.unwrap();
    bob.switch_to_window(first.clone()).await.unwrap();
    let talking = |answer_in| {
        let (alice, bob) = (alice.clone(), bob.clone());
        async move {
            click(&alice, "#call-button").await;
            bob.switch_to_window(answer_in).await.unwrap();
            wait_for_text(&bob, "#call-status", "alice is calling").await;
            click(&bob, "#call-accept").await;
            wait_for_text(&bob, "#call-status", "In a call with alice").await;
            wait_for_text(&alice, "#call-status", "In a call with bob").await;
        }
    };
    talking(first.clone()).await;
    // His other tab stopped ringing when he answered.
    bob.switch_to_window(second.clone()).await.unwrap();
    wait_for_text(&bob, "#call-status", "Answered on another device.").await;

    // He closes the tab of the call: it ends for Alice at once.
    bob.switch_to_window(first).await.unwrap();
    bob.close_window().await.unwrap();
    let closed = Instant::now();
    wait_for_text(&alice, "#call-status", "Call ended.").await;
    assert!(
        closed.elapsed() < Duration::from_secs(3),
        "{:?}",
        closed.elapsed()
    );

    // Again, answered in the tab he has left; then his whole browser goes away, saying nothing.
    click(&alice, "#call-close").await;
    talking(second).await;
    bob.close().await.ok();
    let gone = Instant::now();
    wait_until("alice's call to end", Duration::from_secs(12), || async {
        connection(&alice).await == Value::Null
    })
    .await;
    assert!(
        gone.elapsed() < Duration::from_secs(12),
        "{:?}",
        gone.elapsed()
    );
    wait_for_text(&alice, "#messages", "Call with bob").await;
    alice.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_microphone_is_said_and_nothing_rings() {
    let _one = ONE_AT_A_TIME.lock().await;
    let Some(driver) = driver().await else { return };
    let app = TestApp::sqlite().await;
    // A real prompt, refused: no fake UI that would grant it.
    let c = browser_with(&driver, true, 1280, &["--deny-permission-prompts"]).await;
    register(&c, &app.base, "alice").await;
    app.member("bob").await;
    c.goto(&format!("{}/dm/bob", app.base)).await.unwrap();
    wait_for_text(&c, "#conversation-title", "bob").await;
    click(&c, "#call-button").await;
    wait_for_text(&c, "#call-status", "microphone").await;
    screenshot(&c, "call-no-microphone").await;
    c.close().await.ok();
    assert_eq!(app.count("SELECT COUNT(*) FROM calls").await, 0);
}
