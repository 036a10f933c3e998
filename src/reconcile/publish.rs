//! What a pass publishes: the statuses it computed (stored only when they changed, all in one
//! transaction) and the outcome of every executed step as an event on its object. Decides
//! nothing about what to do next.

use std::collections::{BTreeMap, HashMap};

use tokio::time::Instant;

use super::controller::Controller;
use super::execute::Execution;
use super::plan::{AppPlan, Desired, Observed};
use super::status::{self, ObjectStatus};
use crate::notify::transitions;
use crate::runtime::image_match::find_local;
use crate::spec::validate::AppKey;
use crate::store::{EventType, ObjectRecord, now_rfc3339};

impl Controller {
    pub(super) async fn write_statuses(
        &self,
        desired: &Desired,
        observed: &Observed,
        plans: &BTreeMap<AppKey, AppPlan>,
        by_uid: &HashMap<&str, &ObjectRecord>,
        observed_at: Instant,
    ) {
        let now = now_rfc3339();
        let mut changed = Vec::new();
        // The failure first, then whether work finished since the observation: work that ends
        // in between makes the app stale, so the two are never mixed.
        let fresh = |key: &AppKey, uid: &str| {
            let failure = self.memory().get(uid).and_then(|m| m.failure.clone());
            (!self.lock().is_stale(key, observed_at)).then_some(failure)
        };
        let containers = observed.by_uid();
        for (key, app) in &desired.apps {
            let Some(failure) = fresh(key, &app.uid) else {
                continue;
            };
            let Some(record) = by_uid.get(app.uid.as_str()) else {
                continue;
            };
            let container = containers
                .get(app.uid.as_str())
                .into_iter()
                .flatten()
                .copied()
                .max_by_key(|c| {
                    (
                        c.recreate_hash() == Some(app.hashes.recreate.as_str()),
                        c.summary.created,
                    )
                });
            let computed = status::compute(
                app,
                container,
                plans.get(key),
                failure.as_ref(),
                record.app_status(),
                &now,
            );
            changed.extend(status_change(record, ObjectStatus::App(computed)));
        }
        for (key, image) in &desired.images {
            let Some(failure) = fresh(key, &image.uid) else {
                continue;
            };
            let Some(record) = by_uid.get(image.uid.as_str()) else {
                continue;
            };
            let computed = status::compute_image(
                image,
                find_local(&observed.images, &image.spec.canonical),
                &observed.containers,
                &self.memory().image(&image.spec.canonical),
                plans.get(key),
                failure.as_ref(),
                record.image_status(),
                &now,
            );
            changed.extend(status_change(record, ObjectStatus::Image(computed)));
        }
        self.store_statuses(changed, by_uid).await;
    }

    /// Stores the statuses that changed, then sends the notable changes among them
    /// (`notify::transitions`) to the notifier.
    pub(super) async fn store_statuses(
        &self,
        changed: Vec<(String, ObjectStatus)>,
        by_uid: &HashMap<&str, &ObjectRecord>,
    ) {
        let notices: Vec<_> = changed
            .iter()
            .filter_map(|(uid, status)| Some(transitions(by_uid.get(uid.as_str())?, status)))
            .flatten()
            .collect();
        if let Err(e) = self.store.set_statuses(&changed).await {
            tracing::warn!("could not store {} statuses: {e}", changed.len());
            return;
        }
        for notice in notices {
            self.config.notifier.send(notice);
        }
    }

    /// Logs every step's outcome and records it as an event on the object.
    pub(super) async fn report(
        &self,
        key: &AppKey,
        record: Option<&ObjectRecord>,
        execution: &Execution,
    ) {
        for outcome in &execution.outcomes {
            let step = &outcome.step;
            match &outcome.result {
                Ok(detail) => {
                    let message = if detail.is_empty() {
                        step.reason.clone()
                    } else {
                        format!("{detail}: {}", step.reason)
                    };
                    tracing::info!(app = %key, "{} {message}", step.action.verb());
                    if let Some(record) = record {
                        self.event(record, EventType::Normal, step.action.verb(), &message)
                            .await;
                    }
                }
                Err(e) => {
                    tracing::warn!(app = %key, "{} failed ({}): {e}", step.action.verb(), step.reason);
                    if let Some(record) = record {
                        let message =
                            format!("{} failed ({}): {e}", step.action.verb(), step.reason);
                        self.event(record, EventType::Warning, e.reason(), &message)
                            .await;
                    }
                }
            }
        }
    }

    pub(super) async fn event(
        &self,
        record: &ObjectRecord,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        if let Err(e) = self.store.record_event(record, kind, reason, message).await {
            tracing::warn!(app = %record.key, "could not record event: {e}");
        }
    }
}

/// `(uid, status)` to store when `computed` differs from what `record` holds.
fn status_change(record: &ObjectRecord, computed: ObjectStatus) -> Option<(String, ObjectStatus)> {
    (record.status.as_ref() != Some(&computed)).then(|| (record.uid.clone(), computed))
}
