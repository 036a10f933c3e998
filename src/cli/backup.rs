//! `wharf backup [--out FILE]`: an online copy of the data directory's database; and
//! `wharf store copy`, an installation moved to another database.

use std::path::{Path, PathBuf};

use super::client::{CliError, CliResult, Exit};
use crate::store::backup::{backup as copy, default_name};
use crate::store::{Database, StoreError};

pub async fn backup(data: &Path, out: Option<&Path>) -> CliResult {
    let db = data.join(crate::server::DATABASE_FILE);
    let out: PathBuf = out.map_or_else(default_name, Path::to_path_buf);
    match copy(&db, &out).await {
        Ok(bytes) => {
            eprintln!(
                "copied {} to {} ({bytes} bytes, checked with PRAGMA quick_check)",
                db.display(),
                out.display()
            );
            Ok(Exit::Ok)
        }
        Err(e) => {
            let exit = match e {
                StoreError::Conflict(_) => Exit::Conflict,
                _ => Exit::Failure,
            };
            Err(CliError::new(exit, format!("backup: {e}")))
        }
    }
}

/// `wharf store copy [--from URL] --to URL`.
pub async fn store_copy(data: &Path, from: Option<Database>, to: &Database) -> CliResult {
    let from = from.unwrap_or_else(|| Database::Sqlite(data.join(crate::server::DATABASE_FILE)));
    if let Database::Sqlite(path) = &from
        && !path.is_file()
    {
        return Err(CliError::new(
            Exit::Failure,
            format!("store copy: {from}: no such database file"),
        ));
    }
    match crate::store::copy::copy(&from, to).await {
        Ok(report) => {
            for (table, rows) in &report.tables {
                eprintln!("{table:<20} {rows:>10} rows");
            }
            eprintln!(
                "copied {from} to {to} (resourceVersion {}); start wharf with --database {to}",
                report.resource_version
            );
            Ok(Exit::Ok)
        }
        Err(e) => {
            let exit = match e {
                StoreError::Conflict(_) => Exit::Conflict,
                _ => Exit::Failure,
            };
            Err(CliError::new(exit, format!("store copy: {e}")))
        }
    }
}
