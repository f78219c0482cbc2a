//! `parley export DIR` and `parley import DIR`: the move from SQLite to PostgreSQL keeps every
//! user, room, membership, message (with its edits and reactions), attachment, favourite and
//! admin log entry; the round trip exports the same content; refusals leave nothing half-done.

use std::path::Path;
use std::process::{Command, Output};

use crate::files::{bytes_of, links, noise, png, upload};
use crate::multiprocess::Server;
use crate::support::{PASSWORD, TestApp, fresh_postgres_database, log_in, postgres_url};

fn parley(args: &[&str], database_url: &str, files_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("PARLEY_FILES_DIR", files_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run parley")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn refused(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

/// Every file of an export but its manifest's time and engine, as (path, bytes).
fn content(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            let name = path.strip_prefix(dir).unwrap().display().to_string();
            let mut bytes = std::fs::read(&path).unwrap();
            if name == "manifest.json" {
                let mut m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                m["exported_ms"] = 0.into();
                m["engine"] = "".into();
                bytes = serde_json::to_vec(&m).unwrap();
            }
            out.push((name, bytes));
        }
    }
    out.sort();
    out
}

/// A SQLite installation people have used: rooms, a private conversation, an edit, a deletion,
/// reactions, a mention, files, a person's picture, a favourite and an admin's change.
async fn lived_in() -> (TestApp, Vec<u8>) {
    let app = TestApp::sqlite().await;
    let boss = crate::admin::superuser(&app).await;
    let alice = app.member("alice").await;
    let bob = app.member("bob").await;
    for c in [&alice, &bob] {
        c.post("/rooms", &[("name", "general")]).await;
    }
    alice.post("/rooms", &[("name", "design")]).await;
    let first = alice.say("/rooms/general", "hello @bob, lunch?").await;
    let second = bob.say("/rooms/general", "a typo here").await;
    bob.post_htmx(
        &format!("/rooms/general/messages/{second}/edit"),
        &[("body", "no typo here")],
    )
    .await;
    let third = bob.say("/rooms/general", "regrettable").await;
    bob.post_htmx(&format!("/rooms/general/messages/{third}/delete"), &[])
        .await;
    bob.post_htmx(
        &format!("/rooms/general/messages/{first}/reactions"),
        &[("emoji", "👍")],
    )
    .await;
    alice.say("/dm/bob", "just between us").await;
    alice
        .post("/favourites", &[("conversation", "/rooms/design")])
        .await;
    let report = noise(200 * 1024, 3);
    let sent = upload(
        &alice,
        "/rooms/design",
        &[("report.bin", &report), ("plan.png", &png(640, 480))],
        "the plans",
        true,
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let picture = crate::profile::upload_picture(&alice, "me.png", &png(64, 64)).await;
    assert_eq!(picture.status, 303, "{}", picture.body);
    let design = app
        .count("SELECT id FROM rooms WHERE name = 'design'")
        .await;
    let changed = boss
        .post(
            &format!("/admin/rooms/{design}/change/"),
            &[
                ("name", "design"),
                ("topic", "plans and pictures"),
                ("_save", "1"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    (app, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back_out_keeps_everything() {
    let Some(admin) = postgres_url().await else {
        return;
    };
    let (app, report) = lived_in().await;
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("from-sqlite");
    let said = ok(&parley(
        &["export", first.to_str().unwrap(), "--with-password-hashes"],
        &app.database_url,
        &app.files_dir,
    ));
    assert!(said.contains("3 users"), "{said}");
    assert!(said.contains("and 4 files"), "{said}");

    let (pg_url, _) = fresh_postgres_database(&admin).await;
    let pg_files = tempfile::tempdir().unwrap();
    let said = ok(&parley(
        &["import", first.to_str().unwrap()],
        &pg_url,
        pg_files.path(),
    ));
    assert!(said.contains("3 users"), "{said}");
    let second = work.path().join("from-postgres");
    ok(&parley(
        &["export", second.to_str().unwrap(), "--with-password-hashes"],
        &pg_url,
        pg_files.path(),
    ));
    let (a, b) = (content(&first), content(&second));
    assert_eq!(
        a.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        b.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x == y,
            "{name} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(x),
            String::from_utf8_lossy(y)
        );
    }
    // Every kind of thing made is in it.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(first.join("manifest.json")).unwrap()).unwrap();
    for (table, at_least) in [
        ("users", 3),
        ("rooms", 3),
        ("memberships", 5),
        ("messages", 4),
        ("message_tombstones", 1),
        ("reactions", 1),
        ("mentions", 1),
        ("attachments", 2),
        ("favourites", 1),
        ("admin_log", 1),
    ] {
        let rows = manifest["tables"][table]["rows"].as_u64().unwrap();
        assert!(rows >= at_least, "{table}: {rows} rows");
    }
    let messages = std::fs::read_to_string(first.join("messages.ndjson")).unwrap();
    assert!(messages.contains("no typo here") && !messages.contains("a typo here"));
    assert!(!messages.contains("regrettable"), "deleted stays deleted");

    // A server on PostgreSQL goes on from where SQLite was.
    let server = Server::start_with(
        &pg_url,
        &[("PARLEY_FILES_DIR", pg_files.path().to_str().unwrap())],
    )
    .await;
    let alice = log_in(&server.base, "alice").await;
    let general = alice.get("/rooms/general").await;
    assert!(general.body.contains("no typo here"), "{}", general.body);
    assert!(general.body.contains("👍"));
    let design = alice.get("/rooms/design").await;
    assert!(
        design.body.contains("plans and pictures"),
        "the admin's topic"
    );
    let file = links(&design)[0].clone();
    let (status, bytes) = bytes_of(&alice, &file).await;
    assert_eq!(status, 200);
    assert!(bytes == report, "byte for byte");
    let dm = alice.get("/dm/bob").await;
    assert!(dm.body.contains("just between us"));
    let face = dm.attr(".message img.avatar", "src").expect("her picture");
    assert_eq!(bytes_of(&alice, &face).await.0, 200, "the picture came too");
    let found = alice.get_htmx("/search?q=lunch").await;
    assert!(
        found.body.contains("lunch"),
        "found by search: {}",
        found.body
    );
    // New rows take new ids.
    let next = alice.say("/rooms/general", "first on postgres").await;
    assert!(next > 3, "{next}");
    let bob = log_in(&server.base, "bob").await;
    assert!(bob.get("/mentions").await.body.contains("lunch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_password_hashes_nobody_can_log_in_until_given_a_new_password() {
    let (app, _) = lived_in().await;
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("export");
    ok(&parley(
        &["export", export.to_str().unwrap()],
        &app.database_url,
        &app.files_dir,
    ));
    let users = std::fs::read_to_string(export.join("users.ndjson")).unwrap();
    assert!(!users.contains("$argon2"), "{users}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&export).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700, "its owner's alone (invite codes): {mode:o}");

    let url = format!("sqlite://{}", work.path().join("new.db").display());
    let files = work.path().join("files");
    ok(&parley(&["import", export.to_str().unwrap()], &url, &files));
    let server = Server::start_with(&url, &[("PARLEY_FILES_DIR", files.to_str().unwrap())]).await;
    let mut alice = crate::support::Client::new(&server.base).await;
    assert_eq!(alice.login("alice", PASSWORD).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_one_line_and_leave_nothing_half_done() {
    let (app, _) = lived_in().await;
    let work = tempfile::tempdir().unwrap();
    let busy = work.path().join("busy");
    std::fs::create_dir(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), b"mine").unwrap();
    let err = refused(&parley(
        &["export", busy.to_str().unwrap()],
        &app.database_url,
        &app.files_dir,
    ));
    assert!(err.contains("not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&busy).unwrap().count(), 1);
    let nowhere = work.path().join("no/such/place");
    let err = refused(&parley(
        &["export", nowhere.to_str().unwrap()],
        &app.database_url,
        &app.files_dir,
    ));
    assert!(err.contains("no directory"), "{err}");

    let export = work.path().join("export");
    ok(&parley(
        &["export", export.to_str().unwrap()],
        &app.database_url,
        &app.files_dir,
    ));
    // Into a database that has people: refused.
    let err = refused(&parley(
        &["import", export.to_str().unwrap()],
        &app.database_url,
        &app.files_dir,
    ));
    assert!(err.contains("already has"), "{err}");
    // From nowhere: refused.
    let url = format!("sqlite://{}", work.path().join("new.db").display());
    let files = work.path().join("files");
    let err = refused(&parley(
        &["import", work.path().join("missing").to_str().unwrap()],
        &url,
        &files,
    ));
    assert!(err.contains("no export"), "{err}");
    // A damaged export fails whole: no row of it stays.
    let mut messages = std::fs::read_to_string(export.join("messages.ndjson")).unwrap();
    messages.push_str("{\"id\": \"not a number\"}\n");
    std::fs::write(export.join("messages.ndjson"), messages).unwrap();
    let out = parley(&["import", export.to_str().unwrap()], &url, &files);
    refused(&out);
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let people: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(people, 0);
}

/// An export reads the database as it is: a server of another version may be using it. One an
/// older Parley left is refused (and not migrated underneath that server), as is one a newer
/// Parley migrated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_never_migrates_the_database_it_reads() {
    sqlx::any::install_default_drivers();
    let work = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", work.path().join("old.db").display());
    let files = work.path().join("files");
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    // As an older Parley left it: every migration but the newest.
    let mut older = sqlx::migrate!("./migrations/sqlite");
    let known = older.migrations.len();
    older.migrations = older.migrations[..known - 1].to_vec().into();
    older.run(&pool).await.unwrap();
    parley_admin::migrate(&pool).await.unwrap();
    let applied = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    let export = work.path().join("export");
    let err = refused(&parley(&["export", export.to_str().unwrap()], &url, &files));
    assert!(
        err.contains("older") && err.contains("parley migrate"),
        "{err}"
    );
    assert_eq!(
        applied().await as usize,
        known - 1,
        "the export migrated it"
    );
    assert!(!export.exists());
    let partial = std::fs::read_dir(work.path()).unwrap().any(|e| {
        e.unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".partial")
    });
    assert!(!partial, "a half-made export was left");

    // Brought up to date, it exports.
    ok(&parley(&["migrate"], &url, &files));
    ok(&parley(&["export", export.to_str().unwrap()], &url, &files));

    // Migrated by a newer Parley: a migration this build does not know.
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (99990101000001, 'from the future', TRUE, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let again = work.path().join("again");
    let err = refused(&parley(&["export", again.to_str().unwrap()], &url, &files));
    assert!(err.contains("newer"), "{err}");
    assert!(!again.exists());
    let run = |sql: &'static str| {
        let pool = pool.clone();
        async move { sqlx::query(sql).execute(&pool).await.unwrap() }
    };
    run("DELETE FROM _sqlx_migrations WHERE version = 99990101000001").await;
    // The admin's own table migrated by a newer Parley.
    run("INSERT INTO admin_schema_migrations (version, applied_ms) VALUES (999, 0)").await;
    let err = refused(&parley(&["export", again.to_str().unwrap()], &url, &files));
    assert!(err.contains("newer"), "{err}");
    run("DELETE FROM admin_schema_migrations WHERE version = 999").await;
    // A migration edited after it was applied: `parley migrate` would refuse it too.
    run("UPDATE _sqlx_migrations SET checksum = x'00'
         WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)")
    .await;
    let err = refused(&parley(&["export", again.to_str().unwrap()], &url, &files));
    assert!(err.contains("differ"), "{err}");
    assert!(!again.exists());
}
