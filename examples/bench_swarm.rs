//! Swarm mode benchmark on a real three-node swarm built on this machine (the same
//! `tests/support/swarm.sh` the tests use: three dockerd daemons in network namespaces).
//!
//! For each replica count N (default 6 and 12), `ROUNDS` interleaved rounds of:
//! 1. time to N replicas running:
//!    - `docker service create --detach=false` (the CLI waits for the tasks and checks they
//!      stay up for the monitor period, 1 s here);
//!    - the API floor: bollard's create_service, then polling the tasks every 50 ms until N
//!      run;
//!    - wharf: one `POST /api/v1/apply` of an App with `replicas: N`, polling the app every
//!      50 ms until it is Ready with N running;
//! 2. a memory limit change rolling every task (parallelism 2, stop-first, monitor 1 s):
//!    - `docker service update --detach=false --limit-memory`;
//!    - wharf: the same change applied, until Ready at the new generation.
//!
//! Prints each figure, the medians and wharf's ratio to the CLI and to the API floor.
//! Run (as root): `cargo run --release --example bench_swarm -- 6 12` (`ROUNDS=5` for more).

#[path = "../tests/support/testkit.rs"]
#[allow(dead_code)] // the image helpers the tests use too
mod testkit;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::ListTasksOptions;
use serde_json::Value;
use wharf::reconcile::ControllerConfig;
use wharf::runtime::docker::{Deadlines, DockerRuntime};
use wharf::server::{ServeConfig, Server};
use wharf::spec::mode::Mode;

const IMAGE: &str = "wharf-bench/busybox:1";
const SHELL: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/swarm.sh")
}

/// The swarm, torn down on drop.
struct Cluster {
    dir: PathBuf,
}

impl Cluster {
    fn socket(&self, i: usize) -> String {
        self.dir
            .join(format!("node{i}/docker.sock"))
            .display()
            .to_string()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _status = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&self.dir)
            .status();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

async fn running_tasks(docker: &Docker, service: &str) -> usize {
    docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(HashMap::from([
                ("service".to_string(), vec![service.to_string()]),
                ("desired-state".to_string(), vec!["running".to_string()]),
            ])),
        }))
        .await
        .map(|tasks| {
            tasks
                .iter()
                .filter(|t| {
                    t.status
                        .as_ref()
                        .and_then(|s| s.state)
                        .is_some_and(|s| s.to_string() == "running")
                })
                .count()
        })
        .unwrap_or(0)
}

