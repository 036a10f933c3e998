//! The Swarm half of the adapter: wharf's `ServiceSpec` to the Engine API's service spec and
//! back, tasks, nodes and swarm events, each call under the common deadline.
//!
//! `service_body` and `read_service` are inverses on every field wharf sets, so a service read
//! back equals the spec it was created from, and anything else is a change made behind
//! wharf's back.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, EndpointSpecModeEnum, HealthConfig, Limit, Mount, MountType, NodeSpec,
    NodeSpecAvailabilityEnum, ResourceObject, Service, ServiceSpec as EngineService,
    ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement,
    TaskSpecPlacementPreferences, TaskSpecPlacementSpread, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use bollard::query_parameters::{
    EventsOptions, ListNodesOptions, ListServicesOptions, ListTasksOptions,
    UpdateNodeOptionsBuilder, UpdateServiceOptions,
};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::super::swarm::{
    NodeState, NodeUpdate, ServiceMode, ServiceMount, ServicePort, ServiceRestart, ServiceSpec,
    ServiceState, ServiceUpdateConfig, Swarm, SwarmMembership, TaskState, UpdateStatus,
};
use super::super::{
    LogChunk, LogOptions, RegistryCredentials, Runtime, RuntimeError, RuntimeEvent, RuntimeResult,
};
use super::DockerRuntime;
use crate::spec::validate::Health;
use crate::spec::wire::{FailureAction, Protocol, UpdateOrder};

fn credentials(c: Option<&RegistryCredentials>) -> Option<DockerCredentials> {
    c.map(|c| DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.clone()),
        serveraddress: Some(c.server.clone()),
        ..Default::default()
    })
}

fn nonempty<T>(v: &[T]) -> Option<Vec<T>>
where
    T: Clone,
{
    (!v.is_empty()).then(|| v.to_vec())
}

fn positive(v: Option<i64>) -> Option<i64> {
    v.filter(|n| *n > 0)
}

