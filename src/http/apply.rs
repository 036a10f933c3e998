//! `POST /api/v1/apply`: a bundle of documents, all or nothing; with `?dryRun=true`, each
//! object's diff and the loop's plan for it (through the controller's preview), nothing
//! written.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::audit::noted;
use super::auth::{require_admin, require_role};
use super::body::{body, items, read_documents};
use super::error::{ApiError, ApiResult};
use super::extract::Query;
use super::state::ApiState;
use super::views::{AppliedObject, ApplyResult, PlannedStep};
use crate::auth::{Principal, Role};
use crate::reconcile::preview::PreviewError;
use crate::spec::{Kind, Validated};
use crate::store::{ObjectSource, StoreError, WriteItem, WriteOutcome, ownership_message};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
}

pub async fn apply(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Query(query): Query<ApplyQuery>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let answer = apply_bundle(&state, &principal, &query, &headers, bytes).await;
    let status = match &answer {
        Ok(_) => 200,
        Err(e) => e.status.as_u16(),
    };
    state.controller.metrics().apply_answered(status);
    answer
}

/// 403 unless the principal may write every document of the bundle.
pub fn authorize_bundle(principal: &Principal, docs: &[Validated]) -> ApiResult<()> {
    for v in docs {
        match v.kind() {
            Kind::App => require_role(principal, Role::Editor, &v.key().namespace, &v.describe())?,
            Kind::Image | Kind::Node => require_admin(principal, &v.describe())?,
        }
    }
    Ok(())
}

/// The one namespace a bundle writes to, if it writes to exactly one.
pub fn bundle_namespace(docs: &[Validated]) -> Option<&str> {
    let namespaces: BTreeSet<&str> = docs
        .iter()
        .filter(|v| v.kind() == Kind::App)
        .map(|v| v.key().namespace.as_str())
        .collect();
    match (namespaces.len(), docs.iter().all(|v| v.kind() == Kind::App)) {
        (1, true) => namespaces.into_iter().next(),
        _ => None,
    }
}

pub async fn apply_bundle(
    state: &ApiState,
    principal: &Principal,
    query: &ApplyQuery,
    headers: &HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let bytes = body(bytes)?;
    let docs = read_documents(headers, &bytes)?;
    authorize_bundle(principal, &docs)?;
    if query.dry_run {
        // A dry run answers the refusals the write would get.
        state
            .store
            .check_apply(&items(&docs), &ObjectSource::Api)
            .await?;
        return Ok(Json(dry_run(state, &docs).await?).into_response());
    }
    let results = state.store.apply(&items(&docs), &ObjectSource::Api).await?;
    if results.iter().any(|(o, _)| *o != WriteOutcome::Unchanged) {
        state.wake.notify_one();
    }
    let note: Vec<String> = results
        .iter()
        .map(|(o, r)| format!("{} {}", r.describe(), o.as_str()))
        .collect();
    let items = results
        .iter()
        .map(|(o, r)| AppliedObject::written(*o, r))
        .collect();
    Ok(noted(
        Json(ApplyResult {
            dry_run: false,
            items,
        }),
        format!("applied: {}", note.join(", ")),
        bundle_namespace(&docs),
    ))
}

/// YAML of what `diff` compares: labels, annotations and spec.
pub fn diff_text(
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    spec: &Value,
) -> String {
    let mut doc = json!({ "spec": spec });
    if !labels.is_empty() || !annotations.is_empty() {
        doc["metadata"] = json!({ "labels": labels, "annotations": annotations });
    }
    serde_saphyr::to_string(&doc)
        .unwrap_or_else(|_| serde_json::to_string_pretty(&doc).unwrap_or_default())
}

pub async fn dry_run(state: &ApiState, docs: &[Validated]) -> ApiResult<ApplyResult> {
    let mut out = Vec::new();
    let mut candidates = Vec::new();
    for v in docs {
        let key = v.key();
        let current = state.store.get(v.kind(), key).await?;
        let new_spec = v.document.spec_value();
        let meta = v.document.metadata();
        let new_text = diff_text(&meta.labels, &meta.annotations, &new_spec);
        let (result, old_text) = match &current {
            None => (WriteOutcome::Created, String::new()),
            Some(r) => {
                if r.source != ObjectSource::Api {
                    return Err(
                        StoreError::Conflict(ownership_message(v.kind(), key, &r.source)).into(),
                    );
                }
                let old = diff_text(&r.labels, &r.annotations, &json!(r.spec));
                let result = if old == new_text && !r.is_terminating() {
                    WriteOutcome::Unchanged
                } else {
                    WriteOutcome::Configured
                };
                (result, old)
            }
        };
        let diff = similar::TextDiff::from_lines(&old_text, &new_text)
            .unified_diff()
            .header("current", "applied")
            .to_string();
        candidates.push(WriteItem::new(v).would_store(current.as_ref()));
        out.push(AppliedObject {
            kind: v.kind(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            result,
            uid: None,
            generation: None,
            resource_version: None,
            diff: Some(diff),
            plan: None,
        });
    }
    let mut plans = state
        .controller
        .preview(candidates)
        .await
        .map_err(|e| match e {
            PreviewError::Unobservable(m) => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "EngineUnavailable", m)
            }
            PreviewError::Store(e) => e.into(),
        })?;
    for (item, v) in out.iter_mut().zip(docs) {
        if v.kind() != Kind::App {
            continue;
        }
        let steps = plans
            .remove(v.key())
            .unwrap_or_default()
            .into_iter()
            .map(|s| PlannedStep {
                action: s.action,
                reason: s.reason,
            })
            .collect();
        item.plan = Some(steps);
    }
    Ok(ApplyResult {
        dry_run: true,
        items: out,
    })
}
