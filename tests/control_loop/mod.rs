//! The reconcile loop against the recording fake runtime: what happens when Docker misbehaves.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use wharf::reconcile::{Controller, ControllerConfig};
use wharf::runtime::fake::{FakeRuntime, Op};
use wharf::runtime::{ContainerState, RuntimeError};
use wharf::spec::{Format, Kind, read_bundle};
use wharf::store::{ObjectSource, Store, WriteItem};

use crate::support::wait_for;

struct Rig {
    store: Store,
    fake: Arc<FakeRuntime>,
    controller: Arc<Controller>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite")).await.unwrap();
    let fake = Arc::new(FakeRuntime::default());
    fake.add_image("busybox");
    let config = ControllerConfig {
        instance: "loop".into(),
        resync: Duration::from_millis(200),
        max_ops: 4,
        ..ControllerConfig::default()
    };
    let controller = Controller::new(store.clone(), fake.clone(), config, Arc::new(Notify::new()));
    let tasks = controller.spawn();
    Rig {
        store,
        fake,
        controller,
        tasks,
        _dir: dir,
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn apply(store: &Store, names: &[&str]) {
    let yaml: String = names
        .iter()
        .map(|n| format!("---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: {n}, namespace: demo}}\nspec:\n  image: busybox\n"))
        .collect();
    let items: Vec<WriteItem> = read_bundle(&yaml, Format::Yaml, None)
        .unwrap()
        .iter()
        .map(WriteItem::new)
        .collect();
    store.apply(&items, &ObjectSource::Api).await.unwrap();
}

/// Waits (10 s at most) until app `name` of namespace `demo` runs in the fake engine.
async fn wait_running(rig: &Rig, name: &str) {
    wait_for(name, Duration::from_secs(10), || async {
        running(&rig.fake, name).then_some(())
    })
    .await;
}

fn running(fake: &FakeRuntime, name: &str) -> bool {
    fake.containers()
        .iter()
        .any(|c| c.name == format!("demo.{name}") && c.state == ContainerState::Running)
}

#[tokio::test]
async fn a_wedged_engine_call_does_not_stall_other_apps() {
    let rig = rig().await;
    rig.fake.hang(Op::Create, "demo.stuck");
    apply(&rig.store, &["stuck", "a", "b", "c"]).await;
    wait_for("the other apps", Duration::from_secs(10), || async {
        ["a", "b", "c"]
            .iter()
            .all(|n| running(&rig.fake, n))
            .then_some(())
    })
    .await;
    // Later changes to other apps still go through while the call hangs.
    apply(&rig.store, &["d"]).await;
    wait_running(&rig, "d").await;
    assert!(!running(&rig.fake, "stuck"));
}

#[tokio::test]
async fn a_timed_out_call_sets_a_condition_and_is_retried() {
    let rig = rig().await;
    rig.fake.fail_next(
        Op::Start,
        "",
        RuntimeError::Timeout {
            op: "start container",
            seconds: 30,
        },
    );
    apply(&rig.store, &["web"]).await;
    let key = wharf::spec::AppKey {
        namespace: "demo".into(),
        name: "web".into(),
    };
    let status = wait_for("timeout condition", Duration::from_secs(10), || async {
        let status =
            serde_json::to_value(rig.store.get(Kind::App, &key).await.ok()??.status?).ok()?;
        let synced = status["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Synced")?
            .clone();
        (synced["reason"] == "DockerTimeout").then_some(status)
    })
    .await;
    assert!(
        status["conditions"]
            .to_string()
            .contains("did not answer within 30s"),
        "{status}"
    );
    // Retried after the backoff (1 s) and converges.
    wait_running(&rig, "web").await;
    let events = rig
        .store
        .events(&rig.store.get(Kind::App, &key).await.unwrap().unwrap().uid)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.reason == "DockerTimeout"));
}

#[tokio::test]
async fn a_failed_listing_never_removes_anything() {
    let rig = rig().await;
    apply(&rig.store, &["web"]).await;
    wait_running(&rig, "web").await;
    rig.fake.clear_calls();
    for _ in 0..3 {
        rig.fake.fail_next(
            Op::List,
            "",
            RuntimeError::Unavailable("connection reset".into()),
        );
    }
    // Three failed listings (retried with the outage backoff), then one that answers, then a
    // complete pass planned on a good listing.
    let lists = || rig.fake.calls().iter().filter(|c| c.op == Op::List).count();
    wait_for(
        "three failed listings and a good one",
        Duration::from_secs(30),
        || async { (lists() >= 4).then_some(()) },
    )
    .await;
    let passes = rig.controller.health().borrow().passes;
    wait_for("a full pass", Duration::from_secs(30), || async {
        (rig.controller.health().borrow().passes > passes).then_some(())
    })
    .await;
    let calls = rig.fake.calls();
    assert!(
        !calls
            .iter()
            .any(|c| matches!(c.op, Op::Remove | Op::Create)),
        "{calls:?}"
    );
    assert!(running(&rig.fake, "web"));
}

