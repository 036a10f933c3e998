//! An in-memory runtime that records every call, for planner and loop tests.
//!
//! It models just enough of Docker (states, labels, limits, names unique, events) for the loop
//! to converge against it, and lets tests inject failures, hangs and drift. It is never the only
//! proof of a behaviour: the real-engine tests under `tests/` cover what users rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::broadcast;

use super::{
    ContainerDetails, ContainerState, ContainerStats, ContainerSummary, CreateSpec, ExecOutput,
    ImageSummary, LogChunk, LogOptions, ObservedLimits, PullProgress, RegistryCredentials, Runtime,
    RuntimeError, RuntimeEvent, RuntimeResult, labels,
};
use crate::spec::image::canonical_reference;
use crate::spec::validate::Limits;

/// The memory the fake engine reports: 8 GiB.
pub const FAKE_HOST_MEMORY: i64 = 8 << 30;

#[derive(Default)]
struct State {
    containers: BTreeMap<String, (ContainerSummary, ContainerDetails)>,
    volumes: BTreeSet<String>,
    /// By canonical reference.
    images: BTreeMap<String, ImageSummary>,
    calls: Vec<Call>,
    next_id: u64,
    failures: Vec<(Op, String, RuntimeError)>,
    hangs: Vec<(Op, String)>,
    down: bool,
    stats_readings: u64,
}

/// Which engine call the fake received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Info,
    Ping,
    List,
    Inspect,
    InspectRaw,
    Volume,
    Create,
    Start,
    Stop,
    Pause,
    Unpause,
    Update,
    Remove,
    Restart,
    Kill,
    Exec,
    Stats,
    RemoveVolume,
    Rename,
    Images,
    Pull,
    RemoveImage,
    ContainersUsing,
}

/// One call the fake received: the operation and what it named (a container id or name, an
/// image reference, the instance of a listing; a kill adds its signal, an exec its argv).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub target: String,
}

impl Call {
    /// Whether this is an `op` call whose target starts with `target`.
    pub fn is(&self, op: Op, target: &str) -> bool {
        self.op == op && self.target.starts_with(target)
    }
}

pub struct FakeRuntime {
    state: Mutex<State>,
    events: broadcast::Sender<RuntimeEvent>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self {
            state: Mutex::new(State::default()),
            events: broadcast::channel(1024).0,
        }
    }
}

