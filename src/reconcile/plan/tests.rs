//! Table tests of the planner and of status computation.

use super::*;
use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::app::container_labels;
use crate::runtime::ObservedLimits;
use crate::runtime::{ContainerDetails, ContainerState, ContainerSummary, ImageSummary, labels};
use crate::spec::image::RequestState;
use crate::spec::status::ConditionStatus;
use crate::spec::validate::{AppKey, AppSpec};
use crate::spec::{Document, Format, parse_documents, validate_app};

pub(super) fn spec(extra: &str) -> AppSpec {
    let yaml = format!(
        "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: web, namespace: demo}}\nspec:\n  image: busybox:1\n{extra}"
    );
    let docs = parse_documents(&yaml, Format::Yaml, None).expect("parses");
    let Document::App(doc) = &docs[0].document else {
        panic!("not an App")
    };
    validate_app(doc).expect("valid")
}

pub(super) fn desired_with(app_spec: AppSpec) -> Desired {
    let hashes = app_spec.hashes();
    let app = DesiredApp {
        uid: "u1".into(),
        generation: 1,
        spec: app_spec,
        hashes,
        deleting: false,
        hold_until: None,
        repairs: 0,
        had_container: false,
        rolled_back: None,
        host_port_root: None,
        blocked_on_image: None,
        labels: BTreeMap::new(),
    };
    Desired {
        instance: "test".into(),
        apps: BTreeMap::from([(app.spec.key.clone(), app)]),
        ..Desired::default()
    }
}

pub(super) fn container_for(d: &Desired, state: ContainerState) -> ObservedContainer {
    let app = d.apps.values().next().unwrap();
    ObservedContainer {
        summary: ContainerSummary {
            id: "c1".into(),
            name: container_name(&app.spec.key),
            image: app.spec.container.image.clone(),
            image_id: "sha256:x".into(),
            state,
            labels: container_labels(&d.instance, app),
            created: 10,
            health: None,
        },
        applied_update: None,
        details: Some(ContainerDetails {
            exit_code: Some(137),
            limits: ObservedLimits {
                memory: app.spec.limits.memory.unwrap_or(0),
                memory_swap: app.spec.limits.memory_swap.unwrap_or(0),
                nano_cpus: app.spec.limits.nano_cpus.unwrap_or(0),
                pids: app.spec.limits.pids.unwrap_or(0),
                restart: app.spec.limits.restart.docker_name().into(),
            },
            ..Default::default()
        }),
    }
}

fn verbs(p: &Plan) -> Vec<&'static str> {
    p.apps
        .values()
        .flat_map(|a| a.steps.iter().map(|s| s.action.verb()))
        .collect()
}

pub(super) fn observed(cs: Vec<ObservedContainer>) -> Observed {
    Observed {
        containers: cs,
        images: vec![busybox()],
        unobserved: BTreeMap::new(),
    }
}

/// The engine's `busybox:1`, which the test containers run.
fn busybox() -> ImageSummary {
    ImageSummary {
        id: "sha256:x".into(),
        repo_tags: vec!["busybox:1".into()],
        ..ImageSummary::default()
    }
}

