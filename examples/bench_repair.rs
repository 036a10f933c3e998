//! In-place limit changes and drift repair against the real Docker Engine, each beside the
//! engine's own floor for the same work.
//!
//! wharf runs in this process on the local engine. The times come from the engine's event
//! stream (received here), so polling adds nothing to them:
//! 1. **In place**: an app's memory limit is changed through the API (`PATCH`, alternating two
//!    values), timed from the request to the engine's `update` event of its container. Floor: a
//!    raw `docker update` call on a container of the bench's own.
//! 2. **Drift**: an app's container is killed (`docker kill`), stopped (`docker stop`) or removed
//!    (`docker rm -f`) behind wharf's back, timed from that call's return to the `start` event
//!    of the app's container. A different app each time, since repeated repairs of one app back
//!    off on purpose (crash loops), each 0.5 s after the previous repair (drift comes from quiet,
//!    not within the spacing of the loop's passes). Floor: a raw `docker start` (kill, stop) or
//!    create + start (rm).
//!
//! Run: `cargo run --release --example bench_repair` (`ROUNDS=20` for more of each; default 10).

#[path = "../tests/support/testkit.rs"]
#[allow(dead_code)] // the image helpers the tests use too
mod testkit;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, EventsOptions, KillContainerOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use futures::StreamExt;
use tokio::sync::mpsc;
use wharf::reconcile::ControllerConfig;
use wharf::server::{ServeConfig, Server};

const IMAGE: &str = "wharf-bench/busybox:1";
const INSTANCE: &str = "bench-repair";
const SLEEPER: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

/// An engine event as received: when, what, which container (by name).
type Received = (Instant, String, String);

/// Waits for `action` on container `name`, skipping other events; `None` after 30 s.
async fn wait_event(
    events: &mut mpsc::UnboundedReceiver<Received>,
    action: &str,
    name: &str,
) -> Option<Instant> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (at, a, n) = tokio::time::timeout_at(deadline, events.recv())
            .await
            .ok()??;
        if a == action && n == name {
            return Some(at);
        }
    }
}

