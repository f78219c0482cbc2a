//! A small app around the admin, with models of its own as Django's `tests/admin_views` has:
//! the host's `users`, `authors` (public or private), their `books`, and `fans` (a join table
//! without an id). Its schema is `schema.sql` plus the crate's own migration; a host that knows
//! users by the `x-test-user` header; and clients per user, as a browser would talk to the server.

#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use parley_admin::{
    Admin, AdminHost, AdminUser, BoxFuture, Field, FieldErrors, ModelAdmin, Perms, Related,
    STR_COLUMN, SaveKind, Value, Values, now_ms, only_superusers_delete,
};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Route, Server};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, LOCATION};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

pub const CSRF: &str = "test-csrf-token";
pub const FAKE_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$SECRETHASHPART";

/// What the host and the models' hooks were asked to do.
#[derive(Default)]
pub struct Recorded {
    pub passwords: Vec<(i64, String)>,
    /// (model, ids, "Added" | "Changed" | "PasswordChanged" | "Deleted")
    pub writes: Vec<(String, Vec<i64>, String)>,
    /// Books deleted by the books model's own `delete_model`.
    pub deleted_books: Vec<i64>,
}

pub type Record = Arc<Mutex<Recorded>>;

pub struct TestHost {
    pool: AnyPool,
    pub recorded: Record,
}

impl TestHost {
    pub fn writes(&self) -> Vec<(String, Vec<i64>, String)> {
        self.recorded.lock().unwrap().writes.clone()
    }

    pub fn passwords(&self) -> Vec<(i64, String)> {
        self.recorded.lock().unwrap().passwords.clone()
    }

    pub fn deleted_books(&self) -> Vec<i64> {
        self.recorded.lock().unwrap().deleted_books.clone()
    }
}

impl AdminHost for TestHost {
    fn current_user<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, Option<AdminUser>> {
        Box::pin(async move {
            let id: i64 = req.header("x-test-user")?.parse().ok()?;
            let row: (i64, String, i64, i64, i64) = sqlx::query_as(
                "SELECT id, username, is_staff, is_superuser, is_active FROM users WHERE id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .ok()??;
            Some(AdminUser {
                id: row.0,
                username: row.1,
                is_staff: row.2 != 0,
                is_superuser: row.3 != 0,
                is_active: row.4 != 0,
            })
        })
    }

    fn csrf_token(&self, _: &Request) -> String {
        CSRF.to_owned()
    }

    fn login_url(&self, next: &str) -> String {
        format!(
            "/login?{}",
            serde_urlencoded::to_string([("next", next)]).unwrap()
        )
    }

    fn set_password<'a>(
        &'a self,
        _: &'a Request,
        user_id: i64,
        raw: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            if raw.chars().count() < 8 {
                return Err("A password has at least 8 characters.".to_owned());
            }
            sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                .bind(FAKE_HASH)
                .bind(user_id)
                .execute(&self.pool)
                .await
                .map_err(|e| e.to_string())?;
            self.recorded
                .lock()
                .unwrap()
                .passwords
                .push((user_id, raw.to_owned()));
            Ok(())
        })
    }
}

const KINDS: &[(&str, &str)] = &[("public", "Public author"), ("private", "Private author")];
const AUTHOR: &str = "COALESCE(name, 'anonymous #' || id)";
const BOOK: &str = "'#' || id || ': ' || substr(title, 1, 40)";

fn username(s: &str) -> Result<String, String> {
    let ok = (3..=32).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("Enter a valid username.".to_owned())
    }
}

fn author_name(s: &str) -> Result<String, String> {
    let ok = (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c));
    if ok {
        Ok(s.to_owned())
    } else {
        Err("An author name may contain only letters, digits, - and _".to_owned())
    }
}

/// Records each write a model's hooks hear about.
fn recording(model: ModelAdmin, record: &Record) -> ModelAdmin {
    let (saves, deletes) = (record.clone(), record.clone());
    let slug = model.slug;
    model
        .after_save(move |ids, action| {
            saves
                .lock()
                .unwrap()
                .writes
                .push((slug.to_owned(), ids, format!("{action:?}")));
            async {}
        })
        .after_delete(move |ids| {
            deletes
                .lock()
                .unwrap()
                .writes
                .push((slug.to_owned(), ids, "Deleted".to_owned()));
            async {}
        })
}

