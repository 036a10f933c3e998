//! Spec files: syncing a full scan of the watched directory into file-owned objects (in one
//! transaction), and each file's problem.

use schemars::JsonSchema;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use sqlx::Row;

use super::record::{ObjectRecord, ObjectSource, WriteItem, WriteOutcome, decode_error};
use super::{Store, StoreError, StoreResult, now_rfc3339};
use crate::spec::Kind;
use crate::spec::validate::AppKey;

/// A problem reported for one source of specs (a file).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct SourceError {
    pub source: ObjectSource,
    pub time: String,
    pub message: String,
}

/// The result of syncing the watched directory into the store.
#[derive(Debug, Default)]
pub struct SyncReport {
    pub changed: Vec<(Kind, AppKey, WriteOutcome)>,
    pub deleted: Vec<(Kind, AppKey)>,
    /// Per file: objects that could not be taken (owned elsewhere).
    pub conflicts: BTreeMap<ObjectSource, Vec<String>>,
}

impl Store {
    /// Records (or clears, with `None`) the problem of one spec file. Returns whether it changed.
    pub async fn set_source_error(
        &self,
        source: &ObjectSource,
        message: Option<&str>,
    ) -> StoreResult<bool> {
        let source = source.to_string();
        let current: Option<String> =
            sqlx::query_scalar("SELECT message FROM source_errors WHERE source = $1")
                .bind(&source)
                .fetch_optional(&self.pool)
                .await?;
        if current.as_deref() == message {
            return Ok(false);
        }
        match message {
            Some(m) => {
                sqlx::query("INSERT INTO source_errors (source, time, message) VALUES ($1, $2, $3) ON CONFLICT (source) DO UPDATE SET time = excluded.time, message = excluded.message")
                    .bind(&source)
                    .bind(now_rfc3339())
                    .bind(m)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM source_errors WHERE source = $1")
                    .bind(&source)
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
                    source: r
                        .try_get::<String, _>("source")?
                        .parse()
                        .map_err(StoreError::Corrupt)?,
                    time: r.try_get("time")?,
                    message: r.try_get("message")?,
                })
            })
            .collect()
    }

    /// Objects owned by one source.
    pub async fn by_source(&self, source: &ObjectSource) -> StoreResult<Vec<ObjectRecord>> {
        sqlx::query_as("SELECT * FROM objects WHERE source = $1 ORDER BY namespace, name")
            .bind(source.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(decode_error)
    }

    /// Makes the file-owned objects match a full scan of the watched directory, in one
    /// transaction.
    ///
    /// `good` holds every readable, valid file with its objects; `bad` the files that exist but
    /// failed to parse or validate (their objects are kept as they are). An object moves
    /// between files when its old file no longer declares it; it never moves from the API or
    /// from a bad file. File-owned objects no file declares any more are marked for deletion.
    ///
    /// `commit`: the git commit the files come from (`wharf serve --git`), recorded on every
    /// live file-owned object; `None` clears it.
    pub async fn sync_files(
        &self,
        good: &BTreeMap<ObjectSource, Vec<WriteItem>>,
        bad: &BTreeSet<ObjectSource>,
        commit: Option<&str>,
    ) -> StoreResult<SyncReport> {
        let mut report = SyncReport::default();
        let mut tx = self.write_tx().await?;
        let mut book = None;
        let mut declared: BTreeMap<(Kind, AppKey), &ObjectSource> = BTreeMap::new();
        for (source, items) in good {
            for item in items {
                let id = (item.kind, item.key.clone());
                let what = item.kind.describe(&item.key);
                let existing = Self::get_in(&mut tx, item.kind, &item.key).await?;
                let owner = existing.as_ref().map(|r| &r.source);
                // An object declared by two files stays with the one that already has it (its
                // current owner, or the first file this scan read).
                let keeper = declared.get(&id).copied().or_else(|| {
                    owner.filter(|o| *o != source).filter(|o| {
                        good.get(*o).is_some_and(|items| {
                            items
                                .iter()
                                .any(|i| i.kind == item.kind && i.key == item.key)
                        })
                    })
                });
                if let Some(keeper) = keeper {
                    report
                        .conflicts
                        .entry(source.clone())
                        .or_default()
                        .push(format!(
                            "{what} is also declared in {}, which keeps it",
                            keeper.file().unwrap_or("another file")
                        ));
                    continue;
                }
                let take_over = match owner {
                    Some(o) if o != source && o.file().is_some() && !bad.contains(o) => Some(o),
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
                                o.file().unwrap_or("another file")
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
        let records: Vec<ObjectRecord> = sqlx::query_as(
            "SELECT * FROM objects WHERE source LIKE 'file:%' AND deletion_timestamp IS NULL",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(decode_error)?;
        for mut record in records {
            if declared.contains_key(&(record.kind, record.key.clone()))
                || bad.contains(&record.source)
            {
                continue;
            }
            Self::mark_deleted_in(&mut tx, &mut record).await?;
            report.deleted.push((record.kind, record.key.clone()));
        }
        sqlx::query(
            "UPDATE objects SET source_commit = $1 WHERE source LIKE 'file:%' AND deletion_timestamp IS NULL AND source_commit IS DISTINCT FROM $1",
        )
        .bind(commit)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(report)
    }
}