fn drain(events: &mut mpsc::UnboundedReceiver<Received>) {
    while events.try_recv().is_ok() {}
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A line of figures: median, min and max in ms, and the median's ratio to `floor`'s median.
fn report(what: &str, times: &mut [f64], floor: &mut [f64]) {
    let (m, f) = (median(times), median(floor));
    println!(
        "{what}: median {m:.1} ms (min {:.1}, max {:.1}) · floor median {f:.1} ms · {:.2}x",
        times[0],
        times[times.len() - 1],
        m / f.max(0.001)
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10)
        .max(1);
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    testkit::import_busybox(&docker, IMAGE, "bench")
        .await
        .map_err(anyhow::Error::msg)?;
    let label = format!("wharf.instance={INSTANCE}");
    testkit::remove_containers(&docker, &label, |_| true)
        .await
        .map_err(anyhow::Error::msg)?;
    let raw_label = format!("{INSTANCE}.raw=1");
    testkit::remove_containers(&docker, &raw_label, |_| true)
        .await
        .map_err(anyhow::Error::msg)?;

    let dir = tempfile::tempdir()?;
    let mut config = ServeConfig::new(dir.path().to_path_buf());
    config.specs_dir = None;
    config.listen = "127.0.0.1:0".parse()?;
    config.controller = ControllerConfig {
        instance: INSTANCE.into(),
        ..ControllerConfig::default()
    };
    let server = Server::start(config).await?;
    let app = |name: &str| {
        format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  image: {IMAGE}\n  command: [sh, -c, \"{SLEEPER}\"]\n  stopGracePeriod: 1s\n  resources: {{memory: 64Mi}}\n---\n"
        )
    };
    let mut bundle = app("u");
    for i in 0..rounds {
        for kind in ["k", "s", "r"] {
            bundle += &app(&format!("{kind}{i}"));
        }
    }
    let total = 1 + 3 * rounds;
    testkit::apply_bundle(server.addr, &server.token, bundle)
        .await
        .map_err(anyhow::Error::msg)?;
    testkit::wait_running(&server.store, "bench", total, Duration::from_secs(120))
        .await
        .map_err(anyhow::Error::msg)?;
    println!("{total} apps running; {rounds} rounds of each measurement");
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The engine's container events of wharf's containers, as they arrive.
    let (tx, mut events) = mpsc::unbounded_channel();
    let stream_docker = docker.clone();
    let filters = HashMap::from([
        ("type".to_string(), vec!["container".to_string()]),
        ("label".to_string(), vec![label.clone()]),
    ]);
    let listener = tokio::spawn(async move {
        let mut stream = stream_docker.events(Some(EventsOptions {
            filters: Some(filters),
            ..Default::default()
        }));
        while let Some(Ok(event)) = stream.next().await {
            let at = Instant::now();
            let action = event.action.unwrap_or_default();
            let name = event
                .actor
                .and_then(|a| a.attributes)
                .and_then(|a| a.get("name").cloned())
                .unwrap_or_default();
            if tx.send((at, action, name)).is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // A container of the bench's own for the floors.
    let raw_body = || ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["sh".into(), "-c".into(), SLEEPER.into()]),
        labels: Some(HashMap::from([(
            format!("{INSTANCE}.raw"),
            "1".to_string(),
        )])),
        host_config: Some(bollard::models::HostConfig {
            memory: Some(64 << 20),
            ..Default::default()
        }),
        ..Default::default()
    };
    let raw = docker
        .create_container(None::<CreateContainerOptions>, raw_body())
        .await?
        .id;
    docker.start_container(&raw, None).await?;

    // 1. In place.
    let client = reqwest::Client::new();
    let mut in_place = Vec::new();
    let mut update_floor = Vec::new();
    for i in 0..rounds {
        let memory = if i % 2 == 0 { "96Mi" } else { "64Mi" };
        drain(&mut events);
        let t0 = Instant::now();
        let response = client
            .patch(format!(
                "http://{}/api/v1/namespaces/bench/apps/u",
                server.addr
            ))
            .bearer_auth(&server.token)
            .header("content-type", "application/merge-patch+json")
            .body(format!(
                r#"{{"spec": {{"resources": {{"memory": "{memory}"}}}}}}"#
            ))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "PATCH: {}",
            response.status()
        );
        let at = wait_event(&mut events, "update", "bench.u")
            .await
            .ok_or_else(|| anyhow::anyhow!("no update event for bench.u"))?;
        in_place.push(ms(at - t0));

        let bytes: i64 = if i % 2 == 0 { 96 << 20 } else { 64 << 20 };
        let t0 = Instant::now();
        docker
            .update_container(
                &raw,
                bollard::models::ContainerUpdateBody {
                    memory: Some(bytes),
                    memory_swap: Some(2 * bytes),
                    ..Default::default()
                },
            )
            .await?;
        update_floor.push(ms(t0.elapsed()));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    report(
        "in-place memory limit change (PATCH -> engine update event)",
        &mut in_place,
        &mut update_floor,
    );

    // 2. Drift.
    let mut start_floor = Vec::new();
    let mut create_start_floor = Vec::new();
    for _ in 0..rounds {
        docker
            .kill_container(&raw, None::<KillContainerOptions>)
            .await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t0 = Instant::now();
        docker.start_container(&raw, None).await?;
        start_floor.push(ms(t0.elapsed()));

        let t0 = Instant::now();
        let id = docker
            .create_container(None::<CreateContainerOptions>, raw_body())
            .await?
            .id;
        docker.start_container(&id, None).await?;
        create_start_floor.push(ms(t0.elapsed()));
        docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await?;
    }
    for (kind, what) in [
        ("k", "docker kill"),
        ("s", "docker stop"),
        ("r", "docker rm -f"),
    ] {
        let mut times = Vec::new();
        for i in 0..rounds {
            let name = format!("bench.{kind}{i}");
            // From quiet, as drift comes: not within the pass spacing of the previous repair.
            tokio::time::sleep(Duration::from_millis(500)).await;
            drain(&mut events);
            match kind {
                "k" => {
                    docker
                        .kill_container(&name, None::<KillContainerOptions>)
                        .await?
                }
                "s" => {
                    docker
                        .stop_container(&name, None::<StopContainerOptions>)
                        .await?
                }
                _ => {
                    docker
                        .remove_container(
                            &name,
                            Some(RemoveContainerOptions {
                                force: true,
                                ..Default::default()
                            }),
                        )
                        .await?
                }
            }
            let t0 = Instant::now();
            let at = wait_event(&mut events, "start", &name)
                .await
                .ok_or_else(|| anyhow::anyhow!("{name} was not started again within 30 s"))?;
            times.push(ms(at - t0));
        }
        let floor = if kind == "r" {
            &mut create_start_floor
        } else {
            &mut start_floor
        };
        report(&format!("drift repair after {what}"), &mut times, floor);
    }

    listener.abort();
    server.shutdown().await;
    testkit::remove_containers(&docker, &label, |_| true)
        .await
        .map_err(anyhow::Error::msg)?;
    testkit::remove_containers(&docker, &raw_label, |_| true)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(())
}
