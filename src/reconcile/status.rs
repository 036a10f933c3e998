//! App status: computed from the desired app, its observed container, the pending plan and the
//! last failure. Pure; the loop stores the result when it changed.

pub use super::memory::Failure;
use super::memory::ImageMemory;
use super::plan::{AppPlan, DesiredApp, DesiredImage, ObservedContainer, ROLLED_BACK};
use crate::runtime::image_match::repo_digest;
use crate::runtime::{ContainerState, HealthState, ImageSummary};
use crate::spec::image::PullPolicy;
pub use crate::spec::status::{
    AppStatus, Condition, ConditionStatus, ImagePhase, ImageStatus, ObjectStatus, Phase,
    RolledBackStatus,
};
use crate::spec::wire::DesiredState;

/// A condition; `previous` is the same condition in the last status (its transition time is
/// kept while the status stays the same).
/// `Synced`: False with the failure of the app's current generation, else True.
pub(super) fn synced(
    previous: Option<&Condition>,
    failure: Option<&Failure>,
    now: &str,
) -> Condition {
    match failure {
        Some(f) => condition(previous, "Synced", false, &f.reason, &f.message, now),
        None => condition(previous, "Synced", true, "Synced", "", now),
    }
}

pub(super) fn condition(
    previous: Option<&Condition>,
    kind: &str,
    ok: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> Condition {
    let status = ConditionStatus::from(ok);
    let since = previous
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.to_string());
    Condition {
        kind: kind.to_string(),
        status,
        reason: reason.to_string(),
        message: message.to_string(),
        last_transition_time: since,
    }
}