#[test]
fn table() {
    struct Case {
        name: &'static str,
        desired: &'static str,
        /// spec the container was created from, and its state
        container: Option<(&'static str, ContainerState)>,
        want: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "missing container is created and started",
            desired: "",
            container: None,
            want: &["Created", "Started"],
        },
        Case {
            name: "declared stopped creates without starting",
            desired: "  state: stopped\n",
            container: None,
            want: &["Created"],
        },
        Case {
            name: "declared paused starts then pauses",
            desired: "  state: paused\n",
            container: None,
            want: &["Created", "Started", "Paused"],
        },
        Case {
            name: "volumes are ensured first",
            desired: "  volumes: [{name: work, mountPath: /w}]\n",
            container: None,
            want: &["VolumeReady", "Created", "Started"],
        },
        Case {
            name: "converged app needs nothing",
            desired: "",
            container: Some(("", ContainerState::Running)),
            want: &[],
        },
        Case {
            name: "limit change is in place",
            desired: "  resources: {memory: 512Mi}\n",
            container: Some(("  resources: {memory: 256Mi}\n", ContainerState::Running)),
            want: &["Updated"],
        },
        Case {
            name: "image change replaces",
            desired: "  command: [sleep, '1']\n",
            container: Some(("", ContainerState::Running)),
            want: &["Replaced"],
        },
        Case {
            name: "lifting a memory limit replaces",
            desired: "",
            container: Some(("  resources: {memory: 256Mi}\n", ContainerState::Running)),
            want: &["Replaced"],
        },
        Case {
            name: "pause",
            desired: "  state: paused\n",
            container: Some(("  state: paused\n", ContainerState::Running)),
            want: &["Paused"],
        },
        Case {
            name: "unpause",
            desired: "",
            container: Some(("", ContainerState::Paused)),
            want: &["Unpaused"],
        },
        Case {
            name: "stop",
            desired: "  state: stopped\n",
            container: Some(("", ContainerState::Running)),
            want: &["Stopped"],
        },
        Case {
            name: "stop a paused container",
            desired: "  state: stopped\n",
            container: Some(("", ContainerState::Paused)),
            want: &["Unpaused", "Stopped"],
        },
        Case {
            name: "start a stopped container",
            desired: "",
            container: Some(("", ContainerState::Exited)),
            want: &["Started"],
        },
        Case {
            name: "restart policy no leaves an exited container",
            desired: "  restartPolicy: {name: 'no'}\n",
            container: Some(("  restartPolicy: {name: 'no'}\n", ContainerState::Exited)),
            want: &[],
        },
        Case {
            name: "Docker restarting: wait",
            desired: "",
            container: Some(("", ContainerState::Restarting)),
            want: &[],
        },
        Case {
            name: "dead container is replaced",
            desired: "",
            container: Some(("", ContainerState::Dead)),
            want: &["Removed", "Created", "Started"],
        },
    ];
    for case in cases {
        let d = desired_with(spec(case.desired));
        let obs = match case.container {
            None => observed(vec![]),
            Some((old, state)) => {
                let old_d = desired_with(spec(old));
                observed(vec![container_for(&old_d, state)])
            }
        };
        let p = plan(&d, &obs, Instant::now());
        assert_eq!(verbs(&p), case.want, "{}", case.name);
        for s in p.apps.values().flat_map(|a| &a.steps) {
            assert!(
                !s.reason.is_empty(),
                "{}: every step has a reason",
                case.name
            );
        }
    }
}

#[test]
fn in_place_reason_names_old_and_new_values() {
    let d = desired_with(spec("  resources: {memory: 512Mi, cpus: 1}\n"));
    let old = desired_with(spec("  resources: {memory: 256Mi, cpus: 0.5}\n"));
    let p = plan(
        &d,
        &observed(vec![container_for(&old, ContainerState::Running)]),
        Instant::now(),
    );
    let step = &p.apps.values().next().unwrap().steps[0];
    assert_eq!(
        step.reason,
        "memory 256Mi→512Mi, memory+swap 256Mi→512Mi, cpus 0.5→1 (in place)"
    );
}

#[test]
fn orphans_are_removed_and_foreign_containers_never_seen() {
    let d = desired_with(spec(""));
    let mut orphan = container_for(&d, ContainerState::Running);
    orphan
        .summary
        .labels
        .insert(labels::UID.into(), "gone".into());
    orphan
        .summary
        .labels
        .insert(labels::APP.into(), "old".into());
    orphan.summary.id = "c9".into();
    let current = container_for(&d, ContainerState::Running);
    let p = plan(&d, &observed(vec![orphan, current]), Instant::now());
    assert_eq!(verbs(&p), ["Stopped", "Removed"]);
    let key = AppKey {
        namespace: "demo".into(),
        name: "old".into(),
    };
    assert!(p.apps[&key].steps[0].reason.starts_with("orphan"));
}

#[test]
fn frozen_objects_keep_their_containers() {
    let mut d = desired_with(spec(""));
    let c = container_for(&d, ContainerState::Running);
    d.apps.clear();
    d.frozen_uids.insert("u1".into());
    assert!(verbs(&plan(&d, &observed(vec![c]), Instant::now())).is_empty());
}

#[test]
fn deletion_removes_then_forgets() {
    let mut d = desired_with(spec(""));
    let c = container_for(&d, ContainerState::Running);
    d.apps.values_mut().next().unwrap().deleting = true;
    assert_eq!(
        verbs(&plan(&d, &observed(vec![c]), Instant::now())),
        ["Stopped", "Removed", "Deleted"]
    );
    assert_eq!(
        verbs(&plan(&d, &observed(vec![]), Instant::now())),
        ["Deleted"]
    );
}

