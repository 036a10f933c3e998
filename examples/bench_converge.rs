//! Convergence benchmark against the real Docker Engine.
//!
//! For each N (default 50 and 100), `ROUNDS` interleaved rounds of:
//! 1. the raw floor: bollard create+start of N containers at 4 and at 8 in flight;
//! 2. wharf: one `POST /api/v1/apply` of N apps, timed until every app is Ready (Running);
//!
//! then the medians, the ratio of wharf's median to the better floor median, the Docker API
//! calls of one reconcile pass over the N converged apps, and the process RSS with N apps
//! (wharf runs in this process). The engine is left to settle between runs, since removal
//! work of the previous run otherwise slows the next one.
//!
//! Run: `cargo run --release --example bench_converge -- 50 100` (`ROUNDS=5` for more rounds,
//! `PASS_INTERVAL_MS=500` to try another `min_pass_interval`, `MAX_OPS=8` another `--max-ops`; `STATE=stopped` declares the apps
//! stopped — their containers are created, not started — and `WHARF_ONLY=1` skips the raw
//! floor, for the cost of a converged pass over many stopped apps)

#[path = "../tests/support/testkit.rs"]
#[allow(dead_code)] // the image helpers the tests use too
mod testkit;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::CreateContainerOptions;
use futures::StreamExt;
use futures::stream::BoxStream;
use wharf::reconcile::ControllerConfig;
use wharf::runtime::docker::{Deadlines, DockerRuntime};
use wharf::runtime::{
    ContainerDetails, ContainerStats, ContainerSummary, CreateSpec, ExecOutput, ImageSummary,
    LogChunk, LogOptions, PullProgress, RegistryCredentials, Runtime, RuntimeEvent, RuntimeResult,
};
use wharf::server::{ServeConfig, Server};
use wharf::spec::Kind;
use wharf::spec::validate::Limits;

const IMAGE: &str = "wharf-bench/busybox:1";
const COMMAND: &[&str] = &[
    "sh",
    "-c",
    "trap 'exit 0' TERM; while true; do sleep 1; done",
];

/// Counts the engine calls made through the runtime seam.
struct Counting {
    inner: DockerRuntime,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

impl Counting {
    fn count(&self, op: &'static str) {
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op)
            .or_default() += 1;
    }
    fn take(&self) -> BTreeMap<&'static str, u64> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[async_trait]
impl Runtime for Counting {
    async fn ping(&self) -> RuntimeResult<String> {
        self.count("ping");
        self.inner.ping().await
    }
    async fn host_memory(&self) -> RuntimeResult<i64> {
        self.count("info");
        self.inner.host_memory().await
    }
    async fn list(&self, instance: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.count("list");
        self.inner.list(instance).await
    }
    async fn inspect(&self, id: &str) -> RuntimeResult<ContainerDetails> {
        self.count("inspect");
        self.inner.inspect(id).await
    }
    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> RuntimeResult<()> {
        self.count("volume");
        self.inner.ensure_volume(name, labels).await
    }
    async fn create(&self, spec: &CreateSpec) -> RuntimeResult<String> {
        self.count("create");
        self.inner.create(spec).await
    }
    async fn start(&self, id: &str) -> RuntimeResult<()> {
        self.count("start");
        self.inner.start(id).await
    }
    async fn stop(&self, id: &str, grace: Option<u64>) -> RuntimeResult<()> {
        self.count("stop");
        self.inner.stop(id, grace).await
    }
    async fn pause(&self, id: &str) -> RuntimeResult<()> {
        self.count("pause");
        self.inner.pause(id).await
    }
    async fn unpause(&self, id: &str) -> RuntimeResult<()> {
        self.count("unpause");
        self.inner.unpause(id).await
    }
    async fn update(&self, id: &str, limits: &Limits) -> RuntimeResult<()> {
        self.count("update");
        self.inner.update(id, limits).await
    }
    async fn remove(&self, id: &str, force: bool) -> RuntimeResult<()> {
        self.count("remove");
        self.inner.remove(id, force).await
    }
    async fn restart(&self, id: &str, grace: Option<u64>) -> RuntimeResult<()> {
        self.count("restart");
        self.inner.restart(id, grace).await
    }
    async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()> {
        self.count("kill");
        self.inner.kill(id, signal).await
    }
    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        working_dir: Option<&str>,
        timeout: Duration,
    ) -> RuntimeResult<ExecOutput> {
        self.count("exec");
        self.inner.exec(id, argv, working_dir, timeout).await
    }
    async fn stats(&self, id: &str) -> RuntimeResult<ContainerStats> {
        self.count("stats");
        self.inner.stats(id).await
    }
    async fn inspect_raw(&self, id: &str) -> RuntimeResult<serde_json::Value> {
        self.count("inspect");
        self.inner.inspect_raw(id).await
    }
    fn logs(&self, id: &str, options: &LogOptions) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        self.count("logs");
        self.inner.logs(id, options)
    }
    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        self.count("remove volume");
        self.inner.remove_volume(name).await
    }
    async fn rename(&self, id: &str, name: &str) -> RuntimeResult<()> {
        self.count("rename");
        self.inner.rename(id, name).await
    }
    async fn images(&self) -> RuntimeResult<Vec<ImageSummary>> {
        self.count("images");
        self.inner.images().await
    }
    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> RuntimeResult<()> {
        self.count("pull");
        self.inner.pull(reference, credentials, progress).await
    }
    async fn remove_image(&self, image: &str, force: bool) -> RuntimeResult<()> {
        self.count("remove image");
        self.inner.remove_image(image, force).await
    }
    async fn containers_using(&self, image_id: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.count("containers using");
        self.inner.containers_using(image_id).await
    }
    fn events(&self, instance: &str) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        self.count("events");
        self.inner.events(instance)
    }
}

