//! Test harness: a real Docker Engine, locally built images, and wharf servers started
//! in-process with their own data directory, watched directory, instance label and namespace.
//!
//! Each test uses its own namespace (container names are `{namespace}.{app}` on the engine) and
//! its own instance label, removes its containers by label when it ends, and keeps wharf's
//! default bound of 4 container operations in flight.

#![allow(dead_code)]

pub mod openapi;
pub mod registry;
pub mod stall;
pub mod swarm;
pub mod testkit;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerInspectResponse;
use bollard::query_parameters::ListContainersOptions;
use serde_json::Value;
use tokio::sync::OnceCell;
use wharf::reconcile::ControllerConfig;
use wharf::server::{ServeConfig, Server};

pub const IMAGE_V1: &str = "wharf-test/busybox:1";
pub const IMAGE_V2: &str = "wharf-test/busybox:2";
/// A shell loop that stops promptly on SIGTERM, so stops do not wait for the grace period.
pub const SLEEPER: &str = r#"["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]"#;

/// A client for the local engine; fails the test with a clear message if there is none.
pub async fn docker() -> Docker {
    let docker = Docker::connect_with_local_defaults().expect("Docker client");
    match docker.negotiate_version().await {
        Ok(d) => d,
        Err(e) => panic!(
            "these tests need a running Docker Engine (install docker.io and start dockerd; .ci/run does both): {e}"
        ),
    }
}

static IMAGES: OnceCell<()> = OnceCell::const_new();

/// Builds the two test images (a static busybox rootfs; `:2` differs by /VERSION) once.
pub async fn images() {
    IMAGES
        .get_or_init(|| async {
            let docker = docker().await;
            for (reference, version) in [(IMAGE_V1, "1"), (IMAGE_V2, "2")] {
                if let Err(e) = testkit::import_busybox(&docker, reference, version).await {
                    panic!("{e}");
                }
            }
        })
        .await;
}

/// A wharf server for one test.
pub struct Harness {
    pub server: Option<Server>,
    pub data: tempfile::TempDir,
    pub specs: tempfile::TempDir,
    pub namespace: String,
    pub instance: String,
    pub http: reqwest::Client,
    config: ServeConfig,
    /// Swarm mode: the manager's engine (else the local default engine, solo mode).
    engine: Option<std::sync::Arc<wharf::runtime::docker::DockerRuntime>>,
}

impl Harness {
    /// Starts wharf for test `name` (also its namespace: lower-case letters, digits, '-').
    pub async fn start(name: &str) -> Self {
        Self::start_with(name, |_| {}).await
    }

    /// Starts wharf for test `name` with `configure` applied to its configuration.
    pub async fn start_with(name: &str, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        images().await;
        let data = tempfile::tempdir().expect("tempdir");
        let specs = tempfile::tempdir().expect("tempdir");
        let instance = format!("test-{name}-{}", std::process::id());
        let mut config = ServeConfig::new(data.path().to_path_buf());
        config.specs_dir = Some(specs.path().to_path_buf());
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.controller = ControllerConfig {
            instance: instance.clone(),
            resync: Duration::from_secs(5),
            max_ops: 4,
            ..ControllerConfig::default()
        };
        config.max_body = 64 * 1024;
        configure(&mut config);
        let mut harness = Self {
            server: None,
            data,
            specs,
            namespace: name.to_string(),
            instance,
            http: reqwest::Client::new(),
            config,
            engine: None,
        };
        harness.remove_earlier_runs(name).await;
        harness.server = Some(
            Server::start(harness.config.clone())
                .await
                .expect("wharf starts"),
        );
        harness
    }

    /// Starts wharf in swarm mode against the manager of `cluster`, for test `name`.
    pub async fn start_swarm(name: &str, cluster: &swarm::Cluster) -> Self {
        Self::start_swarm_with(name, cluster, |_| {}).await
    }

    /// Starts wharf in solo mode against node 1 of `cluster` (a private engine the test may
    /// stop and start), for test `name`.
    pub async fn start_private(name: &str, cluster: &swarm::Cluster) -> Self {
        Self::start_on_engine(name, cluster.manager_runtime(), |_| {}).await
    }

    /// `start_swarm` with `configure` applied to the configuration.
    pub async fn start_swarm_with(
        name: &str,
        cluster: &swarm::Cluster,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        Self::start_on_engine(name, cluster.manager_runtime(), |config| {
            config.mode = wharf::spec::mode::Mode::Swarm;
            configure(config);
        })
        .await
    }