/// Computes an app's status.
pub fn compute(
    app: &DesiredApp,
    container: Option<&ObservedContainer>,
    plan: Option<&AppPlan>,
    failure: Option<&Failure>,
    previous: Option<&AppStatus>,
    now: &str,
) -> AppStatus {
    let pending = plan.is_some_and(|p| !p.steps.is_empty());
    let waiting = plan.and_then(|p| p.waiting.clone());
    let state = container.map(|c| c.summary.state);
    let details = container.and_then(|c| c.details.as_ref());
    let exit_code = details
        .and_then(|d| d.exit_code)
        .filter(|_| matches!(state, Some(ContainerState::Exited | ContainerState::Dead)));

    let matches_spec = container.is_some_and(|c| {
        c.recreate_hash() == Some(app.hashes.recreate.as_str())
            && c.update_hash() == Some(app.hashes.update.as_str())
    });
    let in_declared_state = matches!(
        (app.spec.state, state),
        (DesiredState::Running, Some(ContainerState::Running))
            | (DesiredState::Paused, Some(ContainerState::Paused))
            | (
                DesiredState::Stopped,
                Some(ContainerState::Exited | ContainerState::Created)
            )
    );
    let health = details
        .and_then(|d| d.health)
        .or_else(|| container.and_then(|c| c.summary.health))
        .filter(|_| state == Some(ContainerState::Running));
    let check_declared = app
        .spec
        .container
        .healthcheck
        .as_ref()
        .is_some_and(|h| h.is_enabled());
    // With a declared check, a running app is ready only once Docker calls it healthy.
    let healthy_enough = !check_declared
        || app.spec.state != DesiredState::Running
        || health == Some(HealthState::Healthy);
    // A rollback is current while the container does not match the spec (a spec change rolled
    // back), or while the planner holds the app back because of it (an image rollout rolled
    // back: the spec matches, the image does not). An image that changes again ends it.
    let held_back = plan.is_some_and(|p| p.waiting_reason == Some(ROLLED_BACK));
    let rolled_back = app
        .rolled_back
        .as_ref()
        .filter(|_| !matches_spec || held_back);
    // A failure counts for its generation; a rolled-back replacement's only while the rollback
    // holds (the image changed back to the version the app runs: nothing is failing any more).
    let current_failure = failure
        .filter(|f| f.generation == app.generation)
        .filter(|f| f.reason != ROLLED_BACK || rolled_back.is_some());
    let converged = !app.deleting
        && matches_spec
        && in_declared_state
        && healthy_enough
        && !pending
        && rolled_back.is_none();

    let phase = if app.deleting {
        Phase::Terminating
    } else if rolled_back.is_some() {
        Phase::Degraded
    } else {
        match state {
            Some(ContainerState::Running) => Phase::Running,
            Some(ContainerState::Paused) => Phase::Paused,
            Some(ContainerState::Exited) if app.spec.state == DesiredState::Stopped => {
                Phase::Stopped
            }
            Some(ContainerState::Exited) if exit_code == Some(0) => Phase::Stopped,
            Some(ContainerState::Exited | ContainerState::Dead) => Phase::Failed,
            Some(ContainerState::Created) if app.spec.state == DesiredState::Stopped => {
                Phase::Stopped
            }
            // A pull that fails keeps the app pending (ImagePullBackOff), as Kubernetes does.
            _ if current_failure.is_some_and(|f| f.reason == "ImagePullBackOff") => Phase::Pending,
            _ if current_failure.is_some() => Phase::Failed,
            _ => Phase::Pending,
        }
    };

    let (ready_reason, ready_message) = if converged {
        let reason = match app.spec.state {
            DesiredState::Running => "Running",
            DesiredState::Paused => "Paused",
            DesiredState::Stopped => "Stopped",
        };
        (reason.to_string(), String::new())
    } else if app.deleting {
        ("Terminating".into(), "the app is being deleted".into())
    } else if let Some(r) = rolled_back {
        (
            "RolledBack".into(),
            format!(
                "generation {} was rolled back: {}; change the spec (or the image) to try again",
                app.generation, r.message
            ),
        )
    } else if let Some(f) = current_failure {
        (f.reason.clone(), f.message.clone())
    } else if let Some(w) = &waiting {
        let reason = plan.and_then(|p| p.waiting_reason).unwrap_or("Waiting");
        (reason.into(), w.clone())
    } else if matches_spec && in_declared_state && !pending && !healthy_enough {
        let output = details
            .and_then(|d| d.health_output.clone())
            .filter(|o| !o.is_empty())
            .map(|o| format!(": {o}"))
            .unwrap_or_default();
        match health {
            Some(HealthState::Unhealthy) => (
                "Unhealthy".into(),
                format!("the health check fails{output}"),
            ),
            _ => (
                "HealthCheckPending".into(),
                "running; the health check has not passed yet".into(),
            ),
        }
    } else if pending {
        let steps: Vec<_> = plan
            .map(|p| p.steps.iter().map(|s| s.reason.clone()).collect())
            .unwrap_or_default();
        ("Progressing".into(), steps.join("; "))
    } else {
        (
            "NotReady".into(),
            format!(
                "container is {}",
                state
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "missing".into())
            ),
        )
    };
    let ready = condition(
        previous.and_then(|p| p.condition("Ready")),
        "Ready",
        converged,
        &ready_reason,
        &ready_message,
        now,
    );
    let synced = synced(
        previous.and_then(|p| p.condition("Synced")),
        current_failure,
        now,
    );

    let observed_generation = if converged {
        Some(app.generation)
    } else {
        previous.and_then(|p| p.observed_generation)
    };
    // Details come only with an inspect (new, changed or stopped containers); between those,
    // keep what was learned about the same container.
    let same_container = container.is_some()
        && previous.and_then(|p| p.container_id.as_deref())
            == container.map(|c| c.summary.id.as_str());
    let kept = previous.filter(|_| same_container);
    let docker_restarts = details.map(|d| d.restart_count);
    let restart_count = match (docker_restarts, kept) {
        (Some(d), _) => i64::from(app.repairs) + d,
        (None, Some(p)) => p.restart_count.max(i64::from(app.repairs)),
        (None, None) => i64::from(app.repairs),
    };
    let started_at = details
        .and_then(|d| d.started_at.clone())
        .filter(|s| !s.starts_with("0001"))
        .or_else(|| kept.and_then(|p| p.started_at.clone()));
    AppStatus {
        phase,
        observed_generation,
        conditions: vec![ready, synced],
        container_id: container.map(|c| c.summary.id.clone()),
        container_name: container.map(|c| c.summary.name.clone()),
        image_id: container
            .map(|c| c.summary.image_id.clone())
            .filter(|s| !s.is_empty()),
        restart_count,
        started_at,
        exit_code,
        message: waiting.or_else(|| current_failure.map(|f| f.message.clone())),
        health,
        host_port_root: app.host_port_root,
        rolled_back: app.rolled_back.as_ref().map(|r| RolledBackStatus {
            generation: app.generation,
            image_id: r.image_id.clone(),
            message: r.message.clone(),
        }),
        service_id: None,
        replicas: None,
        update_status: None,
        tasks: Vec::new(),
    }
}