fn to_hash(m: &BTreeMap<String, String>) -> HashMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn to_btree(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

fn protocol_to(p: Protocol) -> EndpointPortConfigProtocolEnum {
    match p {
        Protocol::Tcp => EndpointPortConfigProtocolEnum::TCP,
        Protocol::Udp => EndpointPortConfigProtocolEnum::UDP,
        Protocol::Sctp => EndpointPortConfigProtocolEnum::SCTP,
    }
}

fn protocol_from(p: Option<EndpointPortConfigProtocolEnum>) -> Protocol {
    match p {
        Some(EndpointPortConfigProtocolEnum::UDP) => Protocol::Udp,
        Some(EndpointPortConfigProtocolEnum::SCTP) => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

/// The Engine API's service spec for `spec`, with `force_update` as its `ForceUpdate`.
pub(super) fn service_body(spec: &ServiceSpec, force_update: u64) -> EngineService {
    let mounts: Vec<Mount> = spec
        .mounts
        .iter()
        .map(|m| Mount {
            target: Some(m.target.clone()),
            source: Some(m.source.clone()),
            typ: Some(if m.bind {
                MountType::BIND
            } else {
                MountType::VOLUME
            }),
            read_only: m.read_only.then_some(true),
            ..Default::default()
        })
        .collect();
    let health_check = spec.healthcheck.as_ref().map(|h| HealthConfig {
        test: Some(h.test.clone()),
        interval: h.interval_ns,
        timeout: h.timeout_ns,
        retries: h.retries,
        start_period: h.start_period_ns,
        ..Default::default()
    });
    let limits = Limit {
        nano_cpus: spec.nano_cpus,
        memory_bytes: spec.memory,
        pids: spec.pids,
    };
    let reservations = ResourceObject {
        nano_cpus: spec.reserve_nano_cpus,
        memory_bytes: spec.reserve_memory,
        ..Default::default()
    };
    let condition = match spec.restart.condition {
        "none" => TaskSpecRestartPolicyConditionEnum::NONE,
        "on-failure" => TaskSpecRestartPolicyConditionEnum::ON_FAILURE,
        _ => TaskSpecRestartPolicyConditionEnum::ANY,
    };
    let placement = TaskSpecPlacement {
        constraints: nonempty(&spec.constraints),
        preferences: nonempty(
            &spec
                .spread
                .iter()
                .map(|s| TaskSpecPlacementPreferences {
                    spread: Some(TaskSpecPlacementSpread {
                        spread_descriptor: Some(s.clone()),
                    }),
                })
                .collect::<Vec<_>>(),
        ),
        max_replicas: spec.max_replicas_per_node.map(|n| n as i64),
        ..Default::default()
    };
    let mode = match spec.mode {
        ServiceMode::Replicated { replicas } => ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(replicas as i64),
            }),
            ..Default::default()
        },
        ServiceMode::Global => ServiceSpecMode {
            global: Some(Default::default()),
            ..Default::default()
        },
    };
    let u = &spec.update;
    let update_config = ServiceSpecUpdateConfig {
        parallelism: Some(u.parallelism as i64),
        delay: Some(u.delay_ns),
        failure_action: Some(match u.failure_action {
            FailureAction::Rollback => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
            FailureAction::Pause => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
            FailureAction::Continue => ServiceSpecUpdateConfigFailureActionEnum::CONTINUE,
        }),
        monitor: Some(u.monitor_ns),
        max_failure_ratio: Some(u.max_failure_ratio),
        order: Some(match u.order {
            UpdateOrder::StopFirst => ServiceSpecUpdateConfigOrderEnum::STOP_FIRST,
            UpdateOrder::StartFirst => ServiceSpecUpdateConfigOrderEnum::START_FIRST,
        }),
    };
    // A rollback goes back as an update goes forward, and stops (rather than rolls back the
    // rollback) if it fails too.
    let rollback_config = ServiceSpecRollbackConfig {
        parallelism: Some(u.parallelism as i64),
        delay: Some(u.delay_ns),
        failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
        monitor: Some(u.monitor_ns),
        max_failure_ratio: Some(u.max_failure_ratio),
        order: Some(match u.order {
            UpdateOrder::StopFirst => ServiceSpecRollbackConfigOrderEnum::STOP_FIRST,
            UpdateOrder::StartFirst => ServiceSpecRollbackConfigOrderEnum::START_FIRST,
        }),
    };
    let ports: Vec<EndpointPortConfig> = spec
        .ports
        .iter()
        .map(|p| EndpointPortConfig {
            protocol: Some(protocol_to(p.protocol)),
            target_port: Some(i64::from(p.target)),
            published_port: p.published.map(i64::from),
            publish_mode: Some(if p.host_mode {
                EndpointPortConfigPublishModeEnum::HOST
            } else {
                EndpointPortConfigPublishModeEnum::INGRESS
            }),
            ..Default::default()
        })
        .collect();
    EngineService {
        name: Some(spec.name.clone()),
        labels: Some(to_hash(&spec.labels)),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                labels: Some(to_hash(&spec.container_labels)),
                command: spec.entrypoint.clone(),
                args: spec.command.clone(),
                env: nonempty(&spec.env),
                dir: spec.working_dir.clone(),
                mounts: nonempty(&mounts),
                stop_grace_period: spec.stop_grace_ns,
                health_check,
                capability_add: nonempty(&spec.cap_add),
                capability_drop: nonempty(&spec.cap_drop),
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(limits),
                reservations: Some(reservations),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(condition),
                delay: spec.restart.delay_ns,
                max_attempts: spec.restart.max_attempts.map(|n| n as i64),
                ..Default::default()
            }),
            placement: Some(placement),
            force_update: Some(force_update),
            ..Default::default()
        }),
        mode: Some(mode),
        update_config: Some(update_config),
        rollback_config: Some(rollback_config),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::VIP),
            ports: nonempty(&ports),
        }),
        ..Default::default()
    }
}

