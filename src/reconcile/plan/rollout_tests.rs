//! Planner tests of image rollouts: their width, a rollback stopping them, and a container an
//! interrupted replacement left aside.

use tokio::time::Instant;

use super::app::container_labels;
use super::tests::{container_for, desired_with, image_key, image_object, observed, spec};
use super::*;
use crate::runtime::{ContainerState, labels};
use crate::spec::validate::AppKey;

#[test]
fn a_changed_image_rolls_one_app_at_a_time_and_not_after_a_rollback() {
    let mut d = desired_with(spec(""));
    let first = d.apps.values().next().unwrap().clone();
    let mut second = first.clone();
    second.uid = "u2".into();
    second.spec.key.name = "web2".into();
    d.apps.insert(second.spec.key.clone(), second.clone());
    let mut c1 = container_for(&d, ContainerState::Running);
    let mut c2 = c1.clone();
    c2.summary.id = "c2".into();
    c2.summary.labels = container_labels(&d.instance, &second);
    c1.summary.image_id = "sha256:old".into();
    c2.summary.image_id = "sha256:old".into();
    let o = observed(vec![c1.clone(), c2.clone()]);
    let p = plan(&d, &o, Instant::now());
    let replaced: Vec<_> = p
        .apps
        .values()
        .filter(|a| a.steps.iter().any(|s| s.action.verb() == "Replaced"))
        .collect();
    assert_eq!(replaced.len(), 1, "one app at a time: {p:#?}");
    assert!(
        replaced[0].steps[0]
            .reason
            .contains("image busybox:1 changed")
    );
    let waiting = p.apps.values().filter(|a| a.waiting.is_some()).count();
    assert_eq!(waiting, 1);

    // While the first app is busy, the second still waits.
    d.busy.insert(first.spec.key.clone());
    let p = plan(&d, &o, Instant::now());
    assert!(p.apps.values().all(|a| a.steps.is_empty()), "{p:#?}");

    // A rolled-back replacement to the same image is not tried again.
    d.busy.clear();
    for app in d.apps.values_mut() {
        app.rolled_back = Some(RolledBack {
            image_id: Some("sha256:x".into()),
            message: "exited".into(),
        });
    }
    let p = plan(&d, &o, Instant::now());
    assert!(p.apps.values().all(|a| a.steps.is_empty()), "{p:#?}");
    assert!(
        p.apps
            .values()
            .filter_map(|a| a.waiting.as_deref())
            .any(|w| w.contains("rolled back"))
    );
}

/// `n` apps of busybox:1 whose containers run an older version of it.
fn rollout_of(n: usize) -> (Desired, Observed) {
    let mut d = desired_with(spec(""));
    let first = d.apps.values().next().unwrap().clone();
    d.apps.clear();
    let mut containers = Vec::new();
    for i in 0..n {
        let mut app = first.clone();
        app.uid = format!("u{i}");
        app.spec.key.name = format!("web{i:02}");
        d.apps.insert(app.spec.key.clone(), app.clone());
        let mut c = container_for(&d, ContainerState::Running);
        c.summary.id = format!("c{i}");
        c.summary.labels = container_labels(&d.instance, &app);
        c.summary.image_id = "sha256:old".into();
        containers.push(c);
    }
    (d, observed(containers))
}

fn replacing(p: &Plan) -> Vec<&AppKey> {
    p.apps
        .iter()
        .filter(|(_, a)| a.steps.iter().any(|s| s.action.verb() == "Replaced"))
        .map(|(k, _)| k)
        .collect()
}

#[test]
fn a_rollout_replaces_its_width_of_apps_at_once() {
    let (mut d, o) = rollout_of(12);
    let now = Instant::now();
    // The serve default.
    d.rollout_width = 4;
    assert_eq!(replacing(&plan(&d, &o, now)).len(), 4);
    // The Image's own width wins; apps with work in flight hold their places.
    d.images.insert(
        image_key(),
        image_object("busybox:1", "  rollout: {maxUnavailable: 10}\n"),
    );
    assert_eq!(replacing(&plan(&d, &o, now)).len(), 10);
    let busy: Vec<AppKey> = d.apps.keys().take(7).cloned().collect();
    d.busy.extend(busy);
    let p = plan(&d, &o, now);
    assert_eq!(replacing(&p).len(), 3, "7 in flight of 10");
    let why = p
        .apps
        .values()
        .find_map(|a| a.waiting.as_deref())
        .unwrap_or_default();
    assert!(why.contains("10 at a time"), "{why}");
    // A deleted Image no longer sets the width: the default does.
    d.busy.clear();
    d.images.get_mut(&image_key()).unwrap().deleting = true;
    assert_eq!(replacing(&plan(&d, &o, now)).len(), 4);
    // 0 (a Desired built by hand) counts as 1.
    d.images.clear();
    d.rollout_width = 0;
    assert_eq!(replacing(&plan(&d, &o, now)).len(), 1);
}

#[test]
fn a_rollback_stops_the_rollout_of_its_image() {
    let (mut d, o) = rollout_of(5);
    d.rollout_width = 10;
    let failed = d.apps.keys().next().unwrap().clone();
    d.apps.get_mut(&failed).unwrap().rolled_back = Some(RolledBack {
        image_id: Some("sha256:x".into()),
        message: "the new container exited with code 3".into(),
    });
    let p = plan(&d, &o, Instant::now());
    assert!(replacing(&p).is_empty(), "{p:#?}");
    assert_eq!(p.apps[&failed].waiting_reason, Some(ROLLED_BACK));
    for (key, app) in p.apps.iter().filter(|(k, _)| **k != failed) {
        assert_eq!(app.waiting_reason, Some(ROLLOUT_STOPPED), "{key}");
        let why = app.waiting.as_deref().unwrap_or_default();
        assert!(
            why.contains(&format!("{failed} rolled back")) && why.contains("code 3"),
            "{why}"
        );
    }
    // A rollback to another version of the image (an older one) does not stop this one.
    d.apps.get_mut(&failed).unwrap().rolled_back = Some(RolledBack {
        image_id: Some("sha256:older".into()),
        message: "exited".into(),
    });
    assert_eq!(replacing(&plan(&d, &o, Instant::now())).len(), 5);
}

#[test]
fn a_container_left_aside_by_an_interrupted_replacement_gets_its_name_back() {
    let (mut d, o) = rollout_of(2);
    let mut o = o;
    for c in &mut o.containers {
        let app = c.label(labels::APP).unwrap_or_default().to_string();
        c.summary.name = format!("demo.{app}.replaced-{}", c.summary.id);
    }
    let renamed = |p: &Plan| -> Vec<String> {
        p.apps
            .values()
            .flat_map(|a| &a.steps)
            .filter_map(|s| match &s.action {
                Action::Rename { name, .. } => Some(name.clone()),
                _ => None,
            })
            .collect()
    };
    // Width 1: one app is replaced (the replacement handles the aside name), the other waits
    // for its turn under its own name again.
    d.rollout_width = 1;
    let p = plan(&d, &o, Instant::now());
    assert_eq!(replacing(&p).len(), 1);
    assert_eq!(renamed(&p).len(), 1, "{p:#?}");
    // The image is the one they run: nothing to replace, both get their names back.
    for c in &mut o.containers {
        c.summary.image_id = "sha256:x".into();
    }
    let p = plan(&d, &o, Instant::now());
    assert!(replacing(&p).is_empty());
    let mut names = renamed(&p);
    names.sort();
    assert_eq!(names, ["demo.web00", "demo.web01"], "{p:#?}");
}
