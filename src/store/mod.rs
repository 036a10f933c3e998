//! The store: desired objects, their status and events, in SQLite through sqlx.
//!
//! Every write the API acknowledges is committed first (WAL, `synchronous=FULL`). Ownership
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
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

mod admission;
pub mod backup;
mod events;
mod objects;
mod ports;
mod record;
pub mod security;
mod sets;
mod sources;
pub mod stats;

pub use admission::Admission;
pub use events::{Event, EventType};
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

impl StoreError {
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
    pool: SqlitePool,
    port_areas: PortRange,
    admission: Arc<Admission>,
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
            // A connection that comes back still counted in a transaction is closed, not
            // reused: when a COMMIT fails for lack of space SQLite has already rolled the
            // transaction back, sqlx's ROLLBACK then fails, and its count stays at one, so every
            // later transaction on that connection would fail ("non-zero transaction depth").
            .after_release(|conn, _| {
                Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
            })
            .connect_with(options)
            .await
            .map_err(|e| backup::classify(path, e))?;
        // A damaged file is refused before anything reads or writes it.
        let mut conn = pool
            .acquire()
            .await
            .map_err(|e| backup::classify(path, e))?;
        backup::quick_check(&mut conn, path).await?;
        drop(conn);
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .map_err(|e| match e {
                sqlx::migrate::MigrateError::Execute(e) => backup::classify(path, e),
                other => StoreError::Migrate(other),
            })?;
        Ok(Self {
            pool,
            port_areas: PortRange::default(),
            admission: Arc::new(Admission::default()),
        })
    }

    /// Closes the database's connections (the file can then be copied or removed).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A write transaction that takes the write lock up front (`BEGIN IMMEDIATE`): a deferred
    /// one that reads first and writes later fails at once with SQLITE_BUSY when another
    /// writer got in between, instead of waiting for the busy timeout.
    pub(super) async fn write_tx(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    pub(super) async fn next_rv(tx: &mut Transaction<'_, Sqlite>) -> StoreResult<i64> {
        let rv: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'resource_version' RETURNING value",
        )
        .fetch_one(&mut **tx)
        .await?;
        Ok(rv)
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
                sqlx::query("INSERT OR REPLACE INTO settings (name, value) VALUES ('mode', ?)")
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
        sqlx::query("INSERT OR REPLACE INTO settings (name, value) VALUES (?, ?)")
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
        let text: Option<String> = sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
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

/// `value` as JSON text for a column; a value that cannot be written is an error, never an
/// empty column.
pub(crate) fn to_json(column: &str, value: &impl Serialize) -> StoreResult<String> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Corrupt(format!("{column} cannot be stored: {e}")))
}

/// For unit tests elsewhere in the crate: a store in `dir` holding one app, `demo/web`.
#[cfg(test)]
pub(crate) async fn store_with_one_app(dir: &std::path::Path) -> (Store, String) {
    let store = Store::open(&dir.join("db.sqlite")).await.expect("store");
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
