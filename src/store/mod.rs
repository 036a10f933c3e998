//! The store: desired objects, their status and events, in SQLite through sqlx.
//!
//! Every write the API acknowledges is committed first (WAL, `synchronous=FULL`). Ownership
//! (`api` or `file:PATH`), `resourceVersion` preconditions and generation bumps are enforced
//! here, inside transactions, so no caller can get them half right. This module never talks to
//! Docker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{FromRow, Row, Sqlite, SqlitePool, Transaction};

use crate::policy::{Policy, Totals, Usage};
use crate::spec::status::{AppStatus, ImageStatus, ObjectStatus};
use crate::spec::validate::AppKey;
use crate::spec::wire::{API_VERSION, AppDocument, ObjectMeta};
use crate::spec::{
    AppSpec, ImageDocument, ImageSpec, Kind, ObjectSpec, Validated, validate_app, validate_image,
};

pub mod security;
pub mod stats;

pub use stats::{Point, Resolution, Retention, Sample};

pub const SOURCE_API: &str = "api";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Refused by the namespace's policy, a quota or the host's admission check.
    #[error("{what}: {violation}")]
    Policy {
        what: String,
        violation: crate::policy::Violation,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// One stored object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectRecord {
    pub kind: Kind,
    pub key: AppKey,
    pub uid: String,
    pub generation: i64,
    pub resource_version: i64,
    pub source: String,
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
}

/// An in-place update wharf made: container labels cannot record it.
#[derive(Clone, Debug, PartialEq)]
pub struct AppliedUpdate {
    pub container_id: String,
    pub hash: String,
}

impl ObjectRecord {
    /// The full document, as the API returns it.
    pub fn to_document(&self) -> serde_json::Value {
        let mut metadata = serde_json::json!({
            "name": self.key.name,
            "uid": self.uid,
            "generation": self.generation,
            "resourceVersion": self.resource_version.to_string(),
            "creationTimestamp": self.created_at,
            "source": self.source,
        });
        if !self.key.namespace.is_empty() {
            metadata["namespace"] = serde_json::json!(self.key.namespace);
        }
        if !self.labels.is_empty() {
            metadata["labels"] = serde_json::json!(self.labels);
        }
        if !self.annotations.is_empty() {
            metadata["annotations"] = serde_json::json!(self.annotations);
        }
        if let Some(d) = &self.deletion_timestamp {
            metadata["deletionTimestamp"] = serde_json::json!(d);
        }
        let mut doc = serde_json::json!({
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "metadata": metadata,
            "spec": self.spec,
        });
        if let Some(status) = &self.status {
            doc["status"] = serde_json::json!(status);
        }
        doc
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
                source: SOURCE_API.to_string(),
                labels: self.meta.labels.clone(),
                annotations: self.meta.annotations.clone(),
                spec: self.spec.clone(),
                status: None,
                created_at: now_rfc3339(),
                deletion_timestamp: None,
                applied_update: None,
                host_port_root: None,
            },
        }
    }
}

/// What a write did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteOutcome {
    Created,
    Configured,
    Unchanged,
}

impl WriteOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteOutcome::Created => "created",
            WriteOutcome::Configured => "configured",
            WriteOutcome::Unchanged => "unchanged",
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

/// What the store checks an App against before it accepts it.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// The server's policy; namespaces may override it.
    pub policy: Policy,
    /// The host's memory in bytes (0: unknown, no host check).
    pub host_memory: i64,
    /// Apps may together declare at most this percent of `host_memory` (0: no check).
    pub host_memory_percent: u8,
}

/// Every stored app's usage, read once per write transaction and kept current by its writes.
#[derive(Default)]
struct UsageBook {
    by_uid: BTreeMap<String, (String, Usage)>,
}

impl UsageBook {
    fn totals(&self, except: &str, namespace: Option<&str>) -> Totals {
        let mut t = Totals::default();
        for (uid, (ns, usage)) in &self.by_uid {
            if uid != except && namespace.is_none_or(|n| n == ns) {
                t.add(usage);
            }
        }
        t
    }
}

/// Whether an event reports something done or something that went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl TryFrom<String> for EventType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "Normal" => Ok(EventType::Normal),
            "Warning" => Ok(EventType::Warning),
            other => Err(format!("{other:?} is not an event type")),
        }
    }
}