pub fn models(pool: &AnyPool, record: &Record) -> Vec<ModelAdmin> {
    vec![
        recording(users(), record),
        recording(authors(), record),
        recording(books(pool, record), record),
    ]
}

fn users() -> ModelAdmin {
    ModelAdmin::new("users", "users", "user", "users")
        .field(Field::int("id", "ID").readonly())
        .field(Field::text("username", "Username", 32).required().validator(username))
        .field(Field::secret("password_hash", "Password"))
        .field(Field::flag("is_active", "Active").default(Value::Bool(Some(true))))
        .field(Field::flag("is_staff", "Staff status"))
        .field(Field::flag("is_superuser", "Superuser status").superuser_only())
        .field(Field::timestamp("created_ms", "Created").readonly())
        .field(Field::timestamp("last_seen_ms", "Last seen").readonly())
        .list_display(&["username", "is_staff", "is_superuser", "is_active", "created_ms", "last_seen_ms"])
        .search_fields(&["username"])
        .list_filter(&["is_staff", "is_superuser", "is_active"])
        .ordering("username_key", false)
        .display("username")
        .permissions(|u, target| {
            let target_is_super = target.and_then(|t| t.bool("is_superuser")).unwrap_or(false);
            let p = only_superusers_delete(u, target);
            Perms { change: p.change && (u.is_superuser || !target_is_super), ..p }
        })
        .password_form("password_hash")
        .unique("users_username_unique", "username_key", "username", "A user with that username already exists.")
        .related(Related::cascade("books", "books", "added_by", BOOK).linked_to("books"))
        .related(Related::cascade(
            "fans",
            "fans",
            "user_id",
            "(SELECT COALESCE(a.name, 'anonymous #' || a.id) FROM authors a WHERE a.id = fans.author_id)",
        ))
        .related(Related::set_null("authors", "added_by"))
        .related(Related::set_null("admin_log", "user_id"))
        .before_save(|v: &mut Values, kind| -> Result<(), FieldErrors> {
            let key = v.text("username").unwrap_or_default().to_ascii_lowercase();
            v.set("username_key", Value::text(key));
            if kind == SaveKind::Add {
                v.set("created_ms", Value::Int(Some(now_ms())));
            }
            Ok(())
        })
}

fn authors() -> ModelAdmin {
    ModelAdmin::new("authors", "authors", "author", "authors")
        .field(Field::int("id", "ID").readonly())
        .field(Field::choice("kind", "Kind", KINDS).readonly())
        .field(
            Field::text("name", "Name", 64)
                .nullable()
                .validator(author_name),
        )
        .field(Field::text("bio", "Bio", 200))
        .field(Field::foreign_key("added_by", "Added by", "users", "users", "username").nullable())
        .field(Field::timestamp("created_ms", "Created").readonly())
        .field(Field::int("book_count", "Books").readonly())
        .list_display(&[
            STR_COLUMN,
            "kind",
            "bio",
            "added_by",
            "created_ms",
            "book_count",
        ])
        .search_fields(&["name", "bio"])
        .list_filter(&["kind", "created_ms"])
        .ordering("created_ms", true)
        .display(AUTHOR)
        .unique(
            "authors_name_unique",
            "name_key",
            "name",
            "An author with that name already exists.",
        )
        .related(Related::cascade("books", "books", "author_id", BOOK).linked_to("books"))
        .related(Related::cascade(
            "fans",
            "fans",
            "author_id",
            "(SELECT u.username FROM users u WHERE u.id = fans.user_id)",
        ))
        .before_save(|v: &mut Values, kind| -> Result<(), FieldErrors> {
            if kind == SaveKind::Add {
                v.set("kind", Value::text("public"));
                v.set("created_ms", Value::Int(Some(now_ms())));
            }
            let name = v.text("name").map(str::to_owned);
            if v.text("kind") == Some("public") && name.is_none() {
                return Err(vec![("name", "A public author needs a name.".to_owned())]);
            }
            v.set(
                "name_key",
                Value::Text(name.map(|n| n.to_ascii_lowercase())),
            );
            Ok(())
        })
        // Private authors, and (below) their books, are for superusers only.
        .row_filter(|u| (!u.is_superuser).then_some("kind = 'public'"))
}

