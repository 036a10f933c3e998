//! Stats sampling cost against the real Docker Engine, and the cost of a day's stats query.
//!
//! 1. Starts wharf in this process with N running apps (default 100) and its own sampler idle.
//! 2. Measures, over `SECONDS` (default 120) each, the CPU of this process (wharf) and of
//!    dockerd, from /proc:
//!    - idle: wharf converged, nothing sampled;
//!    - engine: wharf's sampler at a 10 s interval asking the engine (one list, then one one-shot
//!      stats call per app);
//!    - cgroup files: the same sampler reading the host's cgroup files and /proc (what wharf does
//!      with a local engine).
//! 3. Bytes stored per sample: a day of generated samples for one app, the database file before
//!    and after (VACUUMed).
//! 4. Latency of a 24 h query of one app among 100 apps with a full day of samples each (raw, and
//!    by the minute after rollups), median of 20.
//!
//! Run: `cargo run --release --example bench_stats -- 100` (`SECONDS=60` for shorter phases;
//! `PHASES=files` or `PHASES=idle,engine,storage` for some of them only; the storage
//! phase always runs last).

#[path = "../tests/support/testkit.rs"]
#[allow(dead_code)] // the image helpers the tests use too
mod testkit;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use wharf::reconcile::ControllerConfig;
use wharf::runtime::Runtime;
use wharf::runtime::docker::{Deadlines, DockerRuntime};
use wharf::server::{ServeConfig, Server};
use wharf::stats::{Sampler, StatsConfig};
use wharf::store::{ObjectSource, Resolution, Sample, Store, WriteItem};

const IMAGE: &str = "wharf-bench/busybox:1";
const INSTANCE: &str = "bench-stats";

/// CPU seconds (user + system) of a process, from /proc/PID/stat.
fn cpu_seconds(pid: &str) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command may hold spaces: fields count from after its closing parenthesis.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("odd /proc/{pid}/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / procfs::ticks_per_second() as f64)
}

fn pid_of(name: &str) -> anyhow::Result<String> {
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid.chars().all(|c| c.is_ascii_digit())
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        {
            return Ok(pid);
        }
    }
    anyhow::bail!("no {name} process")
}

