//! What a request leaves for the audit log: the note a handler (or an error) attaches to its
//! response and the namespace it acted in. `auth::authenticate` records them.

use axum::response::{IntoResponse, Response};

/// What a write did, for the audit log (set by handlers and by `ApiError`).
#[derive(Clone, Debug)]
pub struct AuditNote(pub String);

/// The namespace a request acted in, for the audit log.
#[derive(Clone, Debug)]
pub struct AuditNamespace(pub String);

/// Adds the audit note (and the namespace, when there is one) to a response.
pub fn noted(response: impl IntoResponse, note: String, namespace: Option<&str>) -> Response {
    let mut response = response.into_response();
    response.extensions_mut().insert(AuditNote(note));
    if let Some(ns) = namespace {
        response
            .extensions_mut()
            .insert(AuditNamespace(ns.to_string()));
    }
    response
}
