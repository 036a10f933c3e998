//! Which database the store is on (`wharf serve --database URL`), and opening it: the pool,
//! SQLite's file check and settings, and the migrations of its kind.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions, Executor};

use super::{StoreError, StoreResult, backup};

/// The key of the advisory lock every write transaction on PostgreSQL takes (`write_tx`): the
/// bytes of "wharf-wr".
pub(super) const WRITE_LOCK: i64 = 0x7768_6172_662d_7772;

/// A database named on the command line: `sqlite://PATH` or `postgres://…`.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL server's database, by its URL (credentials included).
    Postgres(String),
}

impl FromStr for Database {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(path) = s
            .strip_prefix("sqlite://")
            .or_else(|| s.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                return Err(
                    "sqlite:// needs a file path, e.g. sqlite:///var/lib/wharf/wharf.db".into(),
                );
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            url_host(s).ok_or_else(|| {
                format!(
                    "{}: not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DATABASE)",
                    redact(s)
                )
            })?;
            return Ok(Database::Postgres(s.to_string()));
        }
        Err(format!(
            "{}: the database must be sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            redact(s)
        ))
    }
}

/// What follows `scheme://` up to the path, if the URL has one.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?']).next().unwrap_or(rest))
}

/// `url` without its password, for logs and answers.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let shown = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                user.to_string()
            };
            format!("{scheme}://{shown}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Database::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The database a store is on, as its queries need to know it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite {
        path: PathBuf,
    },
    /// `url` is redacted (no password).
    Postgres {
        url: String,
    },
}

impl Backend {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Backend::Postgres { .. })
    }

    /// `sqlite` or `postgres`.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }
}

/// Opens the pool for `database` and brings its schema up to date.
pub(super) async fn connect(database: &Database) -> StoreResult<(AnyPool, Backend)> {
    sqlx::any::install_default_drivers();
    match database {
        Database::Sqlite(path) => Ok((sqlite(path).await?, Backend::Sqlite { path: path.clone() })),
        Database::Postgres(url) => {
            Ok((postgres(url).await?, Backend::Postgres { url: redact(url) }))
        }
    }
}

async fn sqlite(path: &Path) -> StoreResult<AnyPool> {
    // The file is created, and checked, over a connection of its own: a damaged file is
    // refused before anything reads or writes it.
    let mut check = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .map_err(|e| backup::classify(path, e))?;
    backup::quick_check(&mut check, path).await?;
    sqlx::Connection::close(check).await?;

    let url = format!("sqlite://{}", path.display());
    let options = AnyConnectOptions::from_str(&url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(4)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                )
                .await?;
                Ok(())
            })
        })
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
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .map_err(|e| match e {
            sqlx::migrate::MigrateError::Execute(e) => backup::classify(path, e),
            other => StoreError::Migrate(other),
        })?;
    Ok(pool)
}

async fn postgres(url: &str) -> StoreResult<AnyPool> {
    let options = AnyConnectOptions::from_str(url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(10)
        // A database that does not answer fails a request in seconds (503), never hangs it.
        .acquire_timeout(Duration::from_secs(5))
        .after_release(|conn, _| {
            Box::pin(async move { Ok(!sqlx::Connection::is_in_transaction(conn)) })
        })
        .connect_with(options)
        .await?;
    // sqlx's migrator holds an advisory lock while it runs: instances started together
    // migrate once.
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_shown_without_passwords() {
        assert_eq!(
            "sqlite:///var/lib/wharf/wharf.db".parse::<Database>(),
            Ok(Database::Sqlite("/var/lib/wharf/wharf.db".into()))
        );
        assert_eq!(
            "sqlite:data/wharf.db".parse::<Database>(),
            Ok(Database::Sqlite("data/wharf.db".into()))
        );
        let pg: Database = "postgres://wharf:s3cret@db.local:5432/wharf?sslmode=disable"
            .parse()
            .expect("postgres");
        assert_eq!(
            pg.to_string(),
            "postgres://wharf:***@db.local:5432/wharf?sslmode=disable"
        );
        assert!(!format!("{pg:?}").contains("s3cret"));
        let err = "mysql://root:pw@x/y".parse::<Database>().unwrap_err();
        assert!(err.contains("sqlite://PATH or postgres://"), "{err}");
        assert!(!err.contains("pw@"), "{err}");
        assert!("sqlite://".parse::<Database>().is_err());
        assert_eq!(redact("postgres://u@h/d"), "postgres://u@h/d");
    }
}
