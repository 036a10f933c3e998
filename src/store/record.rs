//! The stored object as the store returns it (`ObjectRecord`: spec and status as their Rust
//! types), what a write takes (`WriteItem`) and what it did (`WriteOutcome`).

use schemars::JsonSchema;
use std::collections::BTreeMap;

use serde::Serialize;
use sqlx::Row;

use super::{StoreError, StoreResult, now_rfc3339};
use crate::spec::status::{AppStatus, ImageStatus, ObjectStatus};
use crate::spec::validate::AppKey;
use crate::spec::wire::{API_VERSION, AppDocument, ObjectMeta};
use crate::spec::{
    AppSpec, ImageDocument, ImageSpec, Kind, ObjectSpec, Validated, validate_app, validate_image,
};

/// An object as the API shows it: `apiVersion`, `kind`, `metadata` (with the server-set fields),
/// `spec` as written, and the server-owned `status` (`S`: the stored one, or a view that adds
/// live figures to it).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "ObjectViewWith{S}")]
pub struct ObjectView<'a, S = &'a ObjectStatus> {
    pub api_version: &'static str,
    pub kind: Kind,
    pub metadata: MetadataView<'a>,
    pub spec: &'a ObjectSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<S>,
}

impl<'a> ObjectView<'a> {
    /// The same view with its status shown through `f`.
    pub fn map_status<S>(self, f: impl FnOnce(&'a ObjectStatus) -> S) -> ObjectView<'a, S> {
        ObjectView {
            api_version: self.api_version,
            kind: self.kind,
            metadata: self.metadata,
            spec: self.spec,
            status: self.status.map(f),
        }
    }
}

/// `metadata` as the API shows it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetadataView<'a> {
    pub name: &'a str,
    /// Empty for cluster-scoped kinds (Image), and then left out.
    #[serde(skip_serializing_if = "str::is_empty")]
    pub namespace: &'a str,
    pub uid: &'a str,
    pub generation: i64,
    pub resource_version: String,
    pub creation_timestamp: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<&'a str>,
    pub source: &'a ObjectSource,
    /// The git commit a file-owned object was last applied from (`wharf serve --git`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_commit: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

/// Who manages an object: the API (and the CLI), or one spec file of the watched directory.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectSource {
    Api,
    /// The file's path relative to the watched directory, with `/` separators.
    File(String),
}

impl ObjectSource {
    /// The file's path, for a file-owned object.
    pub fn file(&self) -> Option<&str> {
        match self {
            ObjectSource::File(path) => Some(path),
            ObjectSource::Api => None,
        }
    }
}

/// `api` or `file:PATH`, as stored and shown in `metadata.source`.
impl std::fmt::Display for ObjectSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectSource::Api => f.write_str("api"),
            ObjectSource::File(path) => write!(f, "file:{path}"),
        }
    }
}

impl std::str::FromStr for ObjectSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match (s, s.strip_prefix("file:")) {
            ("api", _) => Ok(ObjectSource::Api),
            (_, Some(path)) if !path.is_empty() => Ok(ObjectSource::File(path.to_string())),
            _ => Err(format!("{s:?} is not an object source (api or file:PATH)")),
        }
    }
}

impl Serialize for ObjectSource {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl JsonSchema for ObjectSource {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ObjectSource".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Who manages the object: `api` (the API and the CLI) or `file:PATH` (a spec file of the watched directory or the git checkout).",
            "type": "string",
            "pattern": "^(api|file:.+)$",
        })
    }
}

/// One stored object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectRecord {
    pub kind: Kind,
    pub key: AppKey,
    pub uid: String,
    pub generation: i64,
    pub resource_version: i64,
    pub source: ObjectSource,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: ObjectSpec,
    pub status: Option<ObjectStatus>,
    pub created_at: String,
    pub deletion_timestamp: Option<String>,
    /// The update-class hash last applied in place, and to which container.
    pub applied_update: Option<AppliedUpdate>,
    /// The first port of the app's port area, when it declares one.
    pub host_port_root: Option<u16>,
    /// The git commit the object was last applied from (`wharf serve --git`).
    pub source_commit: Option<String>,
}

/// An in-place update wharf made: container labels cannot record it.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedUpdate {
    pub container_id: String,
    pub hash: String,
}

