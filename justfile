# Parley's tasks. `just run` and `just test` work on a fresh machine with Rust, Python and Node.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Build and start Parley on http://127.0.0.1:8000 (SQLite file ./parley.db, migrated at start).
run *ARGS: assets
    cargo run --release -- serve {{ARGS}}

# Everything CI checks: formatting, lints, unit, integration (SQLite and, when reachable,
# PostgreSQL) and browser tests, and a smoke run of the benchmark.
test: assets browser-deps
    cargo fmt --all --check
    cargo clippy --workspace --all-targets -- -D warnings
    @just deny
    PARLEY_REQUIRE_BROWSER=${PARLEY_REQUIRE_BROWSER:-1} cargo test --workspace
    # The benchmark's smoke run checks correctness only, so the debug build the tests made will do.
    PARLEY_BENCH_POSTGRES_URL=${PARLEY_BENCH_POSTGRES_URL:-${PARLEY_TEST_DATABASE_URL:-}} \
        cargo run -p parley-bench -- --server-bin target/debug/parley --smoke
    @just deploy-check

# Dependency hygiene (deny.toml): licences, duplicate versions and sources always; known
# vulnerabilities when the RustSec database, on GitHub, can be fetched.
deny:
    @if ! command -v cargo-deny >/dev/null; then echo "cargo-deny not installed (cargo install cargo-deny --locked): dependencies not checked"; exit 0; fi; \
    cargo deny check bans licenses sources; \
    if timeout 20 git ls-remote --exit-code https://github.com/RustSec/advisory-db HEAD >/dev/null 2>&1; then \
        cargo deny check advisories; \
    else echo "cargo deny: advisories not checked, github.com (the RustSec database) is out of reach"; fi

# The systemd unit in deploy/, checked by systemd against this build (where systemd is); any line
# systemd would ignore fails it (`verify` alone only warns).
deploy-check:
    @if ! command -v systemd-analyze >/dev/null; then echo "systemd-analyze not found: deploy/parley.service not checked"; exit 0; fi; \
    sed "s|/usr/local/bin/parley|$PWD/target/debug/parley|" deploy/parley.service > target/parley.service; \
    out=$(systemd-analyze verify target/parley.service 2>&1) || { echo "$out"; exit 1; }; \
    if [ -n "$out" ]; then echo "$out"; echo "deploy/parley.service: systemd ignores lines of it"; exit 1; fi; \
    echo "deploy/parley.service: verified"

# The benchmark (release build): `just bench`, or e.g. `just bench --scenario fanout --listeners 200`.
bench *ARGS: assets
    cargo build --release -p parley -p parley-bench
    target/release/parley-bench --server-bin target/release/parley {{ARGS}}

# Front-end packages from the npm registry: htmx, compiled into the binary; axe-core, for the
# browser tests.
assets:
    @if [ ! -f node_modules/htmx.org/dist/htmx.min.js ] || [ ! -f node_modules/axe-core/axe.min.js ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi

# Debian's Chromium and its driver for the browser tests, when missing and we may install them.
browser-deps:
    @if command -v chromedriver >/dev/null && command -v chromium >/dev/null; then exit 0; fi; \
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
    else \
        echo "Browser tests need Chromium and ChromeDriver: sudo apt-get install chromium chromium-driver"; \
        echo "(or run with PARLEY_REQUIRE_BROWSER=0 to skip them)"; \
    fi

# Create an admin account (asks for the password twice).
createsuperuser USERNAME: assets
    cargo run --release -- createsuperuser --username {{USERNAME}}

# Format the code.
fmt:
    cargo fmt --all
