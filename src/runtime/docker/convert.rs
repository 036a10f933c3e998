//! Conversions between wharf's runtime types and the Engine API's: the create and update bodies
//! from a `CreateSpec`, summaries and stats from the engine's answers. Pure.

use std::collections::{BTreeMap, HashMap};

use bollard::models::{
    ContainerCreateBody, ContainerUpdateBody, DeviceMapping, HealthConfig, HostConfig, Mount,
    MountType, PortBinding, RestartPolicy, RestartPolicyNameEnum, ThrottleDevice,
};

use super::super::{ContainerState, ContainerStats, ContainerSummary, CreateSpec, HealthState};
use crate::spec::validate::{Limits, Restart, Throttle};

pub(super) fn throttles(list: &[Throttle]) -> Option<Vec<ThrottleDevice>> {
    (!list.is_empty()).then(|| {
        list.iter()
            .map(|t| ThrottleDevice {
                path: Some(t.path.clone()),
                rate: Some(t.rate.min(i64::MAX as u64) as i64),
            })
            .collect()
    })
}

pub(super) fn restart_policy(restart: Restart) -> RestartPolicy {
    let (name, retries) = match restart {
        Restart::No => (RestartPolicyNameEnum::NO, None),
        Restart::Always => (RestartPolicyNameEnum::ALWAYS, None),
        Restart::UnlessStopped => (RestartPolicyNameEnum::UNLESS_STOPPED, None),
        Restart::OnFailure { max_retries } => (
            RestartPolicyNameEnum::ON_FAILURE,
            Some(i64::from(max_retries)),
        ),
    };
    RestartPolicy {
        name: Some(name),
        maximum_retry_count: retries,
    }
}

pub(super) fn create_body(spec: &CreateSpec) -> ContainerCreateBody {
    let c = &spec.config;
    let l = &spec.limits;
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &c.ports {
        let key = format!("{}/{}", p.container_port, p.protocol);
        exposed.push(key.clone());
        if let Some(host_port) = p.host_port {
            bindings
                .entry(key)
                .or_default()
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: p.host_ip.clone(),
                    host_port: Some(host_port.to_string()),
                });
        }
    }
    let mounts: Vec<Mount> = c
        .volumes
        .iter()
        .map(|v| Mount {
            target: Some(v.mount_path.clone()),
            source: Some(
                spec.volume_names
                    .get(&v.name)
                    .cloned()
                    .unwrap_or_else(|| v.name.clone()),
            ),
            typ: Some(MountType::VOLUME),
            read_only: Some(v.read_only),
            ..Default::default()
        })
        .chain(c.binds.iter().map(|b| Mount {
            target: Some(b.mount_path.clone()),
            source: Some(b.host_path.clone()),
            typ: Some(MountType::BIND),
            read_only: Some(b.read_only),
            ..Default::default()
        }))
        .collect();
    let host = |wanted: bool| wanted.then(|| "host".to_string());
    let devices: Vec<DeviceMapping> = c
        .devices
        .iter()
        .map(|d| DeviceMapping {
            path_on_host: Some(d.host_path.clone()),
            path_in_container: Some(d.container_path.clone()),
            cgroup_permissions: Some(d.permissions.clone()),
        })
        .collect();
    let host_config = HostConfig {
        memory: l.memory,
        memory_swap: l.memory_swap,
        nano_cpus: l.nano_cpus,
        pids_limit: l.pids,
        blkio_device_read_bps: throttles(&c.blkio.device_read_bps),
        blkio_device_write_bps: throttles(&c.blkio.device_write_bps),
        blkio_device_read_iops: throttles(&c.blkio.device_read_iops),
        blkio_device_write_iops: throttles(&c.blkio.device_write_iops),
        restart_policy: Some(restart_policy(l.restart)),
        port_bindings: (!bindings.is_empty()).then_some(bindings),
        mounts: (!mounts.is_empty()).then_some(mounts),
        privileged: c.privileged.then_some(true),
        network_mode: host(c.host_network),
        pid_mode: host(c.host_pid),
        ipc_mode: host(c.host_ipc),
        cap_add: (!c.cap_add.is_empty()).then(|| c.cap_add.clone()),
        cap_drop: (!c.cap_drop.is_empty()).then(|| c.cap_drop.clone()),
        devices: (!devices.is_empty()).then_some(devices),
        ..Default::default()
    };
    ContainerCreateBody {
        image: Some(c.image.clone()),
        cmd: c.command.clone(),
        entrypoint: c.entrypoint.clone(),
        working_dir: c.working_dir.clone(),
        env: (!c.env.is_empty()).then(|| c.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(
            spec.labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        healthcheck: c.healthcheck.as_ref().map(|h| HealthConfig {
            test: Some(h.test.clone()),
            interval: h.interval_ns,
            timeout: h.timeout_ns,
            retries: h.retries,
            start_period: h.start_period_ns,
            start_interval: None,
        }),
        stop_timeout: c.stop_grace_seconds.map(|s| s.min(i64::MAX as u64) as i64),
        host_config: Some(host_config),
        ..Default::default()
    }
}

pub(super) fn update_body(l: &Limits) -> ContainerUpdateBody {
    ContainerUpdateBody {
        memory: l.memory,
        memory_swap: l.memory_swap,
        nano_cpus: l.nano_cpus,
        // -1 lifts a pids limit in place; memory and CPU limits cannot be lifted by an update
        // (0 means "unchanged"), which the planner handles by recreating.
        pids_limit: Some(l.pids.unwrap_or(-1)),
        restart_policy: Some(restart_policy(l.restart)),
        ..Default::default()
    }
}

pub(super) fn container_summary(c: bollard::models::ContainerSummary) -> Option<ContainerSummary> {
    let labels: BTreeMap<String, String> = c.labels.unwrap_or_default().into_iter().collect();
    Some(ContainerSummary {
        id: c.id?,
        name: c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_string())
            .unwrap_or_default(),
        image: c.image.unwrap_or_default(),
        image_id: c.image_id.unwrap_or_default(),
        state: c
            .state
            .map(|s| ContainerState::parse(s.as_ref()))
            .unwrap_or(ContainerState::Unknown),
        labels,
        created: c.created.unwrap_or_default(),
        health: c.status.as_deref().and_then(HealthState::parse),
    })
}

