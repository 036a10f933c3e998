//! The steps of one app: create, start, stop, pause, update in place, replace (safe, with
//! rollback), repair with backoff and restart-policy limits, and removal. Pure, like the rest of
//! the planner.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::runtime::image_match::find_local;
use crate::runtime::{ContainerDetails, ContainerState, CreateSpec, labels};
use crate::spec::image::{PullPolicy, canonical_reference};
use crate::spec::quantity::format_bytes;
use crate::spec::validate::{Limits, Restart, is_image_id};
use crate::spec::wire::DesiredState;

use super::model::*;
use super::{ROLLED_BACK, Rollouts};

pub(super) fn container_labels(instance: &str, app: &DesiredApp) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_VALUE.to_string(),
        ),
        (labels::INSTANCE.to_string(), instance.to_string()),
        (
            labels::NAMESPACE.to_string(),
            app.spec.key.namespace.clone(),
        ),
        (labels::APP.to_string(), app.spec.key.name.clone()),
        (labels::UID.to_string(), app.uid.clone()),
        (labels::GENERATION.to_string(), app.generation.to_string()),
        (
            labels::HASH_RECREATE.to_string(),
            app.hashes.recreate.clone(),
        ),
        (labels::HASH_UPDATE.to_string(), app.hashes.update.clone()),
    ])
}

pub(super) fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

pub fn remove_steps(plan: &mut AppPlan, c: &ObservedContainer, grace: Option<u64>, reason: String) {
    let id = c.summary.id.clone();
    if c.summary.state == ContainerState::Running {
        plan.steps.push(Step {
            action: Action::Stop {
                target: Target::Id(id.clone()),
                grace_seconds: grace,
            },
            reason: reason.clone(),
        });
    }
    plan.steps.push(Step {
        action: Action::Remove { id },
        reason,
    });
}

pub(super) fn plan_app(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
    containers: &[&ObservedContainer],
    rollouts: &mut Rollouts<'_>,
    plan: &mut AppPlan,
) {
    plan_containers(desired, observed, app, containers, rollouts, plan);
    restore_name(app, containers, plan);
}

/// The container an app keeps: the newest with the current recreate hash, else the newest
/// (`containers` is newest first).
fn kept<'c>(
    app: &DesiredApp,
    containers: &[&'c ObservedContainer],
) -> Option<&'c ObservedContainer> {
    containers
        .iter()
        .find(|c| c.label(labels::HASH_RECREATE) == Some(app.hashes.recreate.as_str()))
        .or(containers.first())
        .copied()
}

/// A kept container still under the aside name of a replacement that was interrupted (wharf
/// stopped between renaming it and finishing) gets its app's name back, unless this plan
/// replaces or removes it anyway: an app that keeps its old container (its rollout waits, or
/// the image changed back) must not keep the aside name.
fn restore_name(app: &DesiredApp, containers: &[&ObservedContainer], plan: &mut AppPlan) {
    if app.deleting {
        return;
    }
    let Some(current) = kept(app, containers) else {
        return;
    };
    let name = container_name(&app.spec.key);
    if !current
        .summary
        .name
        .starts_with(&format!("{name}.replaced-"))
    {
        return;
    }
    let id = &current.summary.id;
    let handled = plan.steps.iter().any(|s| match &s.action {
        Action::Replace { old, .. } | Action::Remove { id: old } => old == id,
        _ => false,
    });
    if !handled {
        plan.steps.push(Step {
            action: Action::Rename {
                id: id.clone(),
                name,
            },
            reason:
                "an interrupted replacement left it aside; it keeps running under its app's name"
                    .into(),
        });
    }
}

