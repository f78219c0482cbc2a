//! htmx comes from the npm registry and is compiled into the binary (see src/assets.rs).
//! Fail early with the fix rather than with include_bytes!'s bare "file not found".
//!
//! Every asset is also compressed here, once, with gzip and brotli at their best settings
//! (slow, but only at build time): `$OUT_DIR/{name}.gz` and `.br`, which src/assets.rs embeds
//! and serves by `Accept-Encoding`.

use std::io::Write;
use std::path::Path;

/// (name served, file): the same list as src/assets.rs's.
const ASSETS: &[(&str, &str)] = &[
    ("app.css", "assets/app.css"),
    ("app.js", "assets/app.js"),
    ("calls.js", "assets/calls.js"),
    ("favicon.svg", "assets/favicon.svg"),
    ("htmx.min.js", "node_modules/htmx.org/dist/htmx.min.js"),
];

fn main() {
    let htmx = "node_modules/htmx.org/dist/htmx.min.js";
    println!("cargo::rerun-if-changed={htmx}");
    println!("cargo::rerun-if-changed=package-lock.json");
    // sqlx's migrate! embeds the migrations: a new file must rebuild the crate.
    println!("cargo::rerun-if-changed=migrations");
    if !Path::new(htmx).exists() {
        panic!("{htmx} is missing: run `npm ci` in the repository root (`just` does this for you)");
    }
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for (name, file) in ASSETS {
        println!("cargo::rerun-if-changed={file}");
        let body = std::fs::read(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
        let out = Path::new(&out);
        std::fs::write(out.join(format!("{name}.gz")), gzip(&body)).expect("writing OUT_DIR");
        std::fs::write(out.join(format!("{name}.br")), brotli(&body)).expect("writing OUT_DIR");
    }
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(body).expect("compressing in memory");
    enc.finish().expect("compressing in memory")
}

fn brotli(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        size_hint: body.len(),
        ..Default::default()
    };
    brotli::BrotliCompress(&mut &body[..], &mut out, &params).expect("compressing in memory");
    out
}
