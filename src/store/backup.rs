//! The database file's health and copies of it: `PRAGMA quick_check` before a start (a damaged
//! file is refused with what to do, never read on), and `wharf backup`, an online copy with
//! `VACUUM INTO` — consistent while wharf keeps writing (WAL readers see one snapshot), compact,
//! and checked before it is called done.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

use super::{StoreError, StoreResult};

/// What to do about a damaged database, for the messages that report one.
pub const RESTORE_HINT: &str = "restore a copy made with `wharf backup`: stop wharf, move the damaged file (and its -wal and -shm files) aside, copy the backup in its place, start wharf (README, Backup and restore)";

/// SQLite's result codes for a file that is not a database or is damaged.
fn is_damage(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| matches!(code.as_ref(), "11" | "26"))
}

/// The damage error for `path`.
pub fn damaged(path: &Path, detail: &str) -> StoreError {
    StoreError::Damaged {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// Turns SQLite's "corrupt" and "not a database" answers about `path` into `Damaged`.
pub fn classify(path: &Path, e: sqlx::Error) -> StoreError {
    if is_damage(&e) {
        damaged(path, &e.to_string())
    } else {
        StoreError::Database(e)
    }
}

/// `PRAGMA quick_check` over an open connection: `Ok` when SQLite finds nothing wrong.
pub async fn quick_check(conn: &mut SqliteConnection, path: &Path) -> StoreResult<()> {
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| classify(path, e))?;
    if rows.len() == 1 && rows[0] == "ok" {
        return Ok(());
    }
    let mut problems: Vec<String> = rows.into_iter().take(5).collect();
    if problems.is_empty() {
        problems.push("quick_check gave no answer".into());
    }
    Err(damaged(path, &problems.join("; ")))
}

async fn connect(path: &Path, read_only: bool) -> StoreResult<SqliteConnection> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .create_if_missing(false)
        .read_only(read_only);
    options.connect().await.map_err(|e| classify(path, e))
}

/// Copies the database at `db` into `out` (which must not exist) while it may be in use, and
/// checks the copy. Returns the copy's size in bytes.
pub async fn backup(db: &Path, out: &Path) -> StoreResult<u64> {
    if !db.is_file() {
        return Err(StoreError::NotFound(format!("database {}", db.display())));
    }
    if out.exists() {
        return Err(StoreError::Conflict(format!(
            "{} exists; wharf backup never overwrites a file",
            out.display()
        )));
    }
    let mut conn = connect(db, true).await?;
    quick_check(&mut conn, db).await?;
    sqlx::query("VACUUM INTO ?")
        .bind(out.display().to_string())
        .execute(&mut conn)
        .await
        .map_err(|e| classify(db, e))?;
    let mut copy = connect(out, true).await?;
    if let Err(e) = quick_check(&mut copy, out).await {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    std::fs::metadata(out)
        .map(|m| m.len())
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", out.display())))
}

/// Where a backup goes by default: `wharf-backup-<UTC time>.db` in the current directory.
pub fn default_name() -> PathBuf {
    PathBuf::from(format!(
        "wharf-backup-{}.db",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ))
}
