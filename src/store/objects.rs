//! Desired objects: reads, writes with ownership and `resourceVersion` preconditions and
//! generation bumps, deletion (marked, then forgotten once the loop has removed what it made),
//! statuses and the in-place update wharf applied.

use sqlx::{Any, Transaction};

use super::admission::UsageBook;
use super::record::{ObjectRecord, ObjectSource, WriteItem, WriteOutcome, decode_error};
use super::{Store, StoreError, StoreResult, now_rfc3339, to_json};
use crate::spec::Kind;
use crate::spec::status::ObjectStatus;
use crate::spec::validate::AppKey;

/// Why a write by one source to an object another source manages is refused.
pub fn ownership_message(kind: Kind, key: &AppKey, owner: &ObjectSource) -> String {
    let what = kind.describe(key);
    match owner.file() {
        Some(path) => format!(
            "{what} is managed by the spec file {path} in the watched directory; change it there"
        ),
        None => format!(
            "{what} is managed through the API (wharf apply / POST /api/v1/apply); delete it there before declaring it in a file"
        ),
    }
}

impl Store {
    pub(super) async fn get_in(
        tx: &mut Transaction<'_, Any>,
        kind: Kind,
        key: &AppKey,
    ) -> StoreResult<Option<ObjectRecord>> {
        sqlx::query_as("SELECT * FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3")
            .bind(kind.as_str())
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&mut **tx)
            .await
            .map_err(decode_error)
    }

    pub async fn get(&self, kind: Kind, key: &AppKey) -> StoreResult<Option<ObjectRecord>> {
        sqlx::query_as("SELECT * FROM objects WHERE kind = $1 AND namespace = $2 AND name = $3")
            .bind(kind.as_str())
            .bind(&key.namespace)
            .bind(&key.name)
            .fetch_optional(&self.pool)
            .await
            .map_err(decode_error)
    }

    /// All objects of a kind, or those of one namespace, ordered by namespace and name.
    pub async fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
    ) -> StoreResult<Vec<ObjectRecord>> {
        sqlx::query_as(
            "SELECT * FROM objects WHERE kind = $1 AND ($2 IS NULL OR namespace = $2) ORDER BY namespace, name",
        )
        .bind(kind.as_str())
        .bind(namespace)
        .fetch_all(&self.pool)
        .await
        .map_err(decode_error)
    }

    /// Writes one object inside `tx`, enforcing ownership and the optional `resourceVersion`
    /// precondition.
    pub(super) async fn write_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        item: &WriteItem,
        source: &ObjectSource,
        take_over_from: Option<&ObjectSource>,
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
                Self::announce(tx).await?;
                let rv = Self::next_rv(tx).await?;
                let record = ObjectRecord {
                    kind: item.kind,
                    key: item.key.clone(),
                    uid,
                    generation: 1,
                    resource_version: rv,
                    source: source.clone(),
                    labels: meta.labels.clone(),
                    annotations: meta.annotations.clone(),
                    spec,
                    status: None,
                    created_at: now_rfc3339(),
                    deletion_timestamp: None,
                    applied_update: None,
                    host_port_root,
                    source_commit: None,
                };
                Self::save_in(tx, &record).await?;
                Ok((WriteOutcome::Created, record))
            }
            Some(mut record) => {
                if record.source != *source && take_over_from != Some(&record.source) {
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
                    || record.source != *source
                    || record.host_port_root != root;
                if !spec_changed && !meta_changed && !resurrect {
                    return Ok((WriteOutcome::Unchanged, record));
                }
                record.host_port_root = root;
                if spec_changed || resurrect {
                    record.generation += 1;
                }
                Self::announce(tx).await?;
                record.resource_version = Self::next_rv(tx).await?;
                record.spec = spec;
                record.labels = meta.labels.clone();
                record.annotations = meta.annotations.clone();
                record.source = source.clone();
                record.deletion_timestamp = None;
                Self::save_in(tx, &record).await?;
                Ok((WriteOutcome::Configured, record))
            }
        }
    }

    /// Stores `record`'s spec and metadata, new or changed (its status and creation time, once
    /// stored, are kept).
    async fn save_in(tx: &mut Transaction<'_, Any>, record: &ObjectRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO objects (kind, namespace, name, uid, generation, resource_version, source, labels, annotations, spec, status, created_at, deletion_timestamp, host_port_root) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL, $11, NULL, $12) \
             ON CONFLICT (uid) DO UPDATE SET generation = excluded.generation, resource_version = excluded.resource_version, source = excluded.source, labels = excluded.labels, annotations = excluded.annotations, spec = excluded.spec, deletion_timestamp = NULL, host_port_root = excluded.host_port_root",
        )
        .bind(record.kind.as_str())
        .bind(&record.key.namespace)
        .bind(&record.key.name)
        .bind(&record.uid)
        .bind(record.generation)
        .bind(record.resource_version)
        .bind(record.source.to_string())
        .bind(to_json("labels", &record.labels)?)
        .bind(to_json("annotations", &record.annotations)?)
        .bind(to_json("spec", &record.spec)?)
        .bind(&record.created_at)
        .bind(record.host_port_root.map(i64::from))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Writes a bundle atomically: every object, or none (the first error is returned).
    pub async fn apply(
        &self,
        items: &[WriteItem],
        source: &ObjectSource,
    ) -> StoreResult<Vec<(WriteOutcome, ObjectRecord)>> {
        Ok(self.apply_and_prune(items, source, &[]).await?.0)
    }

    /// Runs every check `apply` would (ownership, resourceVersion, host ports, policy, quotas)
    /// and writes nothing: the transaction is rolled back.
    pub async fn check_apply(&self, items: &[WriteItem], source: &ObjectSource) -> StoreResult<()> {
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
        source: Option<&ObjectSource>,
        expected_rv: Option<&str>,
    ) -> StoreResult<ObjectRecord> {
        let mut tx = self.write_tx().await?;
        let mut record = Self::get_in(&mut tx, kind, key)
            .await?
            .ok_or_else(|| StoreError::NotFound(kind.describe(key)))?;
        if let Some(source) = source
            && record.source != *source
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

    pub(super) async fn mark_deleted_in(
        tx: &mut Transaction<'_, Any>,
        record: &mut ObjectRecord,
    ) -> StoreResult<()> {
        Self::announce(tx).await?;
        record.resource_version = Self::next_rv(tx).await?;
        record.deletion_timestamp = Some(now_rfc3339());
        sqlx::query(
            "UPDATE objects SET deletion_timestamp = $1, resource_version = $2 WHERE uid = $3",
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
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("DELETE FROM objects WHERE uid = $1 AND deletion_timestamp IS NOT NULL")
                .bind(uid)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() > 0 {
            // The change counter moves with every change of the objects (`objects_since`).
            Self::next_rv(&mut tx).await?;
            for table in [
                "events",
                "port_claims",
                "stats_samples",
                "stats_rollups",
                "uptime_transitions",
            ] {
                sqlx::query(&format!("DELETE FROM {table} WHERE uid = $1"))
                    .bind(uid)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
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
            sqlx::query("UPDATE objects SET status = $1, resource_version = $2 WHERE uid = $3")
                .bind(to_json("status", status)?)
                .bind(rv)
                .bind(uid)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Remembers that `hash` (update-class) was applied in place to `container_id`.
    pub async fn set_applied_update(
        &self,
        uid: &str,
        container_id: &str,
        hash: &str,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE objects SET applied_container_id = $1, applied_update_hash = $2 WHERE uid = $3",
        )
        .bind(container_id)
        .bind(hash)
        .bind(uid)
        .execute(&mut *tx)
        .await?;
        Self::next_rv(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The objects' change counter: it moves with every change of any object (see
    /// `objects_since`), so a reader that saw the same value has nothing new to read.
    pub async fn change_counter(&self) -> StoreResult<i64> {
        Ok(
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'resource_version'")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Every object of `kinds` (in that order, each by namespace and name) with the objects'
    /// change counter, read in one snapshot — or `None` when the counter is still `seen`:
    /// every change of an object (write, status, deletion, in-place update record) moves it, so
    /// a converged loop re-reads nothing.
    pub async fn objects_since(
        &self,
        kinds: &[Kind],
        seen: Option<i64>,
    ) -> StoreResult<Option<(i64, Vec<ObjectRecord>)>> {
        let mut tx = self.pool.begin().await?;
        let counter: i64 =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'resource_version'")
                .fetch_one(&mut *tx)
                .await?;
        if seen == Some(counter) {
            return Ok(None);
        }
        let mut records = Vec::new();
        for kind in kinds {
            let some: Vec<ObjectRecord> =
                sqlx::query_as("SELECT * FROM objects WHERE kind = $1 ORDER BY namespace, name")
                    .bind(kind.as_str())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(decode_error)?;
            records.extend(some);
        }
        tx.commit().await?;
        Ok(Some((counter, records)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::status::{AppStatus, ObjectStatus};

    async fn every_change_of_an_object_moves_the_change_counter(db: crate::store::TestDb) {
        let (store, uid) = crate::store::store_with_one_app(&db).await;
        let kinds = [Kind::App, Kind::Image];
        let read = |seen| {
            let store = store.clone();
            async move { store.objects_since(&kinds, seen).await.expect("read") }
        };
        let (first, records) = read(None).await.expect("a first read");
        assert_eq!(records.len(), 1);
        assert!(read(Some(first)).await.is_none(), "nothing changed");

        let status: AppStatus =
            serde_json::from_str(r#"{"phase": "Pending", "conditions": [], "restartCount": 0}"#)
                .expect("a status");
        let status = ObjectStatus::App(status);
        store
            .set_statuses(&[(uid.clone(), status)])
            .await
            .expect("status");
        let (after_status, records) = read(Some(first)).await.expect("a status is a change");
        assert!(records[0].app_status().is_some());

        store
            .set_applied_update(&uid, "c1", "h1")
            .await
            .expect("applied");
        let (after_update, records) = read(Some(after_status))
            .await
            .expect("an in-place update record is a change");
        assert_eq!(records[0].applied_hash_for("c1").as_deref(), Some("h1"));

        let key = records[0].key.clone();
        store
            .delete(Kind::App, &key, None, None)
            .await
            .expect("delete");
        let (after_delete, records) = read(Some(after_update)).await.expect("a deletion");
        assert!(records[0].is_terminating());
        assert!(store.forget(&uid).await.expect("forget"));
        let (_, records) = read(Some(after_delete)).await.expect("a removal");
        assert!(records.is_empty());
    }

    crate::store::on_both_databases!(every_change_of_an_object_moves_the_change_counter);
}
