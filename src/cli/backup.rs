//! `wharf backup [--out FILE]`: an online copy of the data directory's database.

use std::path::{Path, PathBuf};

use super::client::{CliError, CliResult, Exit};
use crate::store::StoreError;
use crate::store::backup::{backup as copy, default_name};

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