fn docker_cli(socket: &str, args: &[&str]) -> Duration {
    let started = Instant::now();
    let out = Command::new("docker")
        .args(["-H", &format!("unix://{socket}")])
        .args(args)
        .output()
        .expect("docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    started.elapsed()
}

fn app_yaml(name: &str, replicas: usize, memory: &str) -> String {
    format!(
        "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: {name}, namespace: bench}}\nspec:\n  image: {IMAGE}\n  command: [sh, -c, \"{SHELL}\"]\n  stopGracePeriod: 2s\n  replicas: {replicas}\n  resources: {{memory: {memory}}}\n  update: {{parallelism: 2, order: stop-first, minReadySeconds: 1}}\n"
    )
}

struct Wharf {
    server: Server,
    http: reqwest::Client,
}

impl Wharf {
    async fn apply(&self, yaml: &str) {
        let r = self
            .http
            .post(format!("http://{}/api/v1/apply", self.server.addr))
            .bearer_auth(&self.server.token)
            .header("content-type", "application/yaml")
            .body(yaml.to_string())
            .send()
            .await
            .expect("apply");
        assert!(
            r.status().is_success(),
            "{}",
            r.text().await.unwrap_or_default()
        );
    }

    async fn app(&self, name: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!(
                "http://{}/api/v1/namespaces/bench/apps/{name}",
                self.server.addr
            ))
            .bearer_auth(&self.server.token)
            .send()
            .await
            .ok()?;
        r.json().await.ok()
    }

    /// Polls until `name` is Ready at its current generation with `n` running.
    async fn wait_ready(&self, name: &str, n: usize, generation: i64) {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if let Some(doc) = self.app(name).await {
                let ready = doc
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                let observed = doc
                    .pointer("/status/observedGeneration")
                    .and_then(Value::as_i64);
                let running = doc
                    .pointer("/status/replicas/running")
                    .and_then(Value::as_u64);
                if ready && observed == Some(generation) && running == Some(n as u64) {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "{name} not ready in 300 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn delete(&self, name: &str) {
        let _answer = self
            .http
            .delete(format!(
                "http://{}/api/v1/namespaces/bench/apps/{name}",
                self.server.addr
            ))
            .bearer_auth(&self.server.token)
            .send()
            .await;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self
            .app(name)
            .await
            .is_some_and(|d| d.get("spec").is_some())
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![6, 12] } else { sizes };
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);

    let dir = std::env::temp_dir().join(format!("wharf-bench-swarm-{}", std::process::id()));
    let out = Command::new("bash")
        .arg(script())
        .arg("up")
        .arg(&dir)
        .arg("3")
        .output()
        .expect("swarm.sh");
    assert!(
        out.status.success(),
        "building the swarm: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cluster = Cluster { dir };
    for i in 1..=3 {
        let docker =
            Docker::connect_with_unix(&cluster.socket(i), 120, bollard::API_DEFAULT_VERSION)
                .expect("client")
                .negotiate_version()
                .await
                .expect("node engine");
        testkit::import_busybox(&docker, IMAGE, "1")
            .await
            .expect("image on the node");
    }
    let manager = Docker::connect_with_unix(&cluster.socket(1), 120, bollard::API_DEFAULT_VERSION)
        .expect("client")
        .negotiate_version()
        .await
        .expect("manager");

    let data = tempfile::tempdir().expect("tempdir");
    let mut config = ServeConfig::new(data.path().to_path_buf());
    config.specs_dir = None;
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.mode = Mode::Swarm;
    config.controller = ControllerConfig {
        instance: "bench-swarm".into(),
        ..ControllerConfig::default()
    };
    let engine = Arc::new(
        DockerRuntime::connect_socket(&cluster.socket(1), Deadlines::default()).expect("engine"),
    );
    let wharf = Wharf {
        server: Server::start_on(config, engine)
            .await
            .expect("wharf in swarm mode"),
        http: reqwest::Client::new(),
    };
    let socket = cluster.socket(1);

    println!("swarm: 3 nodes (dockerd in network namespaces on this machine), image {IMAGE}");
    for &n in &sizes {
        let (mut cli_up, mut api_up, mut wharf_up) = (Vec::new(), Vec::new(), Vec::new());
        let (mut cli_roll, mut wharf_roll) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            // The CLI: create and wait.
            let name = format!("cli-{n}-{round}");
            let replicas = n.to_string();
            let t = docker_cli(
                &socket,
                &[
                    "service",
                    "create",
                    "--detach=false",
                    "-q",
                    "--name",
                    &name,
                    "--replicas",
                    &replicas,
                    "--limit-memory",
                    "64M",
                    "--stop-grace-period",
                    "2s",
                    "--update-parallelism",
                    "2",
                    "--update-order",
                    "stop-first",
                    "--update-monitor",
                    "1s",
                    "--update-failure-action",
                    "rollback",
                    IMAGE,
                    "sh",
                    "-c",
                    SHELL,
                ],
            );
            cli_up.push(t.as_secs_f64());
            let t = docker_cli(
                &socket,
                &[
                    "service",
                    "update",
                    "--detach=false",
                    "-q",
                    "--limit-memory",
                    "96M",
                    &name,
                ],
            );
            cli_roll.push(t.as_secs_f64());
            docker_cli(&socket, &["service", "rm", &name]);

            // The API floor: create, poll the tasks.
            let name = format!("api-{n}-{round}");
            let started = Instant::now();
            let spec = bollard::models::ServiceSpec {
                name: Some(name.clone()),
                mode: Some(bollard::models::ServiceSpecMode {
                    replicated: Some(bollard::models::ServiceSpecModeReplicated {
                        replicas: Some(n as i64),
                    }),
                    ..Default::default()
                }),
                task_template: Some(bollard::models::TaskSpec {
                    container_spec: Some(bollard::models::TaskSpecContainerSpec {
                        image: Some(IMAGE.into()),
                        args: Some(vec!["sh".into(), "-c".into(), SHELL.into()]),
                        stop_grace_period: Some(2_000_000_000),
                        ..Default::default()
                    }),
                    resources: Some(bollard::models::TaskSpecResources {
                        limits: Some(bollard::models::Limit {
                            memory_bytes: Some(64 << 20),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let id = manager
                .create_service(spec, None)
                .await
                .expect("create service")
                .id
                .expect("id");
            while running_tasks(&manager, &id).await < n {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            api_up.push(started.elapsed().as_secs_f64());
            manager.delete_service(&id).await.expect("remove");

            // wharf.
            let name = format!("app-{n}-{round}");
            let started = Instant::now();
            wharf.apply(&app_yaml(&name, n, "64Mi")).await;
            wharf.wait_ready(&name, n, 1).await;
            wharf_up.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            wharf.apply(&app_yaml(&name, n, "96Mi")).await;
            wharf.wait_ready(&name, n, 2).await;
            wharf_roll.push(started.elapsed().as_secs_f64());
            wharf.delete(&name).await;
            // Let the removed tasks' containers go before the next round.
            tokio::time::sleep(Duration::from_secs(3)).await;
            println!(
                "N={n} round {round}: up cli {:.2}s api {:.2}s wharf {:.2}s | limit change cli {:.2}s wharf {:.2}s",
                cli_up[round], api_up[round], wharf_up[round], cli_roll[round], wharf_roll[round]
            );
        }
        let (cu, au, wu) = (
            median(&mut cli_up),
            median(&mut api_up),
            median(&mut wharf_up),
        );
        let (cr, wr) = (median(&mut cli_roll), median(&mut wharf_roll));
        println!(
            "N={n} medians: to {n} replicas running: docker service create --detach=false {cu:.2}s, API floor {au:.2}s, wharf {wu:.2}s ({:.2}x the CLI, {:.2}x the floor); limit change: docker service update {cr:.2}s, wharf {wr:.2}s ({:.2}x)",
            wu / cu,
            wu / au,
            wr / cr
        );
    }
    wharf.server.shutdown().await;
    drop(cluster);
}
