//! `GET /api/v1/watch?kind=apps|images|nodes&namespace=`: a list's changes as server-sent
//! events, for the dashboard and `wharf get apps -w`.
//!
//! The stream opens with every item of the list as `ADDED`, then `SYNCED`; after that each
//! change of an item is `ADDED`, `MODIFIED` or `DELETED` with the item as the list's `GET`
//! shows it (the watch reads it through the same handler, so the two never differ). A list
//! that cannot be read is an `ERROR` event with the API's error body; the stream goes on and
//! reads again. A stream whose token is revoked or expires ends with an `ERROR` (401) within
//! [`TOKEN_CHECK`].
//!
//! What wakes it: the store's change counter, read every [`CHECK`] (one indexed row, so a
//! quiet watch costs nearly nothing, and a write through any wharf instance on the same
//! database is seen), and a refresh every stats interval for apps (their usage) or every
//! [`ENGINE_REFRESH`] for images and nodes (what only the engine knows: pulls under way, task
//! counts). Comments keep idle connections open through proxies.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use super::auth::refusal_message;
use super::error::{ApiError, ApiResult};
use super::extract::Query;
use super::state::ApiState;
use super::{apps, images, nodes};
use crate::auth::{Need, Principal, Role, digests_equal, token_digest};
use crate::spec::validate::check_namespace;
use crate::store::now_rfc3339;

/// How often the store's change counter is read.
pub const CHECK: Duration = Duration::from_millis(250);

/// How often images and nodes are read again when the store did not change.
pub const ENGINE_REFRESH: Duration = Duration::from_secs(2);

/// How often a watch checks that its token is still valid: a revoked or expired token's
/// stream ends (with an `ERROR` event, 401) within this long.
pub const TOKEN_CHECK: Duration = Duration::from_secs(5);

/// What to watch.
#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WatchQuery {
    kind: WatchKind,
    /// Apps only: one namespace's.
    namespace: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WatchKind {
    Apps,
    Images,
    Nodes,
}

/// One event of the stream: the `data:` of a server-sent event whose `event:` is `type`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: WatchEventType,
    /// The item, as the list's GET shows it (`ADDED`, `MODIFIED`, `DELETED`: its last state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
    /// `ERROR`: the API's error body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
    /// Every item of the list was sent once: what follows are changes.
    Synced,
    /// The list could not be read this time; the watch goes on.
    Error,
}

impl WatchEventType {
    fn as_str(self) -> &'static str {
        match self {
            WatchEventType::Added => "ADDED",
            WatchEventType::Modified => "MODIFIED",
            WatchEventType::Deleted => "DELETED",
            WatchEventType::Synced => "SYNCED",
            WatchEventType::Error => "ERROR",
        }
    }
}

pub async fn watch(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    Query(query): Query<WatchQuery>,
) -> ApiResult<Response> {
    // The route itself needs only a token: what the list needs is checked here, as its own
    // route would (a namespace's viewer for one namespace, a viewer of every one for nodes;
    // the list of every namespace keeps those the token may read).
    let need = match (&query.kind, &query.namespace) {
        (WatchKind::Apps, Some(ns)) => {
            check_namespace(ns).map_err(ApiError::bad_request)?;
            Some(Need::Namespace(Role::Viewer))
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "namespace: only apps are namespaced (images and nodes are watched whole)",
            ));
        }
        (WatchKind::Nodes, None) => Some(Need::Everywhere(Role::Viewer)),
        (WatchKind::Apps | WatchKind::Images, None) => None,
    };
    if let Some(need) = need
        && !principal.may(need, query.namespace.as_deref())
    {
        let scope = query
            .namespace
            .as_deref()
            .map(|ns| format!(" ({ns})"))
            .unwrap_or_default();
        return Err(ApiError::forbidden(format!(
            "token {} may not watch this: it needs {need}{scope}",
            principal.token_id
        )));
    }
    // The first read answers as the list would: a watch that cannot start is refused with the
    // list's own error (nodes in solo mode, an engine that is down for images).
    let first = read(&state, &principal, &query).await?;
    // The admin token is the data directory's file and lives as long as the server; every
    // other token is checked again while the stream lasts.
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(token_digest)
        .filter(|d| !digests_equal(d, &state.admin_sha256));
    let (tx, rx) = mpsc::channel::<Event>(64);
    let stopping = state.stopping.clone();
    tokio::spawn(async move {
        let watch = Watch {
            state,
            principal,
            token,
            query,
        };
        tokio::select! {
            _ = watch.follow(first, tx) => {}
            _ = stopping.cancelled() => {}
        }
    });
    Ok(Sse::new(events(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

fn events(rx: mpsc::Receiver<Event>) -> impl Stream<Item = Result<Event, Infallible>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (Ok(event), rx))
    })
}

/// The items of the watched list, each by its key.
type Items = BTreeMap<String, Value>;

async fn read(state: &ApiState, principal: &Principal, query: &WatchQuery) -> ApiResult<Items> {
    let answer = match query.kind {
        WatchKind::Apps => match &query.namespace {
            Some(ns) => {
                apps::list_namespace(
                    State(state.clone()),
                    super::extract::Path(ns.clone()),
                    Query(apps::ListQuery::default()),
                )
                .await?
            }
            None => {
                apps::list_all(
                    State(state.clone()),
                    Extension(principal.clone()),
                    Query(apps::ListQuery::default()),
                )
                .await?
            }
        },
        WatchKind::Images => images::list(State(state.clone())).await?,
        WatchKind::Nodes => nodes::list(State(state.clone())).await?.into_response(),
    };
    let body = axum::body::to_bytes(answer.into_body(), usize::MAX)
        .await
        .map_err(|e| ApiError::internal("reading a list for a watch", e))?;
    let list: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::internal("reading a list for a watch", e))?;
    let items = match list.get("items") {
        Some(Value::Array(items)) => items.clone(),
        _ => Vec::new(),
    };
    Ok(items
        .into_iter()
        .map(|item| (key_of(query.kind, &item), item))
        .collect())
}