/// Unix seconds as RFC 3339.
pub fn unix_rfc3339(secs: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Who uses an image: the `namespace/app` of each managed container created from it (by
/// `reference`, canonical; `None` for an image no Image declares).
pub fn users(
    image: &ImageSummary,
    reference: Option<&str>,
    containers: &[ObservedContainer],
) -> Vec<String> {
    let mut names: Vec<String> = containers
        .iter()
        .filter(|c| match reference {
            Some(r) => crate::runtime::image_match::created_from(&c.summary, image, r),
            None => c.summary.image_id == image.id,
        })
        .map(|c| {
            let label = |k: &str| c.summary.labels.get(k).cloned().unwrap_or_default();
            format!(
                "{}/{}",
                label(crate::runtime::labels::NAMESPACE),
                label(crate::runtime::labels::APP)
            )
        })
        .collect();
    names.sort();
    names
}

#[allow(clippy::too_many_arguments)]
pub fn compute_image(
    image: &DesiredImage,
    local: Option<&ImageSummary>,
    containers: &[ObservedContainer],
    memory: &ImageMemory,
    plan: Option<&AppPlan>,
    failure: Option<&Failure>,
    previous: Option<&ImageStatus>,
    now: &str,
) -> ImageStatus {
    let current_failure = failure.filter(|f| f.generation == image.generation);
    let pending = plan.is_some_and(|p| !p.steps.is_empty());
    let waiting = plan.and_then(|p| p.waiting.clone());
    let (phase, ready, reason, message) = if image.deleting {
        (
            ImagePhase::Terminating,
            false,
            "Terminating",
            "the Image is being deleted".to_string(),
        )
    } else if let Some(f) = current_failure {
        (
            ImagePhase::Failed,
            local.is_some(),
            f.reason.as_str(),
            f.message.clone(),
        )
    } else if local.is_none() {
        let reason = if image.spec.pull_policy == PullPolicy::Never {
            "NeverPull"
        } else {
            "Pulling"
        };
        (
            ImagePhase::Missing,
            false,
            reason,
            waiting.clone().unwrap_or_default(),
        )
    } else if pending {
        let steps: Vec<_> = plan
            .map(|p| p.steps.iter().map(|s| s.reason.clone()).collect())
            .unwrap_or_default();
        (ImagePhase::Present, true, "Updating", steps.join("; "))
    } else {
        (ImagePhase::Present, true, "Present", String::new())
    };
    let used = local
        .map(|l| users(l, Some(&image.spec.canonical), containers))
        .unwrap_or_default();
    let keep = |f: fn(&ImageStatus) -> Option<String>| previous.and_then(f);
    ImageStatus {
        phase,
        observed_generation: if ready && !pending {
            Some(image.generation)
        } else {
            previous.and_then(|p| p.observed_generation)
        },
        conditions: vec![condition(
            previous.and_then(|p| p.conditions.iter().find(|c| c.kind == "Ready")),
            "Ready",
            ready,
            reason,
            &message,
            now,
        )],
        id: local.map(|l| l.id.clone()),
        digest: local.and_then(|l| repo_digest(l, &image.spec.canonical)),
        tags: local.map(|l| l.repo_tags.clone()).unwrap_or_default(),
        size: local.map(|l| l.size),
        created: local.and_then(|l| unix_rfc3339(l.created)),
        pulled_at: memory
            .pulled_at
            .clone()
            .or_else(|| keep(|p| p.pulled_at.clone())),
        last_checked_at: memory
            .checked_at
            .clone()
            .or_else(|| keep(|p| p.last_checked_at.clone())),
        remote_digest: memory
            .remote_digest
            .clone()
            .or_else(|| keep(|p| p.remote_digest.clone())),
        used_by: used.len(),
        used_by_apps: used,
        pull: memory
            .pull
            .clone()
            .or_else(|| previous.and_then(|p| p.pull.clone())),
        message: (!message.is_empty()).then_some(message),
    }
}