impl ObjectRecord {
    /// The object as the API shows it.
    pub fn view(&self) -> ObjectView<'_> {
        ObjectView {
            api_version: API_VERSION,
            kind: self.kind,
            metadata: MetadataView {
                name: &self.key.name,
                namespace: &self.key.namespace,
                uid: &self.uid,
                generation: self.generation,
                resource_version: self.resource_version.to_string(),
                creation_timestamp: &self.created_at,
                deletion_timestamp: self.deletion_timestamp.as_deref(),
                source: &self.source,
                source_commit: self.source_commit.as_deref(),
                labels: &self.labels,
                annotations: &self.annotations,
            },
            spec: &self.spec,
            status: self.status.as_ref(),
        }
    }

    /// The full document, as the API returns it, as JSON (for handlers that add live figures).
    pub fn to_document(&self) -> serde_json::Value {
        serde_json::json!(self.view())
    }

    /// The stored spec as a wire document (for validation and planning).
    pub fn to_app_document(&self) -> StoreResult<AppDocument> {
        self.to_wire()
    }

    pub fn to_image_document(&self) -> StoreResult<ImageDocument> {
        self.to_wire()
    }

    fn to_wire<T: serde::de::DeserializeOwned>(&self) -> StoreResult<T> {
        let mut doc = self.to_document();
        if let Some(obj) = doc.as_object_mut() {
            obj.remove("status");
        }
        serde_json::from_value(doc)
            .map_err(|e| StoreError::Corrupt(format!("{}: {e}", self.describe())))
    }

    /// `App demo/web`, `Image nginx`.
    pub fn describe(&self) -> String {
        self.kind.describe(&self.key)
    }

    /// The stored App, validated again (the rules may have changed since it was accepted);
    /// every problem in one line otherwise.
    pub fn app_spec(&self) -> Result<AppSpec, String> {
        revalidate(self.to_app_document(), validate_app)
    }

    /// The stored Image, validated again.
    pub fn image_spec(&self) -> Result<ImageSpec, String> {
        revalidate(self.to_image_document(), validate_image)
    }

    /// The stored Node, validated again.
    pub fn node_spec(&self) -> Result<crate::spec::NodeSpec, String> {
        revalidate(self.to_wire(), crate::spec::validate_node)
    }

    /// The update-class hash wharf applied in place to container `container_id`, if any.
    pub fn applied_hash_for(&self, container_id: &str) -> Option<String> {
        self.applied_update
            .as_ref()
            .filter(|a| a.container_id == container_id)
            .map(|a| a.hash.clone())
    }

    pub fn is_terminating(&self) -> bool {
        self.deletion_timestamp.is_some()
    }

    /// The stored App status, when there is one.
    pub fn app_status(&self) -> Option<&AppStatus> {
        self.status.as_ref().and_then(ObjectStatus::app)
    }

    /// The stored Image status, when there is one.
    pub fn image_status(&self) -> Option<&ImageStatus> {
        self.status.as_ref().and_then(ObjectStatus::image)
    }

    /// The user an App belongs to.
    pub fn owner(&self) -> Option<&str> {
        self.spec.app().and_then(|s| s.owner.as_deref())
    }
}

fn revalidate<D, T>(
    doc: StoreResult<D>,
    validate: impl FnOnce(&D) -> Result<T, Vec<crate::spec::SpecError>>,
) -> Result<T, String> {
    let doc = doc.map_err(|e| e.to_string())?;
    validate(&doc).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })
}

impl WriteItem {
    /// The record a write of this item by the API would leave, given the `current` one: for
    /// previews (a dry run plans against it). Port areas are not allocated: a new app shows
    /// the block it has, if any.
    pub fn would_store(&self, current: Option<&ObjectRecord>) -> ObjectRecord {
        match current {
            Some(r) => {
                let mut record = r.clone();
                record.generation += i64::from(r.spec != self.spec || r.is_terminating());
                record.spec = self.spec.clone();
                record.labels = self.meta.labels.clone();
                record.annotations = self.meta.annotations.clone();
                record.deletion_timestamp = None;
                record
            }
            None => ObjectRecord {
                kind: self.kind,
                key: self.key.clone(),
                uid: format!("dry-run-{}", self.kind.describe(&self.key)),
                generation: 1,
                resource_version: 0,
                source: ObjectSource::Api,
                labels: self.meta.labels.clone(),
                annotations: self.meta.annotations.clone(),
                spec: self.spec.clone(),
                status: None,
                created_at: now_rfc3339(),
                deletion_timestamp: None,
                applied_update: None,
                host_port_root: None,
                source_commit: None,
            },
        }
    }
}

impl WriteItem {
    pub fn new(v: &Validated) -> Self {
        Self {
            kind: v.kind(),
            key: v.key().clone(),
            meta: v.document.metadata().clone(),
            spec: ObjectSpec::of(&v.document),
            ports: PortWants::of(&v.document),
            app: v.app().cloned().map(Box::new),
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteOutcome {
    Created,
    Configured,
    Unchanged,
    /// Marked for deletion by an apply set's prune (never the outcome of a write).
    Pruned,
}

impl WriteOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::Created => "created",
            WriteOutcome::Configured => "configured",
            WriteOutcome::Unchanged => "unchanged",
            WriteOutcome::Pruned => "pruned",
        }
    }
}

/// One object to write.
#[derive(Clone, Debug)]
pub struct WriteItem {
    pub kind: Kind,
    pub key: AppKey,
    pub meta: ObjectMeta,
    /// The spec as written.
    pub spec: ObjectSpec,
    /// Host ports it needs (Apps only).
    pub ports: PortWants,
    /// The validated App, for admission (Apps only).
    pub app: Option<Box<AppSpec>>,
}