fn plan_containers(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
    containers: &[&ObservedContainer],
    rollouts: &mut Rollouts<'_>,
    plan: &mut AppPlan,
) {
    let grace = app.spec.container.stop_grace_seconds;
    if app.deleting {
        for c in containers {
            remove_steps(plan, c, grace, "the app is being deleted".to_string());
        }
        plan.steps.push(Step {
            action: Action::Forget {
                uid: app.uid.clone(),
            },
            reason: "its containers are removed".to_string(),
        });
        return;
    }

    // Keep one container: the newest with the current recreate hash, else the newest.
    let current = kept(app, containers);
    for c in containers {
        if current.is_some_and(|k| k.summary.id != c.summary.id) {
            remove_steps(
                plan,
                c,
                grace,
                format!("duplicate container {} of the app", short(&c.summary.id)),
            );
        }
    }
    let Some(current) = current else {
        match create_steps(desired, observed, app, "no container".to_string()) {
            Ok(steps) => plan.steps.extend(steps),
            Err(why) => plan.waiting = Some(why),
        }
        // A first creation is not a repair; a container that vanished is.
        plan.repair = app.had_container;
        return;
    };
    let id = current.summary.id.clone();
    let target = Target::Id(id.clone());

    match current.summary.state {
        ContainerState::Removing => {
            plan.waiting = Some("Docker is removing the container".into());
            plan.requeue_after = Some(Duration::from_secs(1));
            return;
        }
        ContainerState::Dead => {
            plan.steps.push(Step {
                action: Action::Remove { id: id.clone() },
                reason: "container is dead".into(),
            });
            match create_steps(
                desired,
                observed,
                app,
                "replacing the dead container".into(),
            ) {
                Ok(steps) => plan.steps.extend(steps),
                Err(why) => plan.waiting = Some(why),
            }
            plan.repair = true;
            return;
        }
        _ => {}
    }

    if current.label(labels::HASH_RECREATE) != Some(app.hashes.recreate.as_str()) {
        let why = recreate_reason(app, current);
        replace(desired, observed, app, current, why, plan);
        return;
    }

    let image = &app.spec.container.image;
    let canonical = canonical_reference(image)
        .ok()
        .filter(|_| !is_image_id(image));
    if let Some(canonical) = canonical
        && let Some(local) = find_local(&observed.images, &canonical)
        && !current.summary.image_id.is_empty()
        && current.summary.image_id != local.id
    {
        // An app whose own replacement to this version rolled back says so (in `replace`).
        let own_failure = app
            .rolled_back
            .as_ref()
            .is_some_and(|f| f.image_id.as_deref() == Some(local.id.as_str()));
        if !own_failure && let Err((why, reason)) = rollouts.admit(&canonical, image) {
            plan.waiting = Some(why);
            plan.waiting_reason = reason;
            plan.requeue_after = Some(Duration::from_secs(2));
            return;
        }
        let why = format!(
            "image {image} changed ({} → {})",
            short(current.summary.image_id.trim_start_matches("sha256:")),
            short(local.id.trim_start_matches("sha256:"))
        );
        replace(desired, observed, app, current, why, plan);
        return;
    }

    if current.update_hash() != Some(app.hashes.update.as_str()) {
        match update_reason(&app.spec.limits, current.details.as_ref()) {
            Ok(why) => plan.steps.push(Step {
                action: Action::Update {
                    target: target.clone(),
                    limits: app.spec.limits.clone(),
                    hash: app.hashes.update.clone(),
                },
                reason: why,
            }),
            Err(why) => {
                replace(desired, observed, app, current, why, plan);
                return;
            }
        }
    }

    let state = current.summary.state;
    let exit = current.details.as_ref().and_then(|d| d.exit_code);
    let step = |action: Action, reason: &str| Step {
        action,
        reason: reason.to_string(),
    };
    match (app.spec.state, state) {
        (_, ContainerState::Restarting) => {
            plan.waiting = Some("Docker is restarting the container".into());
            plan.requeue_after = Some(Duration::from_secs(2));
        }
        (DesiredState::Running, ContainerState::Running)
        | (DesiredState::Paused, ContainerState::Paused)
        | (DesiredState::Stopped, ContainerState::Exited | ContainerState::Created) => {}
        (DesiredState::Running, ContainerState::Paused) => plan
            .steps
            .push(step(Action::Unpause(target), "paused, declared running")),
        (DesiredState::Running | DesiredState::Paused, ContainerState::Created) => {
            plan.steps
                .push(step(Action::Start(target.clone()), "created, not started"));
            if app.spec.state == DesiredState::Paused {
                plan.steps
                    .push(step(Action::Pause(target), "declared paused"));
            }
        }
        (
            DesiredState::Running | DesiredState::Paused,
            ContainerState::Exited | ContainerState::Unknown,
        ) => {
            let code = exit.map(|c| format!(" with code {c}")).unwrap_or_default();
            let restarts = app.repairs as i64
                + current
                    .details
                    .as_ref()
                    .map(|d| d.restart_count)
                    .unwrap_or(0);
            let allowed = match app.spec.limits.restart {
                Restart::No => Err("restart policy is \"no\"".to_string()),
                Restart::OnFailure { .. } if exit == Some(0) => Err(
                    "it completed (exit code 0) and the restart policy is on-failure".to_string(),
                ),
                Restart::OnFailure { max_retries }
                    if max_retries > 0 && restarts >= i64::from(max_retries) =>
                {
                    Err(format!("on-failure restart limit of {max_retries} reached"))
                }
                _ => Ok(()),
            };
            match allowed {
                Err(why) => {
                    plan.waiting = Some(format!("container exited{code}; not restarted: {why}"))
                }
                Ok(()) => {
                    let why = format!("container exited{code}, declared {}", app.spec.state);
                    plan.steps.push(step(Action::Start(target.clone()), &why));
                    if app.spec.state == DesiredState::Paused {
                        plan.steps
                            .push(step(Action::Pause(target), "declared paused"));
                    }
                    plan.repair = true;
                }
            }
        }
        (DesiredState::Paused, ContainerState::Running) => plan
            .steps
            .push(step(Action::Pause(target), "running, declared paused")),
        (DesiredState::Stopped, ContainerState::Running) => plan.steps.push(step(
            Action::Stop {
                target,
                grace_seconds: grace,
            },
            "running, declared stopped",
        )),
        (DesiredState::Stopped, ContainerState::Paused) => {
            plan.steps.push(step(
                Action::Unpause(target.clone()),
                "paused, declared stopped",
            ));
            plan.steps.push(step(
                Action::Stop {
                    target,
                    grace_seconds: grace,
                },
                "declared stopped",
            ));
        }
        (DesiredState::Stopped, ContainerState::Unknown) => {}
        (_, ContainerState::Removing | ContainerState::Dead) => {}
    }
}

