//! Scenario 8, files: concurrent big uploads (stored intact, memory bounded, throughput), and a
//! picture shown to many listeners (delivered within the fan-out targets, its thumbnail made once).

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::bail;
use crate::browser::{Browser, Session};
use crate::http::{Conn, Response, Result, Target, find, source_ip};
use crate::report::Report;
use crate::scenarios::{Ctx, ms, progress};

const MB: f64 = 1024.0 * 1024.0;

pub struct FilesSizes {
    /// Uploads at once.
    pub uploads: usize,
    /// Bytes each.
    pub bytes: usize,
    /// Listeners the picture is shown to.
    pub listeners: usize,
}

/// A multipart upload request of one file, as htmx sends it (token in the header).
pub(crate) fn upload_request(
    target: &Target,
    session: &Session,
    room: &str,
    name: &str,
    bytes: &[u8],
) -> Vec<u8> {
    let boundary = "parleybenchboundary7d1f";
    let mut body = Vec::with_capacity(bytes.len() + 512);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut req = format!(
        "POST /rooms/{room}/attachments HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\nHX-Request: true\r\n\
         X-CSRF-Token: {}\r\nOrigin: {}\r\nSec-Fetch-Site: same-origin\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        target.host,
        session.cookie,
        session.csrf,
        target.origin(),
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

fn get_request(target: &Target, session: &Session, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nCookie: {}\r\n\r\n",
        target.host, session.cookie
    )
    .into_bytes()
}

/// The first `href="/files/…"` (or `src=`) value in an answer.
fn file_link(resp: &Response, attr: &str) -> Option<String> {
    let needle = format!("{attr}=\"/files/");
    let at = find(&resp.body, needle.as_bytes())? + attr.len() + 2;
    let end = at + find(&resp.body[at..], b"\"")?;
    Some(String::from_utf8_lossy(&resp.body[at..end]).into_owned())
}

pub(crate) fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn digest(bytes: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

/// Samples the server's resident memory every 20 ms until told to stop: the highest seen.
fn sample_peak(
    pid_rss: impl Fn() -> Option<u64> + Send + 'static,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(pid_rss().unwrap_or(0));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        peak
    })
}

