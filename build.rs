//! htmx comes from the npm registry and is compiled into the binary (see src/web/assets.rs).
//! Fail early with the fix rather than with include_bytes!'s bare "file not found".

fn main() {
    let htmx = "node_modules/htmx.org/dist/htmx.min.js";
    println!("cargo::rerun-if-changed={htmx}");
    println!("cargo::rerun-if-changed=package-lock.json");
    // sqlx's migrate! embeds the migrations: a new file must rebuild the crate.
    println!("cargo::rerun-if-changed=migrations");
    if !std::path::Path::new(htmx).exists() {
        panic!("{htmx} is missing: run `npm ci` in the repository root (`just` does this for you)");
    }
}