/// The steps before a container can be created — volumes and, by the pull policy, the image
/// — and its create spec; or why it cannot be created now.
pub(super) fn prepare(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
) -> Result<(Vec<Step>, CreateSpec), String> {
    let mut steps = Vec::new();
    if let Some(why) = desired.unapproved(&app.spec.container.image) {
        return Err(why);
    }
    if app.spec.port_area.is_some() && app.host_port_root.is_none() {
        return Err(
            "its port area gets its block of host ports when the app is stored (an app stored before port areas existed needs one more apply)"
                .into(),
        );
    }
    // The pull comes first: a download holds no container-operation slot (see the executor).
    let image = &app.spec.container.image;
    if !is_image_id(image)
        && let Ok(canonical) = canonical_reference(image)
    {
        let (policy, credentials) = desired.pull_policy(&canonical);
        let present = find_local(&observed.images, &canonical).is_some();
        let why = match (policy, present) {
            (PullPolicy::Never, false) => {
                return Err(format!(
                    "image {image} is not in the engine and its Image declares pullPolicy Never"
                ));
            }
            (PullPolicy::Always, _) => Some(format!(
                "pullPolicy Always: {image} is pulled before every create"
            )),
            (_, false) => Some(format!("image {image} is not in the engine")),
            _ => None,
        };
        if let Some(reason) = why {
            steps.push(Step {
                action: Action::Pull {
                    reference: canonical,
                    credentials: credentials.cloned(),
                },
                reason,
            });
        }
    }
    let mut volume_names = BTreeMap::new();
    for v in &app.spec.container.volumes {
        let name = volume_name(&app.spec.key.namespace, &v.name);
        volume_names.insert(v.name.clone(), name.clone());
        if steps
            .iter()
            .any(|s: &Step| matches!(&s.action, Action::EnsureVolume { name: n, .. } if *n == name))
        {
            continue;
        }
        steps.push(Step {
            action: Action::EnsureVolume {
                name,
                labels: BTreeMap::from([
                    (
                        labels::MANAGED_BY.to_string(),
                        labels::MANAGED_BY_VALUE.to_string(),
                    ),
                    (
                        labels::NAMESPACE.to_string(),
                        app.spec.key.namespace.clone(),
                    ),
                ]),
            },
            reason: format!("volume {} is mounted at {}", v.name, v.mount_path),
        });
    }
    let spec = CreateSpec {
        name: container_name(&app.spec.key),
        labels: container_labels(&desired.instance, app),
        config: app.spec.container.clone(),
        limits: app.spec.limits.clone(),
        volume_names,
    };
    Ok((steps, spec))
}

pub(super) fn create_steps(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
    reason: String,
) -> Result<Vec<Step>, String> {
    let (mut steps, spec) = prepare(desired, observed, app)?;
    steps.push(Step {
        action: Action::Create(Box::new(spec)),
        reason,
    });
    match app.spec.state {
        DesiredState::Running => steps.push(Step {
            action: Action::Start(Target::Created),
            reason: "declared running".into(),
        }),
        DesiredState::Paused => {
            steps.push(Step {
                action: Action::Start(Target::Created),
                reason: "declared paused (started, then paused)".into(),
            });
            steps.push(Step {
                action: Action::Pause(Target::Created),
                reason: "declared paused".into(),
            });
        }
        DesiredState::Stopped => {}
    }
    Ok(steps)
}