    /// Starts wharf (solo mode unless `configure` says otherwise) against `engine`, for test
    /// `name`.
    pub async fn start_on_engine(
        name: &str,
        engine: std::sync::Arc<wharf::runtime::docker::DockerRuntime>,
        configure: impl FnOnce(&mut ServeConfig),
    ) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let specs = tempfile::tempdir().expect("tempdir");
        let instance = format!("test-{name}-{}", std::process::id());
        let mut config = ServeConfig::new(data.path().to_path_buf());
        config.specs_dir = Some(specs.path().to_path_buf());
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.controller = ControllerConfig {
            instance: instance.clone(),
            resync: Duration::from_secs(5),
            max_ops: 4,
            ..ControllerConfig::default()
        };
        configure(&mut config);
        let server = Server::start_on(config.clone(), std::sync::Arc::clone(&engine))
            .await
            .expect("wharf starts on the test's engine");
        Self {
            server: Some(server),
            data,
            specs,
            namespace: name.to_string(),
            instance,
            http: reqwest::Client::new(),
            config,
            engine: Some(engine),
        }
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("server running")
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await;
        }
    }

    /// Stops and starts wharf on the same data directory and the same address (clients that
    /// reconnect find it again).
    pub async fn restart_keeping_address(&mut self) {
        self.config.listen = self.server().addr;
        self.restart().await;
    }

    /// Stops and starts wharf on the same data directory (a new port).
    pub async fn restart(&mut self) {
        self.stop().await;
        let server = match &self.engine {
            Some(engine) => {
                Server::start_on(self.config.clone(), std::sync::Arc::clone(engine)).await
            }
            None => Server::start(self.config.clone()).await,
        };
        self.server = Some(server.expect("wharf restarts"));
    }

    /// Waits for `n` more complete passes of the loop, asking for each: every one observes
    /// everything and plans from it, so what has not happened after them is not going to (no
    /// fixed sleep standing in for "long enough").
    pub async fn settle(&self, n: u64) {
        let controller = &self.server().controller;
        for _ in 0..n {
            let before = controller.health().borrow().passes;
            controller.nudge();
            wait_for("a pass of the loop", Duration::from_secs(60), || async {
                (controller.health().borrow().passes > before).then_some(())
            })
            .await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server().addr)
    }

    pub fn token(&self) -> String {
        self.server().token.clone()
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: &str,
        body: Option<String>,
    ) -> (u16, Value) {
        let mut r = self
            .http
            .request(method.clone(), self.url(path))
            .bearer_auth(self.token())
            .header("content-type", content_type);
        if let Some(b) = body {
            r = r.body(b);
        }
        let response = r.send().await.expect("request");
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.bytes().await.expect("response body");
        openapi::check(
            method.as_str(),
            path,
            status,
            content_type.as_deref(),
            &bytes,
        );
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// GET `path` (from `/api/v1/…`).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.request(reqwest::Method::GET, path, "application/json", None)
            .await
    }

    /// POST /api/v1/apply with a YAML body.
    pub async fn apply(&self, yaml: &str) -> (u16, Value) {
        self.request(
            reqwest::Method::POST,
            "/api/v1/apply",
            "application/yaml",
            Some(yaml.to_string()),
        )
        .await
    }

    pub async fn patch(&self, app: &str, json: &str) -> (u16, Value) {
        let path = format!("/api/v1/namespaces/{}/apps/{app}", self.namespace);
        self.request(
            reqwest::Method::PATCH,
            &path,
            "application/merge-patch+json",
            Some(json.to_string()),
        )
        .await
    }

    pub async fn delete(&self, app: &str) -> (u16, Value) {
        let path = format!("/api/v1/namespaces/{}/apps/{app}", self.namespace);
        self.request(reqwest::Method::DELETE, &path, "application/json", None)
            .await
    }

    /// The app's events, oldest first.
    pub async fn events(&self, app: &str) -> Vec<Value> {
        let path = format!("/api/v1/namespaces/{}/apps/{app}/events", self.namespace);
        let (_, body) = self
            .request(reqwest::Method::GET, &path, "application/json", None)
            .await;
        body["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn get_app(&self, app: &str) -> Option<Value> {
        let path = format!("/api/v1/namespaces/{}/apps/{app}", self.namespace);
        let (status, body) = self
            .request(reqwest::Method::GET, &path, "application/json", None)
            .await;
        (status == 200).then_some(body)
    }

    /// An App document in this test's namespace. `spec` is indented YAML under `spec:`.
    pub fn app_yaml(&self, name: &str, spec: &str) -> String {
        format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata:\n  name: {name}\n  namespace: {}\nspec:\n{spec}",
            self.namespace
        )
    }

    /// Minimal running app spec lines.
    pub fn sleeper_spec(image: &str) -> String {
        format!("  image: {image}\n  command: {SLEEPER}\n  stopGracePeriod: 2s\n")
    }

    /// An App of this test's namespace running the stopping-promptly shell loop in `IMAGE_V1`,
    /// with `extra` spec lines (each indented two spaces, ending in a newline).
    pub fn sleeper_app(&self, name: &str, extra: &str) -> String {
        self.app_yaml(name, &format!("{}{extra}", Self::sleeper_spec(IMAGE_V1)))
    }

    pub fn container_name(&self, app: &str) -> String {
        format!("{}.{app}", self.namespace)
    }

    pub async fn inspect(&self, app: &str) -> Option<ContainerInspectResponse> {
        docker()
            .await
            .inspect_container(&self.container_name(app), None)
            .await
            .ok()
    }

    pub async fn container_id(&self, app: &str) -> Option<String> {
        self.inspect(app).await.and_then(|c| c.id)
    }

    /// This instance's containers (any state).
    pub async fn containers(&self) -> Vec<bollard::models::ContainerSummary> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("wharf.instance={}", self.instance)],
        )]);
        docker()
            .await
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .expect("list")
    }

    /// Waits until `app` is Ready at its current generation; returns the document.
    pub async fn wait_ready(&self, app: &str) -> Value {
        self.wait_ready_at(app, None).await
    }

    /// Waits until `app` is Ready at `generation` (its current one when `None`).
    pub async fn wait_ready_at(&self, app: &str, generation: Option<i64>) -> Value {
        self.wait_ready_within(app, generation, Duration::from_secs(30))
            .await
    }

    /// Waits up to `timeout` until `app` is Ready at `generation` (its current one when
    /// `None`).
    pub async fn wait_ready_within(
        &self,
        app: &str,
        generation: Option<i64>,
        timeout: Duration,
    ) -> Value {
        let ready = poll_until(timeout, || async {
            let doc = self.get_app(app).await?;
            let current = doc.pointer("/metadata/generation")?.as_i64()?;
            if generation.is_some_and(|g| g != current) {
                return None;
            }
            let ready = doc
                .pointer("/status/conditions")?
                .as_array()?
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            let observed = doc
                .pointer("/status/observedGeneration")
                .and_then(Value::as_i64);
            (ready && observed == Some(current)).then_some(doc)
        })
        .await;
        match ready {
            Some(doc) => doc,
            None => panic!(
                "timed out waiting for {app} to be ready; last seen: {:#}",
                self.get_app(app).await.unwrap_or_default()
            ),
        }
    }

    pub async fn wait_state(&self, app: &str, state: &str) -> ContainerInspectResponse {
        wait_for(
            &format!("{app} {state}"),
            Duration::from_secs(30),
            || async {
                let c = self.inspect(app).await?;
                let status = c.state.as_ref()?.status?.to_string();
                (status == state).then_some(c)
            },
        )
        .await
    }

    pub fn write_spec(&self, file: &str, text: &str) -> PathBuf {
        let path = self.specs.path().join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        // Write then rename, as editors do.
        let tmp = path.with_extension("tmp~");
        std::fs::write(&tmp, text).expect("write spec");
        std::fs::rename(&tmp, &path).expect("rename spec");
        path
    }

    /// Removes what an earlier, interrupted run of the same test left behind: instances named
    /// `test-{name}-{pid}` exactly, never those of a test whose name only starts the same way
    /// (`t-cli` must not remove the containers of `t-cli-set` running beside it).
    async fn remove_earlier_runs(&self, name: &str) {
        let prefix = format!("test-{name}-");
        testkit::remove_containers(&docker().await, "wharf.managed-by=wharf", |labels| {
            labels
                .get("wharf.instance")
                .and_then(|i| i.strip_prefix(&prefix))
                .is_some_and(|pid| pid.parse::<u32>().is_ok())
        })
        .await
        .expect("remove earlier runs' containers");
    }

    pub async fn remove_containers(&self) {
        let label = format!("wharf.instance={}", self.instance);
        testkit::remove_containers(&docker().await, &label, |_| true)
            .await
            .expect("remove the test's containers");
    }

    /// Stops wharf and removes this test's containers.
    pub async fn finish(mut self) {
        self.stop().await;
        self.remove_containers().await;
    }
}

/// Parses a Prometheus text exposition; fails the test if it does not parse.
pub fn parse_metrics(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{text}"))
}

/// The value of `metric` with `labels` (all of them must match) in a scrape.
pub fn metric_value(
    scrape: &prometheus_parse::Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(v),
            _ => None,
        })
}

/// Polls `f` every 100 ms until it returns `Some`, or panics naming `what`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    match poll_until(timeout, f).await {
        Some(v) => v,
        None => panic!("timed out after {}s waiting for {what}", timeout.as_secs()),
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or `None` after `timeout`.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The first block device of the host, for blkio limits.
pub fn block_device() -> String {
    let mut names: Vec<String> = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram"))
        .collect();
    names.sort();
    let name = names
        .first()
        .expect("a block device under /sys/block for blkio tests");
    format!("/dev/{name}")
}