/// An event about an object.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub time: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type", try_from = "String")]
    pub kind: EventType,
    pub reason: String,
    pub message: String,
}

/// A problem reported for one source of specs (a file).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceError {
    pub source: String,
    pub time: String,
    pub message: String,
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The result of syncing the watched directory into the store.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub changed: Vec<(Kind, AppKey, WriteOutcome)>,
    pub deleted: Vec<(Kind, AppKey)>,
    /// Per file: objects that could not be taken (owned elsewhere).
    pub conflicts: BTreeMap<String, Vec<String>>,
}

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    port_areas: PortRange,
    admission: Arc<Admission>,
}

/// The host ports port areas are allocated from (inclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl Default for PortRange {
    fn default() -> Self {
        let (first, last) = crate::defaults::PORT_AREA_RANGE;
        Self { first, last }
    }
}

impl std::str::FromStr for PortRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: write FIRST-LAST, e.g. 20000-32767"))?;
        let port = |t: &str| {
            t.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{t:?} is not a port number (1-65535)"))
        };
        let (first, last) = (port(a)?, port(b)?);
        if first > last {
            return Err(format!("{s:?}: the first port is above the last"));
        }
        Ok(Self { first, last })
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
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
    fn of(document: &crate::spec::Document) -> Self {
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

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            pool,
            port_areas: PortRange::default(),
            admission: Arc::new(Admission::default()),
        })
    }

    /// Checks every App write against `admission`.
    pub fn with_admission(mut self, admission: Admission) -> Self {
        self.admission = Arc::new(admission);
        self
    }

    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// The policy that holds in `namespace`: the server's, overridden by the namespace's own.
    pub async fn effective_policy(&self, namespace: &str) -> StoreResult<Policy> {
        let over = self.namespace_policy(namespace).await?;
        policy_with(&self.admission.policy, over)
    }

    async fn load_usage(tx: &mut Transaction<'_, Sqlite>) -> StoreResult<UsageBook> {
        let rows =
            sqlx::query("SELECT * FROM objects WHERE kind = 'App' AND deletion_timestamp IS NULL")
                .fetch_all(&mut **tx)
                .await?;
        let mut book = UsageBook::default();
        for row in &rows {
            let record = Self::row_to_record(row)?;
            // An app that no longer validates holds what it last declared, as far as it reads.
            let usage = record.app_spec().map(|a| Usage::of(&a)).unwrap_or_default();
            book.by_uid
                .insert(record.uid.clone(), (record.key.namespace.clone(), usage));
        }
        Ok(book)
    }

    /// Checks an App against its namespace's policy and quota and the host's memory
    /// admission, with usage as of `tx`. `uid` is the app's (new or stored).
    async fn admit_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        book: &mut Option<UsageBook>,
        item: &WriteItem,
        uid: &str,
        is_new: bool,
    ) -> StoreResult<()> {
        let Some(app) = item.app.as_deref() else {
            return Ok(());
        };
        let refuse = |violation| StoreError::Policy {
            what: item.kind.describe(&item.key),
            violation,
        };
        let over: Option<String> =
            sqlx::query_scalar("SELECT policy FROM namespace_policies WHERE namespace = ?")
                .bind(&item.key.namespace)
                .fetch_optional(&mut **tx)
                .await?;
        let over = over
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("namespace policy: {e}")))?;
        let policy = policy_with(&self.admission.policy, over)?;
        crate::policy::check_app(&policy, app).map_err(refuse)?;
        if book.is_none() {
            *book = Some(Self::load_usage(tx).await?);
        }
        let Some(book) = book.as_mut() else {
            return Ok(());
        };
        let new = Usage::of(app);
        let old = book.by_uid.get(uid).map(|(_, u)| *u);
        let ns = &item.key.namespace;
        let in_namespace = book.totals(uid, Some(ns));
        if is_new {
            crate::policy::check_app_count(&policy, ns, &in_namespace).map_err(refuse)?;
        }
        crate::policy::check_quota(&policy, ns, &in_namespace, old.as_ref(), &new)
            .map_err(refuse)?;
        crate::policy::check_host_memory(
            self.admission.host_memory,
            self.admission.host_memory_percent,
            &book.totals(uid, None),
            old.as_ref(),
            &new,
        )
        .map_err(refuse)?;
        book.by_uid.insert(uid.to_string(), (ns.clone(), new));
        Ok(())
    }

    /// Allocates port areas from `range` instead of the default.
    pub fn with_port_areas(mut self, range: PortRange) -> Self {
        self.port_areas = range;
        self
    }

    /// A write transaction that takes the write lock up front (`BEGIN IMMEDIATE`): a deferred
    /// one that reads first and writes later fails at once with SQLITE_BUSY when another
    /// writer got in between, instead of waiting for the busy timeout.
    async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn next_rv(tx: &mut Transaction<'_, Sqlite>) -> StoreResult<i64> {
        let rv: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'resource_version' RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await?;
        Ok(rv)
    }

    fn row_to_record(row: &sqlx::sqlite::SqliteRow) -> StoreResult<ObjectRecord> {
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
            source: row.try_get("source")?,
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
        })
    }

    async fn get_in(
        tx: &mut Transaction<'_, Sqlite>,
        kind: Kind,
        key: &AppKey,
    ) -> StoreResult<Option<ObjectRecord>> {
        let row =
            sqlx::query("SELECT * FROM objects WHERE kind = ? AND namespace = ? AND name = ?")
                .bind(kind.as_str())
                .bind(&key.namespace)
                .bind(&key.name)
                .fetch_optional(&mut **tx)
                .await?;
        row.as_ref().map(Self::row_to_record).transpose()
    }

    pub async fn get(&self, kind: Kind, key: &AppKey) -> StoreResult<Option<ObjectRecord>> {
        let row =
            sqlx::query("SELECT * FROM objects WHERE kind = ? AND namespace = ? AND name = ?")
                .bind(kind.as_str())
                .bind(&key.namespace)
                .bind(&key.name)
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(Self::row_to_record).transpose()
    }

    /// All objects of a kind, or those of one namespace, ordered by namespace and name.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> StoreResult<Vec<ObjectRecord>> {
        let rows = match namespace {
            Some(ns) => sqlx::query(
                "SELECT * FROM objects WHERE kind = ? AND namespace = ? ORDER BY namespace, name",
            )
            .bind(kind.as_str())
            .bind(ns)
            .fetch_all(&self.pool)
            .await?,
            None => {
                sqlx::query("SELECT * FROM objects WHERE kind = ? ORDER BY namespace, name")
                    .bind(kind.as_str())
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(Self::row_to_record).collect()
    }

    /// Writes one object inside `tx`, enforcing ownership and the optional `resourceVersion`
    /// precondition.
    async fn write_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        item: &WriteItem,
        source: &str,
        take_over_from: Option<&str>,
        book: &mut Option<UsageBook>,
    ) -> StoreResult<(WriteOutcome, ObjectRecord)> {
        let existing = Self::get_in(tx, item.kind, &item.key).await?;
        let meta = &item.meta;
        let spec = item.spec.clone();
        let expected_rv = meta.resource_version.as_deref();
        let what = item.kind.describe(&item.key);
        match existing {
            None => {
                if let Some(rv) = expected_rv {
                    return Err(StoreError::Conflict(format!(
                        "{what} does not exist, but resourceVersion {rv} was given"
                    )));
                }
                let uid = uuid::Uuid::new_v4().to_string();
                self.admit_in(tx, book, item, &uid, true).await?;
                let host_port_root = self.claim_ports_in(tx, item, &uid, None).await?;
                let rv = Self::next_rv(tx).await?;
                let record = ObjectRecord {
                    kind: item.kind,
                    key: item.key.clone(),
                    uid,
                    generation: 1,
                    resource_version: rv,
                    source: source.to_string(),
                    labels: meta.labels.clone(),
                    annotations: meta.annotations.clone(),
                    spec,
                    status: None,
                    created_at: now_rfc3339(),
                    deletion_timestamp: None,
                    applied_update: None,
                    host_port_root,
                };
                sqlx::query(
                    "INSERT INTO objects (kind, namespace, name, uid, generation, resource_version, source, labels, annotations, spec, status, created_at, deletion_timestamp, host_port_root) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, NULL, ?)",
                )
                .bind(record.kind.as_str())
                .bind(&record.key.namespace)
                .bind(&record.key.name)
                .bind(&record.uid)
                .bind(record.generation)
                .bind(record.resource_version)
                .bind(&record.source)
                .bind(to_json("labels", &record.labels)?)
                .bind(to_json("annotations", &record.annotations)?)
                .bind(to_json("spec", &record.spec)?)
                .bind(&record.created_at)
                .bind(record.host_port_root.map(i64::from))
                .execute(&mut **tx)
                .await?;
                Ok((WriteOutcome::Created, record))
            }
            Some(mut record) => {
                if record.source != source && take_over_from != Some(record.source.as_str()) {
                    return Err(StoreError::Conflict(ownership_message(
                        item.kind,
                        &item.key,
                        &record.source,
                    )));
                }
                if let Some(rv) = expected_rv
                    && rv != record.resource_version.to_string()
                {
                    return Err(StoreError::Conflict(format!(
                        "{what} has resourceVersion {}, not {rv}: it was changed since you read it",
                        record.resource_version
                    )));
                }
                let spec_changed = record.spec != spec;
                let resurrect = record.deletion_timestamp.is_some();
                if spec_changed || resurrect {
                    self.admit_in(tx, book, item, &record.uid, resurrect)
                        .await?;
                }
                let root = self
                    .claim_ports_in(tx, item, &record.uid, record.host_port_root)
                    .await?;
                let meta_changed = record.labels != meta.labels
                    || record.annotations != meta.annotations
                    || record.source != source
                    || record.host_port_root != root;
                if !spec_changed && !meta_changed && !resurrect {
                    return Ok((WriteOutcome::Unchanged, record));
                }
                record.host_port_root = root;
                if spec_changed || resurrect {
                    record.generation += 1;
                }
                record.resource_version = Self::next_rv(tx).await?;
                record.spec = spec;
                record.labels = meta.labels.clone();
                record.annotations = meta.annotations.clone();
                record.source = source.to_string();
                record.deletion_timestamp = None;
                sqlx::query(
                    "UPDATE objects SET generation = ?, resource_version = ?, source = ?, labels = ?, annotations = ?, spec = ?, deletion_timestamp = NULL, host_port_root = ? WHERE uid = ?",
                )
                .bind(record.generation)
                .bind(record.resource_version)
                .bind(&record.source)
                .bind(to_json("labels", &record.labels)?)
                .bind(to_json("annotations", &record.annotations)?)
                .bind(to_json("spec", &record.spec)?)
                .bind(record.host_port_root.map(i64::from))
                .bind(&record.uid)
                .execute(&mut **tx)
                .await?;
                Ok((WriteOutcome::Configured, record))
            }
        }
    }

    /// Checks an App's explicit host ports against every other app's claims, allocates (or
    /// keeps) its port area, and records its claims. Returns the area's first port. Reads come
    /// first, so a refusal leaves `tx` untouched.
    async fn claim_ports_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        item: &WriteItem,
        uid: &str,
        current_root: Option<u16>,
    ) -> StoreResult<Option<u16>> {
        if item.kind != Kind::App {
            return Ok(None);
        }
        let wants = &item.ports;
        for (field, port, protocol) in &wants.host_ports {
            let clash: Option<(String, String, i64, i64, String)> = sqlx::query_as(
                "SELECT namespace, name, first, last, protocol FROM port_claims WHERE uid != ? AND first <= ? AND last >= ? AND (protocol = '*' OR protocol = ?) LIMIT 1",
            )
            .bind(uid)
            .bind(i64::from(*port))
            .bind(i64::from(*port))
            .bind(protocol)
            .fetch_optional(&mut **tx)
            .await?;
            if let Some((namespace, name, first, last, kind)) = clash {
                let holder = AppKey { namespace, name };
                let how = if kind == "*" {
                    format!("lies in the port area of app {holder} ({first}-{last})")
                } else {
                    format!("is already published by app {holder}")
                };
                return Err(StoreError::Conflict(format!(
                    "{}: {field}: host port {port}/{protocol} {how}",
                    item.kind.describe(&item.key)
                )));
            }
        }
        let root = match wants.area {
            Some(size) => Some(self.allocate_in(tx, item, uid, size, current_root).await?),
            None => None,
        };
        sqlx::query("DELETE FROM port_claims WHERE uid = ?")
            .bind(uid)
            .execute(&mut **tx)
            .await?;
        let area = root.zip(wants.area).map(|(root, size)| {
            let last = u32::from(root) + u32::from(size) - 1;
            (root, last as u16, "*".to_string())
        });
        let explicit = wants
            .host_ports
            .iter()
            .map(|(_, port, protocol)| (*port, *port, protocol.clone()));
        for (first, last, protocol) in area.into_iter().chain(explicit) {
            sqlx::query(
                "INSERT INTO port_claims (uid, namespace, name, first, last, protocol) VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(uid)
            .bind(&item.key.namespace)
            .bind(&item.key.name)
            .bind(i64::from(first))
            .bind(i64::from(last))
            .bind(protocol)
            .execute(&mut **tx)
            .await?;
        }
        Ok(root)
    }

    /// A free block of `size` ports in the configured range, not overlapping any other app's
    /// claim: the current one when it is still free, else the lowest that fits.
    async fn allocate_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        item: &WriteItem,
        uid: &str,
        size: u16,
        current_root: Option<u16>,
    ) -> StoreResult<u16> {
        let range = self.port_areas;
        let size = u32::from(size.max(1));
        let (lo, hi) = (u32::from(range.first), u32::from(range.last));
        let taken: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT first, last FROM port_claims WHERE uid != ? AND last >= ? AND first <= ? ORDER BY first",
        )
        .bind(uid)
        .bind(i64::from(range.first))
        .bind(i64::from(range.last))
        .fetch_all(&mut **tx)
        .await?;
        let free = |root: u32| {
            let end = root + size - 1;
            root >= lo
                && end <= hi
                && !taken
                    .iter()
                    .any(|(f, l)| *f <= i64::from(end) && *l >= i64::from(root))
        };
        if let Some(root) = current_root
            && free(u32::from(root))
        {
            return Ok(root);
        }
        let mut candidate = lo;
        for (first, last) in &taken {
            if i64::from(candidate + size - 1) < *first {
                break;
            }
            candidate = candidate.max(u32::try_from(*last + 1).unwrap_or(u32::MAX));
        }
        if candidate.checked_add(size - 1).is_some_and(|end| end <= hi) && free(candidate) {
            return Ok(candidate as u16);
        }
        Err(StoreError::Conflict(format!(
            "{}: spec.portArea.size: no free block of {size} host ports is left in {range} (the server's --port-area-range)",
            item.kind.describe(&item.key)
        )))
    }

    /// Writes a bundle atomically: every object, or none (the first error is returned).
    pub async fn apply(
        &self,
        items: &[WriteItem],
        source: &str,
    ) -> StoreResult<Vec<(WriteOutcome, ObjectRecord)>> {
        let mut tx = self.write_tx().await?;
        let mut out = Vec::with_capacity(items.len());
        let mut book = None;
        for item in items {
            out.push(
                self.write_in(&mut tx, item, source, None, &mut book)
                    .await?,
            );
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Runs every check `apply` would (ownership, resourceVersion, host ports, policy, quotas)
    /// and writes nothing: the transaction is rolled back.
    pub async fn check_apply(&self, items: &[WriteItem], source: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let mut book = None;
        for item in items {
            self.write_in(&mut tx, item, source, None, &mut book)
                .await?;
        }
        tx.rollback().await?;
        Ok(())
    }

    /// Marks an object for deletion (the loop removes its container, then forgets it).
    /// `source` must own it; `expected_rv` is an optional precondition.
    pub async fn delete(
        &self,
        kind: Kind,
        key: &AppKey,
        source: Option<&str>,
        expected_rv: Option<&str>,
    ) -> StoreResult<ObjectRecord> {
        let mut tx = self.write_tx().await?;
        let mut record = Self::get_in(&mut tx, kind, key)
            .await?
            .ok_or_else(|| StoreError::NotFound(kind.describe(key)))?;
        if let Some(source) = source
            && record.source != source
        {
            return Err(StoreError::Conflict(ownership_message(
                kind,
                key,
                &record.source,
            )));
        }
        if let Some(rv) = expected_rv
            && rv != record.resource_version.to_string()
        {
            return Err(StoreError::Conflict(format!(
                "{} has resourceVersion {}, not {rv}",
                kind.describe(key),
                record.resource_version
            )));
        }
        if record.deletion_timestamp.is_none() {
            Self::mark_deleted_in(&mut tx, &mut record).await?;
        }
        tx.commit().await?;
        Ok(record)
    }

    async fn mark_deleted_in(
        tx: &mut Transaction<'_, Sqlite>,
        record: &mut ObjectRecord,
    ) -> StoreResult<()> {
        record.resource_version = Self::next_rv(tx).await?;
        record.deletion_timestamp = Some(now_rfc3339());
        sqlx::query(
            "UPDATE objects SET deletion_timestamp = ?, resource_version = ? WHERE uid = ?",
        )
        .bind(&record.deletion_timestamp)
        .bind(record.resource_version)
        .bind(&record.uid)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Removes an object whose deletion finished. Only a still-terminating object is removed:
    /// one re-applied meanwhile stays.
    pub async fn forget(&self, uid: &str) -> StoreResult<bool> {
        let done =
            sqlx::query("DELETE FROM objects WHERE uid = ? AND deletion_timestamp IS NOT NULL")
                .bind(uid)
                .execute(&self.pool)
                .await?;
        if done.rows_affected() > 0 {
            for table in [
                "events",
                "port_claims",
                "stats_samples",
                "stats_rollups",
                "uptime_transitions",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE uid = ?"))
                    .bind(uid)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(done.rows_affected() > 0)
    }

    /// Stores new statuses, all in one transaction. Each is `(uid, status)`; objects deleted
    /// meanwhile are skipped. Callers pass only statuses that changed.
    pub async fn set_statuses(&self, statuses: &[(String, ObjectStatus)]) -> StoreResult<()> {
        if statuses.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        for (uid, status) in statuses {
            let rv = Self::next_rv(&mut tx).await?;
            sqlx::query("UPDATE objects SET status = ?, resource_version = ? WHERE uid = ?")
                .bind(to_json("status", status)?)
                .bind(rv)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records an event about an object; keeps the newest 200 per object.
    pub async fn record_event(
        &self,
        record: &ObjectRecord,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO events (uid, kind, namespace, name, time, type, reason, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&record.uid)
        .bind(record.kind.as_str())
        .bind(&record.key.namespace)
        .bind(&record.key.name)
        .bind(now_rfc3339())
        .bind(kind.as_str())
        .bind(reason)
        .bind(message)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM events WHERE uid = ? AND id NOT IN (SELECT id FROM events WHERE uid = ? ORDER BY id DESC LIMIT 200)",
        )
        .bind(&record.uid)
        .bind(&record.uid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Events of an object, oldest first.
    pub async fn events(&self, uid: &str) -> StoreResult<Vec<Event>> {
        let rows =
            sqlx::query("SELECT time, type, reason, message FROM events WHERE uid = ? ORDER BY id")
                .bind(uid)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|r| Ok(Event::from_row(r)?)).collect()
    }

    /// Remembers that `hash` (update-class) was applied in place to `container_id`.
    pub async fn set_applied_update(
        &self,
        uid: &str,
        container_id: &str,
        hash: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE objects SET applied_container_id = ?, applied_update_hash = ? WHERE uid = ?",
        )
        .bind(container_id)
        .bind(hash)
        .bind(uid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Records (or clears, with `None`) the problem of one spec file. Returns whether it changed.
    pub async fn set_source_error(&self, source: &str, message: Option<&str>) -> StoreResult<bool> {
        let current: Option<String> =
            sqlx::query_scalar("SELECT message FROM source_errors WHERE source = ?")
                .bind(source)
                .fetch_optional(&self.pool)
                .await?;
        if current.as_deref() == message {
            return Ok(false);
        }
        match message {
            Some(m) => {
                sqlx::query("INSERT INTO source_errors (source, time, message) VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET time = excluded.time, message = excluded.message")
                    .bind(source)
                    .bind(now_rfc3339())
                    .bind(m)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM source_errors WHERE source = ?")
                    .bind(source)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(true)
    }

    pub async fn source_errors(&self) -> StoreResult<Vec<SourceError>> {
        let rows = sqlx::query("SELECT source, time, message FROM source_errors ORDER BY source")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(SourceError {
                    source: r.try_get("source")?,
                    time: r.try_get("time")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }

    /// Objects owned by one source.
    pub async fn by_source(&self, source: &str) -> StoreResult<Vec<ObjectRecord>> {
        let rows = sqlx::query("SELECT * FROM objects WHERE source = ? ORDER BY namespace, name")
            .bind(source)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::row_to_record).collect()
    }

    /// Makes the file-owned objects match a full scan of the watched directory, in one
    /// transaction.
    ///
    /// `good` holds every readable, valid file with its objects; `bad` the files that exist but
    /// failed to parse or validate (their objects are kept as they are). An object moves
    /// between files when its old file no longer declares it; it never moves from the API or
    /// from a bad file. File-owned objects no file declares any more are marked for deletion.
    pub async fn sync_files(
        &self,
        good: &BTreeMap<String, Vec<WriteItem>>,
        bad: &BTreeSet<String>,
    ) -> StoreResult<SyncReport> {
        let mut report = SyncReport::default();
        let mut tx = self.write_tx().await?;
        let mut book = None;
        let mut declared: BTreeMap<(Kind, AppKey), &str> = BTreeMap::new();
        for (source, items) in good {
            for item in items {
                let id = (item.kind, item.key.clone());
                let what = item.kind.describe(&item.key);
                let existing = Self::get_in(&mut tx, item.kind, &item.key).await?;
                let owner = existing.as_ref().map(|r| r.source.as_str());
                // An object declared by two files stays with the one that already has it (its
                // current owner, or the first file this scan read).
                let keeper = declared.get(&id).map(|s| s.to_string()).or_else(|| {
                    owner
                        .filter(|o| *o != source.as_str())
                        .filter(|o| {
                            good.get(*o).is_some_and(|items| {
                                items
                                    .iter()
                                    .any(|i| i.kind == item.kind && i.key == item.key)
                            })
                        })
                        .map(str::to_string)
                });
                if let Some(keeper) = keeper {
                    report
                        .conflicts
                        .entry(source.clone())
                        .or_default()
                        .push(format!(
                            "{what} is also declared in {}, which keeps it",
                            keeper.trim_start_matches("file:")
                        ));
                    continue;
                }
                let take_over = match owner {
                    Some(o) if o != source && o.starts_with("file:") && !bad.contains(o) => Some(o),
                    _ => None,
                };
                match self
                    .write_in(&mut tx, item, source, take_over, &mut book)
                    .await
                {
                    Ok((outcome, _)) => {
                        declared.insert(id, source);
                        if outcome != WriteOutcome::Unchanged {
                            report.changed.push((item.kind, item.key.clone(), outcome));
                        }
                    }
                    Err(e @ StoreError::Policy { .. }) => {
                        report
                            .conflicts
                            .entry(source.clone())
                            .or_default()
                            .push(e.to_string());
                    }
                    Err(StoreError::Conflict(message)) => {
                        let message = match owner {
                            Some(o) if bad.contains(o) => format!(
                                "{what} is owned by {}, which currently fails to load; fix or delete that file first",
                                o.trim_start_matches("file:")
                            ),
                            _ => message,
                        };
                        report
                            .conflicts
                            .entry(source.clone())
                            .or_default()
                            .push(message);
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let rows = sqlx::query(
            "SELECT * FROM objects WHERE source LIKE 'file:%' AND deletion_timestamp IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in &rows {
            let mut record = Self::row_to_record(row)?;
            if declared.contains_key(&(record.kind, record.key.clone()))
                || bad.contains(&record.source)
            {
                continue;
            }
            Self::mark_deleted_in(&mut tx, &mut record).await?;
            report.deleted.push((record.kind, record.key.clone()));
        }
        tx.commit().await?;
        Ok(report)
    }
}

/// A stored status, read as its kind's. One that no longer reads (another version of wharf
/// wrote it) is dropped with a warning: the next pass computes it afresh.
fn read_status(kind: Kind, key: &AppKey, text: &str) -> Option<ObjectStatus> {
    let read = match kind {
        Kind::App => serde_json::from_str(text).map(ObjectStatus::App),
        Kind::Image => serde_json::from_str(text).map(ObjectStatus::Image),
    };
    read.map_err(|e| tracing::warn!(object = %kind.describe(key), "stored status unreadable, recomputed on the next pass: {e}"))
        .ok()
}

/// `value` as JSON text for a column; a value that cannot be written is an error, never an
/// empty column.
pub(crate) fn to_json(column: &str, value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("{column} cannot be stored: {e}")))
}

/// `base` overridden by a namespace's stored override document.
fn policy_with(base: &Policy, over: Option<serde_json::Value>) -> StoreResult<Policy> {
    match over {
        None => Ok(base.clone()),
        Some(v) => {
            let over: Policy = serde_json::from_value(v)
                .map_err(|e| StoreError::Corrupt(format!("namespace policy: {e}")))?;
            Ok(base.overridden_by(&over))
        }
    }
}

/// Why a write by one source to an object another source manages is refused.
pub fn ownership_message(kind: Kind, key: &AppKey, owner: &str) -> String {
    let what = kind.describe(key);
    match owner.strip_prefix("file:") {
        Some(path) => format!(
            "{what} is managed by the spec file {path} in the watched directory; change it there"
        ),
        None => format!(
            "{what} is managed through the API (wharf apply / POST /api/v1/apply); delete it there before declaring it in a file"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Format, read_bundle};

    fn item(name: &str, extra: &str) -> WriteItem {
        let yaml = format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: {name}, namespace: demo}}\nspec:\n  image: busybox:1\n{extra}"
        );
        let docs = read_bundle(&yaml, Format::Yaml, None).expect("valid");
        WriteItem::new(&docs[0])
    }

    async fn root(store: &Store, item: &WriteItem) -> Result<Option<u16>, String> {
        store
            .apply(std::slice::from_ref(item), SOURCE_API)
            .await
            .map(|mut out| out.remove(0).1.host_port_root)
            .map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn port_areas_are_allocated_first_fit_and_host_ports_are_claimed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db.sqlite"))
            .await
            .expect("store")
            .with_port_areas(PortRange {
                first: 100,
                last: 129,
            });
        let area = |n: u16| format!("  portArea: {{size: {n}}}\n");
        assert_eq!(root(&store, &item("a", &area(10))).await, Ok(Some(100)));
        assert_eq!(root(&store, &item("b", &area(10))).await, Ok(Some(110)));
        assert_eq!(
            root(&store, &item("c", "  ports: ['125:80']\n")).await,
            Ok(None)
        );
        // 120-129 holds c's port 125: no block of 10 is left, one of 4 is.
        let full = root(&store, &item("d", &area(10))).await.unwrap_err();
        assert!(
            full.contains("no free block of 10") && full.contains("100-129"),
            "{full}"
        );
        assert_eq!(root(&store, &item("d", &area(4))).await, Ok(Some(120)));

        // Explicit host ports: inside another block, or published by another app, are refused
        // with that app's name; another protocol on the same number is not a clash.
        let clash = root(&store, &item("e", "  ports: ['105:80']\n"))
            .await
            .unwrap_err();
        assert!(
            clash.contains("spec.ports[0].hostPort") && clash.contains("demo/a"),
            "{clash}"
        );
        let clash = root(&store, &item("e", "  ports: ['125:80']\n"))
            .await
            .unwrap_err();
        assert!(clash.contains("already published by app demo/c"), "{clash}");
        assert_eq!(
            root(&store, &item("e", "  ports: ['125:80/udp']\n")).await,
            Ok(None)
        );

        // Re-applying keeps the block; growing into a neighbour moves it or is refused.
        assert_eq!(root(&store, &item("b", &area(10))).await, Ok(Some(110)));
        let grown = root(&store, &item("b", &area(12))).await.unwrap_err();
        assert!(grown.contains("no free block of 12"), "{grown}");
        assert_eq!(root(&store, &item("b", &area(10))).await, Ok(Some(110)));

        // A forgotten app's block is free again.
        let key = AppKey {
            namespace: "demo".into(),
            name: "a".into(),
        };
        let record = store
            .delete(Kind::App, &key, None, None)
            .await
            .expect("marked");
        assert!(
            root(&store, &item("g", &area(10))).await.is_err(),
            "while a is being deleted its block stays taken"
        );
        assert!(store.forget(&record.uid).await.expect("forgot"));
        assert_eq!(root(&store, &item("h", &area(10))).await, Ok(Some(100)));
    }
}