#[test]
fn repairs_wait_for_the_backoff() {
    let mut d = desired_with(spec(""));
    let c = container_for(&d, ContainerState::Exited);
    let now = Instant::now();
    let app = d.apps.values_mut().next().unwrap();
    app.hold_until = Some(now + Duration::from_secs(4));
    app.repairs = 3;
    let p = plan(&d, &observed(vec![c.clone()]), now);
    let a = p.apps.values().next().unwrap();
    assert!(a.steps.is_empty());
    assert!(a.waiting.as_deref().unwrap().contains("backing off"));
    assert_eq!(p.requeue_after(), Some(Duration::from_secs(4)));
    // Once the hold expires, the repair happens and is flagged as one.
    let p = plan(&d, &observed(vec![c]), now + Duration::from_secs(5));
    let a = p.apps.values().next().unwrap();
    assert!(a.repair);
    assert_eq!(verbs(&p), ["Started"]);
}

#[test]
fn a_permanent_failure_waits_until_the_image_changes() {
    let mut d = desired_with(spec(""));
    let now = Instant::now();
    let current = busybox().id;
    let app = d.apps.values_mut().next().unwrap();
    app.hold_until = Some(now + Duration::from_secs(300));
    app.blocked_on_image = Some(Some(current.clone()));
    let p = plan(&d, &observed(vec![]), now);
    let a = p.apps.values().next().unwrap();
    assert!(a.steps.is_empty(), "the same image fails the same way");
    assert_eq!(a.image_id.as_deref(), Some(current.as_str()));
    // The reference now names another image: the hold no longer applies.
    d.apps.values_mut().next().unwrap().blocked_on_image = Some(Some("sha256:old".into()));
    assert_eq!(
        verbs(&plan(&d, &observed(vec![]), now)),
        ["Created", "Started"]
    );
}

#[test]
fn on_failure_stops_at_max_retries_and_after_success() {
    let mut d = desired_with(spec("  restartPolicy: {name: on-failure, maxRetries: 2}\n"));
    let mut c = container_for(&d, ContainerState::Exited);
    d.apps.values_mut().next().unwrap().repairs = 2;
    assert!(verbs(&plan(&d, &observed(vec![c.clone()]), Instant::now())).is_empty());
    d.apps.values_mut().next().unwrap().repairs = 0;
    c.details.as_mut().unwrap().exit_code = Some(0);
    assert!(verbs(&plan(&d, &observed(vec![c]), Instant::now())).is_empty());
}

#[test]
fn duplicates_keep_the_current_one() {
    let d = desired_with(spec(""));
    let mut a = container_for(&d, ContainerState::Running);
    let mut b = container_for(&d, ContainerState::Running);
    a.summary.id = "old".into();
    a.summary.created = 1;
    b.summary.id = "new".into();
    b.summary.created = 2;
    let p = plan(&d, &observed(vec![a, b]), Instant::now());
    let steps = &p.apps.values().next().unwrap().steps;
    assert_eq!(
        steps.last().unwrap().action,
        Action::Remove { id: "old".into() }
    );
}

#[test]
fn ready_needs_a_declared_health_check_to_pass_and_a_rollback_degrades() {
    use crate::reconcile::status::{Phase, compute};
    use crate::runtime::HealthState;
    let d = desired_with(spec(
        "  healthcheck: {cmd: [\"CMD\", \"true\"], interval: 1s}\n",
    ));
    let app = d.apps.values().next().unwrap().clone();
    let ready = |health: Option<HealthState>, app: &DesiredApp| {
        let mut c = container_for(&d, ContainerState::Running);
        c.summary.health = health;
        let status = compute(app, Some(&c), None, None, None, "now");
        let cond = status.condition("Ready").unwrap().clone();
        (status.phase, cond.status, cond.reason)
    };
    assert_eq!(
        ready(Some(HealthState::Starting), &app),
        (
            Phase::Running,
            ConditionStatus::False,
            "HealthCheckPending".into()
        )
    );
    assert_eq!(
        ready(Some(HealthState::Unhealthy), &app),
        (Phase::Running, ConditionStatus::False, "Unhealthy".into())
    );
    assert_eq!(
        ready(Some(HealthState::Healthy), &app),
        (Phase::Running, ConditionStatus::True, "Running".into())
    );

    // A rolled-back generation: the old container (other hashes) runs; the app is Degraded.
    let mut rolled = app.clone();
    rolled.rolled_back = Some(RolledBack {
        image_id: None,
        message: "the new container exited with code 3".into(),
    });
    rolled.hashes.recreate = "newer".into();
    let (phase, status, reason) = ready(Some(HealthState::Healthy), &rolled);
    assert_eq!(
        (phase, status, reason.as_str()),
        (Phase::Degraded, ConditionStatus::False, "RolledBack")
    );
}