/// wharf's view of an engine service spec (the inverse of `service_body`), and its
/// `ForceUpdate`.
pub(super) fn read_spec(s: EngineService) -> (ServiceSpec, u64) {
    let task = s.task_template.unwrap_or_default();
    let c = task.container_spec.unwrap_or_default();
    let resources = task.resources.unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let reservations = resources.reservations.unwrap_or_default();
    let restart = task.restart_policy.unwrap_or_default();
    let placement = task.placement.unwrap_or_default();
    let update = s.update_config.unwrap_or_default();
    let mut mounts: Vec<ServiceMount> = c
        .mounts
        .unwrap_or_default()
        .into_iter()
        .map(|m| ServiceMount {
            target: m.target.unwrap_or_default(),
            source: m.source.unwrap_or_default(),
            bind: m.typ == Some(MountType::BIND),
            read_only: m.read_only.unwrap_or(false),
        })
        .collect();
    mounts.sort();
    let mode = match s.mode.unwrap_or_default() {
        ServiceSpecMode {
            global: Some(_), ..
        } => ServiceMode::Global,
        m => ServiceMode::Replicated {
            replicas: m.replicated.and_then(|r| r.replicas).unwrap_or(1).max(0) as u64,
        },
    };
    let spec = ServiceSpec {
        name: s.name.unwrap_or_default(),
        labels: to_btree(s.labels),
        container_labels: to_btree(c.labels),
        image: c.image.unwrap_or_default(),
        entrypoint: c.command,
        command: c.args,
        env: c.env.unwrap_or_default(),
        working_dir: c.dir.filter(|d| !d.is_empty()),
        mounts,
        healthcheck: c.health_check.map(|h| Health {
            test: h.test.unwrap_or_default(),
            interval_ns: positive(h.interval),
            timeout_ns: positive(h.timeout),
            retries: positive(h.retries),
            start_period_ns: positive(h.start_period),
        }),
        stop_grace_ns: c.stop_grace_period,
        cap_add: c.capability_add.unwrap_or_default(),
        cap_drop: c.capability_drop.unwrap_or_default(),
        memory: positive(limits.memory_bytes),
        nano_cpus: positive(limits.nano_cpus),
        pids: positive(limits.pids),
        reserve_memory: positive(reservations.memory_bytes),
        reserve_nano_cpus: positive(reservations.nano_cpus),
        restart: ServiceRestart {
            condition: match restart.condition {
                Some(TaskSpecRestartPolicyConditionEnum::NONE) => "none",
                Some(TaskSpecRestartPolicyConditionEnum::ON_FAILURE) => "on-failure",
                _ => "any",
            },
            max_attempts: positive(restart.max_attempts).map(|n| n as u64),
            delay_ns: restart.delay,
        },
        constraints: placement.constraints.unwrap_or_default(),
        spread: placement
            .preferences
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.spread.and_then(|s| s.spread_descriptor))
            .collect(),
        max_replicas_per_node: positive(placement.max_replicas).map(|n| n as u64),
        mode,
        update: ServiceUpdateConfig {
            parallelism: update.parallelism.unwrap_or(1).max(0) as u64,
            delay_ns: update.delay.unwrap_or(0),
            order: match update.order {
                Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST) => UpdateOrder::StartFirst,
                _ => UpdateOrder::StopFirst,
            },
            failure_action: match update.failure_action {
                Some(ServiceSpecUpdateConfigFailureActionEnum::PAUSE) => FailureAction::Pause,
                Some(ServiceSpecUpdateConfigFailureActionEnum::CONTINUE) => FailureAction::Continue,
                // Docker's own default is pause; wharf always sets it.
                Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK) => FailureAction::Rollback,
                _ => FailureAction::Pause,
            },
            monitor_ns: update.monitor.unwrap_or(0),
            max_failure_ratio: update.max_failure_ratio.unwrap_or(0.0),
        },
        ports: s
            .endpoint_spec
            .and_then(|e| e.ports)
            .unwrap_or_default()
            .into_iter()
            .map(|p| ServicePort {
                target: p.target_port.unwrap_or(0).clamp(0, 65535) as u16,
                protocol: protocol_from(p.protocol),
                published: p
                    .published_port
                    .filter(|p| *p > 0)
                    .map(|p| p.clamp(0, 65535) as u16),
                host_mode: p.publish_mode == Some(EndpointPortConfigPublishModeEnum::HOST),
            })
            .collect(),
    };
    (spec, task.force_update.unwrap_or(0))
}

fn read_service(s: Service) -> Option<ServiceState> {
    let id = s.id?;
    let (spec, force_update) = read_spec(s.spec?);
    Some(ServiceState {
        id,
        version: s.version.and_then(|v| v.index).unwrap_or(0),
        spec,
        force_update,
        update_status: s.update_status.map(|u| UpdateStatus {
            state: u.state.map(|s| s.to_string()).unwrap_or_default(),
            message: u.message.filter(|m| !m.is_empty()),
            started_at: u.started_at,
            completed_at: u.completed_at,
        }),
        created_at: s.created_at,
        updated_at: s.updated_at,
    })
}

fn read_task(t: bollard::models::Task) -> Option<TaskState> {
    let status = t.status.unwrap_or_default();
    let container = status.container_status.unwrap_or_default();
    Some(TaskState {
        id: t.id?,
        service_id: t.service_id.unwrap_or_default(),
        slot: t.slot.filter(|s| *s > 0).map(|s| s as u64),
        node_id: t.node_id.filter(|n| !n.is_empty()),
        state: status.state.map(|s| s.to_string()).unwrap_or_default(),
        desired_state: t.desired_state.map(|s| s.to_string()).unwrap_or_default(),
        message: status.message.filter(|m| !m.is_empty()),
        error: status.err.filter(|m| !m.is_empty()),
        container_id: container.container_id.filter(|c| !c.is_empty()),
        exit_code: container.exit_code,
        timestamp: status.timestamp,
        created_at: t.created_at,
    })
}