#[tokio::test]
async fn an_engine_outage_is_survived_and_converged_after() {
    let rig = rig().await;
    let health = rig.controller.health();
    wait_for("connected", Duration::from_secs(5), || async {
        health.borrow().docker_connected.then_some(())
    })
    .await;
    rig.fake.set_down(true);
    apply(&rig.store, &["web"]).await;
    wait_for("outage noticed", Duration::from_secs(5), || async {
        (!health.borrow().docker_connected).then_some(())
    })
    .await;
    assert!(
        health
            .borrow()
            .docker_error
            .as_deref()
            .unwrap_or("")
            .contains("fake engine is down")
    );
    rig.fake.set_down(false);
    wait_for(
        "converged after the outage",
        Duration::from_secs(40),
        || async { running(&rig.fake, "web").then_some(()) },
    )
    .await;
    assert!(health.borrow().docker_connected);
}

#[tokio::test]
async fn a_crash_loop_backs_off() {
    let rig = rig().await;
    apply(&rig.store, &["web"]).await;
    wait_running(&rig, "web").await;
    let id = rig.fake.containers()[0].id.clone();
    // Kill it five times in quick succession; count the restarts wharf makes.
    rig.fake.clear_calls();
    let started = tokio::time::Instant::now();
    for _ in 0..5 {
        rig.fake.external_exit(&id, 1);
        wait_for("restart", Duration::from_secs(30), || async {
            running(&rig.fake, "web").then_some(())
        })
        .await;
    }
    // 1st repair at once, then 1 + 2 + 4 + 8 s of backoff.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(14),
        "restarts were not backed off: {elapsed:?}"
    );
    let starts = rig
        .fake
        .calls()
        .iter()
        .filter(|c| c.op == Op::Start)
        .count();
    assert_eq!(starts, 5);
}

/// wharf stopped in the middle of a replacement: the old container is aside (renamed, stopped)
/// and no new one exists. The next replacement takes it from there.
#[tokio::test]
async fn an_interrupted_replacement_is_finished() {
    use wharf::runtime::Runtime;

    let rig = rig().await;
    apply(&rig.store, &["web"]).await;
    wait_running(&rig, "web").await;
    rig.controller.pass().await;
    let old = rig.fake.containers()[0].id.clone();
    let aside = format!("demo.web.replaced-{old}");
    rig.fake.rename(&old, &aside).await.unwrap();
    rig.fake.external_exit(&old, 0);

    // A new spec (an env change) needs a replacement of the aside container.
    let yaml = "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo}\nspec:\n  image: busybox\n  env: {V: '2'}\n";
    let items: Vec<WriteItem> = read_bundle(yaml, Format::Yaml, None)
        .unwrap()
        .iter()
        .map(WriteItem::new)
        .collect();
    rig.store.apply(&items, &ObjectSource::Api).await.unwrap();
    wait_for("the replacement", Duration::from_secs(10), || async {
        let cs = rig.fake.containers();
        (cs.len() == 1 && cs[0].id != old && running(&rig.fake, "web")).then_some(())
    })
    .await;
    let renames: Vec<_> = rig
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.op == Op::Rename)
        .collect();
    assert_eq!(renames.len(), 1, "only the test's own rename: {renames:?}");
}

#[tokio::test]
async fn stopping_lets_work_in_flight_finish_and_starts_nothing_new() {
    let rig = rig().await;
    apply(&rig.store, &["a"]).await;
    wait_running(&rig, "a").await;
    // A call that never answers holds its app's work past the grace period: stop says so.
    rig.fake.hang(Op::Create, "demo.stuck");
    apply(&rig.store, &["stuck"]).await;
    wait_for("the hanging create", Duration::from_secs(10), || async {
        rig.fake
            .calls()
            .iter()
            .any(|c| c.is(Op::Create, "demo.stuck"))
            .then_some(())
    })
    .await;
    let left = rig.controller.stop(Duration::from_millis(300)).await;
    assert_eq!(
        left.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["demo/stuck"],
        "the unfinished work is named"
    );
    // Stopped: a new app is accepted by the store but no pass plans it.
    let passes = rig.controller.health().borrow().passes;
    apply(&rig.store, &["late"]).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rig.controller.health().borrow().passes, passes);
    assert!(
        !rig.fake
            .calls()
            .iter()
            .any(|c| c.target.contains("demo.late")),
        "nothing starts after a stop"
    );
}

