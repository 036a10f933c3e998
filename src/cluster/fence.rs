//! The fence between this instance and the engine: every write (create, start, stop, update,
//! remove, kill, exec, pull, services, nodes …) is checked against the leader's lease just
//! before it is issued, and refused with `NotLeader` when this instance does not hold it.
//! Reads, logs and event streams pass as they are: every instance may observe.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use super::Leadership;
use crate::runtime::swarm::{
    NodeState, NodeUpdate, ServiceSpec, ServiceState, Swarm, SwarmMembership, TaskState,
};
use crate::runtime::{
    ContainerDetails, ContainerStats, ContainerSummary, CreateSpec, ExecOutput, ImageSummary,
    LogChunk, LogOptions, PullProgress, RegistryCredentials, Runtime, RuntimeEvent, RuntimeResult,
};
use crate::spec::validate::Limits;

/// A runtime whose writes need the lease.
pub struct Fenced<T: ?Sized> {
    inner: Arc<T>,
    leadership: Leadership,
}

impl<T: ?Sized> Fenced<T> {
    pub fn new(inner: Arc<T>, leadership: Leadership) -> Self {
        Self { inner, leadership }
    }
}

#[async_trait]
impl Runtime for Fenced<dyn Runtime> {
    async fn ping(&self) -> RuntimeResult<String> {
        self.inner.ping().await
    }
    async fn host_memory(&self) -> RuntimeResult<i64> {
        self.inner.host_memory().await
    }
    async fn list(&self, instance: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.inner.list(instance).await
    }
    async fn inspect(&self, id: &str) -> RuntimeResult<ContainerDetails> {
        self.inner.inspect(id).await
    }
    async fn ensure_volume(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.ensure_volume(name, labels).await
    }
    async fn create(&self, spec: &CreateSpec) -> RuntimeResult<String> {
        self.leadership.check()?;
        self.inner.create(spec).await
    }
    async fn start(&self, id: &str) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.start(id).await
    }
    async fn stop(&self, id: &str, grace_seconds: Option<u64>) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.stop(id, grace_seconds).await
    }
    async fn pause(&self, id: &str) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.pause(id).await
    }
    async fn unpause(&self, id: &str) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.unpause(id).await
    }
    async fn update(&self, id: &str, limits: &Limits) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.update(id, limits).await
    }
    async fn remove(&self, id: &str, force: bool) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.remove(id, force).await
    }
    async fn restart(&self, id: &str, grace_seconds: Option<u64>) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.restart(id, grace_seconds).await
    }
    async fn kill(&self, id: &str, signal: &str) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.kill(id, signal).await
    }
    async fn exec(
        &self,
        id: &str,
        argv: &[String],
        working_dir: Option<&str>,
        timeout: Duration,
    ) -> RuntimeResult<ExecOutput> {
        self.leadership.check()?;
        self.inner.exec(id, argv, working_dir, timeout).await
    }
    async fn stats(&self, id: &str) -> RuntimeResult<ContainerStats> {
        self.inner.stats(id).await
    }
    async fn stats_many(
        &self,
        ids: Vec<String>,
        concurrency: usize,
    ) -> Vec<(String, RuntimeResult<ContainerStats>)> {
        self.inner.stats_many(ids, concurrency).await
    }
    async fn inspect_raw(&self, id: &str) -> RuntimeResult<serde_json::Value> {
        self.inner.inspect_raw(id).await
    }
    fn logs(&self, id: &str, options: &LogOptions) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        self.inner.logs(id, options)
    }
    async fn remove_volume(&self, name: &str) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.remove_volume(name).await
    }
    async fn rename(&self, id: &str, name: &str) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.rename(id, name).await
    }
    async fn images(&self) -> RuntimeResult<Vec<ImageSummary>> {
        self.inner.images().await
    }
    async fn pull(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
        progress: &(dyn Fn(PullProgress) + Send + Sync),
    ) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.pull(reference, credentials, progress).await
    }
    async fn remove_image(&self, image: &str, force: bool) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.remove_image(image, force).await
    }
    async fn containers_using(&self, image_id: &str) -> RuntimeResult<Vec<ContainerSummary>> {
        self.inner.containers_using(image_id).await
    }
    fn events(&self, instance: &str) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        self.inner.events(instance)
    }
}

#[async_trait]
impl Swarm for Fenced<dyn Swarm> {
    async fn membership(&self) -> RuntimeResult<SwarmMembership> {
        self.inner.membership().await
    }
    async fn services(&self, instance: &str) -> RuntimeResult<Vec<ServiceState>> {
        self.inner.services(instance).await
    }
    async fn tasks(&self, service_ids: &[String]) -> RuntimeResult<Vec<TaskState>> {
        self.inner.tasks(service_ids).await
    }
    async fn create_service(
        &self,
        spec: &ServiceSpec,
        credentials: Option<&RegistryCredentials>,
    ) -> RuntimeResult<String> {
        self.leadership.check()?;
        self.inner.create_service(spec, credentials).await
    }
    async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        force_update: u64,
        credentials: Option<&RegistryCredentials>,
    ) -> RuntimeResult<Vec<String>> {
        self.leadership.check()?;
        self.inner
            .update_service(id, version, spec, force_update, credentials)
            .await
    }
    async fn remove_service(&self, id: &str) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.remove_service(id).await
    }
    async fn nodes(&self) -> RuntimeResult<Vec<NodeState>> {
        self.inner.nodes().await
    }
    async fn node_raw(&self, id: &str) -> RuntimeResult<serde_json::Value> {
        self.inner.node_raw(id).await
    }
    async fn update_node(&self, id: &str, version: u64, update: &NodeUpdate) -> RuntimeResult<()> {
        self.leadership.check()?;
        self.inner.update_node(id, version, update).await
    }
    fn service_logs(
        &self,
        service: &str,
        task: Option<&str>,
        options: &LogOptions,
    ) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        self.inner.service_logs(service, task, options)
    }
    fn swarm_events(&self) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        self.inner.swarm_events()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterConfig;
    use crate::runtime::RuntimeError;
    use crate::runtime::fake::FakeRuntime;

    #[tokio::test]
    async fn writes_without_the_lease_are_refused_and_never_reach_the_engine() {
        let fake = Arc::new(FakeRuntime::default());
        let leadership = Leadership::elected(ClusterConfig {
            id: "b".into(),
            address: "http://b".into(),
            ttl: Duration::from_secs(10),
        });
        let inner: Arc<dyn Runtime> = fake.clone();
        let fenced = Fenced::new(inner, leadership);
        let refused = fenced.kill("some-id", "SIGKILL").await.unwrap_err();
        assert!(matches!(refused, RuntimeError::NotLeader(_)), "{refused}");
        assert!(fenced.remove("some-id", true).await.is_err());
        assert!(fake.calls().is_empty(), "{:?}", fake.calls());
        // Reads pass.
        assert!(fenced.list("t").await.is_ok());
    }
}