/// wharf's reading from the engine's stats document. Memory use leaves out the page cache
/// (cgroup v1 `total_inactive_file`, v2 `inactive_file`), as `docker stats` does.
pub(super) fn container_stats(r: bollard::models::ContainerStatsResponse) -> ContainerStats {
    let cpu = r.cpu_stats.unwrap_or_default();
    let memory = r.memory_stats.unwrap_or_default();
    let cache = memory.stats.as_ref().and_then(|s| {
        s.get("total_inactive_file")
            .or_else(|| s.get("inactive_file"))
            .copied()
    });
    let usage = memory.usage.unwrap_or(0);
    let (net_rx, net_tx) = r
        .networks
        .unwrap_or_default()
        .values()
        .fold((0, 0), |(rx, tx), n| {
            (rx + n.rx_bytes.unwrap_or(0), tx + n.tx_bytes.unwrap_or(0))
        });
    let (blk_read, blk_write) = r
        .blkio_stats
        .and_then(|b| b.io_service_bytes_recursive)
        .unwrap_or_default()
        .iter()
        .fold((0, 0), |(read, write), e| {
            let v = e.value.unwrap_or(0);
            match e.op.as_deref().map(str::to_ascii_lowercase).as_deref() {
                Some("read") => (read + v, write),
                Some("write") => (read, write + v),
                _ => (read, write),
            }
        });
    ContainerStats {
        read_at_ms: r
            .read
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.timestamp_millis())
            .filter(|t| *t > 0)
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
        cpu_total_ns: cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0),
        system_cpu_ns: cpu.system_cpu_usage.unwrap_or(0),
        online_cpus: cpu.online_cpus.unwrap_or(0),
        mem_usage: usage.saturating_sub(cache.unwrap_or(0)),
        mem_limit: memory.limit.unwrap_or(0),
        mem_max: memory.max_usage.unwrap_or(0),
        net_rx,
        net_tx,
        blk_read,
        blk_write,
        pids: r.pids_stats.and_then(|p| p.current).unwrap_or(0),
    }
}

/// At most this much of each of an exec's stdout and stderr is kept.
const EXEC_OUTPUT_LIMIT: usize = 1 << 20;

/// Appends `data` to `out`, keeping at most `EXEC_OUTPUT_LIMIT` bytes.
pub(super) fn append_limited(out: &mut Vec<u8>, data: &[u8]) {
    let room = EXEC_OUTPUT_LIMIT.saturating_sub(out.len());
    out.extend_from_slice(&data[..data.len().min(room)]);
}
