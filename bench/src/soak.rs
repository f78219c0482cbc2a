//! Scenario 9, the soak: the fan-out scenario's load (listeners in one room, changes at its
//! rate: sends, edits, reactions) for ten minutes, with people logging in and uploading files
//! beside it. Resident memory must stay flat — the average of the last tenth of the run within
//! 10% of the second tenth's (the first is warm-up), sampled at random moments — with no error
//! and nothing lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::browser::Browser;
use crate::http::{Conn, Result, Target};
use crate::load::Plan;
use crate::report::Report;
use crate::scenarios::{Ctx, FanoutRun, FanoutSizes, delivery_rows, fanout_load, register_users};

pub struct SoakSizes {
    pub listeners: usize,
    pub rate: f64,
    pub duration: Duration,
}

/// A log-in this often, and an upload of [`UPLOAD_BYTES`] this often, beside the changes.
const LOGIN_EVERY: Duration = Duration::from_secs(2);
const UPLOAD_EVERY: Duration = Duration::from_secs(2);
const UPLOAD_BYTES: usize = 128 * 1024;
/// The password `register_users` gives everyone.
const PASSWORD: &str = "bench-password-1";

#[derive(Default)]
struct Side {
    logins: u64,
    uploads: u64,
    errors: Vec<String>,
}

pub async fn soak(ctx: &mut Ctx, report: &mut Report, sizes: SoakSizes) -> Result<()> {
    let sc = "9 soak";
    let server = ctx.start_sqlite("soak", report).await?;
    let target = server.target.clone();
    let messages = (sizes.rate * sizes.duration.as_secs_f64()).round().max(1.0) as usize;
    let fan = FanoutSizes {
        listeners: sizes.listeners,
        rate: sizes.rate,
        messages,
    };
    let pid = server.pid;
    let stop = Arc::new(AtomicBool::new(false));
    // The side load's person, with a room of their own for the files (so the listeners' room
    // carries only the changes they check).
    let uploader = register_users(&target, "soaker", 1, &["soak-files".to_owned()]).await?;
    let side = tokio::spawn(side_load(target.clone(), uploader[0].clone(), stop.clone()));
    let samples = tokio::spawn(sample_rss(pid, stop.clone()));
    let started = Instant::now();
    let outcome = fanout_load(ctx, sc, &server, &target, &fan, Plan::mixed(messages)).await;
    stop.store(true, Ordering::Relaxed);
    let side = side.await.map_err(|e| format!("side load: {e}"))?;
    let samples = samples.await.map_err(|e| format!("memory sampler: {e}"))?;
    let stopped = server.stop().await;
    let FanoutRun { result, log, .. } = outcome?;

    report.info(
        sc,
        "run",
        format!(
            "{:.0} s: {} listeners, {messages} changes at {}/s, a log-in and a {} KB upload every {} s",
            started.elapsed().as_secs_f64(),
            sizes.listeners,
            sizes.rate,
            UPLOAD_BYTES / 1024,
            LOGIN_EVERY.as_secs()
        ),
    );
    delivery_rows(report, sc, &result, &log, None, Some(50.0));
    report.check(
        sc,
        "log-ins and uploads, failed",
        format!(
            "{} of {} log-ins and {} uploads{}",
            side.errors.len(),
            side.logins,
            side.uploads,
            side.errors
                .first()
                .map(|e| format!(" (first: {})", e.chars().take(120).collect::<String>()))
                .unwrap_or_default()
        ),
        "0",
        side.errors.is_empty() && side.logins > 0 && side.uploads > 0,
    );
    let mb = |b: f64| b / 1_048_576.0;
    let own: Vec<(Instant, u64)> = samples.iter().map(|&(at, anon, _)| (at, anon)).collect();
    let all: Vec<(Instant, u64)> = samples.iter().map(|&(at, _, rss)| (at, rss)).collect();
    match windows(&own, started, sizes.duration) {
        (Some(second), Some(last)) => {
            let ratio = last / second;
            report.perf(
                sc,
                "own memory (RssAnon), last tenth vs second tenth of the run (average)",
                format!("{:.1} MB vs {:.1} MB ({ratio:.2}×)", mb(last), mb(second)),
                "≤ 1.10×",
                ratio <= 1.10,
            );
        }
        _ => report.error(sc, "too few memory samples to compare"),
    }
    if let (Some(second), Some(last)) = windows(&all, started, sizes.duration) {
        report.info(
            sc,
            "resident memory (VmRSS, with the mapped database), last vs second tenth",
            format!(
                "{:.1} MB vs {:.1} MB ({:.2}×)",
                mb(last),
                mb(second),
                last / second
            ),
        );
    }
    if let Some(peak) = all.iter().map(|&(_, rss)| rss).max() {
        report.info(
            sc,
            "resident memory peak",
            format!("{:.1} MB", mb(peak as f64)),
        );
    }
    stopped
}