fn read_node(n: bollard::models::Node) -> Option<NodeState> {
    let spec = n.spec.unwrap_or_default();
    let description = n.description.unwrap_or_default();
    let status = n.status.unwrap_or_default();
    let resources = description.resources.unwrap_or_default();
    let manager = n.manager_status.map(|m| {
        if m.leader == Some(true) {
            "leader".to_string()
        } else {
            m.reachability.map(|r| r.to_string()).unwrap_or_default()
        }
    });
    Some(NodeState {
        id: n.id?,
        version: n.version.and_then(|v| v.index).unwrap_or(0),
        hostname: description.hostname.unwrap_or_default(),
        role: spec.role.map(|r| r.to_string()).unwrap_or_default(),
        availability: spec.availability.map(|a| a.to_string()).unwrap_or_default(),
        status: status.state.map(|s| s.to_string()).unwrap_or_default(),
        status_message: status.message.filter(|m| !m.is_empty()),
        manager_status: manager,
        engine_version: description.engine.and_then(|e| e.engine_version),
        address: status.addr.filter(|a| !a.is_empty()),
        labels: to_btree(spec.labels),
        cpus: resources.nano_cpus.unwrap_or(0) as f64 / 1e9,
        memory: resources.memory_bytes.unwrap_or(0),
    })
}

impl DockerRuntime {
    /// Service and node events, as one stream.
    fn swarm_event_stream(&self) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        let options = EventsOptions {
            filters: Some(HashMap::from([(
                "type".to_string(),
                vec!["service".to_string(), "node".to_string()],
            )])),
            ..Default::default()
        };
        self.stream(|docker| {
            docker
                .events(Some(options))
                .map(super::streams::convert_event(false))
                .boxed()
        })
    }
}

#[async_trait]
impl Swarm for DockerRuntime {
    async fn membership(&self) -> RuntimeResult<SwarmMembership> {
        self.ping().await?;
        let info = self.call("info", self.docker()?.info()).await?;
        let swarm = info.swarm.unwrap_or_default();
        Ok(SwarmMembership {
            local_node_state: swarm
                .local_node_state
                .map(|s| s.to_string())
                .unwrap_or_default(),
            node_id: swarm.node_id.unwrap_or_default(),
            node_addr: swarm.node_addr.unwrap_or_default(),
            control_available: swarm.control_available.unwrap_or(false),
            cluster_id: swarm.cluster.and_then(|c| c.id),
            nodes: swarm.nodes.unwrap_or(0),
            managers: swarm.managers.unwrap_or(0),
            error: swarm.error.filter(|e| !e.is_empty()),
        })
    }

    async fn services(&self, instance: &str) -> RuntimeResult<Vec<ServiceState>> {
        let options = ListServicesOptions {
            filters: Some(Self::instance_filters(instance)),
            ..Default::default()
        };
        let list = self
            .call("list services", self.docker()?.list_services(Some(options)))
            .await?;
        Ok(list.into_iter().filter_map(read_service).collect())
    }

    async fn tasks(&self, service_ids: &[String]) -> RuntimeResult<Vec<TaskState>> {
        if service_ids.is_empty() {
            return Ok(Vec::new());
        }
        let options = ListTasksOptions {
            filters: Some(HashMap::from([(
                "service".to_string(),
                service_ids.to_vec(),
            )])),
        };
        let list = self
            .call("list tasks", self.docker()?.list_tasks(Some(options)))
            .await?;
        Ok(list.into_iter().filter_map(read_task).collect())
    }

    async fn create_service(
        &self,
        spec: &ServiceSpec,
        registry: Option<&RegistryCredentials>,
    ) -> RuntimeResult<String> {
        let created = self
            .call(
                "create service",
                self.docker()?
                    .create_service(service_body(spec, 0), credentials(registry)),
            )
            .await?;
        created.id.ok_or_else(|| RuntimeError::Engine {
            op: "create service",
            status: 0,
            message: "the engine answered without a service id".into(),
        })
    }

