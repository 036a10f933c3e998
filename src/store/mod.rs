//! The store: desired objects, their status and events, in SQLite (embedded, the default) or
//! PostgreSQL (several instances on one database), through sqlx's `Any` driver.
//!
//! Every write the API acknowledges is committed first (SQLite: WAL, `synchronous=FULL`). One set
//! of queries serves both databases: `$N` placeholders, `ON CONFLICT` upserts, BIGINT integers;
//! `migrations/sqlite` and `migrations/postgres` end in the same tables and columns. Ownership
//! (`api` or `file:PATH`), `resourceVersion` preconditions and generation bumps are enforced
//! here, inside transactions, so no caller can get them half right. This module never talks to
//! Docker and knows nothing of HTTP.
//!
//! - `record`: the typed records it returns and the items it writes.
//! - `objects`: reads and writes of desired objects, deletion, statuses.
//! - `admission`: policy, quota and host memory checks of App writes.
//! - `ports`: port areas and host port claims.
//! - `sets`: apply sets and their pruning.
//! - `sources`: the watched directory's sync and its files' problems.
//! - `events`: events about objects.
//! - `security`: tokens, image requests, namespace policies, the audit log.
//! - `stats`: stats samples, rollups, host samples, uptime transitions.

use std::path::Path;
use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use sqlx::{Any, AnyPool, Transaction};

mod admission;
pub mod backup;
pub mod copy;
mod database;
mod events;
mod lease;
mod objects;
mod ports;
mod record;
pub mod security;
mod sets;
mod sources;
pub mod stats;
#[cfg(any(test, feature = "testing"))]
pub mod testdb;

pub use admission::Admission;
pub use database::{Backend, Database};
pub use events::{Event, EventType};
pub use lease::{InstanceRow, Lease};
pub use objects::ownership_message;
pub use ports::PortRange;
pub use record::{
    AppliedUpdate, MetadataView, ObjectRecord, ObjectSource, ObjectView, PortWants, WriteItem,
    WriteOutcome,
};
pub use sets::{Pruned, SET_LABEL, left_out};
pub use sources::{SourceError, SyncReport};
pub use stats::{Point, Resolution, Retention, Sample};

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
    /// The database file fails SQLite's check, or is not a database.
    #[error("the database {} is damaged ({detail}); wharf does not start on it: {}", path.display(), backup::RESTORE_HINT)]
    Damaged {
        path: std::path::PathBuf,
        detail: String,
    },
    /// Fields the server's mode cannot honour (422, each field named).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<crate::spec::SpecError>),
    /// Refused by the namespace's policy, a quota or the host's admission check.
    #[error("{what}: {violation}")]
    Policy {
        what: String,
        violation: crate::policy::Violation,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The PostgreSQL channel every change of desired state is announced on (`announce`).
pub const CHANGES_CHANNEL: &str = "wharf_changes";

impl StoreError {
    /// The database could not be reached or went away in the middle (PostgreSQL down or
    /// restarting, the network to it lost, every connection busy past the pool's timeout):
    /// nothing of the request was committed, and it may be sent again.
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            // PostgreSQL's connection exceptions (class 08) and its shutdown and start-up
            // answers (57P01-57P03).
            sqlx::Error::Database(d) => d.code().is_some_and(|c| {
                c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
            }),
            _ => false,
        }
    }

    /// SQLite could not write for lack of space (SQLITE_FULL, or an I/O error on a full file
    /// system); the transaction was rolled back whole.
    pub fn is_disk_full(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        let full_code = e
            .as_database_error()
            .and_then(|d| d.code())
            .is_some_and(|code| code.as_ref() == "13");
        let full_io = match e {
            sqlx::Error::Io(io) => io.raw_os_error() == Some(28),
            _ => false,
        };
        full_code || full_io || e.to_string().contains("database or disk is full")
    }
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    port_areas: PortRange,
    admission: Arc<Admission>,
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and applies migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        Self::connect(&Database::Sqlite(path.to_path_buf())).await
    }

    /// Opens the database `database` names (SQLite: creating the file if needed) and applies
    /// the migrations it lacks.
    pub async fn connect(database: &Database) -> StoreResult<Self> {
        let (pool, backend) = database::connect(database).await?;
        Ok(Self {
            pool,
            backend,
            port_areas: PortRange::default(),
            admission: Arc::new(Admission::default()),
        })
    }

    /// Which database this store is on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Closes the database's connections (the file can then be copied or removed).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction that holds the store's one write lock from its start, so a
    /// transaction that reads and then writes sees no other writer in between (preconditions,
    /// port claims and quotas are checked and written at once). SQLite: `BEGIN IMMEDIATE` (a
    /// deferred one that reads first would fail with SQLITE_BUSY when another writer got in).
    /// PostgreSQL: a transaction-scoped advisory lock, which every instance on the database
    /// takes the same way.
    pub(super) async fn write_tx(&self) -> StoreResult<Transaction<'static, Any>> {
        match self.backend {
            Backend::Sqlite { .. } => Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?),
            Backend::Postgres { .. } => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(database::WRITE_LOCK)
                    .execute(&mut *tx)
                    .await?;
                Ok(tx)
            }
        }
    }

    pub(super) async fn next_rv(tx: &mut Transaction<'_, Any>) -> StoreResult<i64> {
        let rv: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'resource_version' RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await?;
        Ok(rv)
    }

    /// Announces a change of desired state to every instance on PostgreSQL (`NOTIFY`, delivered
    /// when the transaction commits; repeats within one are folded), so the leader's loop wakes
    /// whichever instance took the write. Statuses are not announced: only the leader writes
    /// them.
    pub(super) async fn announce(tx: &mut Transaction<'_, Any>) -> StoreResult<()> {
        if tx.backend_name() == "PostgreSQL" {
            sqlx::query("SELECT pg_notify($1, '')")
                .bind(CHANGES_CHANNEL)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }
}

