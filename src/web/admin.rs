//! The admin area: the generic `parley-admin` crate, mounted at `/admin/`, with Parley's models
//! (`admin_site`) and this host, which answers for sessions, passwords and caches.

use std::sync::Arc;

use parley_admin::{Admin, AdminHost, AdminUser, BoxFuture};
use poem::web::Query;
use poem::{EndpointExt, IntoResponse, Request, Response, Route, get, handler};
use serde::Deserialize;

use super::error::encode_query;
use super::session::{self, current_user};
use super::{AppState, csrf_token, see_other};
use crate::domain::Password;
use crate::store::users;
use crate::views::Viewer;
use crate::views::forms::{AccountForm, login_page};

/// Adds `/admin/…` to the app's routes.
pub fn routes(route: Route, app: &AppState) -> Route {
    let host = Arc::new(Host { app: app.clone() });
    let mut admin = Admin::new(app.db.pool.clone(), host).site_name("Parley administration");
    for model in crate::admin_site::models(app) {
        admin = admin.register(model);
    }
    route
        .at("/admin/login/", get(admin_login))
        .nest("/admin", admin.routes().map_to_response())
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

/// The admin's log-in page: Parley's own, returning to the admin afterwards.
#[handler]
async fn admin_login(req: &Request, Query(q): Query<Next>) -> Result<Response, super::AppError> {
    let next = q
        .next
        .filter(|n| n.starts_with("/admin/"))
        .unwrap_or_else(|| "/admin/".to_owned());
    if current_user(req).await?.is_some() {
        return Ok(see_other(&next));
    }
    let csrf = csrf_token(req);
    let viewer = Viewer::anonymous(&csrf);
    let form = AccountForm {
        next: Some(&next),
        sign_up: false,
        ..AccountForm::empty()
    };
    Ok(login_page(&viewer, &form).into_response())
}

struct Host {
    app: AppState,
}

impl AdminHost for Host {
    fn current_user<'a>(&'a self, req: &'a Request) -> BoxFuture<'a, Option<AdminUser>> {
        Box::pin(async move {
            let who = current_user(req).await.ok().flatten()?;
            // Fresh from the database on every admin request: rights taken away bite at once.
            let user = users::find_by_id(&self.app.db.pool, who.id)
                .await
                .ok()
                .flatten()?;
            Some(AdminUser {
                id: user.id,
                username: user.username,
                is_staff: user.is_staff,
                is_superuser: user.is_superuser,
                is_active: user.is_active,
            })
        })
    }

    fn csrf_token(&self, req: &Request) -> String {
        csrf_token(req)
    }

    fn login_url(&self, next: &str) -> String {
        format!("/admin/login/?next={}", encode_query(next))
    }

    fn set_password<'a>(
        &'a self,
        req: &'a Request,
        user_id: i64,
        raw: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let pool = &self.app.db.pool;
            let user = users::find_by_id(pool, user_id)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("No such user.")?;
            let password = Password::parse(raw, Some(&user.username)).map_err(|e| e.to_string())?;
            // Asked before the hash changes: afterwards this session's tag no longer matches.
            let acting = current_user(req).await.ok().flatten();
            let hash = self
                .app
                .hasher
                .hash(&password)
                .await
                .map_err(|_| "Parley is busy checking passwords. Try again in a moment.")?;
            users::set_password_hash(pool, user_id, &hash)
                .await
                .map_err(|e| e.to_string())?;
            // Their sessions carry the old password's tag and end on their next request...
            super::session::revoke(&self.app, user_id).await;
            // ...except this one when they changed their own, as /account/password does: it goes
            // on under a fresh id and the new tag (Django's update_session_auth_hash).
            if acting.is_some_and(|a| a.id == user_id) {
                let user = users::find_by_id(pool, user_id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("No such user.")?;
                session::log_in(req, &user)
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        })
    }
}