/// The average resident memory over the second tenth and the last tenth of the run.
fn windows(
    samples: &[(Instant, u64)],
    started: Instant,
    run: Duration,
) -> (Option<f64>, Option<f64>) {
    let tenth = run / 10;
    let average = |from: Duration, to: Duration| {
        let inside: Vec<u64> = samples
            .iter()
            .filter(|(at, _)| {
                let t = at.saturating_duration_since(started);
                t >= from && t < to
            })
            .map(|&(_, rss)| rss)
            .collect();
        (!inside.is_empty()).then(|| inside.iter().sum::<u64>() as f64 / inside.len() as f64)
    };
    (average(tenth, tenth * 2), average(run - tenth, run))
}

/// (when, own memory, resident memory) about twenty times a second, at random moments (see
/// [`next_gap`]), until told to stop.
async fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> Vec<(Instant, u64, u64)> {
    let mut rng = fastrand::Rng::new();
    let mut out = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let (Some(anon), Ok(rss)) = (crate::server::anon_of(pid), crate::server::rss_of(pid)) {
            out.push((Instant::now(), anon, rss));
        }
        tokio::time::sleep(next_gap(&mut rng)).await;
    }
    out
}

/// The wait before the next memory sample: 25 to 75 ms, at random. Samples at a fixed period
/// beat against the side load's: each log-in's password hash holds 19 MB for a few tens of
/// milliseconds every 2 s, and a sampler every 250 ms (an eighth of 2 s) stayed in step with it
/// for minutes, so that a whole window's samples either caught every eighth hash or none. That
/// moved a window's average by up to 2.4 MB, a tenth of the server's own memory, either way
/// (BENCHMARKS.md, "The twelfth day"). Sampled at random moments, a window's average is the
/// memory's average over it, transient hashes included, whatever the load's rhythm.
fn next_gap(rng: &mut fastrand::Rng) -> Duration {
    Duration::from_micros(rng.u64(25_000..75_000))
}

/// Logs in and uploads on schedule until told to stop.
async fn side_load(
    target: Target,
    uploader: crate::browser::Session,
    stop: Arc<AtomicBool>,
) -> Side {
    let mut side = Side::default();
    let mut next_login = Instant::now();
    let mut next_upload = Instant::now();
    let mut conn = Conn::new(target.addr, None);
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_login {
            next_login += LOGIN_EVERY;
            side.logins += 1;
            if let Err(e) = log_in(&target).await {
                side.errors.push(e.0);
            }
        }
        if now >= next_upload {
            next_upload += UPLOAD_EVERY;
            side.uploads += 1;
            n += 1;
            let bytes = crate::files::noise(UPLOAD_BYTES, n);
            let req =
                crate::files::upload_request(&target, &uploader, "soak-files", "soak.bin", &bytes);
            match conn.request(&req, Duration::from_secs(15)).await {
                Ok(resp) if resp.status == 200 => {}
                Ok(resp) => side.errors.push(format!(
                    "upload answered {}: {}",
                    resp.status,
                    resp.snippet()
                )),
                Err(e) => side.errors.push(format!("upload: {}", e.0)),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    side
}

/// A fresh browser logs in as the soak's person and loads the app.
async fn log_in(target: &Target) -> Result<()> {
    let mut b = Browser::new(target.clone());
    let form = b.get("/login").await?;
    if form.status != 200 {
        crate::bail!("GET /login answered {}", form.status);
    }
    let resp = b
        .post("/login", &[("username", "soaker0"), ("password", PASSWORD)])
        .await?;
    if resp.status != 303 {
        crate::bail!("POST /login answered {}: {}", resp.status, resp.snippet());
    }
    let home = b.get("/").await?;
    if home.status != 200 {
        crate::bail!("GET / after logging in answered {}", home.status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window's average of a server that holds an extra 19 MB for 25 ms every 2 s (a log-in's
    /// password hash), sampled from `phase` into the load's rhythm, waiting `gap` between
    /// samples (and the 0.1 ms a sample takes), as a share of the 19 MB.
    fn sampled_share(phase: Duration, mut gap: impl FnMut() -> Duration) -> f64 {
        let (period, hash, window) = (2_000_000u128, 25_000u128, 60_000_000u128);
        let mut t = phase.as_micros();
        let (mut samples, mut inside) = (0u32, 0u32);
        while t < phase.as_micros() + window {
            samples += 1;
            inside += u32::from(t % period < hash);
            t += gap().as_micros() + 100;
        }
        f64::from(inside) / f64::from(samples)
    }

    #[test]
    fn the_memory_sampler_does_not_keep_step_with_the_side_loads_log_ins() {
        // What the window should read: the hash's share of the time, 1.25%. A fixed 250 ms
        // reads 12% from some phases and 0% from others.
        let truth = 25.0 / 2_000.0;
        let mut rng = fastrand::Rng::with_seed(7);
        for ms in (0..2_000).step_by(5) {
            let phase = Duration::from_millis(ms);
            let share = sampled_share(phase, || next_gap(&mut rng));
            assert!(
                (share - truth).abs() < truth,
                "from {ms} ms into the rhythm the window read {:.2}% of the hash, not {:.2}%",
                share * 100.0,
                truth * 100.0
            );
        }
    }
}
