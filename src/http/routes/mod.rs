//! The routes: the table (`table.rs`: where every route is, what its caller needs and what
//! the OpenAPI document says of it), the router built from it and nothing else, so every route
//! is authorised (the role-matrix test walks it), and the OpenAPI document made from it.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::{self};
use axum::routing::{MethodRouter, get, post};

use super::error::ApiError;
use super::health::Readiness;
use super::openapi::{self, Documented, Op};
use super::state::ApiState;
use super::{auth, health, hooks, ui};
use crate::auth::{Need, Role};

mod table;

pub use table::api_table;

/// One route of the API: where it is, what its caller needs, and what the OpenAPI document says
/// of it. The router is built from this table and nothing else, so every route is authorised
/// (the role-matrix test walks it) and documented.
#[derive(Clone, Debug)]
pub struct ApiRoute {
    pub method: Method,
    /// Under `/api/v1`, with `{ns}`-style parameters (`/metrics` is outside it).
    pub path: &'static str,
    pub need: Need,
    pub op: Op,
}

/// A route not yet in the table: [`Unrouted::doc`] puts it there with its documentation.
pub struct Unrouted {
    method: Method,
    path: &'static str,
    need: Need,
    handler: MethodRouter<ApiState>,
}

impl Unrouted {
    pub fn doc(self, op: Op) -> (ApiRoute, MethodRouter<ApiState>) {
        let Unrouted {
            method,
            path,
            need,
            handler,
        } = self;
        (
            ApiRoute {
                method,
                path,
                need,
                op,
            },
            handler,
        )
    }
}

pub fn route(
    method: Method,
    path: &'static str,
    need: Need,
    handler: MethodRouter<ApiState>,
) -> Unrouted {
    Unrouted {
        method,
        path,
        need,
        handler,
    }
}

/// Every route, as the OpenAPI document shows it: the table's and those outside it.
pub fn documented() -> Vec<Documented> {
    let table = api_routes().into_iter().map(|r| Documented {
        method: r.method,
        path: format!("/api/v1{}", r.path),
        need: Some(r.need),
        op: r.op,
    });
    table.chain(extra_routes()).collect()
}

/// The OpenAPI document (`GET /api/v1/openapi.json`, `schemas/openapi.json`).
pub fn openapi_document() -> serde_json::Value {
    openapi::document(&documented())
}

/// `GET /api/v1/openapi.json`: made once, on first asked.
async fn serve_openapi() -> axum::Json<serde_json::Value> {
    static DOCUMENT: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    axum::Json(DOCUMENT.get_or_init(openapi_document).clone())
}

/// The routes outside the table.
fn extra_routes() -> Vec<Documented> {
    let plain = |method: Method, path: &str, need: Option<Need>, op: Op| Documented {
        method,
        path: path.to_string(),
        need,
        op,
    };
    vec![
        plain(
            Method::GET,
            "/healthz",
            None,
            Op::new("healthz", "Health", "Liveness: the process answers").answers_raw(
                200,
                Some("text/plain"),
                "`ok`.",
            ),
        ),
        plain(
            Method::GET,
            "/readyz",
            None,
            Op::new(
                "readyz",
                "Health",
                "Readiness: the store and the engine answer, the loop runs",
            )
            .ok::<Readiness>("Ready.")
            .answers::<Readiness>(503, "Not ready; the fields say what is missing."),
        ),
        plain(
            Method::GET,
            "/metrics",
            Some(METRICS_NEED),
            Op::new("metrics", "Health", "Prometheus metrics").answers_raw(
                200,
                Some("text/plain; version=0.0.4"),
                "The metrics, in Prometheus' text format.",
            ),
        ),
        plain(
            Method::POST,
            &format!("/api/v1{GIT_HOOK_PATH}"),
            None,
            Op::new(
                "gitWebhook",
                "Objects",
                "A forge's push webhook (wharf serve --git)",
            )
            .describe(
                "No bearer token: the forge's signature is the authentication \
                (GitHub `X-Hub-Signature-256`, Gitea/Gogs \
                `X-Gitea-Signature`/`X-Gogs-Signature`, GitLab \
                `X-Gitlab-Token`), checked against \
                --git-webhook-secret-file.",
            )
            .json_body::<openapi::AnyJson>(true)
            .answers::<hooks::HookAccepted>(202, "Accepted: the source fetches at once.")
            .errors(&[401, 404, 413]),
        ),
        plain(
            Method::GET,
            &format!("/api/v1{OPENAPI_PATH}"),
            None,
            Op::new("openapi", "Health", "This document")
                .ok::<openapi::AnyJson>("The OpenAPI 3.1 document."),
        ),
    ]
}

/// The git webhook, under `/api/v1`: no bearer token, a forge's signature instead.
pub const GIT_HOOK_PATH: &str = "/hooks/git";

/// The OpenAPI document, under `/api/v1`: no token needed.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// `GET /metrics`: every app's figures, so it needs a viewer of every namespace.
pub const METRICS_NEED: Need = Need::Everywhere(Role::Viewer);

/// The API's routes and what each needs (for documentation and the role-matrix test).
pub fn api_routes() -> Vec<ApiRoute> {
    api_table().into_iter().map(|(r, _)| r).collect()
}

pub fn guarded(need: Need, handler: MethodRouter<ApiState>) -> MethodRouter<ApiState> {
    handler.route_layer(middleware::from_fn_with_state(need, auth::authorize))
}

pub fn router(state: ApiState) -> Router {
    let mut api = Router::new();
    for (r, handler) in api_table() {
        api = api.route(r.path, guarded(r.need, handler));
    }
    let api = api
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Added after the authentication layer, which it does not pass: the forge's signature
        // is its authentication (see `hooks`).
        .route(GIT_HOOK_PATH, post(hooks::git))
        .route(OPENAPI_PATH, get(serve_openapi));
    let metrics = Router::new()
        .route("/metrics", guarded(METRICS_NEED, get(health::metrics)))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(metrics)
        .route("/readyz", get(health::readyz))
        .nest("/api/v1", api)
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

/// A route that exists, asked with a method it does not take.
pub async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        format!(
            "this route does not take {method} (GET /api/v1/openapi.json lists every route and its methods)"
        ),
    )
}