pub async fn files(ctx: &mut Ctx, report: &mut Report, sizes: FilesSizes) -> Result<()> {
    let sc = "8 files";
    let server = ctx.start_sqlite("files", report).await?;
    let target = server.target.clone();
    // One person per upload: each person's hourly allowance (200 MB) is theirs.
    let mut sessions = Vec::new();
    for i in 0..sizes.uploads.max(1) {
        let mut b = Browser::new(target.clone());
        b.register(&format!("uploader{i}"), "bench-password-1")
            .await?;
        b.join("files").await?;
        sessions.push(b.session());
    }
    let session = sessions[0].clone();

    // --- Concurrent uploads.
    progress(
        sc,
        &format!(
            "{} uploads of {} at once",
            sizes.uploads,
            size_label(sizes.bytes)
        ),
    );
    let payloads: Vec<Arc<Vec<u8>>> = (0..sizes.uploads)
        .map(|i| Arc::new(noise(sizes.bytes, i as u64 + 1)))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle = server.rss()?;
    let pid = server.pid;
    let stop = Arc::new(AtomicBool::new(false));
    let peak = sample_peak(move || crate::server::rss_of(pid).ok(), stop.clone());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (i, payload) in payloads.iter().enumerate() {
        let (target, session, payload) = (target.clone(), sessions[i].clone(), payload.clone());
        let source = source_ip(i, ctx.source_ips);
        tasks.push(tokio::spawn(async move {
            let req = upload_request(
                &target,
                &session,
                "files",
                &format!("upload-{i}.bin"),
                &payload,
            );
            let mut conn = Conn::new(target.addr, Some(source));
            let resp = conn.request(&req, Duration::from_secs(120)).await?;
            if resp.status != 200 {
                bail!("upload {i}: {} {}", resp.status, resp.snippet());
            }
            file_link(&resp, "href")
                .ok_or_else(|| format!("upload {i}: no link in {}", resp.snippet()).into())
        }));
    }
    let mut links = Vec::new();
    let mut errors = Vec::new();
    for t in tasks {
        match t.await.map_err(|e| format!("upload task: {e}"))? {
            Ok(link) => links.push(Some(link)),
            Err(e) => {
                errors.push(e.0);
                links.push(None);
            }
        }
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = peak.await.map_err(|e| format!("sampler: {e}"))?;
    let total = (sizes.uploads * sizes.bytes) as f64;
    for e in errors.iter().take(3) {
        progress(sc, &format!("upload error: {e}"));
    }
    let mut intact = 0;
    for (link, payload) in links.iter().zip(&payloads) {
        let Some(link) = link else { continue };
        let mut conn = Conn::new(target.addr, None);
        let resp = conn
            .request(
                &get_request(&target, &session, link),
                Duration::from_secs(60),
            )
            .await?;
        if resp.status == 200 && digest(&resp.body) == digest(payload) {
            intact += 1;
        }
    }
    report.check(
        sc,
        &format!(
            "uploads of {} stored intact (hash after download)",
            size_label(sizes.bytes)
        ),
        format!("{intact}/{}", sizes.uploads),
        "all",
        intact == sizes.uploads,
    );
    let throughput = total / MB / elapsed.as_secs_f64();
    report.perf(
        sc,
        &format!("upload throughput, {} at once", sizes.uploads),
        format!(
            "{throughput:.0} MB/s ({:.0} MB in {:.2} s)",
            total / MB,
            elapsed.as_secs_f64()
        ),
        "≥ 200 MB/s",
        throughput >= 200.0,
    );
    let growth = peak.saturating_sub(idle) as f64 / MB;
    report.perf(
        sc,
        "resident memory growth during the uploads",
        format!(
            "{growth:.1} MB (idle {:.1} MB, peak {:.1} MB)",
            idle as f64 / MB,
            peak as f64 / MB
        ),
        "≤ 64 MB",
        growth <= 64.0,
    );

    // --- A picture shown to many listeners.
    let files_dir = ctx.dir.join("files-files");
    picture_to_listeners(
        ctx,
        report,
        sc,
        &server.target,
        &session,
        sizes.listeners,
        &files_dir,
    )
    .await?;
    server.stop().await
}

/// `listeners` long-polls held on the room; a 2 MB picture sent: every poll answered with the
/// message and its thumbnail link, and every listener fetching the thumbnail finds one made once.
async fn picture_to_listeners(
    ctx: &Ctx,
    report: &mut Report,
    sc: &str,
    target: &Target,
    session: &Session,
    listeners: usize,
    files_dir: &Path,
) -> Result<()> {
    let mut b = Browser::with_session(target.clone(), session);
    b.join("pictures").await?;
    let cursor = b.room_cursor("pictures").await?;
    progress(
        sc,
        &format!("{listeners} listeners hold polls on #pictures"),
    );
    let answered = Arc::new(AtomicU64::new(0));
    let mut polls = Vec::new();
    for i in 0..listeners {
        let mut conn = Conn::new(target.addr, Some(source_ip(i, ctx.source_ips)));
        conn.connect().await?;
        let req = get_request(
            target,
            session,
            &format!("/rooms/pictures/messages?after={cursor}"),
        );
        let answered = answered.clone();
        polls.push(tokio::spawn(async move {
            let resp = conn.request(&req, Duration::from_secs(40)).await;
            let at = Instant::now();
            answered.fetch_add(1, Ordering::Relaxed);
            resp.map(|r| (r, at))
        }));
    }
    // Let every poll be held before the picture goes.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let picture = picture_png(2 * 1024 * 1024);
    progress(
        sc,
        &format!("sending a {:.1} MB picture", picture.len() as f64 / MB),
    );
    let mut conn = Conn::new(target.addr, None);
    let sent = Instant::now();
    let resp = conn
        .request(
            &upload_request(target, session, "pictures", "photo.png", &picture),
            Duration::from_secs(60),
        )
        .await?;
    let acked = Instant::now();
    if resp.status != 200 {
        bail!("picture upload: {} {}", resp.status, resp.snippet());
    }
    let preview = file_link(&resp, "src").ok_or("no thumbnail in the picture's message")?;
    let mut latencies = Vec::new();
    let mut with_thumbnail = 0;
    for p in polls {
        let (resp, at) = p.await.map_err(|e| format!("poll task: {e}"))??;
        if resp.status == 200 && find(&resp.body, preview.as_bytes()).is_some() {
            with_thumbnail += 1;
            latencies.push(at.saturating_duration_since(acked).as_micros() as u64);
        }
    }
    latencies.sort_unstable();
    report.info(
        sc,
        "picture upload acknowledged after (with its thumbnail)",
        ms(acked.duration_since(sent).as_secs_f64() * 1000.0),
    );
    report.check(
        sc,
        "listeners whose poll brought the picture's message",
        format!("{with_thumbnail}/{listeners}"),
        "all",
        with_thumbnail == listeners,
    );
    let pct = |p: f64| crate::load::percentile_ms(&latencies, p);
    // Measured from the upload's answer, which leaves when the message is published: the
    // upload itself (2 MB and a thumbnail) is not delivery. The fan-out scenario's p99 target.
    report.info(
        sc,
        "picture delivered, after the upload's answer (0: before it) p50",
        ms(pct(50.0)),
    );
    report.perf(
        sc,
        "picture delivered, after the upload's answer (0: before it) p99",
        ms(pct(99.0)),
        "≤ 50 ms",
        pct(99.0) <= 50.0,
    );
    // Every listener fetches the thumbnail; it was made once, at upload.
    let mut fetches = Vec::new();
    for i in 0..listeners {
        let (target, session, preview) = (target.clone(), session.clone(), preview.clone());
        let source = source_ip(i, ctx.source_ips);
        fetches.push(tokio::spawn(async move {
            let mut conn = Conn::new(target.addr, Some(source));
            conn.request(
                &get_request(&target, &session, &preview),
                Duration::from_secs(30),
            )
            .await
            .map(|r| r.status)
        }));
    }
    let mut ok = 0;
    for f in fetches {
        if matches!(f.await, Ok(Ok(200))) {
            ok += 1;
        }
    }
    let thumbnails = count_files(&files_dir.join("p"));
    report.check(
        sc,
        &format!("thumbnails stored after {listeners} viewers fetched it ({ok} got 200)"),
        thumbnails.to_string(),
        "1",
        thumbnails == 1 && ok == listeners,
    );
    Ok(())
}

/// A PNG picture of about `bytes` bytes (noise does not compress).
fn picture_png(bytes: usize) -> Vec<u8> {
    let side = ((bytes / 3) as f64).sqrt() as u32;
    let pixels = noise((side * side * 3) as usize, 42);
    let mut out = std::io::Cursor::new(Vec::new());
    let picture = image::RgbImage::from_raw(side, side, pixels).expect("a picture");
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut out, image::ImageFormat::Png)
        .expect("a PNG");
    out.into_inner()
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() { count_files(&path) } else { 1 }
        })
        .sum()
}

fn size_label(bytes: usize) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.0} MB", bytes as f64 / MB)
    } else {
        format!("{} KB", bytes / 1024)
    }
}