/// A stored status, read as its kind's. One that no longer reads (another version of wharf
/// wrote it) is dropped with a warning: the next pass computes it afresh.
fn read_status(kind: Kind, key: &AppKey, text: &str) -> Option<ObjectStatus> {
    let read = match kind {
        Kind::App => serde_json::from_str(text).map(ObjectStatus::App),
        Kind::Image => serde_json::from_str(text).map(ObjectStatus::Image),
        Kind::Node => serde_json::from_str(text).map(ObjectStatus::Node),
    };
    read.map_err(|e| tracing::warn!(object = %kind.describe(key), "stored status unreadable, recomputed on the next pass: {e}"))
        .ok()
}

impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for ObjectRecord {
    fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
        Self::read(row).map_err(|e| match e {
            StoreError::Database(e) => e,
            other => sqlx::Error::Decode(Box::new(other)),
        })
    }
}

/// A query's error, with a corrupt row's own error taken back out of sqlx's decode error.
pub(super) fn decode_error(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Decode(inner) => match inner.downcast::<StoreError>() {
            Ok(own) => *own,
            Err(other) => StoreError::Database(sqlx::Error::Decode(other)),
        },
        other => StoreError::Database(other),
    }
}

impl ObjectRecord {
    /// Reads one row of `objects` (through `FromRow`).
    fn read(row: &sqlx::any::AnyRow) -> StoreResult<Self> {
        let json = |col: &str| -> StoreResult<serde_json::Value> {
            let text: String = row.try_get(col)?;
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
        };
        let map = |col: &str| -> StoreResult<BTreeMap<String, String>> {
            serde_json::from_value(json(col)?)
                .map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
        };
        let status: Option<String> = row.try_get("status")?;
        let kind: String = row.try_get("kind")?;
        let kind = Kind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown kind {kind:?}")))?;
        let key = AppKey {
            namespace: row.try_get("namespace")?,
            name: row.try_get("name")?,
        };
        Ok(ObjectRecord {
            kind,
            key: key.clone(),
            uid: row.try_get("uid")?,
            generation: row.try_get("generation")?,
            resource_version: row.try_get("resource_version")?,
            source: row
                .try_get::<String, _>("source")?
                .parse()
                .map_err(StoreError::Corrupt)?,
            labels: map("labels")?,
            annotations: map("annotations")?,
            spec: ObjectSpec::read(kind, json("spec")?),
            status: status.and_then(|s| read_status(kind, &key, &s)),
            created_at: row.try_get("created_at")?,
            deletion_timestamp: row.try_get("deletion_timestamp")?,
            applied_update: match (
                row.try_get::<Option<String>, _>("applied_container_id")?,
                row.try_get::<Option<String>, _>("applied_update_hash")?,
            ) {
                (Some(container_id), Some(hash)) => Some(AppliedUpdate { container_id, hash }),
                _ => None,
            },
            host_port_root: row
                .try_get::<Option<i64>, _>("host_port_root")?
                .and_then(|p| u16::try_from(p).ok()),
            source_commit: row.try_get("source_commit")?,
        })
    }
}

/// The host ports an App declares: a port area size and explicit `hostPort`s (with the field
/// that declares each).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortWants {
    pub area: Option<u16>,
    pub host_ports: Vec<(String, u16, String)>,
}

impl PortWants {
    pub(super) fn of(document: &crate::spec::Document) -> Self {
        let crate::spec::Document::App(app) = document else {
            return Self::default();
        };
        let host_ports = app
            .spec
            .ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let p = p.to_object().ok()?;
                Some((
                    format!("spec.ports[{i}].hostPort"),
                    p.host_port?,
                    p.protocol.unwrap_or_default().to_string(),
                ))
            })
            .collect();
        Self {
            area: app.spec.port_area.as_ref().map(|a| a.size),
            host_ports,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::spec::Kind;
    use crate::spec::validate::AppKey;
    use crate::store::StoreError;

    async fn a_corrupt_row_is_named_as_such_and_an_unreadable_spec_is_kept(
        db: crate::store::TestDb,
    ) {
        let store = db.open().await;
        for (name, labels, spec) in [
            ("bad-labels", "not json", "{}"),
            ("old-spec", "{}", r#"{"imageName": "from another version"}"#),
        ] {
            sqlx::query("INSERT INTO objects (kind, namespace, name, uid, generation, resource_version, source, labels, annotations, spec, created_at) VALUES ('App', 'demo', $1, $1, 1, 1, 'api', $2, '{}', $3, '')")
                .bind(name)
                .bind(labels)
                .bind(spec)
                .execute(&store.pool)
                .await
                .expect("row");
        }
        let key = |name: &str| AppKey {
            namespace: "demo".into(),
            name: name.into(),
        };
        let err = store.get(Kind::App, &key("bad-labels")).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("labels")),
            "{err:?}"
        );
        let kept = store
            .get(Kind::App, &key("old-spec"))
            .await
            .expect("readable row")
            .expect("present");
        assert!(
            matches!(kept.spec, crate::spec::ObjectSpec::Unreadable(_)),
            "{:?}",
            kept.spec
        );
        assert!(kept.app_spec().is_err(), "it no longer validates: frozen");
    }

    crate::store::on_both_databases!(a_corrupt_row_is_named_as_such_and_an_unreadable_spec_is_kept);
}