/// CPU % of one core of this process and of dockerd while `work` runs for `seconds`.
async fn measure<F: std::future::Future<Output = ()>>(
    dockerd: &str,
    seconds: u64,
    work: F,
) -> anyhow::Result<(f64, f64)> {
    let (me0, d0, t0) = (cpu_seconds("self")?, cpu_seconds(dockerd)?, Instant::now());
    let _ = tokio::time::timeout(Duration::from_secs(seconds), work).await;
    let wall = t0.elapsed().as_secs_f64();
    Ok((
        (cpu_seconds("self")? - me0) / wall * 100.0,
        (cpu_seconds(dockerd)? - d0) / wall * 100.0,
    ))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100);
    let seconds: u64 = std::env::var("SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let phases = std::env::var("PHASES").unwrap_or_else(|_| "idle,engine,files,storage".into());
    let phase = |name: &str| phases.split(',').any(|p| p.trim() == name);
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    testkit::import_busybox(&docker, IMAGE, "bench")
        .await
        .map_err(anyhow::Error::msg)?;
    testkit::remove_containers(&docker, &format!("wharf.instance={INSTANCE}"), |_| true)
        .await
        .map_err(anyhow::Error::msg)?;
    let dockerd = pid_of("dockerd")?;

    let dir = tempfile::tempdir()?;
    let mut config = ServeConfig::new(dir.path().to_path_buf());
    config.specs_dir = None;
    config.listen = "127.0.0.1:0".parse()?;
    config.controller = ControllerConfig {
        instance: INSTANCE.into(),
        ..ControllerConfig::default()
    };
    // wharf's own sampler idles; the phases below sample on purpose.
    config.stats.interval = Duration::from_secs(24 * 3600);
    let server = Server::start(config).await?;
    let mut bundle = String::new();
    for i in 0..n {
        bundle += &format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: s{i}, namespace: bench}}\nspec:\n  image: {IMAGE}\n  command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]\n  stopGracePeriod: 1s\n---\n"
        );
    }
    testkit::apply_bundle(server.addr, &server.token, bundle)
        .await
        .map_err(anyhow::Error::msg)?;
    let took = testkit::wait_running(&server.store, "bench", n, Duration::from_secs(300))
        .await
        .map_err(anyhow::Error::msg)?;
    println!(
        "{n} apps running after {:.1}s; phases of {seconds}s each",
        took.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    if phase("idle") {
        let (idle_me, idle_d) = measure(&dockerd, seconds, std::future::pending()).await?;
        println!(
            "idle (converged, nothing sampled): wharf {idle_me:.2}% · dockerd {idle_d:.2}% of one core"
        );
    }

    let mut figures = Vec::new();
    for (source, files) in [("engine one-shot stats", false), ("cgroup files", true)] {
        if !phase(if files { "files" } else { "engine" }) {
            continue;
        }
        let docker_runtime = DockerRuntime::connect_local(Deadlines::default());
        let runtime: Arc<dyn Runtime> = Arc::new(if files {
            docker_runtime
        } else {
            docker_runtime.without_cgroup_files()
        });
        runtime.ping().await?;
        let sampler = Sampler::new(
            server.store.clone(),
            Arc::clone(&runtime),
            INSTANCE.into(),
            StatsConfig::default(),
        );
        // A first round primes the readings (and the cgroup reader's process ids, one inspect
        // per container): what a sampler does once, at its start.
        let t = Instant::now();
        sampler
            .sample_once()
            .await
            .map_err(|e| anyhow::anyhow!("{source}: priming round: {e}"))?;
        println!(
            "  {source}: priming round in {:.0} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
        // Rounds that ended within the phase, and their samples: a round that cannot finish
        // within the interval shows here rather than as a low CPU figure.
        let done = std::sync::Mutex::new((0usize, 0usize));
        let rounds = async {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let t = Instant::now();
                match sampler.sample_once().await {
                    Ok(k) => {
                        println!(
                            "  {source}: {k} samples in {:.0} ms",
                            t.elapsed().as_secs_f64() * 1000.0
                        );
                        let mut done = done.lock().unwrap_or_else(|p| p.into_inner());
                        done.0 += 1;
                        done.1 += k;
                    }
                    Err(e) => println!("  {source}: round failed: {e}"),
                }
            }
        };
        let (me, d) = measure(&dockerd, seconds, rounds).await?;
        let (rounds, samples) = *done.lock().unwrap_or_else(|p| p.into_inner());
        println!(
            "{source}, every 10 s: wharf {me:.2}% · dockerd {d:.2}% of one core ({rounds} rounds ended in {seconds} s, {samples} samples)"
        );
        figures.push((source, me, d));
    }
    if let [(_, _, engine), (_, _, files)] = figures.as_slice() {
        println!(
            "dockerd spends {:.1}x as much CPU on engine stats calls as on wharf reading cgroup files",
            engine / files.max(0.001)
        );
    }
    server.shutdown().await;
    testkit::remove_containers(&docker, &format!("wharf.instance={INSTANCE}"), |_| true)
        .await
        .map_err(anyhow::Error::msg)?;
    if !phase("storage") {
        return Ok(());
    }

    // Bytes per sample and a day's query.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("stats.db");
    let store = Store::open(&path).await?;
    let size = |p: &PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let now = chrono::Utc::now().timestamp_millis();
    let day: Vec<i64> = (0..8640).map(|i| now - 86_400_000 + i * 10_000).collect();
    let samples = |uid: &str| -> Vec<Sample> {
        day.iter()
            .enumerate()
            .map(|(i, t)| Sample {
                uid: uid.into(),
                task: String::new(),
                t: *t,
                cpu: (i % 100) as f64 * 0.7,
                mem: 50_000_000 + (i as i64 % 1000) * 4096,
                mem_limit: 268_435_456,
                mem_max: 60_000_000,
                net_rx: i as i64 * 1500,
                net_tx: i as i64 * 900,
                blk_read: 4_096_000,
                blk_write: i as i64 * 8192,
                pids: 3,
            })
            .collect()
    };
    // Samples are stored only for objects that exist: declare the apps first.
    let mut bundle = String::new();
    for i in 0..n {
        bundle += &format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: q{i}, namespace: bench}}\nspec: {{image: '{IMAGE}'}}\n---\n"
        );
    }
    let documents = wharf::spec::read_bundle(&bundle, wharf::spec::Format::Yaml, None)
        .map_err(|e| anyhow::anyhow!("bench bundle: {e:?}"))?;
    let items: Vec<WriteItem> = documents.iter().map(WriteItem::new).collect();
    let uids: Vec<String> = store
        .apply(&items, &ObjectSource::Api)
        .await?
        .into_iter()
        .map(|(_, record)| record.uid)
        .collect();
    store.vacuum().await?;
    let empty = size(&path);
    let uid0 = uids[0].clone();
    store.insert_samples(&samples(&uid0)).await?;
    store.vacuum().await?;
    let per_sample = (size(&path) - empty) as f64 / day.len() as f64;
    anyhow::ensure!(
        store
            .stats_series(&uid0, "", now - 86_400_000, now + 1, Resolution::Raw)
            .await?
            .len()
            == day.len(),
        "the day's samples were not all stored"
    );
    println!(
        "storage: {per_sample:.1} bytes per raw sample (a day of one app: {} samples)",
        day.len()
    );
    for uid in &uids[1..] {
        store.insert_samples(&samples(uid)).await?;
    }
    let t = Instant::now();
    store.roll_up(now - 86_400_000, now).await?;
    println!(
        "rollup of {} apps' day: {:.2}s",
        n,
        t.elapsed().as_secs_f64()
    );
    for resolution in [Resolution::Raw, Resolution::Minute] {
        let mut times = Vec::new();
        let mut points = 0;
        for _ in 0..20 {
            let t = Instant::now();
            points = store
                .stats_series(&uid0, "", now - 86_400_000, now + 1, resolution)
                .await?
                .len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "24 h query of one app among {n} ({} rows in all), {resolution:?}: {points} points, median {:.2} ms",
            n * day.len(),
            median(times)
        );
    }
    Ok(())
}
