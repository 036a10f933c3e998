//! The steps of one Image object: pull by policy, check the registry's digest when due, and
//! remove the reference from the engine when the Image is deleted. Pure.

use crate::runtime::image_match::{find_local, has_digest, repo_digest};
use crate::spec::image::PullPolicy;

use super::model::*;

pub(super) fn plan_image(observed: &Observed, image: &DesiredImage, plan: &mut AppPlan) {
    let reference = &image.spec.canonical;
    let local = find_local(&observed.images, reference);
    if image.deleting {
        if local.is_some() {
            plan.steps.push(Step {
                action: Action::RemoveImage {
                    reference: reference.clone(),
                },
                reason: "the Image is being deleted".into(),
            });
        }
        plan.steps.push(Step {
            action: Action::Forget {
                uid: image.uid.clone(),
            },
            reason: "its image is removed from the engine (or kept while containers use it)".into(),
        });
        return;
    }
    let pull = |reason: String| Step {
        action: Action::Pull {
            reference: reference.clone(),
            credentials: image.spec.credentials.clone(),
        },
        reason,
    };
    let policy = image.spec.pull_policy;
    let Some(local) = local else {
        if policy == PullPolicy::Never {
            plan.waiting = Some(format!(
                "{} is not in the engine and its pullPolicy is Never",
                image.spec.reference
            ));
        } else {
            plan.steps.push(pull(format!(
                "{} is not in the engine (pullPolicy {policy})",
                image.spec.reference
            )));
        }
        return;
    };
    if policy == PullPolicy::Never {
        return;
    }
    if policy == PullPolicy::Always && image.pulled_generation != Some(image.generation) {
        plan.steps.push(pull(format!(
            "pullPolicy Always: pulled when generation {} is declared",
            image.generation
        )));
        return;
    }
    if let Some(remote) = &image.remote_digest
        && !has_digest(local, reference, remote)
    {
        let current = repo_digest(local, reference).unwrap_or_else(|| "none".into());
        plan.steps.push(pull(format!(
            "the registry serves digest {remote}; the engine has {current}"
        )));
        return;
    }
    if image.check_due {
        plan.steps.push(Step {
            action: Action::CheckDigest {
                reference: reference.clone(),
                credentials: image.spec.credentials.clone(),
            },
            reason: "its updateInterval has passed since the last registry check".into(),
        });
    }
}