async fn remove_by_label(docker: &Docker, label: &str) -> anyhow::Result<()> {
    testkit::remove_containers(docker, label, |_| true)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(())
}

/// Raw bollard create+start of `n` containers, `width` in flight.
async fn raw_floor(docker: &Docker, n: usize, width: usize) -> anyhow::Result<Duration> {
    let label = "wharf-bench.raw=1";
    remove_by_label(docker, label).await?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| async move {
            // The same container wharf creates for a bench app: image, command, limits and
            // restart policy (a CPU quota slows runc init and the shell's start).
            let body = ContainerCreateBody {
                image: Some(IMAGE.into()),
                cmd: Some(COMMAND.iter().map(|s| s.to_string()).collect()),
                labels: Some(HashMap::from([(
                    "wharf-bench.raw".to_string(),
                    "1".to_string(),
                )])),
                host_config: Some(HostConfig {
                    memory: Some(32 << 20),
                    memory_swap: Some(32 << 20),
                    nano_cpus: Some(100_000_000),
                    restart_policy: Some(RestartPolicy {
                        name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                        maximum_retry_count: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            };
            let name = format!("wharf-bench-raw-{i}");
            let id = docker
                .create_container(
                    Some(CreateContainerOptions {
                        name: Some(name),
                        ..Default::default()
                    }),
                    body,
                )
                .await?
                .id;
            docker.start_container(&id, None).await?;
            Ok(())
        })
        .buffer_unordered(width)
        .collect()
        .await;
    let elapsed = started.elapsed();
    for r in results {
        r?;
    }
    remove_by_label(docker, label).await?;
    Ok(elapsed)
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

struct WharfRun {
    converge: Duration,
    pass_calls: BTreeMap<&'static str, u64>,
    rss_mib: f64,
}

async fn wharf_converge(n: usize) -> anyhow::Result<WharfRun> {
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    let instance = format!("bench-{}", std::process::id());
    let data = tempfile::tempdir()?;
    let mut config = ServeConfig::new(data.path().to_path_buf());
    config.specs_dir = None;
    config.listen = "127.0.0.1:0".parse()?;
    config.controller = ControllerConfig {
        instance: instance.clone(),
        resync: Duration::from_secs(3600),
        max_ops: std::env::var("MAX_OPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(ControllerConfig::default().max_ops),
        min_pass_interval: std::env::var("PASS_INTERVAL_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis)
            .unwrap_or(ControllerConfig::default().min_pass_interval),
        ..ControllerConfig::default()
    };
    let runtime = Arc::new(Counting {
        inner: DockerRuntime::connect_local(Deadlines::default()),
        calls: Mutex::new(BTreeMap::new()),
    });
    let server = Server::start_with(config, runtime.clone()).await?;
    let state = std::env::var("STATE").unwrap_or_else(|_| "running".into());
    let phase = match state.as_str() {
        "stopped" => wharf::spec::status::Phase::Stopped,
        _ => wharf::spec::status::Phase::Running,
    };
    let yaml: String = (0..n)
        .map(|i| {
            format!(
                "---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: app{i}, namespace: bench}}\nspec:\n  image: {IMAGE}\n  command: {COMMAND:?}\n  state: {state}\n  resources: {{memory: 32Mi, cpus: 0.1}}\n"
            )
        })
        .collect();
    // Let the first pass (connect, negotiate) happen before timing.
    tokio::time::sleep(Duration::from_millis(500)).await;
    runtime.take();

    let started = Instant::now();
    testkit::apply_bundle(server.addr, &server.token, yaml)
        .await
        .map_err(anyhow::Error::msg)?;
    loop {
        let records = server.store.list(Kind::App, Some("bench")).await?;
        let ready = records
            .iter()
            .filter(|r| {
                r.app_status()
                    .is_some_and(|s| s.phase == phase && s.is_ready_at(r.generation))
            })
            .count();
        if ready == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let converge = started.elapsed();
    let converge_calls = runtime.take();

    // One pass over the converged apps.
    tokio::time::sleep(Duration::from_millis(500)).await;
    runtime.take();
    let pass_started = Instant::now();
    server.controller.pass().await;
    let mut passes = vec![pass_started.elapsed()];
    let pass_calls = runtime.take();
    for _ in 0..4 {
        let started = Instant::now();
        server.controller.pass().await;
        passes.push(started.elapsed());
    }
    let pass_took = median(passes);
    // The pass's one engine call on its own: the engine's listing of the instance's containers.
    let mut lists = Vec::new();
    let mut listed = 0;
    for _ in 0..5 {
        let started = Instant::now();
        listed = docker
            .list_containers(Some(bollard::query_parameters::ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "label".to_string(),
                    vec![format!("wharf.instance={instance}")],
                )])),
                ..Default::default()
            }))
            .await?
            .len();
        lists.push(started.elapsed());
    }
    let list_took = median(lists);
    println!(
        "  one pass over the {n} converged apps (median of 5): {:.1} ms; the engine's listing of the {listed} containers alone (bollard, median of 5): {:.1} ms",
        pass_took.as_secs_f64() * 1000.0,
        list_took.as_secs_f64() * 1000.0
    );
    let rss = rss_mib();
    // Listing every app over the API, as a dashboard or `wharf get apps` does: median of 5.
    let http = reqwest::Client::new();
    let mut lists = Vec::new();
    let mut bytes = 0;
    for _ in 0..5 {
        let started = Instant::now();
        let body = http
            .get(format!("http://{}/api/v1/apps", server.addr))
            .bearer_auth(&server.token)
            .send()
            .await?
            .bytes()
            .await?;
        lists.push(started.elapsed());
        bytes = body.len();
    }
    println!(
        "  GET /api/v1/apps of {n} apps ({} kB): median {:.1} ms",
        bytes / 1024,
        median(lists).as_secs_f64() * 1000.0
    );
    // `IDLE_SECS=60`: how many passes run, and what they cost the engine, while nothing changes
    // (the resync here is an hour, so every pass is a wake-up).
    if let Some(idle) = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        runtime.take();
        let before = server.controller.health().borrow().passes;
        tokio::time::sleep(Duration::from_secs(idle)).await;
        let passes = server.controller.health().borrow().passes - before;
        println!(
            "  idle {idle}s: {passes} passes, engine calls {:?}",
            runtime.take()
        );
    }

    println!(
        "  wharf: {:.2}s ({:.0} ms/app); engine calls {converge_calls:?}",
        converge.as_secs_f64(),
        converge.as_secs_f64() * 1000.0 / n as f64
    );
    server.shutdown().await;
    remove_by_label(&docker, &format!("wharf.instance={instance}")).await?;
    Ok(WharfRun {
        converge,
        pass_calls,
        rss_mib: rss,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Lets the engine finish background work of the previous run.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(3)).await;
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![50, 100]
    } else {
        sizes
    };
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    testkit::import_busybox(&docker, IMAGE, "bench")
        .await
        .map_err(anyhow::Error::msg)?;
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    for n in sizes {
        println!("N = {n}, {rounds} rounds");
        let (mut raw4, mut raw8, mut ours) = (Vec::new(), Vec::new(), Vec::new());
        let mut last = None;
        for _ in 0..rounds {
            let widths: &[usize] = if std::env::var("WHARF_ONLY").is_ok() {
                &[]
            } else {
                &[4, 8]
            };
            for &width in widths {
                let into = if width == 4 { &mut raw4 } else { &mut raw8 };
                let t = raw_floor(&docker, n, width).await?;
                println!(
                    "  raw create+start, {width} in flight: {:.2}s",
                    t.as_secs_f64()
                );
                into.push(t);
                settle().await;
            }
            let run = wharf_converge(n).await?;
            ours.push(run.converge);
            last = Some(run);
            settle().await;
        }
        if !raw4.is_empty() {
            let (m4, m8, mw) = (median(raw4), median(raw8), median(ours));
            let (width, floor) = if m4 <= m8 { (4, m4) } else { (8, m8) };
            println!(
                "  medians: raw@4 {:.2}s, raw@8 {:.2}s, wharf {:.2}s ({:.0} ms/app); wharf / raw@{width} = {:.3}",
                m4.as_secs_f64(),
                m8.as_secs_f64(),
                mw.as_secs_f64(),
                mw.as_secs_f64() * 1000.0 / n as f64,
                mw.as_secs_f64() / floor.as_secs_f64()
            );
        }
        if let Some(run) = last {
            println!(
                "  engine calls of one resync pass over {n} converged apps: {:?}",
                run.pass_calls
            );
            println!("  process RSS with {n} apps: {:.1} MiB", run.rss_mib);
        }
    }
    Ok(())
}