#[tokio::test]
async fn a_stop_with_nothing_in_flight_stores_the_last_statuses_and_returns() {
    let rig = rig().await;
    apply(&rig.store, &["a", "b"]).await;
    wait_for("both apps", Duration::from_secs(10), || async {
        (running(&rig.fake, "a") && running(&rig.fake, "b")).then_some(())
    })
    .await;
    let left = rig.controller.stop(Duration::from_secs(5)).await;
    assert!(left.is_empty(), "{left:?}");
    for name in ["a", "b"] {
        let key = wharf::spec::AppKey {
            namespace: "demo".into(),
            name: name.into(),
        };
        let record = rig.store.get(Kind::App, &key).await.unwrap().unwrap();
        assert_eq!(
            record.app_status().map(|s| s.phase),
            Some(wharf::spec::status::Phase::Running),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_converged_app_s_status_is_not_rewritten_by_later_passes() {
    let rig = rig().await;
    apply(&rig.store, &["calm"]).await;
    let key = wharf::spec::AppKey {
        namespace: "demo".into(),
        name: "calm".into(),
    };
    let ready = || async {
        let r = rig.store.get(Kind::App, &key).await.ok()??;
        r.app_status()?.is_ready_at(r.generation).then_some(r)
    };
    wait_for("calm ready", Duration::from_secs(10), ready).await;
    // Let the status settle (the pass after the start records the start time).
    let passes = rig.controller.health().borrow().passes;
    wait_for("two more passes", Duration::from_secs(10), || async {
        (rig.controller.health().borrow().passes >= passes + 2).then_some(())
    })
    .await;
    let before = rig.store.get(Kind::App, &key).await.unwrap().unwrap();
    let passes = rig.controller.health().borrow().passes;
    wait_for("five more passes", Duration::from_secs(10), || async {
        (rig.controller.health().borrow().passes >= passes + 5).then_some(())
    })
    .await;
    let after = rig.store.get(Kind::App, &key).await.unwrap().unwrap();
    assert_eq!(
        after.resource_version, before.resource_version,
        "status rewritten while nothing changed: {:?} -> {:?}",
        before.status, after.status
    );
}

#[tokio::test]
async fn a_permanent_failure_waits_for_a_spec_change_instead_of_retrying() {
    let rig = rig().await;
    rig.fake.fail_next(
        Op::Create,
        "demo.web",
        RuntimeError::Engine {
            op: "create container",
            status: 400,
            message: "invalid reference format".into(),
        },
    );
    apply(&rig.store, &["web"]).await;
    let key = wharf::spec::AppKey {
        namespace: "demo".into(),
        name: "web".into(),
    };
    wait_for(
        "the refusal in the status",
        Duration::from_secs(10),
        || async {
            let status = rig.store.get(Kind::App, &key).await.ok()??.status?;
            serde_json::to_string(&status)
                .ok()?
                .contains("invalid reference format")
                .then_some(())
        },
    )
    .await;
    // Many passes later (the resync is 200 ms, the first backoff would be 1 s): not retried.
    let creates = || {
        rig.fake
            .calls()
            .iter()
            .filter(|c| c.is(Op::Create, "demo.web"))
            .count()
    };
    let passes = rig.controller.health().borrow().passes;
    wait_for("ten more passes", Duration::from_secs(30), || async {
        (rig.controller.health().borrow().passes >= passes + 10).then_some(())
    })
    .await;
    assert_eq!(
        creates(),
        1,
        "a permanent failure is not retried on a timer"
    );
    // A new spec is a new chance.
    let yaml = "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo}\nspec:\n  image: busybox\n  env: {FIXED: 'yes'}\n";
    let items: Vec<WriteItem> = read_bundle(yaml, Format::Yaml, None)
        .unwrap()
        .iter()
        .map(WriteItem::new)
        .collect();
    rig.store.apply(&items, &ObjectSource::Api).await.unwrap();
    wait_for(
        "web running after the fix",
        Duration::from_secs(10),
        || async { running(&rig.fake, "web").then_some(()) },
    )
    .await;
    assert_eq!(creates(), 2);
}
