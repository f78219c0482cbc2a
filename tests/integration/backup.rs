//! `parley backup FILE`: a running SQLite installation copied into one archive that a new
//! server starts from, attachments and all; and clear refusals that leave nothing behind.

use std::path::Path;
use std::process::{Command, Output};

use crate::files::{bytes_of, links, noise, png, upload};
use crate::multiprocess::Server;
use crate::support::{TestApp, log_in};

fn backup(app: &TestApp, database_url: &str, file: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["backup", file.to_str().unwrap()])
        .env("DATABASE_URL", database_url)
        .env("PARLEY_FILES_DIR", &app.files_dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run parley backup")
}

fn stderr_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_running_server_starts_a_new_one_with_everything() {
    let app = TestApp::sqlite().await;
    let alice = app.member("alice").await;
    alice.post("/rooms", &[("name", "general")]).await;
    alice.say("/rooms/general", "before the backup").await;
    let report = noise(300 * 1024, 7);
    let sent = upload(
        &alice,
        "/rooms/general",
        &[("report.bin", &report), ("sky.png", &png(900, 600))],
        "the files",
        true,
    )
    .await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let file_links = links(&sent);
    assert_eq!(file_links.len(), 2);
    let picture = crate::profile::upload_picture(&alice, "me.png", &png(120, 120)).await;
    assert_eq!(picture.status, 303, "{}", picture.body);

    let out_dir = tempfile::tempdir().unwrap();
    let archive = out_dir.path().join("parley-backup.tar");
    // While people go on writing.
    let writer = {
        let alice = log_in(&app.base, "alice").await;
        tokio::spawn(async move {
            for i in 0..20 {
                alice.say("/rooms/general", &format!("during {i}")).await;
            }
        })
    };
    let out = backup(&app, &app.database_url, &archive);
    writer.await.unwrap();
    assert!(out.status.success(), "{}", stderr_line(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("and 4 files"), "{said}");
    let leftovers: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec!["parley-backup.tar"], "nothing else left");
    // Session ids, secrets and hashes are in it: its owner's alone, whatever the umask.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&archive).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    let mut entries = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for entry in entries.entries().unwrap() {
        let entry = entry.unwrap();
        assert_eq!(
            entry.header().mode().unwrap() & 0o077,
            0,
            "{:?}",
            entry.path()
        );
    }

    let restored = tempfile::tempdir().unwrap();
    tar::Archive::new(std::fs::File::open(&archive).unwrap())
        .unpack(restored.path())
        .unwrap();
    let url = format!("sqlite://{}", restored.path().join("parley.db").display());
    let files_dir = restored.path().join("parley-files");
    let server =
        Server::start_with(&url, &[("PARLEY_FILES_DIR", files_dir.to_str().unwrap())]).await;
    let alice = log_in(&server.base, "alice").await;
    let page = alice.get("/rooms/general").await;
    assert!(page.body.contains("before the backup"), "{}", page.body);
    assert!(page.body.contains("the files"));
    let (status, bytes) = bytes_of(&alice, &file_links[0]).await;
    assert_eq!(status, 200);
    assert!(bytes == report, "the file comes back byte for byte");
    let preview = page.attr(".attachments img", "src").expect("a thumbnail");
    assert_eq!(bytes_of(&alice, &preview).await.0, 200);
    let face = page
        .attr(".message img.avatar", "src")
        .expect("her picture");
    assert_eq!(bytes_of(&alice, &face).await.0, 200, "the picture came too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_refuses_in_one_line_and_leaves_nothing_behind() {
    let app = TestApp::sqlite().await;
    app.member("alice").await;
    let dir = tempfile::tempdir().unwrap();

    let taken = dir.path().join("taken.tar");
    std::fs::write(&taken, b"precious").unwrap();
    let out = backup(&app, &app.database_url, &taken);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_line(&out).lines().count(),
        1,
        "{}",
        stderr_line(&out)
    );
    assert!(stderr_line(&out).contains("already exists"));
    assert_eq!(std::fs::read(&taken).unwrap(), b"precious");

    let nowhere = dir.path().join("no/such/dir/b.tar");
    let out = backup(&app, &app.database_url, &nowhere);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_line(&out).contains("no directory"),
        "{}",
        stderr_line(&out)
    );

    let missing = format!("sqlite://{}", dir.path().join("nothing.db").display());
    let out = backup(&app, &missing, &dir.path().join("c.tar"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_line(&out).contains("no database"),
        "{}",
        stderr_line(&out)
    );
    assert!(!dir.path().join("nothing.db").exists(), "none created");

    let out = backup(
        &app,
        "postgres://nobody@127.0.0.1:1/none",
        &dir.path().join("d.tar"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_line(&out).contains("pg_dump"),
        "{}",
        stderr_line(&out)
    );

    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["taken.tar"]);
}
