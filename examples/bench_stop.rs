//! Stopping benchmark against the real Docker Engine: N apps whose process ignores SIGTERM (so
//! every stop waits out the whole grace period, Docker's default 10 s), deleted at once.
//!
//! 1. the raw floor, as `docker compose down` does it: bollard stop of the N containers all in
//!    parallel (grace 10 s), then remove;
//! 2. wharf: N apps applied and Running, then one `DELETE` per app, sent together, timed until
//!    no container of the instance is left.
//!
//! A graceful stop holds no container-operation permit while the engine waits out the grace
//! period (`reconcile/execute.rs`, `graceful_stop`), so N apps take about one grace period plus
//! N × the removal cost, whatever `--max-ops` is.
//!
//! Run: `cargo run --release --example bench_stop -- 20`

#[path = "../tests/support/testkit.rs"]
#[allow(dead_code)] // the image helpers the tests use too
mod testkit;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};
use wharf::reconcile::ControllerConfig;
use wharf::server::{ServeConfig, Server};

const IMAGE: &str = "wharf-bench/busybox:1";
/// Ignores SIGTERM: only the SIGKILL at the end of the grace period stops it.
const COMMAND: &[&str] = &["sh", "-c", "trap '' TERM; while true; do sleep 1; done"];

async fn count(docker: &Docker, label: &str) -> anyhow::Result<usize> {
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![label.to_string()],
            )])),
            ..Default::default()
        }))
        .await?;
    Ok(list.len())
}

/// Parallel stop (grace 10 s) then remove of N fresh containers.
async fn raw_floor(docker: &Docker, n: usize) -> anyhow::Result<Duration> {
    let label = "wharf-bench.stop=1";
    let mut ids = Vec::new();
    for i in 0..n {
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(format!("wharf-bench-stop-{i}")),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(IMAGE.to_string()),
                    cmd: Some(COMMAND.iter().map(|s| s.to_string()).collect()),
                    labels: Some(HashMap::from([(
                        "wharf-bench.stop".to_string(),
                        "1".to_string(),
                    )])),
                    ..Default::default()
                },
            )
            .await?;
        docker
            .start_container(
                &created.id,
                None::<bollard::query_parameters::StartContainerOptions>,
            )
            .await?;
        ids.push(created.id);
    }
    // Let the shells install their trap.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let started = Instant::now();
    let stops = ids.iter().map(|id| {
        docker.stop_container(
            id,
            Some(StopContainerOptions {
                t: Some(10),
                signal: None,
            }),
        )
    });
    for r in futures::future::join_all(stops).await {
        r?;
    }
    let removes = ids
        .iter()
        .map(|id| docker.remove_container(id, None::<RemoveContainerOptions>));
    for r in futures::future::join_all(removes).await {
        r?;
    }
    let took = started.elapsed();
    anyhow::ensure!(count(docker, label).await? == 0, "containers left");
    Ok(took)
}

async fn wharf_delete(docker: &Docker, n: usize) -> anyhow::Result<Duration> {
    let instance = format!("bench-stop-{}", std::process::id());
    let data = tempfile::tempdir()?;
    let mut config = ServeConfig::new(data.path().to_path_buf());
    config.specs_dir = None;
    config.listen = "127.0.0.1:0".parse()?;
    config.controller = ControllerConfig {
        instance: instance.clone(),
        max_ops: 4,
        ..ControllerConfig::default()
    };
    let server = Server::start(config).await?;
    let yaml: String = (0..n)
        .map(|i| {
            format!(
                "---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: app{i}, namespace: bench}}\nspec:\n  image: {IMAGE}\n  command: {COMMAND:?}\n"
            )
        })
        .collect();
    testkit::apply_bundle(server.addr, &server.token, yaml)
        .await
        .map_err(anyhow::Error::msg)?;
    testkit::wait_running(&server.store, "bench", n, Duration::from_secs(120))
        .await
        .map_err(anyhow::Error::msg)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let label = format!("wharf.instance={instance}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    let deletes = (0..n).map(|i| {
        http.delete(format!(
            "http://{}/api/v1/namespaces/bench/apps/app{i}",
            server.addr
        ))
        .bearer_auth(&server.token)
        .send()
    });
    for r in futures::future::join_all(deletes).await {
        anyhow::ensure!(r?.status().is_success(), "a delete was refused");
    }
    while count(docker, &label).await? > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    server.shutdown().await;
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    testkit::import_busybox(&docker, IMAGE, "bench")
        .await
        .map_err(anyhow::Error::msg)?;
    let floor = raw_floor(&docker, n).await?;
    println!("N = {n} apps ignoring SIGTERM (grace 10 s)");
    println!(
        "  raw parallel stop + remove (docker compose down): {:.2}s",
        floor.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ours = wharf_delete(&docker, n).await?;
    println!(
        "  wharf, {n} DELETEs at once (max-ops 4): {:.2}s = {:.2} x the raw floor",
        ours.as_secs_f64(),
        ours.as_secs_f64() / floor.as_secs_f64()
    );
    Ok(())
}
