//! Scratch: the CPU cost of a converged pass over N apps, against the fake runtime.
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
    let state = std::env::var("STATE").unwrap_or_else(|_| "running".into());
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
        .map(|i| format!("---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: app{i}, namespace: bench}}\nspec:\n  image: busybox:1\n  command: [sleep, '1000']\n  state: {state}\n  resources: {{memory: 32Mi, cpus: 0.1}}\n"))
        .collect();
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/apply", server.addr))
        .bearer_auth(&server.token)
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success());
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
