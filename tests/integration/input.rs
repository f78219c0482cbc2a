//! Bad input changes nothing and reaches no query: unparseable addresses are 404, look-alike
//! names are refused, and text cannot turn itself around.

use crate::on_both_engines;
use crate::support::{PASSWORD, TestApp};

on_both_engines!(an_address_naming_nothing_parseable_is_404_before_any_query,);

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
    let _ = PASSWORD;
}
