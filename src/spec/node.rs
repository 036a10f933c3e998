//! The `Node` kind (swarm mode): a swarm node's declared availability and labels.
//!
//! Cluster-scoped, admin only. wharf keeps the node so; deleting the object leaves the node as
//! it is. `metadata.name` is the node's hostname (or its id). Draining a node through a spec
//! file is how an operator takes a machine out for maintenance. Pure: nothing here talks to
//! Docker or the store.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SpecError;
use super::validate::{AppKey, check_label_key};
use super::wire::{ApiVersion, ObjectMeta};

/// `kind: Node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NodeKind {
    Node,
}

/// A swarm node as an operator declares it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Node")]
pub struct NodeDocument {
    pub api_version: ApiVersion,
    pub kind: NodeKind,
    /// `name`: the node's hostname or id. `namespace` must be absent: nodes are cluster-scoped.
    pub metadata: ObjectMeta,
    pub spec: NodeSpecWire,
    /// Server-owned; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// What wharf keeps true of the node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpecWire {
    /// `active` (default): tasks may run here; `pause`: no new tasks; `drain`: its tasks move
    /// to other nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Availability>,
    /// The node's labels (placement constraints read them as `node.labels.KEY`); exactly
    /// these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    #[default]
    Active,
    Pause,
    Drain,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

impl fmt::Display for Availability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated Node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// `namespace` is empty: nodes are cluster-scoped.
    pub key: AppKey,
    pub availability: Availability,
    pub labels: BTreeMap<String, String>,
}

/// Validates a wire Node into its domain form.
pub fn validate_node(doc: &NodeDocument) -> Result<NodeSpec, Vec<SpecError>> {
    let mut errors = Vec::new();
    let meta = &doc.metadata;
    if meta.namespace.is_some() {
        errors.push(SpecError::field(
            "metadata.namespace",
            "a Node is cluster-scoped; remove the namespace",
        ));
    }
    let name_ok = !meta.name.is_empty()
        && meta.name.len() <= 253
        && meta
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !name_ok {
        errors.push(SpecError::field(
            "metadata.name",
            format!(
                "{:?} is not a hostname or node id (letters, digits, '-', '.', '_')",
                meta.name
            ),
        ));
    }
    for k in doc.spec.labels.keys() {
        if !check_label_key(k) {
            errors.push(SpecError::field(
                format!("spec.labels.{k}"),
                "invalid key: use letters, digits, '-', '_', '.', '/'",
            ));
        }
    }
    for (k, v) in &doc.spec.labels {
        if v.contains('\0') {
            errors.push(SpecError::field(
                format!("spec.labels.{k}"),
                "must not contain NUL",
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NodeSpec {
        key: AppKey {
            namespace: String::new(),
            name: meta.name.clone(),
        },
        availability: doc.spec.availability.unwrap_or_default(),
        labels: doc.spec.labels.clone(),
    })
}
