//! Faults wharf must survive with nothing lost, against the real engine: the data directory's
//! file system running full, wharf SIGKILLed while converging and during image rollouts,
//! dockerd restarted under it, and an engine that stops answering chosen calls.

use std::process::Command;
use std::time::Duration;

use crate::support::{Harness, wait_for};

/// A small tmpfs of its own, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "wharf-test-full",
            ])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "the full-disk test mounts a small tmpfs and needs root and mount (util-linux): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    /// Fills the file system with one file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.dir.path().join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        // Whatever is left in smaller pieces.
        let small = [0u8; 512];
        while file.write_all(&small).is_ok() {}
        let _ = file.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_directory_answers_507_keeps_containers_and_recovers() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("wharf=warn")
        .with_test_writer()
        .try_init();
    let disk = SmallDisk::mount("8m");
    let data = disk.dir.path().join("data");
    let data_dir = data.clone();
    let mut h = Harness::start_with("t-full", move |config| {
        config.data_dir = data_dir;
    })
    .await;
    let (status, body) = h.apply(&h.sleeper_app("before", "")).await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready("before").await;
    let container = h.container_id("before").await.expect("a container");

    let filler = disk.fill();
    // Writes now fail for lack of space: each is refused whole with 507 (a write may still fit
    // in space SQLite had already taken; the next ones do not).
    let mut refused = None;
    for i in 0..200 {
        let name = format!("during-{i}");
        let (status, body) = h.apply(&h.sleeper_app(&name, "")).await;
        match status {
            200 => continue,
            507 => {
                refused = Some((name, body));
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let (name, body) = refused.expect("a write refused with 507 once the disk is full");
    assert_eq!(body["reason"], "InsufficientStorage", "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("full"),
        "{body}"
    );
    // Nothing of the refused write was stored; reads still work; the running app is untouched.
    assert!(h.get_app(&name).await.is_none(), "{name} half written");
    let (status, _) = h.get("/api/v1/apps").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let inspected = h.inspect("before").await.expect("still there");
    assert_eq!(inspected.id.as_deref(), Some(container.as_str()));
    assert_eq!(inspected.state.and_then(|s| s.running), Some(true));

    // Space comes back: the same write succeeds and is reconciled.
    std::fs::remove_file(&filler).expect("free the space");
    let (status, body) = wait_for(
        "a write after space returns",
        Duration::from_secs(30),
        || async {
            let (status, body) = h.apply(&h.sleeper_app(&name, "")).await;
            (status != 507).then_some((status, body))
        },
    )
    .await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready(&name).await;
    h.remove_containers().await;
    h.stop().await;
    drop(h);
}

/// A `wharf serve` child process on the real engine; SIGKILLed on drop.
struct Serve {
    child: std::process::Child,
}

impl Serve {
    fn start(data: &std::path::Path, port: u16, instance: &str) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args([
                "serve",
                "--no-specs",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--instance", instance, "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start wharf serve");
        Self { child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// wharf SIGKILLed at random moments while it converges: each round applies a change that
/// replaces every app's container (safe replace: the old one is renamed `.replaced-*`, stopped
/// and kept until the new one has run for `minReadySeconds`), and wharf is killed somewhere in
/// the middle of it. After each restart it picks up where it was; in the end every app has
/// exactly one container, running the last round's spec, and no `.replaced-*` container is
/// left. `WHARF_CHAOS_KILLS` (default 4) and `WHARF_CHAOS_APPS` (default 30) make the run
/// longer: the full run is 20 kills of 100 apps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wharf_killed_while_converging_ends_with_one_container_per_app() {
    killed_while_converging(Churn::Spec).await;
}

/// The same during image rollouts: each round the apps' image moves to the other of two
/// versions (rolled 10 apps at a time), and wharf is SIGKILLed somewhere in the rollout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wharf_killed_during_image_rollouts_ends_with_one_container_per_app() {
    killed_while_converging(Churn::Image).await;
}

/// What changes every round of `killed_while_converging`.
#[derive(Clone, Copy, PartialEq)]
enum Churn {
    /// The apps' spec (an environment variable naming the round).
    Spec,
    /// The engine's image behind the apps' reference (two versions, alternately).
    Image,
}

async fn killed_while_converging(churn: Churn) {
    use rand::Rng;
    crate::support::images().await;
    let kills: usize = std::env::var("WHARF_CHAOS_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let apps: usize = std::env::var("WHARF_CHAOS_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let data = tempfile::tempdir().expect("tempdir");
    let (namespace, reference) = match churn {
        Churn::Spec => ("chaos", crate::support::IMAGE_V1.to_string()),
        Churn::Image => (
            "chaos-image",
            format!("wharf-test/chaos-{}:current", std::process::id()),
        ),
    };
    let instance = format!("{namespace}-{}", std::process::id());
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let docker = crate::support::docker().await;
    let label = format!("wharf.instance={instance}");
    // An earlier run that failed may have left its containers, whose names these apps need.
    crate::support::testkit::remove_containers(
        &docker,
        &format!("wharf.namespace={namespace}"),
        |_| true,
    )
    .await
    .expect("remove an earlier run's containers");
    // Two versions of the image's own (no other test's container uses them).
    let versions = [
        format!("wharf-test/chaos-{}:a", std::process::id()),
        format!("wharf-test/chaos-{}:b", std::process::id()),
    ];
    if churn == Churn::Image {
        for (reference, version) in versions.iter().zip(["chaos-a", "chaos-b"]) {
            crate::support::testkit::import_busybox(&docker, reference, version)
                .await
                .expect("import");
        }
    }
    let bundle = |round: usize| -> String {
        let mut docs = match churn {
            Churn::Spec => String::new(),
            Churn::Image => format!(
                "---\napiVersion: wharf/v1\nkind: Image\nmetadata: {{name: chaos}}\nspec:\n  ref: {reference}\n  pullPolicy: Never\n  rollout: {{maxUnavailable: 10}}\n"
            ),
        };
        // The spec changes every round only when the spec is what churns.
        let env_round = if churn == Churn::Spec { round } else { 0 };
        for i in 0..apps {
            docs.push_str(&format!(
                "---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: app{i}, namespace: {namespace}}}\nspec:\n  image: {reference}\n  command: {}\n  env: {{ROUND: \"{env_round}\"}}\n  stopGracePeriod: 2s\n  update: {{minReadySeconds: 1}}\n",
                crate::support::SLEEPER
            ));
        }
        docs
    };
    let up = |http: reqwest::Client, base: String| async move {
        wait_for("wharf serve answering", Duration::from_secs(30), || async {
            let r = http.get(format!("{base}/healthz")).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await
    };
    let mut rng = rand::rng();
    let mut serve = Serve::start(data.path(), port, &instance);
    up(http.clone(), base.clone()).await;
    let token = std::fs::read_to_string(data.path().join("admin.token")).expect("token");
    let token = token.trim().to_string();
    for round in 0..=kills {
        if churn == Churn::Image {
            crate::support::testkit::retag(&docker, &versions[round % 2], &reference)
                .await
                .expect("tag");
        }
        let applied = http
            .post(format!("{base}/api/v1/apply"))
            .bearer_auth(&token)
            .header("content-type", "application/yaml")
            .body(bundle(round))
            .send()
            .await
            .expect("apply");
        assert_eq!(applied.status(), 200, "round {round}");
        if round == kills {
            break;
        }
        // Somewhere in the creating, replacing, waiting and recording of this round.
        let after = Duration::from_millis(rng.random_range(100..3000));
        tokio::time::sleep(after).await;
        serve.kill();
        let present = crate::support::testkit::containers_with(&docker, &label).await;
        let aside = present
            .iter()
            .filter(|c| crate::support::testkit::set_aside(c))
            .count();
        eprintln!(
            "kill {}: {after:?} into round {round}: {} containers, {aside} set aside for a replacement",
            round + 1,
            present.len()
        );
        serve = Serve::start(data.path(), port, &instance);
        up(http.clone(), base.clone()).await;
    }
    // It converges to the last round: one container per app, running it, nothing set aside.
    let started = std::time::Instant::now();
    let want = match churn {
        Churn::Spec => format!("ROUND={kills}"),
        Churn::Image => "ROUND=0".to_string(),
    };
    let want_image = docker
        .inspect_image(&versions[kills % 2])
        .await
        .ok()
        .and_then(|i| i.id);
    let settled = crate::support::poll_until(Duration::from_secs(300), || async {
        let containers = crate::support::testkit::containers_with(&docker, &label).await;
        let current = containers
            .iter()
            .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING))
            .filter(|c| !crate::support::testkit::set_aside(c))
            .filter(|c| churn == Churn::Spec || c.image_id == want_image)
            .count();
        (containers.len() == apps && current == apps).then_some(containers)
    })
    .await;
    let containers = settled.unwrap_or_else(|| {
        panic!(
            "not converged: {:?}",
            futures::executor::block_on(crate::support::testkit::containers_with(&docker, &label))
                .iter()
                .map(|c| (c.names.clone(), c.state))
                .collect::<Vec<_>>()
        )
    });
    eprintln!(
        "converged {:.1}s after the last restart",
        started.elapsed().as_secs_f64()
    );
    let mut per_app = std::collections::BTreeMap::<String, usize>::new();
    for c in &containers {
        let name = c
            .names
            .as_ref()
            .and_then(|n| n.first())
            .cloned()
            .unwrap_or_default();
        assert!(
            !name.contains(".replaced-"),
            "a replacement left behind: {name}"
        );
        let id = c.id.clone().unwrap_or_default();
        let inspected = docker.inspect_container(&id, None).await.ok();
        let env = inspected
            .as_ref()
            .and_then(|i| i.config.as_ref())
            .and_then(|c| c.env.clone())
            .unwrap_or_default();
        assert!(env.contains(&want), "{name} runs an older round: {env:?}");
        if churn == Churn::Image {
            assert_eq!(
                inspected.and_then(|i| i.image),
                want_image,
                "{name} runs the last round's version"
            );
        }
        let app = c
            .labels
            .as_ref()
            .and_then(|l| l.get("wharf.app"))
            .cloned()
            .unwrap_or_default();
        *per_app.entry(app).or_default() += 1;
    }
    assert_eq!(per_app.len(), apps, "{per_app:?}");
    assert!(per_app.values().all(|n| *n == 1), "duplicates: {per_app:?}");
    serve.kill();
    crate::support::testkit::remove_containers(&docker, &label, |_| true)
        .await
        .expect("clean up");
    if churn == Churn::Image {
        for image in versions.iter().chain([&reference]) {
            let _ = docker
                .remove_image(
                    image,
                    None::<bollard::query_parameters::RemoveImageOptions>,
                    None,
                )
                .await;
        }
    }
}

/// Every app of the instance behind `label` has exactly one container, running, and there is
/// no other container.
async fn one_running_container_per_app(
    cluster: &crate::support::swarm::Cluster,
    label: &str,
    apps: usize,
) -> Option<()> {
    let docker = cluster.docker(1).await;
    let containers = crate::support::testkit::containers_with(&docker, label).await;
    let mut per_app = std::collections::BTreeMap::<String, usize>::new();
    for c in &containers {
        if c.state != Some(bollard::models::ContainerSummaryStateEnum::RUNNING) {
            return None;
        }
        let app = c.labels.as_ref()?.get("wharf.app")?.clone();
        *per_app.entry(app).or_default() += 1;
    }
    (per_app.len() == apps && per_app.values().all(|n| *n == 1)).then_some(())
}

/// The engine restarted under wharf, alternately with SIGTERM (dockerd stops the containers)
/// and SIGKILL (dockerd dies without stopping anything): after
/// each, every app runs exactly once, nothing of the instance is left over, and wharf never
/// stops. A private dockerd (`swarm.sh solo`), so the rest of the suite is not disturbed.
/// `WHARF_CHAOS_ENGINE_RESTARTS` (default 2) and `WHARF_CHAOS_ENGINE_APPS` (default 20); the
/// full run is 6 restarts under 100 apps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_restarts_end_with_every_app_running_once() {
    let restarts: usize = std::env::var("WHARF_CHAOS_ENGINE_RESTARTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let apps: usize = std::env::var("WHARF_CHAOS_ENGINE_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let cluster = crate::support::swarm::Cluster::start_solo().await;
    let h = Harness::start_private("t-engine", &cluster).await;
    let bundle: String = (0..apps)
        .map(|i| format!("---\n{}", h.sleeper_app(&format!("app{i}"), "")))
        .collect();
    let (status, body) = h.apply(&bundle).await;
    assert_eq!(status, 200, "{body}");
    let label = format!("wharf.instance={}", h.instance);
    let settled = || one_running_container_per_app(&cluster, &label, apps);
    wait_for("every app running", Duration::from_secs(120), settled).await;
    for round in 0..restarts {
        let signal = if round % 2 == 0 { "TERM" } else { "KILL" };
        cluster.stop_engine(1, signal);
        let passes = h.server().controller.health().borrow().passes;
        let started = std::time::Instant::now();
        cluster.start_engine(1);
        wait_for(
            "every app running once after the engine's restart",
            Duration::from_secs(180),
            settled,
        )
        .await;
        // wharf saw the engine again (a pass completed since), and it answers.
        wait_for(
            "a pass after the restart",
            Duration::from_secs(60),
            || async { (h.server().controller.health().borrow().passes > passes).then_some(()) },
        )
        .await;
        let (status, _) = h.get("/api/v1/apps").await;
        assert_eq!(status, 200);
        eprintln!(
            "engine restart {} (SIG{signal}): every app running once {:.1}s after dockerd started again",
            round + 1,
            started.elapsed().as_secs_f64()
        );
    }
    let docker = cluster.docker(1).await;
    crate::support::testkit::remove_containers(&docker, &label, |_| true)
        .await
        .expect("clean up");
    drop(h);
}

/// Times `n` reads going round `paths`, prints p50, p99 and max (not asserted against a figure:
/// a loaded CI machine is no benchmark) and fails when p99 reaches 1 s, which only a read that
/// waited for the engine (a 3 s deadline) would.
async fn reads_do_not_wait(h: &Harness, paths: &[&str], n: usize, when: &str) {
    let mut times = Vec::new();
    for path in paths.iter().cycle().take(n) {
        let started = std::time::Instant::now();
        let (status, _) = h.get(path).await;
        times.push(started.elapsed());
        assert_eq!(status, 200, "{path}");
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let p99 = times[times.len() * 99 / 100];
    eprintln!(
        "API reads {when}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms(times[times.len() / 2]),
        ms(p99),
        ms(times[times.len() - 1])
    );
    assert!(
        p99 < Duration::from_secs(1),
        "reads waited for the engine {when}: p99 {p99:?}"
    );
}

/// Ready and Synced of `app`: (status, reason) of each.
async fn conditions(h: &Harness, app: &str) -> Option<[(String, String); 2]> {
    let doc = h.get_app(app).await?;
    let find = |kind: &str| {
        let c = doc
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == kind)?;
        Some((
            c["status"].as_str()?.to_string(),
            c["reason"].as_str()?.to_string(),
        ))
    };
    Some([find("Ready")?, find("Synced")?])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_engine_call_times_out_its_app_only_and_reads_stay_fast() {
    crate::support::images().await;
    let proxy =
        crate::support::stall::StallProxy::start(std::path::Path::new("/var/run/docker.sock"))
            .await;
    let deadlines = wharf::runtime::docker::Deadlines {
        call: Duration::from_secs(3),
        stop_extra: Duration::from_secs(3),
        ..wharf::runtime::docker::Deadlines::default()
    };
    let engine = std::sync::Arc::new(
        wharf::runtime::docker::DockerRuntime::connect_socket(
            &proxy.path().to_string_lossy(),
            deadlines,
        )
        .expect("a client of the proxy"),
    );
    let h = Harness::start_on_engine("t-stall", engine, |_| {}).await;

    // 1. The engine never answers the creation of one app: that app times out, the others run.
    let stuck = format!("containers/create?name={}.stuck", h.namespace);
    proxy.stall(&stuck);
    let others: Vec<String> = (0..6).map(|i| format!("ok{i}")).collect();
    let mut bundle = vec![h.sleeper_app("stuck", "")];
    bundle.extend(others.iter().map(|a| h.sleeper_app(a, "")));
    let (status, body) = h.apply(&bundle.join("---\n")).await;
    assert_eq!(status, 200, "{body}");
    for app in &others {
        h.wait_ready(app).await;
    }
    wait_for(
        "the stuck app's DockerTimeout",
        Duration::from_secs(30),
        || async {
            let [ready, synced] = conditions(&h, "stuck").await?;
            (ready.0 == "False" && synced == ("False".into(), "DockerTimeout".into())).then_some(())
        },
    )
    .await;
    assert!(proxy.held() >= 1, "the create was held");

    // 2. Reads do not wait for the engine while a call is held.
    let stuck_app = format!("/api/v1/namespaces/{}/apps/stuck", h.namespace);
    let list = format!("/api/v1/namespaces/{}/apps", h.namespace);
    reads_do_not_wait(
        &h,
        &[&list, &stuck_app],
        200,
        "while the engine stalls a call",
    )
    .await;

    // 3. Every call about one running app's container stalls (its stop, its removal, its
    //    inspect): deleting it times out, while a new app still comes up.
    let victim = h.container_id("ok0").await.expect("ok0 runs");
    proxy.stall(&victim);
    assert_eq!(h.delete("ok0").await.0, 200);
    let (status, body) = h.apply(&h.sleeper_app("late", "")).await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready("late").await;
    wait_for("ok0's DockerTimeout", Duration::from_secs(60), || async {
        let [_, synced] = conditions(&h, "ok0").await?;
        (synced == ("False".into(), "DockerTimeout".into())).then_some(())
    })
    .await;
    for app in &others[1..] {
        let [ready, _] = conditions(&h, app).await.expect("app");
        assert_eq!(ready.0, "True", "{app} unaffected");
    }

    // 4. The engine answers again: the stuck app runs, ok0 is gone, one container per app.
    proxy.clear();
    h.wait_ready("stuck").await;
    wait_for("ok0 deleted", Duration::from_secs(60), || async {
        h.get_app("ok0").await.is_none().then_some(())
    })
    .await;
    let mut names: Vec<String> = h
        .containers()
        .await
        .iter()
        .flat_map(|c| c.names.clone().unwrap_or_default())
        .collect();
    names.sort();
    let want: Vec<String> = ["late", "ok1", "ok2", "ok3", "ok4", "ok5", "stuck"]
        .iter()
        .map(|a| format!("/{}.{a}", h.namespace))
        .collect();
    assert_eq!(names, want, "one container per app, none left over");

    // 5. The whole engine stalls: /readyz says so, reads still answer at once, nothing is lost;
    //    when it answers again, the loop goes on.
    proxy.stall("/");
    wait_for("/readyz 503", Duration::from_secs(30), || async {
        let (status, body) = h.get("/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    reads_do_not_wait(&h, &[&list], 100, "while the whole engine stalls").await;
    let (status, body) = h.apply(&h.sleeper_app("during", "")).await;
    assert_eq!(
        status, 200,
        "a write is accepted while the engine stalls: {body}"
    );
    proxy.clear();
    wait_for("/readyz 200", Duration::from_secs(60), || async {
        (h.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    h.wait_ready("during").await;
    h.finish().await;
}
