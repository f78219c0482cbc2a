//! The test app and the test client: `TestApp::sqlite()` starts Parley on a fresh database,
//! `app.member("alice")` puts someone in it and returns their logged-in client (`app.user("alice")`
//! signs them up through the form instead, for the tests about signing up), and a `Page` is
//! looked into with CSS selectors: `page.select("#m-3 .body")`, `page.attr("#poller", "hx-get")`.

use std::net::SocketAddr;
use std::time::Duration;

use parley::Settings;
use parley::db::Db;
use parley::domain::Password;
use reqwest::header::HeaderMap;
use scraper::{ElementRef, Html, Selector};
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery";

/// Makes each named test body, an `async fn name(app: &TestApp)` (or `&mut TestApp`, to restart
/// the server) at module level, into two tests: `sqlite::name` and `postgres::name`. The
/// PostgreSQL one passes, with a loud note, when no PostgreSQL is reachable (see `postgres_url`).
///
/// ```ignore
/// on_both_engines!(two_people_chat_in_a_room, unread_counts_move_as_people_write_and_read);
///
/// async fn two_people_chat_in_a_room(app: &TestApp) { ... }
/// ```
#[macro_export]
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[allow(clippy::unnecessary_mut_passed)]
                async fn $name() {
                    let mut app = $crate::support::TestApp::sqlite().await;
                    super::$name(&mut app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[allow(clippy::unnecessary_mut_passed)]
                async fn $name() {
                    let Some(mut app) = $crate::support::TestApp::postgres().await else {
                        return;
                    };
                    super::$name(&mut app).await;
                }
            )*
        }
    };
}