    async fn update_service(
        &self,
        id: &str,
        version: u64,
        spec: &ServiceSpec,
        force_update: u64,
        registry: Option<&RegistryCredentials>,
    ) -> RuntimeResult<Vec<String>> {
        let options = UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            ..Default::default()
        };
        let answer = self
            .call(
                "update service",
                self.docker()?.update_service(
                    id,
                    service_body(spec, force_update),
                    options,
                    credentials(registry),
                ),
            )
            .await?;
        Ok(answer.warnings.unwrap_or_default())
    }

    async fn remove_service(&self, id: &str) -> RuntimeResult<()> {
        self.call("remove service", self.docker()?.delete_service(id))
            .await
    }

    async fn nodes(&self) -> RuntimeResult<Vec<NodeState>> {
        let list = self
            .call(
                "list nodes",
                self.docker()?.list_nodes(None::<ListNodesOptions>),
            )
            .await?;
        let mut nodes: Vec<NodeState> = list.into_iter().filter_map(read_node).collect();
        nodes.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
        Ok(nodes)
    }

    async fn node_raw(&self, id: &str) -> RuntimeResult<serde_json::Value> {
        let node = self
            .call("inspect node", self.docker()?.inspect_node(id))
            .await?;
        serde_json::to_value(node).map_err(|e| RuntimeError::Engine {
            op: "inspect node",
            status: 0,
            message: e.to_string(),
        })
    }

    async fn update_node(&self, id: &str, version: u64, update: &NodeUpdate) -> RuntimeResult<()> {
        // The update replaces the whole spec: keep the node's name and role as they are.
        let current = self
            .call("inspect node", self.docker()?.inspect_node(id))
            .await?;
        let mut spec = current.spec.unwrap_or_default();
        spec.availability = Some(match update.availability.as_str() {
            "pause" => NodeSpecAvailabilityEnum::PAUSE,
            "drain" => NodeSpecAvailabilityEnum::DRAIN,
            _ => NodeSpecAvailabilityEnum::ACTIVE,
        });
        spec.labels = Some(to_hash(&update.labels));
        let options = UpdateNodeOptionsBuilder::new()
            .version(i64::try_from(version).unwrap_or(i64::MAX))
            .build();
        self.call(
            "update node",
            self.docker()?.update_node(id, NodeSpec { ..spec }, options),
        )
        .await
    }

    fn service_logs(
        &self,
        service: &str,
        task: Option<&str>,
        options: &LogOptions,
    ) -> BoxStream<'static, RuntimeResult<LogChunk>> {
        self.service_log_stream(service, task, options)
    }

    fn swarm_events(&self) -> BoxStream<'static, RuntimeResult<RuntimeEvent>> {
        self.swarm_event_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "demo.web".into(),
            labels: BTreeMap::from([("wharf.app".into(), "web".into())]),
            container_labels: BTreeMap::from([("wharf.uid".into(), "u1".into())]),
            image: "busybox:1".into(),
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            command: Some(vec!["sleep 1000".into()]),
            env: vec!["A=1".into(), "B=2".into()],
            working_dir: Some("/tmp".into()),
            mounts: vec![ServiceMount {
                target: "/data".into(),
                source: "wharf.demo.data".into(),
                bind: false,
                read_only: true,
            }],
            healthcheck: Some(Health {
                test: vec!["CMD".into(), "true".into()],
                interval_ns: Some(1_000_000_000),
                timeout_ns: None,
                retries: Some(3),
                start_period_ns: None,
            }),
            stop_grace_ns: Some(2_000_000_000),
            cap_add: vec![],
            cap_drop: vec!["NET_RAW".into()],
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids: Some(100),
            reserve_memory: Some(32 << 20),
            reserve_nano_cpus: None,
            restart: ServiceRestart {
                condition: "on-failure",
                max_attempts: Some(3),
                delay_ns: Some(1_000_000_000),
            },
            constraints: vec!["node.role==worker".into()],
            spread: vec!["node.labels.zone".into()],
            max_replicas_per_node: Some(2),
            mode: ServiceMode::Replicated { replicas: 3 },
            update: ServiceUpdateConfig {
                parallelism: 2,
                delay_ns: 0,
                order: UpdateOrder::StartFirst,
                failure_action: FailureAction::Rollback,
                monitor_ns: 5_000_000_000,
                max_failure_ratio: 0.0,
            },
            ports: vec![ServicePort {
                target: 80,
                protocol: Protocol::Tcp,
                published: Some(8080),
                host_mode: true,
            }],
        }
    }

    #[test]
    fn a_service_reads_back_as_it_was_declared() {
        let s = spec();
        // Through JSON, as the engine stores and returns it.
        let json = serde_json::to_value(service_body(&s, 4)).expect("serialises");
        let back: EngineService = serde_json::from_value(json).expect("deserialises");
        let (read, force) = read_spec(back);
        assert_eq!(force, 4);
        assert_eq!(read, s, "differences: {:?}", s.differences(&read));
        let global = ServiceSpec {
            mode: ServiceMode::Global,
            ..s
        };
        assert_eq!(
            read_spec(service_body(&global, 0)).0.mode,
            ServiceMode::Global
        );
    }
}
