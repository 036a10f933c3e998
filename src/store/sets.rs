//! Apply sets: the objects `wharf apply --prune --set NAME` manages, found by their `wharf.set`
//! label, and the pruning of those a bundle no longer contains — in the same transaction as the
//! bundle's writes. Only live, API-owned objects labelled with that one set are ever pruned;
//! objects of files, of other sets and without a set are never touched here.

use std::collections::BTreeSet;

use super::record::{ObjectRecord, ObjectSource, WriteItem, WriteOutcome, decode_error};
use super::{Store, StoreError, StoreResult};
use crate::spec::Kind;
use crate::spec::validate::AppKey;

/// The label that names an object's apply set.
pub const SET_LABEL: &str = "wharf.set";

/// What an apply with pruning did: each write's outcome, and the objects marked for deletion.
pub type Pruned = (Vec<(WriteOutcome, ObjectRecord)>, Vec<ObjectRecord>);

/// The members of a set that `items` no longer contain: what a prune deletes.
pub fn left_out(members: Vec<ObjectRecord>, items: &[WriteItem]) -> Vec<ObjectRecord> {
    let kept: BTreeSet<(Kind, &AppKey)> = items.iter().map(|i| (i.kind, &i.key)).collect();
    members
        .into_iter()
        .filter(|r| !kept.contains(&(r.kind, &r.key)))
        .collect()
}

impl Store {
    /// The live API-owned objects of every kind labelled with `set`, ordered by kind,
    /// namespace and name.
    pub async fn set_members(&self, set: &str) -> StoreResult<Vec<ObjectRecord>> {
        let api: Vec<ObjectRecord> = sqlx::query_as(
            "SELECT * FROM objects WHERE source = $1 AND deletion_timestamp IS NULL ORDER BY kind, namespace, name",
        )
        .bind(ObjectSource::Api.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(decode_error)?;
        Ok(api
            .into_iter()
            .filter(|r| r.labels.get(SET_LABEL).map(String::as_str) == Some(set))
            .collect())
    }

    /// Writes `items` and marks every object of `prune` for deletion, all or nothing. A pruned
    /// object must still be the one that was read (same uid and resourceVersion, still live):
    /// one that changed meanwhile fails the whole apply with a conflict.
    pub async fn apply_and_prune(
        &self,
        items: &[WriteItem],
        source: &ObjectSource,
        prune: &[ObjectRecord],
    ) -> StoreResult<Pruned> {
        let mut tx = self.write_tx().await?;
        let mut written = Vec::with_capacity(items.len());
        let mut book = None;
        for item in items {
            written.push(
                self.write_in(&mut tx, item, source, None, &mut book)
                    .await?,
            );
        }
        let mut pruned = Vec::with_capacity(prune.len());
        for target in prune {
            let current = Self::get_in(&mut tx, target.kind, &target.key).await?;
            let Some(mut record) = current.filter(|r| {
                r.uid == target.uid
                    && r.resource_version == target.resource_version
                    && !r.is_terminating()
            }) else {
                return Err(StoreError::Conflict(format!(
                    "{} changed while its set was pruned; apply again",
                    target.describe()
                )));
            };
            Self::mark_deleted_in(&mut tx, &mut record).await?;
            pruned.push(record);
        }
        tx.commit().await?;
        Ok((written, pruned))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn item(name: &str, set: Option<&str>) -> WriteItem {
        let text = format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: {name}, namespace: team}}\nspec: {{image: 'busybox:1'}}\n"
        );
        let docs = crate::spec::read_bundle(&text, crate::spec::Format::Yaml, None).expect("valid");
        let mut item = WriteItem::new(&docs[0]);
        if let Some(set) = set {
            item.meta.labels.insert(SET_LABEL.into(), set.into());
        }
        item
    }

    async fn a_prune_deletes_only_the_left_out_api_objects_of_its_own_set(
        db: crate::store::TestDb,
    ) {
        let store = db.open().await;
        let first = [
            item("a", Some("ci")),
            item("b", Some("ci")),
            item("c", Some("other")),
            item("d", None),
        ];
        store
            .apply(&first, &ObjectSource::Api)
            .await
            .expect("first apply");
        let members = store.set_members("ci").await.expect("members");
        let names: Vec<&str> = members.iter().map(|r| r.key.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);

        let second = [item("a", Some("ci"))];
        let prune = left_out(members, &second);
        let (written, pruned) = store
            .apply_and_prune(&second, &ObjectSource::Api, &prune)
            .await
            .expect("apply with prune");
        assert_eq!(written[0].0, WriteOutcome::Unchanged);
        let pruned: Vec<&str> = pruned.iter().map(|r| r.key.name.as_str()).collect();
        assert_eq!(pruned, ["b"]);
        let live: BTreeMap<String, bool> = store
            .list(Kind::App, Some("team"))
            .await
            .expect("list")
            .into_iter()
            .map(|r| (r.key.name.clone(), r.is_terminating()))
            .collect();
        let expected: BTreeMap<String, bool> =
            [("a", false), ("b", true), ("c", false), ("d", false)]
                .into_iter()
                .map(|(n, t)| (n.to_string(), t))
                .collect();
        assert_eq!(live, expected, "only b, of set ci and left out, is deleted");
    }

    async fn a_prune_target_changed_since_it_was_read_fails_the_whole_apply(
        db: crate::store::TestDb,
    ) {
        let store = db.open().await;
        store
            .apply(
                &[item("a", Some("ci")), item("b", Some("ci"))],
                &ObjectSource::Api,
            )
            .await
            .expect("first apply");
        let prune = left_out(store.set_members("ci").await.expect("members"), &[]);
        // b is re-applied (and so moves on) between the read and the prune.
        let mut changed = item("b", Some("ci"));
        changed.meta.annotations.insert("note".into(), "x".into());
        store
            .apply(&[changed], &ObjectSource::Api)
            .await
            .expect("concurrent write");
        let new = [item("n", Some("ci"))];
        let err = store
            .apply_and_prune(&new, &ObjectSource::Api, &prune)
            .await
            .expect_err("a stale prune list is refused");
        assert!(matches!(err, StoreError::Conflict(_)), "{err}");
        assert!(
            store
                .get(Kind::App, &new[0].key)
                .await
                .expect("get")
                .is_none(),
            "nothing of the refused apply is written"
        );
    }

    crate::store::on_both_databases!(
        a_prune_deletes_only_the_left_out_api_objects_of_its_own_set,
        a_prune_target_changed_since_it_was_read_fails_the_whole_apply
    );
}
