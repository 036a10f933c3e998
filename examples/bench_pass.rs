//! wharf's own CPU cost of a converged pass over N apps (default 1000), without an engine: the
//! in-memory runtime answers the listing, so what is timed is reading the store, building the
//! desired state, planning and computing statuses. `bench_converge` times the same pass
//! against the real engine, whose listing of the containers is then most of it.
//!
//! Run: `cargo run --release --example bench_pass -- 1000` (`STATE=running`, `PASSES=300`;
//! `RUST_LOG=wharf::reconcile=debug` prints each pass's phases).
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf::reconcile::ControllerConfig;
use wharf::runtime::fake::FakeRuntime;
use wharf::server::{ServeConfig, Server};
use wharf::spec::Kind;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let state = std::env::var("STATE").unwrap_or_else(|_| "stopped".into());
    let fake = Arc::new(FakeRuntime::default());
    fake.add_image("busybox:1");
    let data = tempfile::tempdir()?;
    let mut config = ServeConfig::new(data.path().to_path_buf());
    config.specs_dir = None;
    config.listen = "127.0.0.1:0".parse()?;
    config.controller = ControllerConfig {
        resync: Duration::from_secs(3600),
        ..ControllerConfig::default()
    };
    let server = Server::start_with(config, fake.clone()).await?;
    let yaml: String = (0..n)
        .map(|i| format!("---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: app{i}, namespace: bench}}\nspec:\n  image: busybox:1\n  command: [sleep, '1000']\n  state: {state}\n  resources: {{memory: 6Mi, cpus: 0.1}}\n"))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/apply", server.addr))
        .bearer_auth(&server.token)
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await?;
    let status = r.status();
    anyhow::ensure!(status.is_success(), "apply: {status} {}", r.text().await?);
    loop {
        let records = server.store.list(Kind::App, Some("bench")).await?;
        let ready = records
            .iter()
            .filter(|r| r.app_status().is_some_and(|s| s.is_ready_at(r.generation)))
            .count();
        if ready == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut times = Vec::new();
    let passes: usize = std::env::var("PASSES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    for _ in 0..passes {
        let t = Instant::now();
        server.controller.pass().await;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "{n} apps ({state}): converged pass median {:?}, min {:?}",
        times[times.len() / 2],
        times[0]
    );
    Ok(())
}