/// Books are deleted by the model's own `delete_model`, as an app would route a deletion
/// through its own code.
fn books(pool: &AnyPool, record: &Record) -> ModelAdmin {
    let (pool, record) = (pool.clone(), record.clone());
    ModelAdmin::new("books", "books", "book", "books")
        .field(Field::int("id", "ID").readonly())
        .field(Field::foreign_key("author_id", "Author", "authors", "authors", AUTHOR).readonly())
        .field(Field::foreign_key("added_by", "Added by", "users", "users", "username").readonly())
        .field(Field::textarea("title", "Title", 4000).required())
        .field(Field::timestamp("created_ms", "Created").readonly())
        .list_display(&["id", "author_id", "added_by", "title", "created_ms"])
        .search_fields(&["title"])
        .list_filter(&["author_id", "added_by", "created_ms"])
        .ordering("id", true)
        .display(BOOK)
        .permissions(|_, _| Perms {
            add: false,
            ..Perms::ALL
        })
        .row_filter(|u| {
            (!u.is_superuser)
                .then_some("author_id IN (SELECT id FROM authors WHERE kind = 'public')")
        })
        .delete_model(move |id| {
            let (pool, record) = (pool.clone(), record.clone());
            async move {
                let done = sqlx::query("DELETE FROM books WHERE id = $1")
                    .bind(id)
                    .execute(&pool)
                    .await?;
                record.lock().unwrap().deleted_books.push(id);
                Ok(done.rows_affected() > 0)
            }
        })
        .per_page(20)
}

pub struct TestApp {
    pub base: String,
    pub pool: AnyPool,
    pub host: Arc<TestHost>,
    _dir: Option<tempfile::TempDir>,
    /// (server URL, database name) of a PostgreSQL database to drop at the end.
    pg_database: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Anonymous,
    User(i64),
}

pub struct Reply {
    pub status: StatusCode,
    pub location: Option<String>,
    pub body: String,
}

