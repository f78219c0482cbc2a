//! The admin site: its configuration, and the endpoint that checks access and dispatches.

use std::sync::Arc;

use poem::http::{Method, StatusCode, header};
use poem::{Endpoint, Request, Response};

use crate::db::Db;
use crate::host::AdminHost;
use crate::html::{CSS, bare_page};
use crate::http::{AdminError, AdminResult, Ctx, see_other};
use crate::model::{ModelAdmin, Perms, Values};
use crate::views;

/// Everything the views share.
pub struct Site {
    pub name: String,
    pub site_url: String,
    pub logout_url: String,
    pub base: String,
    /// The table `admin_log.user_id` refers to and the expression naming its rows.
    pub user_table: &'static str,
    pub user_display: &'static str,
    pub models: Vec<ModelAdmin>,
    pub host: Arc<dyn AdminHost>,
    pub db: Db,
}

impl Site {
    pub fn model(&self, slug: &str) -> Result<&ModelAdmin, AdminError> {
        self.models
            .iter()
            .find(|m| m.slug == slug)
            .ok_or(AdminError::NotFound)
    }

    pub fn perms(&self, ctx: &Ctx, model: &ModelAdmin, object: Option<&Values>) -> Perms {
        let model_level = (model.permissions)(&ctx.user, None);
        match object {
            // An object rule can only take rights away.
            Some(o) => {
                let p = (model.permissions)(&ctx.user, Some(o));
                // Deleting one's own account here would leave a log entry pointing at nobody
                // and the admin logged in as nobody.
                let is_self = model.table == self.user_table && o.int("id") == Some(ctx.user.id);
                Perms {
                    view: p.view && model_level.view,
                    add: p.add && model_level.add,
                    change: p.change && model_level.change,
                    delete: p.delete && model_level.delete && !is_self,
                }
            }
            None => model_level,
        }
    }
}

/// The poem endpoint serving the admin; nest it where `Admin::mount_path` says.
#[derive(Clone)]
pub struct AdminEndpoint {
    pub(crate) site: Arc<Site>,
}

impl Endpoint for AdminEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let site = &*self.site;
        let path = req.uri().path().to_owned();
        if path == "/static/admin.css" {
            return Ok(Response::builder()
                .content_type("text/css; charset=utf-8")
                .header(header::CACHE_CONTROL, "public, max-age=31536000, immutable")
                .body(CSS));
        }
        let csrf = site.host.csrf_token(&req);
        // Asked on every request: rights taken away a moment ago apply at once.
        let Some(user) = site.host.current_user(&req).await else {
            let next = req
                .original_uri()
                .path_and_query()
                .map_or(path.as_str(), |p| p.as_str());
            return Ok(see_other(&site.host.login_url(next)));
        };
        if !user.may_enter() {
            let page = bare_page(
                site,
                &csrf,
                &site.base,
                "Permission denied",
                "You are logged in, but this account may not use the administration area.",
            );
            return Ok(Response::builder()
                .status(StatusCode::FORBIDDEN)
                .content_type("text/html; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-store")
                .body(page.into_string()));
        }
        let ctx = Ctx::new(&req, user, csrf, &site.base);
        let result = dispatch(site, &ctx, &mut req, &path).await;
        Ok(result.unwrap_or_else(|e| views::error_page(site, &ctx, e)))
    }
}

async fn dispatch(site: &Site, ctx: &Ctx, req: &mut Request, path: &str) -> AdminResult {
    let is_post = match *req.method() {
        Method::GET | Method::HEAD => false,
        Method::POST => true,
        _ => return Err(AdminError::MethodNotAllowed),
    };
    if !path.ends_with('/') {
        // Django's APPEND_SLASH, for GETs only: a redirected POST would lose its body.
        if is_post {
            return Err(AdminError::NotFound);
        }
        let query = req
            .uri()
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        return Ok(Response::builder()
            .status(StatusCode::MOVED_PERMANENTLY)
            .header(header::LOCATION, format!("{}{path}/{query}", site.base))
            .finish());
    }
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        [] if !is_post => views::index::index(site, ctx).await,
        [slug] => {
            let model = site.model(slug)?;
            if is_post {
                views::list::action(site, ctx, model, req).await
            } else {
                views::list::list(site, ctx, model, req.uri().query().unwrap_or("")).await
            }
        }
        [slug, "add"] => {
            let model = site.model(slug)?;
            views::form::add(site, ctx, model, req, is_post).await
        }
        [slug, id, view] => {
            let model = site.model(slug)?;
            let id: i64 = id.parse().map_err(|_| AdminError::NotFound)?;
            match *view {
                "change" => views::form::change(site, ctx, model, id, req, is_post).await,
                "delete" => views::delete::delete(site, ctx, model, id, req, is_post).await,
                "history" if !is_post => views::history::history(site, ctx, model, id).await,
                "password" => views::password::password(site, ctx, model, id, req, is_post).await,
                _ => Err(AdminError::NotFound),
            }
        }
        _ => Err(AdminError::NotFound),
    }
}
