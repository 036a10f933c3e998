//! Admission of App writes: the namespace's policy (the server's, overridden per namespace),
//! its quota, and the host's memory, checked inside the write's transaction.

use std::collections::BTreeMap;
use std::sync::Arc;

use sqlx::{Any, Transaction};

use super::record::{ObjectRecord, WriteItem, decode_error};
use super::{Store, StoreError, StoreResult};
use crate::policy::{Policy, Totals, Usage};
use crate::spec::mode::Mode;

/// What the store checks an App against before it accepts it.
#[derive(Clone, Debug, Default)]
pub struct Admission {
    /// The server's policy; namespaces may override it.
    pub policy: Policy,
    /// The host's memory in bytes (0: unknown, no host check).
    pub host_memory: i64,
    /// Apps may together declare at most this percent of `host_memory` (0: no check).
    pub host_memory_percent: u8,
    /// The server's mode: fields it cannot honour are refused.
    pub mode: crate::spec::mode::Mode,
}

/// Every stored app's usage, read once per write transaction and kept current by its writes.
#[derive(Default)]
pub(super) struct UsageBook {
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

impl Store {
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

    pub(super) async fn load_usage(tx: &mut Transaction<'_, Any>) -> StoreResult<UsageBook> {
        let records: Vec<ObjectRecord> = sqlx::query_as(
            "SELECT * FROM objects WHERE kind = 'App' AND deletion_timestamp IS NULL",
        )
        .fetch_all(&mut **tx)
        .await
        .map_err(decode_error)?;
        let mut book = UsageBook::default();
        for record in records {
            // An app that no longer validates holds what it last declared, as far as it reads.
            let usage = record.app_spec().map(|a| Usage::of(&a)).unwrap_or_default();
            book.by_uid
                .insert(record.uid.clone(), (record.key.namespace.clone(), usage));
        }
        Ok(book)
    }

    /// Checks an App against its namespace's policy and quota and the host's memory
    /// admission, with usage as of `tx`. `uid` is the app's (new or stored).
    pub(super) async fn admit_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        book: &mut Option<UsageBook>,
        item: &WriteItem,
        uid: &str,
        is_new: bool,
    ) -> StoreResult<()> {
        if item.kind == crate::spec::Kind::Node && self.admission.mode == Mode::Solo {
            return Err(StoreError::Invalid(vec![crate::spec::SpecError {
                object: Some(item.kind.describe(&item.key)),
                field: Some("kind".into()),
                message: "kind Node declares a swarm node and is swarm only (wharf serve --mode swarm); solo mode has no nodes".into(),
                ..crate::spec::SpecError::default()
            }]));
        }
        let Some(app) = item.app.as_deref() else {
            return Ok(());
        };
        let refuse = |violation| StoreError::Policy {
            what: item.kind.describe(&item.key),
            violation,
        };
        let unfit = crate::spec::mode::check(app, self.admission.mode);
        if !unfit.is_empty() {
            let object = item.kind.describe(&item.key);
            return Err(StoreError::Invalid(
                unfit
                    .into_iter()
                    .map(|mut e| {
                        e.object = Some(object.clone());
                        e
                    })
                    .collect(),
            ));
        }
        let over: Option<String> =
            sqlx::query_scalar("SELECT policy FROM namespace_policies WHERE namespace = $1")
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
}
