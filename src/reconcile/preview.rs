//! What a write would do, without doing it: the dry run's plan. The candidates take the place
//! of the objects they name among the stored ones, and the rest is the loop's own path — one
//! observation, one builder of `Desired` (with Image objects, the approval gate and the loop's
//! memory), one planner. Nothing is written and the loop's memory is only read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tokio::time::Instant;

use super::controller::Controller;
use super::desired;
use super::plan::{AppPlan, plan};
use crate::spec::Kind;
use crate::spec::validate::AppKey;
use crate::store::{ObjectRecord, StoreError};

/// One step the loop would take: its verb (as in the events) and its reason.
#[derive(Clone, Debug, PartialEq)]
pub struct PreviewStep {
    pub action: &'static str,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The engine could not be observed completely: no plan is better than a wrong one.
    #[error("the Docker Engine cannot be observed, so nothing can be planned: {0}")]
    Unobservable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Controller {
    /// The plan of every App among `candidates`, as the loop would make it if they were stored
    /// now.
    pub async fn preview(
        self: &Arc<Self>,
        candidates: Vec<ObjectRecord>,
    ) -> Result<BTreeMap<AppKey, Vec<PreviewStep>>, PreviewError> {
        let wanted: Vec<(AppKey, String)> = candidates
            .iter()
            .filter(|c| c.kind == Kind::App)
            .map(|c| (c.key.clone(), c.uid.clone()))
            .collect();
        let records = desired::with_candidates(self.records().await?.to_vec(), candidates);
        let by_uid: HashMap<&str, &ObjectRecord> =
            records.iter().map(|r| (r.uid.as_str(), r)).collect();
        let now = Instant::now();
        let mut desired = self.desired(&records, None, now).await;
        if let Some(swarm) = &self.swarm {
            let mut plans = self
                .swarm_preview(swarm.as_ref(), &records, &desired, now)
                .await
                .map_err(|e| PreviewError::Unobservable(e.to_string()))?;
            return Ok(wanted
                .into_iter()
                .map(|(key, _)| {
                    let steps = plans.remove(&key).unwrap_or_default();
                    (key, steps)
                })
                .collect());
        }
        let observed = self
            .observe(&desired, &by_uid)
            .await
            .map_err(|e| PreviewError::Unobservable(e.to_string()))?;
        for (_, uid) in &wanted {
            if let Some(why) = observed.unobserved.get(uid) {
                return Err(PreviewError::Unobservable(why.clone()));
            }
        }
        desired.set_aside(&observed.unobserved);
        let mut the_plan = plan(&desired, &observed, now);
        Ok(wanted
            .into_iter()
            .map(|(key, _)| {
                let p: AppPlan = the_plan.apps.remove(&key).unwrap_or_default();
                let steps = p
                    .steps
                    .into_iter()
                    .map(|s| PreviewStep {
                        action: s.action.verb(),
                        reason: s.reason,
                    })
                    .collect();
                (key, steps)
            })
            .collect())
    }
}