/// `TEST_LOG=1 cargo test …` shows the server's logs (at `RUST_LOG`'s level, else debug).
fn show_logs_if_asked() {
    if std::env::var_os("TEST_LOG").is_none() {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("debug,sqlx=warn,hyper=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

pub struct TestApp {
    pub base: String,
    pub database_url: String,
    /// Where this server keeps attachments' bytes (a temporary directory of its own).
    pub files_dir: std::path::PathBuf,
    _files: Option<std::sync::Arc<tempfile::TempDir>>,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<(String, String)>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

/// The PostgreSQL server the tests use: PARLEY_TEST_DATABASE_URL, or a local one on the
/// standard port. None (with a loud note) when there is none, unless PARLEY_TEST_REQUIRE_POSTGRES
/// is set, as in CI, where its absence fails the test.
pub async fn postgres_url() -> Option<String> {
    let url = std::env::var("PARLEY_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let reachable = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect(pg_host_port(&url)),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if reachable {
        return Some(url);
    }
    if std::env::var_os("PARLEY_TEST_REQUIRE_POSTGRES").is_some() {
        panic!("PARLEY_TEST_REQUIRE_POSTGRES is set but no PostgreSQL answers at {url}");
    }
    eprintln!(
        "\n*** SKIPPED on PostgreSQL: none reachable at {url} (set PARLEY_TEST_DATABASE_URL) ***\n"
    );
    None
}

fn pg_host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.split_once('@').map_or(rest, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("127.0.0.1:5432");
    if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    }
}

/// A fresh, empty PostgreSQL database; returns (its URL, (admin URL, name)) for dropping it later.
pub async fn fresh_postgres_database(admin_url: &str) -> (String, (String, String)) {
    use sqlx::Connection;
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = format!(
        "parley_test_{}_{}_{}",
        std::process::id(),
        n,
        parley::now_ms() % 1_000_000
    );
    let mut conn = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("connect to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create a test database");
    let (prefix, _) = admin_url
        .rsplit_once('/')
        .expect("a database URL has a path");
    let prefix = if prefix.ends_with('/') || prefix.ends_with(':') {
        admin_url.to_owned()
    } else {
        prefix.to_owned()
    };
    (format!("{prefix}/{name}"), (admin_url.to_owned(), name))
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(|_| {}).await
    }

    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(|_| {}).await
    }

    /// A server on a fresh PostgreSQL database, with settings changed by `adjust`.
    pub async fn postgres_with(adjust: impl FnOnce(&mut Settings)) -> Option<Self> {
        let admin = postgres_url().await?;
        let (url, db) = fresh_postgres_database(&admin).await;
        let mut settings = Self::settings(&url);
        adjust(&mut settings);
        let mut app = Self::start_with(url, settings).await;
        app.pg_database = Some(db);
        Some(app)
    }

    pub fn settings(database_url: &str) -> Settings {
        let mut settings = Settings::for_database(database_url);
        // Short holds keep the "nothing new → 204" tests quick.
        settings.poll_timeout_secs = 2;
        settings
    }

    /// A server on a fresh SQLite database, with settings changed by `adjust`.
    pub async fn sqlite_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("parley.db").display());
        let mut settings = Self::settings(&url);
        adjust(&mut settings);
        let mut app = Self::start_with(url, settings).await;
        app._dir = Some(dir);
        app
    }

    pub async fn start_on(database_url: String) -> Self {
        let settings = Self::settings(&database_url);
        Self::start_with(database_url, settings).await
    }

    async fn start_with(database_url: String, mut settings: Settings) -> Self {
        show_logs_if_asked();
        let files = std::sync::Arc::new(tempfile::tempdir().expect("a temporary directory"));
        settings.files_dir = files.path().to_owned();
        let mut app = Self::start_serving(database_url, settings).await;
        app._files = Some(files);
        app
    }

    async fn start_serving(database_url: String, settings: Settings) -> Self {
        let files_dir = settings.files_dir.clone();
        let db = Db::connect(&settings).await.expect("database opens");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a port");
        let addr: SocketAddr = listener.local_addr().expect("tcp address");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            parley::web::run(settings, db, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("server runs");
        });
        Self {
            base: format!("http://{addr}"),
            database_url,
            files_dir,
            _files: None,
            _dir: None,
            pg_database: None,
            stop: Some(stop),
            server: Some(server),
        }
    }

    /// Stops the server (as SIGTERM would) and starts a new one on the same database.
    pub async fn restart(&mut self) {
        self.shut_down().await;
        let mut settings = Self::settings(&self.database_url);
        settings.files_dir = self.files_dir.clone();
        let mut next = Self::start_serving(self.database_url.clone(), settings).await;
        self.base = next.base.clone();
        self.stop = next.stop.take();
        self.server = next.server.take();
    }

    /// Restarts the server on the same database with settings changed by `adjust` (the limits
    /// tests lower a limit to reach it quickly).
    pub async fn restart_with(&mut self, adjust: impl FnOnce(&mut Settings)) {
        self.shut_down().await;
        let mut settings = Self::settings(&self.database_url);
        adjust(&mut settings);
        let mut next = Self::start_with(self.database_url.clone(), settings).await;
        self.base = next.base.clone();
        self.stop = next.stop.take();
        self.server = next.server.take();
    }

    pub async fn shut_down(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), server).await;
        }
    }

    pub async fn pool(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::AnyPool::connect(&self.database_url)
            .await
            .expect("test pool")
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool().await)
            .await
            .expect("count query")
    }

    pub async fn client(&self) -> Client {
        Client::new(&self.base).await
    }

    /// A logged-in client of someone who signed up through the registration form. Only the tests
    /// about signing up need this: the others use `member`, which is quicker.
    pub async fn user(&self, name: &str) -> Client {
        let mut c = self.client().await;
        let page = c.register(name, PASSWORD).await;
        assert_eq!(page.status, 303, "registering {name}: {}", page.body);
        c.name = name.to_owned();
        c
    }

    /// `n` wrong-password log-ins for `name` at once, each from its own client.
    pub async fn guesses_at_once(&self, name: &str, n: usize) -> Vec<Page> {
        let mut clients = Vec::new();
        for _ in 0..n {
            clients.push(self.client().await);
        }
        let form = [("username", name), ("password", "wrong password")];
        futures_util::future::join_all(clients.iter().map(|c| c.post("/login", &form))).await
    }

    /// A logged-in client of `name`, an ordinary user with the password `PASSWORD`, put straight
    /// into the database (no sign-up form, no hashing) and logged in through `POST /login`.
    pub async fn member(&self, name: &str) -> Client {
        insert_member(&self.database_url, name).await;
        log_in(&self.base, name).await
    }
}

