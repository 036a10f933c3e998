//! The shapes of the API's answers that several resources share: lists of objects, lists of
//! items, and what an apply did. Typed, so the answers are what their types say (and an OpenAPI
//! document can be generated from them).

use schemars::JsonSchema;
use serde::Serialize;

use crate::spec::Kind;
use crate::store::{ObjectRecord, WriteOutcome};

/// `{"items": [...]}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Items")]
pub struct Items<T> {
    pub items: Vec<T>,
}

impl<T> Items<T> {
    pub fn new(items: Vec<T>) -> Self {
        Self { items }
    }
}

/// `AppList`, `ImageList`: documents as the API shows them.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "{T}List")]
pub struct ObjectList<T> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub items: Vec<T>,
}

impl<T> ObjectList<T> {
    pub fn new(kind: &'static str, items: Vec<T>) -> Self {
        Self {
            api_version: crate::spec::wire::API_VERSION,
            kind,
            items,
        }
    }
}

/// The answer to `POST /api/v1/apply`.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplyResult {
    pub dry_run: bool,
    pub items: Vec<AppliedObject>,
}

/// What an apply did (or, in a dry run, would do) to one object.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedObject {
    pub kind: Kind,
    /// Empty for cluster-scoped kinds (Image).
    pub namespace: String,
    pub name: String,
    pub result: WriteOutcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Dry run: a unified diff of labels, annotations and spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
    /// Dry run, Apps: the loop's steps for it, each with its reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<PlannedStep>>,
}

impl AppliedObject {
    /// What a write did to `record`.
    pub fn written(outcome: WriteOutcome, record: &ObjectRecord) -> Self {
        Self {
            kind: record.kind,
            namespace: record.key.namespace.clone(),
            name: record.key.name.clone(),
            result: outcome,
            uid: Some(record.uid.clone()),
            generation: Some(record.generation),
            resource_version: Some(record.resource_version.to_string()),
            diff: None,
            plan: None,
        }
    }
}

/// One step of a plan, as a dry run shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PlannedStep {
    pub action: &'static str,
    pub reason: String,
}
