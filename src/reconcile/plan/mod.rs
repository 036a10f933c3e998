//! The planner: a pure function from desired and observed state to a plan of steps, each with
//! the reason it is needed.
//!
//! No I/O, no clock of its own (`now` is an argument), deterministic order (BTreeMap). The
//! executor interprets the plan and decides nothing; the loop feeds it fresh, complete
//! observations only.
//!
//! - `model`: the data (`Desired`, `Observed`, `Plan`, `Step`, `Action`).
//! - `app`: one app's steps; `image`: one Image object's steps.
//! - `tests`: table tests of the planner and of status computation.
//! - `rollout_tests`: image rollouts (width, a rollback stopping them, an aside name restored).

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use crate::runtime::image_match::find_local;
use crate::runtime::labels;
use crate::spec::image::canonical_reference;
use crate::spec::validate::AppKey;

mod app;
mod image;
mod model;
#[cfg(test)]
mod rollout_tests;
#[cfg(test)]
mod tests;

use app::plan_app;
pub use app::remove_steps;
use image::plan_image;
pub use model::*;

/// Computes the plan. Pure and deterministic.
pub fn plan(desired: &Desired, observed: &Observed, now: Instant) -> Plan {
    let mut by_uid: BTreeMap<&str, Vec<&ObservedContainer>> = BTreeMap::new();
    for c in &observed.containers {
        if let Some(uid) = c.label(labels::UID) {
            by_uid.entry(uid).or_default().push(c);
        }
    }
    for list in by_uid.values_mut() {
        // Newest first; ties by id for determinism.
        list.sort_by(|a, b| {
            b.summary
                .created
                .cmp(&a.summary.created)
                .then(a.summary.id.cmp(&b.summary.id))
        });
    }

    let mut out = Plan::default();
    // Orphans first: their steps must run before a same-named app creates its container.
    let live: BTreeSet<&str> = desired.apps.values().map(|a| a.uid.as_str()).collect();
    for (uid, containers) in &by_uid {
        if live.contains(uid) || desired.frozen_uids.contains(*uid) {
            continue;
        }
        for c in containers {
            let key = AppKey {
                namespace: c.label(labels::NAMESPACE).unwrap_or("").to_string(),
                name: c.label(labels::APP).unwrap_or("").to_string(),
            };
            let plan = out.apps.entry(key.clone()).or_default();
            remove_steps(
                plan,
                c,
                None,
                format!("orphan: its object {key} (uid {uid}) no longer exists"),
            );
        }
    }

    let mut rollouts = Rollouts::new(desired, observed);
    for (key, app) in &desired.apps {
        let containers = by_uid.get(app.uid.as_str()).cloned().unwrap_or_default();
        let mut own = AppPlan::default();
        plan_app(desired, observed, app, &containers, &mut rollouts, &mut own);
        if own.waiting_reason.is_none()
            && own.waiting.is_some()
            && own.waiting == desired.unapproved(&app.spec.container.image)
        {
            own.waiting_reason = Some(IMAGE_NOT_APPROVED);
        }
        let image_id = canonical_reference(&app.spec.container.image)
            .ok()
            .and_then(|r| find_local(&observed.images, &r))
            .map(|i| i.id.clone());
        // A permanent failure waits for a change; a new image is one.
        let hold = match &app.blocked_on_image {
            Some(blocked) if *blocked != image_id => None,
            _ => app.hold_until,
        };
        hold_back(hold, app.deleting, now, &mut own);
        let plan = out.apps.entry(key.clone()).or_default();
        plan.image_id = image_id;
        plan.uid = Some(app.uid.clone());
        plan.steps.extend(own.steps);
        plan.repair = own.repair;
        plan.waiting = own.waiting;
        plan.waiting_reason = own.waiting_reason;
        plan.requeue_after = own.requeue_after;
    }
    for (key, image) in &desired.images {
        let mut own = AppPlan {
            uid: Some(image.uid.clone()),
            ..AppPlan::default()
        };
        plan_image(observed, image, &mut own);
        hold_back(image.hold_until, image.deleting, now, &mut own);
        out.apps.insert(key.clone(), own);
    }
    out.apps
        .retain(|_, p| p.uid.is_some() || !p.steps.is_empty());
    out
}