/// Logs `name` in with `PASSWORD` through the login form and returns the client.
pub async fn log_in(base: &str, name: &str) -> Client {
    let mut c = Client::new(base).await;
    let page = c.login(name, PASSWORD).await;
    assert_eq!(page.status, 303, "logging {name} in: {}", page.body);
    c.name = name.to_owned();
    c
}

/// Inserts the user `name` with the password `PASSWORD` into the database at `database_url`
/// (whose server has run the migrations), as signing up would store them.
pub async fn insert_member(database_url: &str, name: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(database_url)
        .await
        .expect("test pool");
    sqlx::query(
        "INSERT INTO users (username, username_key, username_fold, password_hash, created_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(name)
    .bind(name.to_lowercase())
    .bind(
        parley::domain::Username::parse(name)
            .expect("a member's name is a username")
            .fold(),
    )
    .bind(password_hash().await)
    .bind(parley::now_ms())
    .execute(&pool)
    .await
    .unwrap_or_else(|e| panic!("insert the user {name}: {e}"));
    pool.close().await;
}

/// The argon2 hash of `PASSWORD`, computed once per test process: a hash costs as much as a
/// login, and every member would otherwise pay for one.
async fn password_hash() -> &'static str {
    static HASH: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    HASH.get_or_init(|| async {
        let password = Password::parse(PASSWORD, None).expect("the test password is valid");
        parley::password::hash(&password).await
    })
    .await
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg_database.take() {
            // Best effort, on its own thread: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    use sqlx::Connection;
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                });
            })
            .join();
        }
    }
}

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    /// A page made of `html` alone, to look into HTML that came from elsewhere (a browser).
    pub fn of_html(html: impl Into<String>) -> Page {
        Page {
            status: 200,
            headers: HeaderMap::new(),
            body: html.into(),
        }
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The body parsed as HTML: a whole document, or the fragment htmx swaps in.
    pub fn html(&self) -> Html {
        if self.body.trim_start().starts_with("<!DOCTYPE") {
            Html::parse_document(&self.body)
        } else {
            Html::parse_fragment(&self.body)
        }
    }

    /// Calls `each` with every element that `selector` (CSS) matches, in document order.
    pub fn each<T>(&self, selector: &str, each: impl FnMut(ElementRef<'_>) -> T) -> Vec<T> {
        let parsed =
            Selector::parse(selector).unwrap_or_else(|e| panic!("bad selector {selector:?}: {e}"));
        self.html().select(&parsed).map(each).collect()
    }

    /// The text of every element that `selector` matches, in document order.
    pub fn select(&self, selector: &str) -> Vec<String> {
        self.each(selector, |el| el.text().collect())
    }

    /// The text directly inside every element that `selector` matches (not its children's).
    pub fn own_text(&self, selector: &str) -> Vec<String> {
        self.each(selector, |el| {
            el.children()
                .filter_map(|node| node.value().as_text().map(|t| t.to_string()))
                .collect()
        })
    }

    /// The markup inside every element that `selector` matches.
    pub fn inner_html(&self, selector: &str) -> Vec<String> {
        self.each(selector, |el| el.inner_html())
    }

    /// How many elements `selector` matches.
    pub fn count(&self, selector: &str) -> usize {
        self.each(selector, |_| ()).len()
    }

    /// Whether `selector` matches anything.
    pub fn has(&self, selector: &str) -> bool {
        self.count(selector) > 0
    }

    /// The attribute `name` of the first element that `selector` matches.
    pub fn attr(&self, selector: &str, name: &str) -> Option<String> {
        self.attrs(selector, name).into_iter().next()
    }

    /// The attribute `name` of every element that `selector` matches and that has it.
    pub fn attrs(&self, selector: &str, name: &str) -> Vec<String> {
        self.each(selector, |el| el.attr(name).map(str::to_owned))
            .into_iter()
            .flatten()
            .collect()
    }

    /// The `data-message-id`s of the messages in the body, in document order.
    pub fn message_ids(&self) -> Vec<i64> {
        message_ids(&self.body)
    }

    /// Whether the people list shows `name` online (its entry's `data-online`); None when
    /// `name` is not in the list.
    pub fn online(&self, name: &str) -> Option<bool> {
        let states = self.each("#people-list li.person", |li| {
            let shown: String = li
                .select(&Selector::parse(".name").expect("a selector"))
                .flat_map(|el| el.text())
                .collect();
            (shown == name).then(|| li.attr("data-online") == Some("true"))
        });
        states.into_iter().flatten().next()
    }
}

/// The `data-message-id`s in `html`, in document order.
pub fn message_ids(html: &str) -> Vec<i64> {
    Page::of_html(html)
        .attrs("[data-message-id]", "data-message-id")
        .iter()
        .map(|id| id.parse().expect("a message id is a number"))
        .collect()
}

pub fn csrf_from(html: &str) -> Option<String> {
    Page::of_html(html).attr("meta[name=csrf-token]", "content")
}

/// A browser-like client: keeps cookies, does not follow redirects (tests look at them).
pub struct Client {
    pub http: reqwest::Client,
    jar: std::sync::Arc<reqwest::cookie::Jar>,
    pub base: String,
    pub csrf: String,
    pub name: String,
}

impl Client {
    pub async fn new(base: &str) -> Self {
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let mut c = Self {
            http,
            jar,
            base: base.to_owned(),
            csrf: String::new(),
            name: String::new(),
        };
        let login = c.get("/login").await;
        c.csrf = csrf_from(&login.body).expect("the login page carries a CSRF token");
        c
    }

    /// Stores a cookie (`name=value; attributes`) as if the server or the page's script had set it.
    pub fn add_cookie(&self, cookie: &str) {
        self.jar
            .add_cookie_str(cookie, &self.base.parse().expect("the base is a URL"));
    }

    /// A cookie this client would send to the server.
    pub fn cookie(&self, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let header = self.jar.cookies(&self.base.parse().ok()?)?;
        let header = header.to_str().ok()?.to_owned();
        header
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    pub async fn page(resp: reqwest::Response) -> Page {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.text().await.unwrap_or_default();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .expect("GET"),
        )
        .await
    }

    pub async fn get_htmx(&self, path: &str) -> Page {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .header("HX-Request", "true");
        Self::page(req.send().await.expect("GET")).await
    }

    /// The CSRF token the browser holds now: the page's, or a newer one (logging in and out
    /// changes it, and the next page would carry it).
    pub fn token(&self) -> String {
        self.cookie("parley_csrf")
            .unwrap_or_else(|| self.csrf.clone())
    }

    /// A form post with the CSRF token, as the page's form would send it.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.token();
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        self.post_raw(path, &form, false).await
    }

    /// The same post made by htmx (token in the header, fragment wanted).
    pub async fn post_htmx(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", self.token())
            .form(fields);
        Self::page(req.send().await.expect("POST")).await
    }

    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)], htmx: bool) -> Page {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(fields);
        if htmx {
            req = req.header("HX-Request", "true");
        }
        Self::page(req.send().await.expect("POST")).await
    }

    pub async fn register(&mut self, name: &str, password: &str) -> Page {
        let page = self
            .post("/register", &[("username", name), ("password", password)])
            .await;
        self.csrf = self.token();
        page
    }

    pub async fn login(&mut self, name: &str, password: &str) -> Page {
        let page = self
            .post("/login", &[("username", name), ("password", password)])
            .await;
        self.csrf = self.token();
        page
    }

    /// A log-in as it arrives through a trusted proxy from the client address `from`.
    pub async fn login_from(&self, from: &str, name: &str, password: &str) -> Page {
        let token = self.token();
        let form = [
            ("username", name),
            ("password", password),
            ("csrf_token", &token),
        ];
        let req = self
            .http
            .post(format!("{}/login", self.base))
            .header("X-Forwarded-For", from)
            .form(&form);
        Self::page(req.send().await.expect("POST")).await
    }

    /// Sends a message as htmx does and returns its id (cursor).
    pub async fn say(&self, conversation: &str, body: &str) -> i64 {
        let page = self
            .post_htmx(&format!("{conversation}/messages"), &[("body", body)])
            .await;
        assert_eq!(page.status, 200, "send to {conversation}: {}", page.body);
        *page
            .message_ids()
            .first()
            .expect("the answer is the stored message")
    }

    pub async fn poll(&self, conversation: &str, after: i64) -> Page {
        self.get(&format!("{conversation}/messages?after={after}"))
            .await
    }
}