impl Store {
    /// Records the mode this database serves on its first start, and refuses another one
    /// later: a data directory's objects were made for one kind of engine object (containers
    /// or services). A database from before modes were recorded holds solo objects.
    pub async fn claim_mode(&self, mode: crate::spec::mode::Mode) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let stored: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'mode'")
                .fetch_optional(&mut *tx)
                .await?;
        let stored = match stored {
            Some(s) => Some(s),
            None => {
                let objects: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM objects")
                    .fetch_one(&mut *tx)
                    .await?;
                (objects > 0).then(|| "solo".to_string())
            }
        };
        match stored {
            Some(s) if s != mode.as_str() => Err(StoreError::Conflict(format!(
                "this data directory was made for {s} mode and wharf was started with --mode {mode}: its objects belong to {s} mode (start it with --mode {s}, or use another --data-dir for {mode} mode)"
            ))),
            _ => {
                sqlx::query("INSERT INTO settings (name, value) VALUES ('mode', $1) ON CONFLICT (name) DO UPDATE SET value = excluded.value")
                    .bind(mode.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }
}

impl Store {
    /// Stores a named state of the installation (JSON), replacing the previous one.
    pub async fn put_setting(&self, name: &str, value: &impl Serialize) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
            .bind(name)
            .bind(to_json(name, value)?)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A named state stored by `put_setting`, if any.
    pub async fn setting<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> StoreResult<Option<T>> {
        let text: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        text.map(|t| {
            serde_json::from_str(&t)
                .map_err(|e| StoreError::Corrupt(format!("setting {name}: {e}")))
        })
        .transpose()
    }
}

/// `($1, $2, …), (…)`: `rows` groups of `columns` numbered placeholders for a multi-row
/// insert (sqlx's query builder writes `?` for the Any driver, which PostgreSQL does not take).
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 1..=columns {
            if c > 1 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * columns + c));
        }
        sql.push(')');
    }
    sql
}

/// `value` as JSON text for a column; a value that cannot be written is an error, never an
/// empty column.
pub(crate) fn to_json(column: &str, value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("{column} cannot be stored: {e}")))
}

/// A database for a unit test: a SQLite file in a temporary directory, or a fresh database on
/// the test process's PostgreSQL server.
#[cfg(test)]
pub(crate) struct TestDb {
    _dir: Option<tempfile::TempDir>,
    database: Database,
}

#[cfg(test)]
impl TestDb {
    pub(crate) fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let database = Database::Sqlite(dir.path().join("wharf.db"));
        Self {
            _dir: Some(dir),
            database,
        }
    }

    pub(crate) async fn postgres() -> Self {
        Self {
            _dir: None,
            database: testdb::database().await,
        }
    }

    /// The store on this database (each call opens another pool on it).
    pub(crate) async fn open(&self) -> Store {
        Store::connect(&self.database)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.database))
    }
}

/// Runs each named store test, `async fn NAME(db: TestDb)`, once on SQLite and once on
/// PostgreSQL (as `NAME::sqlite` and `NAME::postgres`).
#[cfg(test)]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn sqlite() {
                    super::$name(crate::store::TestDb::sqlite()).await
                }

                #[tokio::test]
                async fn postgres() {
                    super::$name(crate::store::TestDb::postgres().await).await
                }
            }
        )*
    };
}
#[cfg(test)]
pub(crate) use on_both_databases;

/// For unit tests elsewhere in the crate: a store on `db` holding one app, `demo/web`.
#[cfg(test)]
pub(crate) async fn store_with_one_app(db: &TestDb) -> (Store, String) {
    let store = db.open().await;
    let app = crate::spec::read_bundle(
        "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo}\nspec: {image: 'busybox:1'}\n",
        crate::spec::Format::Yaml,
        None,
    )
    .expect("valid");
    let (_, record) = store
        .apply(&[WriteItem::new(&app[0])], &ObjectSource::Api)
        .await
        .expect("stored")
        .remove(0);
    (store, record.uid)
}