#[test]
fn status_phases_follow_the_container_the_failure_and_the_spec() {
    use crate::reconcile::status::{Failure, Phase, compute};
    let running = desired_with(spec(""));
    let stopped = desired_with(spec("  state: stopped\n"));
    let exited = |d: &Desired, code: i64| {
        let mut c = container_for(d, ContainerState::Exited);
        c.details.as_mut().unwrap().exit_code = Some(code);
        c
    };
    let failure = |generation, reason: &str| Failure {
        generation,
        reason: reason.into(),
        message: "m".into(),
    };
    let app = |d: &Desired| d.apps.values().next().unwrap().clone();
    let mut deleting = app(&running);
    deleting.deleting = true;
    struct Case {
        name: &'static str,
        app: DesiredApp,
        container: Option<ObservedContainer>,
        failure: Option<Failure>,
        phase: Phase,
        ready: bool,
    }
    let case = |name, app, container, failure, phase, ready| Case {
        name,
        app,
        container,
        failure,
        phase,
        ready,
    };
    let cases = vec![
        case(
            "no container yet",
            app(&running),
            None,
            None,
            Phase::Pending,
            false,
        ),
        case(
            "running as declared",
            app(&running),
            Some(container_for(&running, ContainerState::Running)),
            None,
            Phase::Running,
            true,
        ),
        case(
            "exited 0 while declared running",
            app(&running),
            Some(exited(&running, 0)),
            None,
            Phase::Stopped,
            false,
        ),
        case(
            "exited 3",
            app(&running),
            Some(exited(&running, 3)),
            None,
            Phase::Failed,
            false,
        ),
        case(
            "stopped as declared",
            app(&stopped),
            Some(exited(&stopped, 137)),
            None,
            Phase::Stopped,
            true,
        ),
        case(
            "a pull failing",
            app(&running),
            None,
            Some(failure(1, "ImagePullBackOff")),
            Phase::Pending,
            false,
        ),
        case(
            "a create failing",
            app(&running),
            None,
            Some(failure(1, "DockerError")),
            Phase::Failed,
            false,
        ),
        case(
            "a failure of an older generation",
            app(&running),
            None,
            Some(failure(0, "DockerError")),
            Phase::Pending,
            false,
        ),
        case(
            "being deleted",
            deleting,
            Some(container_for(&running, ContainerState::Running)),
            None,
            Phase::Terminating,
            false,
        ),
    ];
    for c in cases {
        let status = compute(
            &c.app,
            c.container.as_ref(),
            None,
            c.failure.as_ref(),
            None,
            "now",
        );
        assert_eq!(status.phase, c.phase, "{}", c.name);
        assert_eq!(
            status.is_ready_at(c.app.generation),
            c.ready,
            "{}: {status:?}",
            c.name
        );
        if let Some(f) = c.failure.filter(|f| f.generation == c.app.generation) {
            let cond = status.condition("Ready").unwrap();
            assert_eq!(cond.reason, f.reason, "{}", c.name);
        }
    }
}

#[test]
fn plans_are_deterministic() {
    let d = desired_with(spec("  resources: {memory: 512Mi}\n"));
    let now = Instant::now();
    let a = plan(&d, &observed(vec![]), now);
    let b = plan(&d, &observed(vec![]), now);
    assert_eq!(a, b);
}

pub(super) fn image_object(reference: &str, extra: &str) -> DesiredImage {
    let yaml = format!(
        "apiVersion: wharf/v1\nkind: Image\nmetadata: {{name: img}}\nspec:\n  ref: {reference}\n{extra}"
    );
    let docs = parse_documents(&yaml, Format::Yaml, None).expect("parses");
    let Document::Image(doc) = &docs[0].document else {
        panic!("not an Image")
    };
    DesiredImage {
        uid: "i1".into(),
        generation: 1,
        spec: crate::spec::validate_image(doc).expect("valid"),
        deleting: false,
        hold_until: None,
        pulled_generation: None,
        check_due: false,
        remote_digest: None,
    }
}

pub(super) fn image_key() -> AppKey {
    AppKey {
        namespace: String::new(),
        name: "img".into(),
    }
}

fn steps_of<'a>(p: &'a Plan, key: &AppKey) -> Vec<&'a str> {
    p.apps[key].steps.iter().map(|s| s.action.verb()).collect()
}

