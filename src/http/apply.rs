//! `POST /api/v1/apply`: a bundle of documents, all or nothing; with `?dryRun=true`, each
//! object's diff and the loop's plan for it (through the controller's preview), nothing
//! written.

use schemars::JsonSchema;
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
use crate::spec::{AppKey, Kind, Validated};
use crate::store::{
    ObjectRecord, ObjectSource, SET_LABEL, StoreError, WriteItem, WriteOutcome, left_out,
    ownership_message,
};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyQuery {
    #[serde(default)]
    dry_run: bool,
    /// Delete the API-owned objects of `set` that the bundle no longer contains.
    #[serde(default)]
    prune: bool,
    /// The apply set: every object of the bundle is labelled `wharf.set: NAME`.
    set: Option<String>,
}

impl ApplyQuery {
    /// The set named, checked: a label value, and required by `prune`.
    fn checked_set(&self) -> ApiResult<Option<&str>> {
        match self.set.as_deref() {
            None if self.prune => Err(ApiError::bad_request(
                "prune=true needs set=NAME: only the objects of one apply set are ever pruned",
            )),
            None => Ok(None),
            Some(set) => match crate::spec::names::check_name(set) {
                Ok(()) => Ok(Some(set)),
                Err(e) => Err(ApiError::bad_request(format!("set: {e}"))),
            },
        }
    }
}

/// Labels every item with `set`. A document that names another set in its own labels is
/// refused, naming the field.
fn label_with_set(docs: &[Validated], items: &mut [WriteItem], set: &str) -> ApiResult<()> {
    let mut errors = Vec::new();
    for (index, (v, item)) in docs.iter().zip(items.iter_mut()).enumerate() {
        match item.meta.labels.get(SET_LABEL) {
            Some(other) if other != set => errors.push(crate::spec::SpecError {
                document: Some(index + 1),
                object: Some(v.describe()),
                field: Some(format!("metadata.labels.{SET_LABEL}")),
                message: format!("names the set {other:?}, but this apply is for the set {set:?}"),
                ..Default::default()
            }),
            _ => {
                item.meta.labels.insert(SET_LABEL.into(), set.into());
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(errors))
    }
}

/// 403 unless the principal may delete every object a prune would.
fn authorize_prune(principal: &Principal, prune: &[ObjectRecord]) -> ApiResult<()> {
    for r in prune {
        let what = format!("pruning {}", r.describe());
        match r.kind {
            Kind::App => require_role(principal, Role::Editor, &r.key.namespace, &what)?,
            Kind::Image | Kind::Node => require_admin(principal, &what)?,
        }
    }
    Ok(())
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
    let set = query.checked_set()?;
    let bytes = body(bytes)?;
    let docs = read_documents(headers, &bytes)?;
    authorize_bundle(principal, &docs)?;
    let mut items = items(&docs);
    if let Some(set) = set {
        label_with_set(&docs, &mut items, set)?;
    }
    let prune = match set {
        Some(set) if query.prune => left_out(state.store.set_members(set).await?, &items),
        _ => Vec::new(),
    };
    authorize_prune(principal, &prune)?;
    if query.dry_run {
        // A dry run answers the refusals the write would get.
        state.store.check_apply(&items, &ObjectSource::Api).await?;
        return Ok(Json(dry_run(state, &docs, &items, &prune).await?).into_response());
    }
    let (results, pruned) = state
        .store
        .apply_and_prune(&items, &ObjectSource::Api, &prune)
        .await?;
    if !pruned.is_empty() || results.iter().any(|(o, _)| *o != WriteOutcome::Unchanged) {
        state.wake.notify_one();
    }
    let written = results.iter().map(|(o, r)| (*o, r));
    let all = written.chain(pruned.iter().map(|r| (WriteOutcome::Pruned, r)));
    let (note, items): (Vec<String>, Vec<AppliedObject>) = all
        .map(|(o, r)| {
            (
                format!("{} {}", r.describe(), o.as_str()),
                AppliedObject::written(o, r),
            )
        })
        .unzip();
    let namespace = if pruned
        .iter()
        .all(|r| Some(r.key.namespace.as_str()) == bundle_namespace(&docs))
    {
        bundle_namespace(&docs)
    } else {
        None
    };
    Ok(noted(
        Json(ApplyResult {
            dry_run: false,
            items,
        }),
        format!("applied: {}", note.join(", ")),
        namespace,
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

/// What an apply of `items` (the documents `docs`, labelled for their set) pruning `prune`
/// would do: each object's diff and, for Apps, the loop's plan.
pub async fn dry_run(
    state: &ApiState,
    docs: &[Validated],
    items: &[WriteItem],
    prune: &[ObjectRecord],
) -> ApiResult<ApplyResult> {
    let mut out = Vec::new();
    let mut candidates = Vec::new();
    for (v, item) in docs.iter().zip(items) {
        let key = v.key();
        let current = state.store.get(v.kind(), key).await?;
        let new_spec = v.document.spec_value();
        let meta = &item.meta;
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
        candidates.push(item.would_store(current.as_ref()));
        out.push(planned(
            v.kind(),
            key,
            result,
            unified(&old_text, &new_text),
        ));
    }
    for r in prune {
        let mut gone = r.clone();
        gone.deletion_timestamp = Some(crate::store::now_rfc3339());
        candidates.push(gone);
        let old = diff_text(&r.labels, &r.annotations, &json!(r.spec));
        out.push(planned(
            r.kind,
            &r.key,
            WriteOutcome::Pruned,
            unified(&old, ""),
        ));
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
    for item in out.iter_mut().filter(|i| i.kind == Kind::App) {
        let key = AppKey {
            namespace: item.namespace.clone(),
            name: item.name.clone(),
        };
        let steps = plans
            .remove(&key)
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

fn unified(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header("current", "applied")
        .to_string()
}

/// A dry run's line for one object, before its plan is known.
fn planned(kind: Kind, key: &AppKey, result: WriteOutcome, diff: String) -> AppliedObject {
    AppliedObject {
        kind,
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        result,
        uid: None,
        generation: None,
        resource_version: None,
        diff: Some(diff),
        plan: None,
    }
}
