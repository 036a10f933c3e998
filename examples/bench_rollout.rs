//! Image rollout benchmark against the real Docker Engine: N apps of one image (default 100), a
//! new version of the image appears (a local re-tag, what a pull does to the engine's image
//! list), timed until every app runs the new version and is Ready again — once per rollout
//! width given on the command line (default 1, 4 and 10: the Image's
//! `spec.rollout.maxUnavailable`).
//!
//! Each replacement watches its new container for `minReadySeconds` (5 s by default) before the
//! old one goes, so a rollout cannot beat ceil(N / width) × 5 s; the figure printed next to each
//! time is that bound. The most apps seen set aside at once (`.replaced-*` containers, polled
//! every 100 ms) shows the width held.
//!
//! Run: `cargo run --release --example bench_rollout -- 1 4 10` (`N=50` for fewer apps,
//! `MIN_READY=2` for another `minReadySeconds`)

#[path = "../tests/support/testkit.rs"]
#[allow(dead_code)] // the image helpers the tests use too
mod testkit;

use std::time::{Duration, Instant};

use bollard::Docker;
use wharf::reconcile::ControllerConfig;
use wharf::server::{ServeConfig, Server};
use wharf::spec::Kind;
use wharf::spec::status::ConditionStatus;

const V1: &str = "wharf-bench/rollout:v1";
const V2: &str = "wharf-bench/rollout:v2";
const IMAGE: &str = "wharf-bench/rollout:current";
/// Exits at once on SIGTERM (the shell waits on `sleep` in the background), so a stop costs the
/// engine's work, not the app's.
const COMMAND: &[&str] = &[
    "sh",
    "-c",
    "trap 'exit 0' TERM; while true; do sleep 1 & wait $!; done",
];

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn point(docker: &Docker, source: &str) -> anyhow::Result<()> {
    testkit::retag(docker, source, IMAGE)
        .await
        .map_err(anyhow::Error::msg)
}

async fn image_id(docker: &Docker, reference: &str) -> anyhow::Result<String> {
    Ok(docker
        .inspect_image(reference)
        .await?
        .id
        .unwrap_or_default())
}

/// How many of the bench's apps are Ready on `image`.
async fn ready_on(server: &Server, image: &str) -> anyhow::Result<usize> {
    let records = server.store.list(Kind::App, Some("bench")).await?;
    Ok(records
        .iter()
        .filter_map(|r| r.app_status())
        .filter(|s| {
            s.image_id.as_deref() == Some(image)
                && s.condition("Ready")
                    .is_some_and(|c| c.status == ConditionStatus::True)
        })
        .count())
}

struct Rollout {
    took: Duration,
    most_aside: usize,
}

async fn rollout(docker: &Docker, n: usize, width: u32, min_ready: u64) -> anyhow::Result<Rollout> {
    point(docker, V1).await?;
    let (old, new) = (image_id(docker, V1).await?, image_id(docker, V2).await?);
    let instance = format!("bench-rollout-{}-{width}", std::process::id());
    let data = tempfile::tempdir()?;
    let mut config = ServeConfig::new(data.path().to_path_buf());
    config.specs_dir = None;
    config.listen = "127.0.0.1:0".parse()?;
    config.controller = ControllerConfig {
        instance: instance.clone(),
        ..ControllerConfig::default()
    };
    let server = Server::start(config).await?;
    let mut yaml = format!(
        "apiVersion: wharf/v1\nkind: Image\nmetadata: {{name: rollout}}\nspec:\n  ref: {IMAGE}\n  pullPolicy: Never\n  rollout: {{maxUnavailable: {width}}}\n"
    );
    for i in 0..n {
        yaml.push_str(&format!(
            "---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: app{i:03}, namespace: bench}}\nspec:\n  image: {IMAGE}\n  command: {COMMAND:?}\n  update: {{minReadySeconds: {min_ready}}}\n"
        ));
    }
    testkit::apply_bundle(server.addr, &server.token, yaml)
        .await
        .map_err(anyhow::Error::msg)?;
    while ready_on(&server, &old).await? < n {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let label = format!("wharf.instance={instance}");
    let started = Instant::now();
    point(docker, V2).await?;
    let mut most_aside = 0;
    loop {
        let aside = testkit::containers_with(docker, &label)
            .await
            .iter()
            .filter(|c| testkit::set_aside(c))
            .count();
        most_aside = most_aside.max(aside);
        if ready_on(&server, &new).await? == n {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the rollout did not finish within an hour"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    server.shutdown().await;
    testkit::remove_containers(docker, &label, |_| true)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(Rollout { took, most_aside })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let widths: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let widths = if widths.is_empty() {
        vec![1, 4, 10]
    } else {
        widths
    };
    let n: usize = env_or("N", 100);
    let min_ready: u64 = env_or("MIN_READY", 5);
    let docker = Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await?;
    for (reference, version) in [(V1, "rollout-1"), (V2, "rollout-2")] {
        testkit::import_busybox(&docker, reference, version)
            .await
            .map_err(anyhow::Error::msg)?;
    }
    println!(
        "{n} apps of one image, minReadySeconds {min_ready}, max-ops {}",
        ControllerConfig::default().max_ops
    );
    let mut first: Option<Duration> = None;
    for width in widths {
        let r = rollout(&docker, n, width, min_ready).await?;
        let bound = n.div_ceil(width as usize) as f64 * min_ready as f64;
        let speedup = first.map_or(String::new(), |f| {
            format!(
                ", {:.1}x faster than the first width",
                f.as_secs_f64() / r.took.as_secs_f64()
            )
        });
        first.get_or_insert(r.took);
        println!(
            "  width {width:>3}: {:>7.1}s (bound {bound:.0}s = {:.2}x of it; at most {} set aside at once{speedup})",
            r.took.as_secs_f64(),
            r.took.as_secs_f64() / bound,
            r.most_aside,
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    Ok(())
}