/// The image rollouts of one pass. When an image changes, the apps using it are replaced at
/// most `width` at a time (the Image's `spec.rollout.maxUnavailable`, else the serve default):
/// an app with work in flight holds a place, and a replacement planned in this pass takes one.
/// A replacement to the image's current version that rolled back stops its rollout: the apps
/// not yet on it keep their containers until the image or the failed app's spec changes.
pub(super) struct Rollouts<'a> {
    desired: &'a Desired,
    /// Apps per canonical reference with work in flight or a replacement planned.
    in_flight: BTreeMap<String, u32>,
    /// Canonical references whose rollout a rollback stopped, with what rolled back.
    stopped: BTreeMap<String, String>,
}

impl<'a> Rollouts<'a> {
    fn new(desired: &'a Desired, observed: &Observed) -> Self {
        let mut in_flight: BTreeMap<String, u32> = BTreeMap::new();
        for canonical in desired
            .busy
            .iter()
            .filter_map(|k| desired.apps.get(k))
            .filter_map(|a| canonical_reference(&a.spec.container.image).ok())
        {
            *in_flight.entry(canonical).or_default() += 1;
        }
        let mut stopped = BTreeMap::new();
        for (key, app) in &desired.apps {
            let Some(failed) = &app.rolled_back else {
                continue;
            };
            let Ok(canonical) = canonical_reference(&app.spec.container.image) else {
                continue;
            };
            let current = find_local(&observed.images, &canonical).map(|i| &i.id);
            if failed.image_id.is_some() && failed.image_id.as_ref() == current {
                stopped
                    .entry(canonical)
                    .or_insert_with(|| format!("{key} rolled back ({})", failed.message));
            }
        }
        Self {
            desired,
            in_flight,
            stopped,
        }
    }

    /// How many apps of `canonical` may be replaced at once.
    pub(super) fn width(&self, canonical: &str) -> u32 {
        self.desired
            .images
            .values()
            .filter(|i| !i.deleting && i.spec.canonical == canonical)
            .filter_map(|i| i.spec.max_unavailable)
            .min()
            .unwrap_or(self.desired.rollout_width)
            .max(1)
    }

    /// Takes a place in the rollout of `canonical` for one app, or says why the app waits (and
    /// the condition reason, when it is not plain `Waiting`).
    pub(super) fn admit(
        &mut self,
        canonical: &str,
        image: &str,
    ) -> Result<(), (String, Option<&'static str>)> {
        if let Some(failed) = self.stopped.get(canonical) {
            return Err((
                format!(
                    "{image} changed; its rollout stopped: {failed}; the rollout resumes when the image or that app's spec changes"
                ),
                Some(ROLLOUT_STOPPED),
            ));
        }
        let width = self.width(canonical);
        let in_flight = self.in_flight.entry(canonical.to_string()).or_default();
        if *in_flight >= width {
            return Err((
                format!("{image} changed; waiting for the other apps using it ({width} at a time)"),
                None,
            ));
        }
        *in_flight += 1;
        Ok(())
    }
}

/// Reason of the Ready condition of an app whose replacement rolled back.
pub const ROLLED_BACK: &str = "RolledBack";

/// Reason of the Ready condition of an app whose image rollout a rollback stopped.
pub const ROLLOUT_STOPPED: &str = "RolloutStopped";

/// While an app or image is backing off (after a failure or a repair), its steps wait;
/// deletion does not, and a spec change starts a new generation without a hold.
fn hold_back(hold_until: Option<Instant>, deleting: bool, now: Instant, plan: &mut AppPlan) {
    let Some(until) = hold_until.filter(|t| *t > now) else {
        return;
    };
    if deleting || plan.steps.is_empty() {
        return;
    }
    let wait = until - now;
    let why = &plan.steps[0].reason;
    plan.waiting = Some(format!(
        "{why}; backing off, next attempt in {}s",
        wait.as_secs_f64().ceil()
    ));
    plan.requeue_after = Some(wait);
    plan.steps.clear();
    plan.repair = false;
}