/// An item's identity in its list: an app's uid, an image's namespace and name (engine images
/// have no namespace), a node's id.
fn key_of(kind: WatchKind, item: &Value) -> String {
    let s = |p: &str| item.pointer(p).and_then(Value::as_str).unwrap_or_default();
    match kind {
        WatchKind::Apps => s("/metadata/uid").to_string(),
        WatchKind::Images => format!("{}/{}", s("/metadata/namespace"), s("/metadata/name")),
        WatchKind::Nodes => s("/id").to_string(),
    }
}

fn event(kind: WatchEventType, object: Option<Value>, error: Option<Value>) -> Event {
    let data = WatchEvent {
        kind,
        object,
        error,
    };
    Event::default()
        .event(kind.as_str())
        .json_data(&data)
        .unwrap_or_else(|_| Event::default().event(kind.as_str()).data("{}"))
}

/// What changed from `before` to `after`, as events.
fn changes(before: &Items, after: &Items) -> Vec<Event> {
    let mut out = Vec::new();
    for (key, item) in after {
        match before.get(key) {
            None => out.push(event(WatchEventType::Added, Some(item.clone()), None)),
            Some(old) if old != item => {
                out.push(event(WatchEventType::Modified, Some(item.clone()), None))
            }
            Some(_) => {}
        }
    }
    for (key, item) in before {
        if !after.contains_key(key) {
            out.push(event(WatchEventType::Deleted, Some(item.clone()), None));
        }
    }
    out
}

/// One client's watch.
struct Watch {
    state: ApiState,
    principal: Principal,
    /// The digest of its token, unless it is the admin token.
    token: Option<[u8; 32]>,
    query: WatchQuery,
}

impl Watch {
    async fn follow(self, first: Items, tx: mpsc::Sender<Event>) {
        let state = &self.state;
        let mut pending = changes(&Items::new(), &first);
        pending.push(event(WatchEventType::Synced, None, None));
        let mut sent = first;
        let refresh = match self.query.kind {
            WatchKind::Apps => state.stats.interval.max(Duration::from_secs(1)),
            WatchKind::Images | WatchKind::Nodes => ENGINE_REFRESH,
        };
        let mut counter = state.store.change_counter().await.ok();
        let mut last_read = tokio::time::Instant::now();
        let mut last_auth = tokio::time::Instant::now();
        let mut failing = false;
        loop {
            for e in pending.drain(..) {
                if tx.send(e).await.is_err() {
                    return; // the client went away
                }
            }
            tokio::time::sleep(CHECK).await;
            if last_auth.elapsed() >= TOKEN_CHECK {
                last_auth = tokio::time::Instant::now();
                if let Some(refused) = self.refused().await {
                    let _gone = tx.send(error_event(&refused)).await;
                    return;
                }
            }
            let now_counter = state.store.change_counter().await.ok();
            let changed = now_counter.is_none() || now_counter != counter;
            if !changed && !failing && last_read.elapsed() < refresh {
                continue;
            }
            counter = now_counter;
            last_read = tokio::time::Instant::now();
            match read(state, &self.principal, &self.query).await {
                Ok(items) => {
                    failing = false;
                    pending = changes(&sent, &items);
                    sent = items;
                }
                Err(e) if !failing => {
                    failing = true;
                    pending = vec![error_event(&e)];
                }
                Err(_) => {}
            }
            if tx.is_closed() {
                return;
            }
        }
    }

    /// Why the watch's token may no longer read, if it may not (revoked, expired).
    async fn refused(&self) -> Option<ApiError> {
        let digest = self.token.as_ref()?;
        match self.state.store.principal_for(digest, &now_rfc3339()).await {
            Ok(Ok(_)) => None,
            Ok(Err(refusal)) => Some(ApiError::unauthorized(refusal_message(&refusal))),
            // The store cannot say now: the next check asks again.
            Err(_) => None,
        }
    }
}

fn error_event(e: &ApiError) -> Event {
    let body = serde_json::json!({
        "code": e.status.as_u16(),
        "reason": e.reason,
        "message": e.message,
    });
    event(WatchEventType::Error, None, Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn items(list: &[(&str, Value)]) -> Items {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn changes_are_added_modified_and_deleted_by_key() {
        let before = items(&[("a", json!({"v": 1})), ("b", json!({"v": 1}))]);
        let after = items(&[("a", json!({"v": 2})), ("c", json!({"v": 1}))]);
        let kinds: Vec<String> = changes(&before, &after)
            .into_iter()
            .map(|e| format!("{e:?}"))
            .collect();
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert!(kinds[0].contains("MODIFIED"), "{kinds:?}");
        assert!(kinds[1].contains("ADDED"), "{kinds:?}");
        assert!(kinds[2].contains("DELETED"), "{kinds:?}");
        assert!(changes(&after, &after).is_empty(), "nothing changed");
    }

    #[test]
    fn items_are_keyed_by_their_identity() {
        let app = json!({"metadata": {"uid": "u1", "name": "web", "namespace": "demo"}});
        assert_eq!(key_of(WatchKind::Apps, &app), "u1");
        let engine_image = json!({"metadata": {"name": "busybox:1"}});
        assert_eq!(key_of(WatchKind::Images, &engine_image), "/busybox:1");
        assert_eq!(key_of(WatchKind::Nodes, &json!({"id": "n1"})), "n1");
    }
}