/// Plans the replacement of `current`: the old container is kept until the new one runs.
pub(super) fn replace(
    desired: &Desired,
    observed: &Observed,
    app: &DesiredApp,
    current: &ObservedContainer,
    reason: String,
    plan: &mut AppPlan,
) {
    let image_id = canonical_reference(&app.spec.container.image)
        .ok()
        .and_then(|r| find_local(&observed.images, &r))
        .map(|i| i.id.clone());
    if let Some(failed) = &app.rolled_back
        && failed.image_id == image_id
    {
        plan.waiting = Some(format!(
            "{reason}; the last attempt rolled back ({}); change the spec, or the image, to try again",
            failed.message
        ));
        plan.waiting_reason = Some(ROLLED_BACK);
        return;
    }
    let (steps, spec) = match prepare(desired, observed, app) {
        Ok(p) => p,
        Err(why) => {
            plan.waiting = Some(why);
            return;
        }
    };
    plan.steps.extend(steps);
    plan.steps.push(Step {
        action: Action::Replace {
            old: current.summary.id.clone(),
            old_name: current.summary.name.clone(),
            old_running: matches!(
                current.summary.state,
                ContainerState::Running | ContainerState::Paused | ContainerState::Restarting
            ),
            create: Box::new(spec),
            start: app.spec.state != DesiredState::Stopped,
            grace_seconds: app.spec.container.stop_grace_seconds,
            image_id,
            min_ready: app.spec.min_ready,
        },
        reason,
    });
    if app.spec.state == DesiredState::Paused {
        plan.steps.push(Step {
            action: Action::Pause(Target::Created),
            reason: "declared paused".into(),
        });
    }
}

pub(super) fn recreate_reason(app: &DesiredApp, current: &ObservedContainer) -> String {
    let old = current.label(labels::HASH_RECREATE).unwrap_or("none");
    let mut why = format!(
        "recreate-class config changed (hash {old} → {})",
        app.hashes.recreate
    );
    if current.summary.image != app.spec.container.image {
        why.push_str(&format!(
            ": image {} → {}",
            current.summary.image, app.spec.container.image
        ));
    }
    why
}

/// Describes an in-place update, or says why it cannot be done in place.
pub(super) fn update_reason(
    limits: &Limits,
    details: Option<&ContainerDetails>,
) -> Result<String, String> {
    let Some(d) = details else {
        return Ok("update-class config changed (in place)".into());
    };
    let o = &d.limits;
    let mut changes = Vec::new();
    let cpus = |n: i64| format!("{}", n as f64 / 1e9);
    let unset = |what: &str| {
        Err(format!(
            "{what} limit removed; Docker cannot lift it in place, so the container is replaced"
        ))
    };
    match limits.memory {
        None if o.memory > 0 => return unset("memory"),
        Some(m) if m != o.memory => changes.push(format!(
            "memory {}→{}",
            if o.memory > 0 {
                format_bytes(o.memory as u64)
            } else {
                "unlimited".into()
            },
            format_bytes(m as u64)
        )),
        _ => {}
    }
    if let Some(s) = limits.memory_swap
        && s != o.memory_swap
    {
        changes.push(format!(
            "memory+swap {}→{}",
            format_bytes(o.memory_swap.max(0) as u64),
            format_bytes(s as u64)
        ));
    }
    match limits.nano_cpus {
        None if o.nano_cpus > 0 => return unset("cpu"),
        Some(n) if n != o.nano_cpus => changes.push(format!(
            "cpus {}→{}",
            if o.nano_cpus > 0 {
                cpus(o.nano_cpus)
            } else {
                "unlimited".into()
            },
            cpus(n)
        )),
        _ => {}
    }
    let pids = limits.pids.unwrap_or(0);
    if pids != o.pids.max(0) {
        let show = |p: i64| {
            if p > 0 {
                p.to_string()
            } else {
                "unlimited".into()
            }
        };
        changes.push(format!("pids {}→{}", show(o.pids), show(pids)));
    }
    if limits.restart.docker_name() != o.restart {
        changes.push(format!(
            "restart policy {}→{}",
            o.restart,
            limits.restart.docker_name()
        ));
    }
    if changes.is_empty() {
        changes.push("limits relabelled".into());
    }
    Ok(format!("{} (in place)", changes.join(", ")))
}