#[test]
fn unapproved_images_are_not_created_and_approval_lets_them_through() {
    let mut d = desired_with(spec(""));
    d.require_approved_images = true;
    let now = Instant::now();
    let key = d.apps.keys().next().unwrap().clone();
    let p = plan(&d, &observed(vec![]), now);
    assert!(steps_of(&p, &key).is_empty());
    assert_eq!(p.apps[&key].waiting_reason, Some(IMAGE_NOT_APPROVED));
    let why = p.apps[&key].waiting.clone().unwrap_or_default();
    assert!(why.contains("wharf images request busybox:1"), "{why}");
    // A pending request is named; a running container of an unapproved image is left alone.
    d.image_requests.insert(
        "docker.io/library/busybox:1".into(),
        RequestNote {
            id: 4,
            requested_by: "tok_a".into(),
            state: RequestState::Pending,
            decided_by: None,
            message: String::new(),
        },
    );
    let p = plan(&d, &observed(vec![]), now);
    let why = p.apps[&key].waiting.clone().unwrap_or_default();
    assert!(why.contains("wharf images approve 4"), "{why}");
    let running = container_for(&d, ContainerState::Running);
    assert!(steps_of(&plan(&d, &observed(vec![running]), now), &key).is_empty());
    d.images.insert(image_key(), image_object("busybox:1", ""));
    let p = plan(&d, &observed(vec![]), now);
    assert_eq!(steps_of(&p, &key), ["Created", "Started"]);
    assert_eq!(p.apps[&key].waiting_reason, None);
}

#[test]
fn a_missing_image_is_pulled_before_create_unless_never() {
    let mut d = desired_with(spec(""));
    let empty = Observed::default();
    let p = plan(&d, &empty, Instant::now());
    assert_eq!(verbs(&p), ["Pulled", "Created", "Started"]);
    let Action::Pull { reference, .. } = &p.apps.values().next().unwrap().steps[0].action else {
        panic!("a pull first")
    };
    assert_eq!(reference, "docker.io/library/busybox:1");

    d.images.insert(
        image_key(),
        image_object("busybox:1", "  pullPolicy: Never\n"),
    );
    let p = plan(&d, &empty, Instant::now());
    let app = p
        .apps
        .values()
        .find(|a| a.uid.as_deref() == Some("u1"))
        .unwrap();
    assert!(app.steps.is_empty());
    assert!(app.waiting.as_deref().unwrap().contains("pullPolicy Never"));

    // Present: no pull (IfNotPresent), or a pull before each create (Always).
    d.images.clear();
    assert_eq!(
        verbs(&plan(&d, &observed(vec![]), Instant::now())),
        ["Created", "Started"]
    );
    d.images.insert(
        image_key(),
        image_object("busybox:1", "  pullPolicy: Always\n"),
    );
    d.images.get_mut(&image_key()).unwrap().pulled_generation = Some(1);
    let p = plan(&d, &observed(vec![]), Instant::now());
    assert_eq!(
        p.apps
            .values()
            .find(|a| a.uid.as_deref() == Some("u1"))
            .unwrap()
            .steps
            .len(),
        3
    );
}

#[test]
fn image_objects_pull_check_and_delete_by_policy() {
    let d = |image: DesiredImage| Desired {
        images: BTreeMap::from([(image_key(), image)]),
        ..Desired::default()
    };
    let now = Instant::now();
    let present = observed(vec![]);
    let absent = Observed::default();

    let img = image_object("busybox:1", "");
    assert_eq!(
        steps_of(&plan(&d(img.clone()), &absent, now), &image_key()),
        ["Pulled"]
    );
    assert!(steps_of(&plan(&d(img.clone()), &present, now), &image_key()).is_empty());

    let always = image_object("busybox:1", "  pullPolicy: Always\n");
    assert_eq!(
        steps_of(&plan(&d(always.clone()), &present, now), &image_key()),
        ["Pulled"]
    );
    let pulled = DesiredImage {
        pulled_generation: Some(1),
        ..always
    };
    assert!(steps_of(&plan(&d(pulled), &present, now), &image_key()).is_empty());

    let due = DesiredImage {
        check_due: true,
        ..img.clone()
    };
    assert_eq!(
        steps_of(&plan(&d(due), &present, now), &image_key()),
        ["Checked"]
    );
    let moved = DesiredImage {
        remote_digest: Some("sha256:new".into()),
        ..img.clone()
    };
    let p = plan(&d(moved), &present, now);
    assert_eq!(steps_of(&p, &image_key()), ["Pulled"]);
    assert!(p.apps[&image_key()].steps[0].reason.contains("sha256:new"));

    let deleting = DesiredImage {
        deleting: true,
        ..img
    };
    assert_eq!(
        steps_of(&plan(&d(deleting.clone()), &present, now), &image_key()),
        ["ImageRemoved", "Deleted"]
    );
    assert_eq!(
        steps_of(&plan(&d(deleting), &absent, now), &image_key()),
        ["Deleted"]
    );
}