impl FakeRuntime {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in another test thread must not hide this test's result.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// All containers, any owner.
    pub fn containers(&self) -> Vec<ContainerSummary> {
        self.lock()
            .containers
            .values()
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// The next `op` call whose target starts with `target` fails with `error`.
    pub fn fail_next(&self, op: Op, target: &str, error: RuntimeError) {
        self.lock().failures.push((op, target.to_string(), error));
    }

    /// `op` calls whose target starts with `target` never answer.
    pub fn hang(&self, op: Op, target: &str) {
        self.lock().hangs.push((op, target.to_string()));
    }

    /// Makes every call fail as if the engine were gone (or back).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Puts an image in the engine as if it had been pulled or loaded; returns its id.
    pub fn add_image(&self, reference: &str) -> String {
        let canonical = canonical_reference(reference).unwrap_or_else(|_| reference.to_string());
        let mut s = self.lock();
        s.next_id += 1;
        let id = format!("sha256:{:064x}", s.next_id);
        s.images.insert(
            canonical,
            ImageSummary {
                id: id.clone(),
                repo_tags: vec![reference.to_string()],
                ..ImageSummary::default()
            },
        );
        id
    }

    /// Simulates `docker stop`/`docker kill` behind wharf's back.
    pub fn external_exit(&self, id: &str, exit_code: i64) {
        let mut s = self.lock();
        if let Some((sum, det)) = s.containers.get_mut(id) {
            sum.state = ContainerState::Exited;
            det.exit_code = Some(exit_code);
        }
        drop(s);
        self.emit(id, "die");
    }

    fn emit(&self, id: &str, action: &str) {
        let attributes = self
            .lock()
            .containers
            .get(id)
            .map(|(s, _)| s.labels.clone())
            .unwrap_or_default();
        let _ignored_when_nobody_listens = self.events.send(RuntimeEvent {
            id: id.to_string(),
            action: action.to_string(),
            image: false,
            time_ms: chrono::Utc::now().timestamp_millis(),
            attributes,
        });
    }

    async fn enter(&self, op: Op, target: &str) -> RuntimeResult<()> {
        let call = Call {
            op,
            target: target.to_string(),
        };
        let (hang, result) = {
            let mut s = self.lock();
            s.calls.push(call.clone());
            if s.down {
                return Err(RuntimeError::Unavailable("fake engine is down".into()));
            }
            let hang = s.hangs.iter().any(|(o, t)| call.is(*o, t));
            let failure = s.failures.iter().position(|(o, t, _)| call.is(*o, t));
            (hang, failure.map(|i| s.failures.remove(i).2))
        };
        if hang {
            std::future::pending::<()>().await;
        }
        match result {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn with<T>(
        &self,
        id: &str,
        f: impl FnOnce(&mut ContainerSummary, &mut ContainerDetails) -> RuntimeResult<T>,
    ) -> RuntimeResult<T> {
        let mut s = self.lock();
        match s.containers.get_mut(id) {
            Some((sum, det)) => f(sum, det),
            None => Err(RuntimeError::NotFound(format!("No such container: {id}"))),
        }
    }
}

fn observed(limits: &Limits) -> ObservedLimits {
    ObservedLimits {
        memory: limits.memory.unwrap_or(0),
        memory_swap: limits.memory_swap.unwrap_or(0),
        nano_cpus: limits.nano_cpus.unwrap_or(0),
        pids: limits.pids.unwrap_or(0),
        restart: limits.restart.docker_name().to_string(),
    }
}

#[async_trait]
impl Runtime for FakeRuntime {
    async fn host_memory(&self) -> RuntimeResult<i64> {
        self.enter(Op::Info, "").await?;
        Ok(FAKE_HOST_MEMORY)
    }

    async fn ping(&self) -> RuntimeResult<String> {
        self.enter(Op::Ping, "").await?;
        Ok("fake".into())
    }

    async fn list(&self, instance: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.enter(Op::List, instance).await?;
        Ok(self
            .lock()
            .containers
            .values()
            .filter(|(s, _)| {
                s.labels.get(labels::MANAGED_BY).map(String::as_str)
                    == Some(labels::MANAGED_BY_VALUE)
                    && s.labels.get(labels::INSTANCE).map(String::as_str) == Some(instance)
            })
            .map(|(s, _)| s.clone())
            .collect())
    }

    async fn inspect(&self, id: &str) -> RuntimeResult<ContainerDetails> {
        self.enter(Op::Inspect, id).await?;
        self.with(id, |s, d| {
            Ok(ContainerDetails {
                state: Some(s.state),
                ..d.clone()
            })
        })
    }

    async fn ensure_volume(&self, name: &str, _: &BTreeMap<String, String>) -> RuntimeResult<()> {
        self.enter(Op::Volume, name).await?;
        self.lock().volumes.insert(name.to_string());
        Ok(())
    }

    async fn create(&self, spec: &CreateSpec) -> RuntimeResult<String> {
        self.enter(Op::Create, &spec.name).await?;
        let mut s = self.lock();
        if s.containers.values().any(|(c, _)| c.name == spec.name) {
            return Err(RuntimeError::Conflict(format!(
                "name {} is already in use",
                spec.name
            )));
        }
        let image_id = canonical_reference(&spec.config.image)
            .ok()
            .and_then(|r| s.images.get(&r))
            .map(|i| i.id.clone())
            .ok_or_else(|| {
                RuntimeError::NotFound(format!("No such image: {}", spec.config.image))
            })?;
        s.next_id += 1;
        let id = format!("c{:04}", s.next_id);
        s.containers.insert(
            id.clone(),
            (
                ContainerSummary {
                    id: id.clone(),
                    name: spec.name.clone(),
                    image: spec.config.image.clone(),
                    image_id,
                    state: ContainerState::Created,
                    labels: spec.labels.clone(),
                    created: 0,
                    health: None,
                },
                ContainerDetails {
                    limits: observed(&spec.limits),
                    ..ContainerDetails::default()
                },
            ),
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> RuntimeResult<()> {
        self.enter(Op::Start, id).await?;
        self.with(id, |s, d| {
            s.state = ContainerState::Running;
            d.exit_code = None;
            Ok(())
        })?;
        self.emit(id, "start");
        Ok(())
    }

    async fn stop(&self, id: &str, _: Option<u64>) -> RuntimeResult<()> {
        self.enter(Op::Stop, id).await?;
        self.with(id, |s, d| {
            s.state = ContainerState::Exited;
            d.exit_code = Some(0);
            Ok(())
        })
    }

    async fn pause(&self, id: &str) -> RuntimeResult<()> {
        self.enter(Op::Pause, id).await?;
        self.with(id, |s, _| {
            if s.state != ContainerState::Running {
                return Err(RuntimeError::Conflict(format!(
                    "container {id} is not running"
                )));
            }
            s.state = ContainerState::Paused;
            Ok(())
        })
    }

    async fn unpause(&self, id: &str) -> RuntimeResult<()> {
        self.enter(Op::Unpause, id).await?;
        self.with(id, |s, _| {
            s.state = ContainerState::Running;
            Ok(())
        })
    }

    async fn update(&self, id: &str, limits: &Limits) -> RuntimeResult<()> {
        self.enter(Op::Update, id).await?;
        self.with(id, |_, d| {
            d.limits = observed(limits);
            Ok(())
        })
    }

    async fn remove(&self, id: &str, force: bool) -> RuntimeResult<()> {
        self.enter(Op::Remove, id).await?;
        let mut s = self.lock();
        match s.containers.get(id) {
            Some((c, _)) if c.state == ContainerState::Running && !force => {
                Err(RuntimeError::Conflict(format!("container {id} is running")))
            }
            _ => {
                s.containers.remove(id);
                Ok(())
            }
        }
    }

    async fn restart(&self, id: &str, _: Option<u64>) -> RuntimeResult<()> {
        self.enter(Op::Restart, id).await?;
        self.with(id, |s, d| {
            s.state = ContainerState::Running;
            d.exit_code = None;
            d.restart_count += 1;
            Ok(())
        })?;
        self.emit(id, "restart");
        Ok(())
    }

    async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()> {
        self.enter(Op::Kill, &format!("{id} {signal}")).await?;
        self.with(id, |s, d| {
            if !matches!(s.state, ContainerState::Running | ContainerState::Paused) {
                return Err(RuntimeError::Conflict(format!(
                    "Container {id} is not running"
                )));
            }
            s.state = ContainerState::Exited;
            d.exit_code = Some(137);
            Ok(())
        })?;
        self.emit(id, "die");
        Ok(())
    }

    /// The fake's containers have no programs: every command is "not found", as Docker says it.
    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        _: Option<&str>,
        _: std::time::Duration,
    ) -> RuntimeResult<ExecOutput> {
        self.enter(Op::Exec, &format!("{id} {}", argv.join(" ")))
            .await?;
        self.with(id, |_, _| Ok(()))?;
        Ok(ExecOutput {
            exit_code: 127,
            stdout: String::new(),
            stderr: format!(
                "OCI runtime exec failed: exec: \"{}\": executable file not found in $PATH",
                argv.first().map(String::as_str).unwrap_or_default()
            ),
        })
    }

    /// Counters that grow by a fixed step per reading: half a core of a 2-CPU host, 1 MiB of
    /// memory more each time.
    async fn stats(&self, id: &str) -> RuntimeResult<ContainerStats> {
        self.enter(Op::Stats, id).await?;
        let mut s = self.lock();
        s.stats_readings += 1;
        let n = s.stats_readings;
        drop(s);
        self.with(id, |sum, _| {
            if sum.state != ContainerState::Running {
                return Err(RuntimeError::Conflict(format!(
                    "container {id} is not running"
                )));
            }
            Ok(ContainerStats {
                read_at_ms: n as i64 * 10_000,
                cpu_total_ns: n * 5_000_000_000,
                system_cpu_ns: n * 20_000_000_000,
                online_cpus: 2,
                mem_usage: n << 20,
                mem_limit: 1 << 30,
                ..ContainerStats::default()
            })
        })
    }

    async fn inspect_raw(&self, id: &str) -> RuntimeResult<serde_json::Value> {
        self.enter(Op::InspectRaw, id).await?;
        self.with(id, |s, _| {
            Ok(serde_json::json!({
                "Id": s.id,
                "Name": format!("/{}", s.name),
                "State": {"Status": s.state},
                "Config": {"Image": s.image, "Labels": s.labels},
            }))
        })
    }

    fn logs(&self, id: &str, _: &LogOptions) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        let known = self.lock().containers.contains_key(id);
        let item = if known {
            Ok(LogChunk {
                stderr: false,
                data: bytes::Bytes::from(format!("log of {id}\n")),
            })
        } else {
            Err(RuntimeError::NotFound(format!("No such container: {id}")))
        };
        futures::stream::iter([item]).boxed()
    }

    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        self.enter(Op::RemoveVolume, name).await?;
        self.lock().volumes.remove(name);
        Ok(())
    }

    async fn rename(&self, id: &str, name: &str) -> RuntimeResult<()> {
        self.enter(Op::Rename, id).await?;
        let mut s = self.lock();
        if s.containers
            .iter()
            .any(|(i, (c, _))| c.name == name && i != id)
        {
            return Err(RuntimeError::Conflict(format!(
                "name {name} is already in use"
            )));
        }
        match s.containers.get_mut(id) {
            // As Docker: renaming to the current name is an error.
            Some((c, _)) if c.name == name => Err(RuntimeError::Engine {
                op: "rename container",
                status: 400,
                message: "Renaming a container with the same name as its current name".into(),
            }),
            Some((c, _)) => {
                c.name = name.to_string();
                Ok(())
            }
            None => Err(RuntimeError::NotFound(format!("No such container: {id}"))),
        }
    }

    async fn images(&self) -> RuntimeResult<Vec<ImageSummary>> {
        self.enter(Op::Images, "").await?;
        Ok(self.lock().images.values().cloned().collect())
    }

    async fn pull(
        &self,
        reference: &str,
        _credentials: Option<&RegistryCredentials>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> RuntimeResult<()> {
        self.enter(Op::Pull, reference).await?;
        progress(PullProgress {
            layer: None,
            status: format!("Pulling from {reference}"),
            ..PullProgress::default()
        });
        let canonical = canonical_reference(reference).map_err(|message| RuntimeError::Pull {
            reference: reference.to_string(),
            message,
        })?;
        if !self.lock().images.contains_key(&canonical) {
            self.add_image(reference);
        }
        Ok(())
    }

    async fn remove_image(&self, image: &str, _force: bool) -> RuntimeResult<()> {
        self.enter(Op::RemoveImage, image).await?;
        let mut s = self.lock();
        let before = s.images.len();
        let canonical = canonical_reference(image).ok();
        s.images
            .retain(|r, i| i.id != image && canonical.as_ref() != Some(r));
        if s.images.len() == before {
            return Err(RuntimeError::NotFound(format!("No such image: {image}")));
        }
        Ok(())
    }

    async fn containers_using(&self, image_id: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.enter(Op::ContainersUsing, image_id).await?;
        Ok(self
            .lock()
            .containers
            .values()
            .filter(|(c, _)| c.image_id == image_id)
            .map(|(c, _)| c.clone())
            .collect())
    }

    fn events(&self, _: &str) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        tokio_stream_from(self.events.subscribe())
    }
}

fn tokio_stream_from(
    rx: broadcast::Receiver<RuntimeEvent>,
) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(e) => return Some((Ok(e), rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}