impl TestApp {
    pub async fn sqlite() -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("admin.db").display()
        );
        let pool = pool(&url, 4).await;
        schema(&pool, "INTEGER PRIMARY KEY AUTOINCREMENT").await;
        let mut app = Self::start(pool).await;
        app._dir = Some(dir);
        app
    }

    /// On the PostgreSQL of PARLEY_TEST_DATABASE_URL (by default the local server, as Parley's
    /// own tests use), in a fresh database; None when none answers, unless
    /// PARLEY_TEST_REQUIRE_POSTGRES is set.
    pub async fn postgres() -> Option<TestApp> {
        use sqlx::Connection;
        let server = std::env::var("PARLEY_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        sqlx::any::install_default_drivers();
        let mut conn = match sqlx::AnyConnection::connect(&server).await {
            Ok(conn) => conn,
            Err(e) if std::env::var_os("PARLEY_TEST_REQUIRE_POSTGRES").is_none() => {
                eprintln!("*** SKIPPED on PostgreSQL: {e} (set PARLEY_TEST_DATABASE_URL) ***");
                return None;
            }
            Err(e) => panic!("PARLEY_TEST_REQUIRE_POSTGRES is set but PostgreSQL refused: {e}"),
        };
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("parley_admin_test_{}_{n}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        let (prefix, _) = server.rsplit_once('/').unwrap();
        let pool = pool(&format!("{prefix}/{name}"), 2).await;
        schema(&pool, "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY").await;
        let mut app = Self::start(pool).await;
        app.pg_database = Some((server, name));
        Some(app)
    }

    async fn start(pool: AnyPool) -> TestApp {
        let host = Arc::new(TestHost {
            pool: pool.clone(),
            recorded: Record::default(),
        });
        let admin = models(&pool, &host.recorded)
            .into_iter()
            .fold(Admin::new(pool.clone(), host.clone()), Admin::register);
        let app = Route::new().nest("/admin", admin.routes());
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = acceptor.local_addr()[0].as_socket_addr().cloned().unwrap();
        tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
        TestApp {
            base: format!("http://{addr}"),
            pool,
            host,
            _dir: None,
            pg_database: None,
        }
    }

    /// Drops the PostgreSQL database of a test that passed.
    pub async fn finish(self) {
        use sqlx::Connection;
        self.pool.close().await;
        if let Some((server, name)) = self.pg_database {
            let mut conn = sqlx::AnyConnection::connect(&server).await.unwrap();
            sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    }

    pub async fn user(&self, name: &str, staff: bool, superuser: bool) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO users (username, username_key, password_hash, is_staff, is_superuser, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(name.to_owned())
        .bind(name.to_lowercase())
        .bind(FAKE_HASH)
        .bind(i64::from(staff))
        .bind(i64::from(superuser))
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub async fn author(&self, name: &str, bio: &str) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO authors (kind, name, name_key, bio, created_ms) VALUES ('public', $1, $2, $3, $4) RETURNING id",
        )
        .bind(name.to_owned())
        .bind(name.to_lowercase())
        .bind(bio.to_owned())
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    /// An author only superusers see in the admin, as are their books.
    pub async fn private_author(&self) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO authors (kind, bio, created_ms) VALUES ('private', '', $1) RETURNING id",
        )
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub async fn book(&self, author: i64, added_by: i64, title: &str, created_ms: i64) -> i64 {
        sqlx::query("UPDATE authors SET book_count = book_count + 1 WHERE id = $1")
            .bind(author)
            .execute(&self.pool)
            .await
            .unwrap();
        sqlx::query_scalar(
            "INSERT INTO books (author_id, added_by, title, created_ms) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(author)
        .bind(added_by)
        .bind(title.to_owned())
        .bind(created_ms)
        .fetch_one(&self.pool)
        .await
        .unwrap()
    }

    pub async fn fan(&self, author: i64, user: i64) {
        sqlx::query("INSERT INTO fans (author_id, user_id) VALUES ($1, $2)")
            .bind(author)
            .bind(user)
            .execute(&self.pool)
            .await
            .unwrap();
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap()
    }

    /// A browser of `who`: keeps cookies, does not follow redirects, so tests see each 303.
    pub fn browser(&self, who: Who) -> Browser {
        let mut headers = HeaderMap::new();
        if let Who::User(id) = who {
            headers.insert(
                "x-test-user",
                HeaderValue::from_str(&id.to_string()).unwrap(),
            );
        }
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Browser {
            client,
            base: self.base.clone(),
        }
    }
}

/// The test app's tables, then the admin's own, as a host would apply them at start.
async fn schema(pool: &AnyPool, id_column: &str) {
    let sql = include_str!("schema.sql").replace("ID_COLUMN", id_column);
    sqlx::raw_sql(&sql).execute(pool).await.unwrap();
    parley_admin::migrate(pool).await.unwrap();
    // Applying it again (each start does) changes nothing.
    parley_admin::migrate(pool).await.unwrap();
}

async fn pool(url: &str, max: u32) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPoolOptions::new()
        .max_connections(max)
        .connect(url)
        .await
        .unwrap()
}

pub struct Browser {
    client: reqwest::Client,
    base: String,
}

impl Browser {
    async fn reply(resp: reqwest::Response) -> Reply {
        let status = resp.status();
        let location = resp
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        Reply {
            status,
            location,
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Reply {
        Self::reply(
            self.client
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts a form with the CSRF token, as the admin's own forms do.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Reply {
        let mut all = vec![("csrf_token", CSRF)];
        all.extend_from_slice(fields);
        let body = serde_urlencoded::to_string(&all).unwrap();
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        Self::reply(resp).await
    }

    /// Follows a redirect the way a browser would after a POST.
    pub async fn follow(&self, reply: &Reply) -> Reply {
        assert_eq!(
            reply.status,
            StatusCode::SEE_OTHER,
            "expected a redirect, got {}: {}",
            reply.status,
            reply.body
        );
        self.get(reply.location.as_deref().unwrap()).await
    }
}
