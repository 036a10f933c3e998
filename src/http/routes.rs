//! The route table — where every route is and what its caller needs — and the router built
//! from it and nothing else, so every route is authorised (the role-matrix test walks it).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::{self};
use axum::routing::{MethodRouter, delete, get, patch, post, put};

use super::error::ApiError;
use super::state::ApiState;
use super::{
    actions, agents, apply, apps, audit_log, auth, health, hooks, image_requests, images, nodes,
    policy, sources, stats, tokens,
};
use crate::auth::{Need, Role};

/// One route of the API: where it is, and what its caller needs. The router is built from this
/// table and nothing else, so every route is authorised (and the role-matrix test walks it).
#[derive(Clone, Debug)]
pub struct ApiRoute {
    pub method: Method,
    /// Under `/api/v1`, with `{ns}`-style parameters (`/metrics` is outside it).
    pub path: &'static str,
    pub need: Need,
}

pub fn route(
    method: Method,
    path: &'static str,
    need: Need,
    handler: MethodRouter<ApiState>,
) -> (ApiRoute, MethodRouter<ApiState>) {
    (ApiRoute { method, path, need }, handler)
}

/// Every route under `/api/v1`.
pub fn api_table() -> Vec<(ApiRoute, MethodRouter<ApiState>)> {
    use Method as M;
    use Need::{Everywhere, Namespace, Somewhere, Token};
    use Role::{Admin, Editor, Viewer};
    vec![
        // Each document is checked against its own namespace (Image: admin everywhere).
        route(M::POST, "/apply", Somewhere(Editor), post(apply::apply)),
        route(M::GET, "/whoami", Token, get(tokens::whoami)),
        // The mode, the engine and (swarm mode) the cluster.
        route(M::GET, "/info", Token, get(nodes::info)),
        // Swarm mode (409 in solo mode).
        route(M::GET, "/nodes", Everywhere(Viewer), get(nodes::list)),
        route(M::GET, "/nodes/{node}", Everywhere(Viewer), get(nodes::get)),
        // Deletes the `kind: Node` object; the node stays as it is.
        route(
            M::DELETE,
            "/nodes/{node}",
            Everywhere(Admin),
            delete(nodes::delete),
        ),
        // Node agents dial in here (an agent token, swarm mode).
        route(M::GET, "/agents/connect", Need::Agent, get(agents::connect)),
        route(
            M::GET,
            "/nodes/{node}/stats",
            Everywhere(Viewer),
            get(nodes::node_stats),
        ),
        route(
            M::GET,
            "/nodes/{node}/stats/history",
            Everywhere(Viewer),
            get(nodes::node_stats_history),
        ),
        // Lists only the namespaces the token may read.
        route(M::GET, "/apps", Token, get(apps::list_all)),
        route(
            M::GET,
            "/sources",
            Everywhere(Viewer),
            get(sources::sources),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps",
            Namespace(Viewer),
            get(apps::list_namespace),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}",
            Namespace(Viewer),
            get(apps::get_app),
        ),
        route(
            M::PUT,
            "/namespaces/{ns}/apps/{name}",
            Namespace(Editor),
            put(apps::put_app),
        ),
        route(
            M::PATCH,
            "/namespaces/{ns}/apps/{name}",
            Namespace(Editor),
            patch(apps::patch_app),
        ),
        route(
            M::DELETE,
            "/namespaces/{ns}/apps/{name}",
            Namespace(Editor),
            delete(apps::delete_app),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/events",
            Namespace(Viewer),
            get(apps::app_events),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/restart",
            Namespace(Editor),
            post(actions::restart),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/kill",
            Namespace(Editor),
            post(actions::kill),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/hard-reset",
            Namespace(Editor),
            post(actions::hard_reset),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/inspect",
            Namespace(Viewer),
            get(actions::inspect),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/logs",
            Namespace(Viewer),
            get(actions::logs),
        ),
        route(
            M::POST,
            "/namespaces/{ns}/apps/{name}/git/{op}",
            Namespace(Editor),
            post(actions::git),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/stats",
            Namespace(Viewer),
            get(stats::app_stats),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/apps/{name}/uptime",
            Namespace(Viewer),
            get(stats::app_uptime),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/users",
            Namespace(Viewer),
            get(apps::users),
        ),
        route(
            M::GET,
            "/namespaces/{ns}/policy",
            Namespace(Viewer),
            get(policy::get_policy),
        ),
        route(
            M::PUT,
            "/namespaces/{ns}/policy",
            Everywhere(Admin),
            put(policy::put_policy),
        ),
        route(
            M::DELETE,
            "/namespaces/{ns}/policy",
            Everywhere(Admin),
            delete(policy::delete_policy),
        ),
        route(
            M::GET,
            "/host/stats",
            Everywhere(Admin),
            get(stats::host_now),
        ),
        route(
            M::GET,
            "/host/stats/history",
            Everywhere(Admin),
            get(stats::host_history),
        ),
        route(M::GET, "/images", Token, get(images::list)),
        route(
            M::POST,
            "/images:update-all",
            Everywhere(Admin),
            post(images::update_all),
        ),
        route(M::GET, "/images/{name}", Token, get(images::get)),
        route(
            M::DELETE,
            "/images/{name}",
            Everywhere(Admin),
            delete(images::delete),
        ),
        route(
            M::POST,
            "/images/{name}/pull",
            Everywhere(Admin),
            post(images::pull),
        ),
        route(
            M::GET,
            "/images/{name}/events",
            Token,
            get(images::image_events),
        ),
        route(
            M::POST,
            "/image-requests",
            Somewhere(Editor),
            post(image_requests::request_image),
        ),
        // Admins see every request, others their own.
        route(
            M::GET,
            "/image-requests",
            Token,
            get(image_requests::list_image_requests),
        ),
        route(
            M::POST,
            "/image-requests/{id}/approve",
            Everywhere(Admin),
            post(image_requests::approve_image_request),
        ),
        route(
            M::POST,
            "/image-requests/{id}/reject",
            Everywhere(Admin),
            post(image_requests::reject_image_request),
        ),
        route(
            M::POST,
            "/tokens",
            Everywhere(Admin),
            post(tokens::create_token),
        ),
        route(
            M::GET,
            "/tokens",
            Everywhere(Admin),
            get(tokens::list_tokens),
        ),
        route(
            M::DELETE,
            "/tokens/{id}",
            Everywhere(Admin),
            delete(tokens::revoke_token),
        ),
        route(M::GET, "/audit", Everywhere(Admin), get(audit_log::audit)),
    ]
}

/// The git webhook, under `/api/v1`: no bearer token, a forge's signature instead.
pub const GIT_HOOK_PATH: &str = "/hooks/git";

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
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        // Added after the authentication layer, which it does not pass: the forge's signature
        // is its authentication (see `hooks`).
        .route(GIT_HOOK_PATH, post(hooks::git));
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
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.max_body))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
