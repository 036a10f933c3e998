//! Validation: wire documents become the domain types of `spec/domain.rs`, or a list of errors
//! naming each field. Names follow `spec/names.rs`.

use std::collections::{BTreeMap, BTreeSet};

use super::SpecError;
pub use super::domain::{
    AppKey, AppSpec, Bind, Blkio, ContainerConfig, DEFAULT_MIN_READY_SECONDS, DEFAULT_NAMESPACE,
    Device, Hashes, Health, Limits, MAX_MIN_READY_SECONDS, PortBinding, Restart, RollingUpdate,
    SwarmSettings, Throttle, Volume,
};
pub(crate) use super::names::{check_host_path, check_label_key};
pub use super::names::{check_name, check_namespace, check_owner, normalise_capability};
use super::wire::{self, AppDocument, Env, RestartPolicyName};

/// Accumulates field errors.
#[derive(Default)]
struct Errors(Vec<SpecError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(SpecError::field(field, message));
    }
}

/// An image reference as Docker reads it, or an image id (`sha256:` and 64 hex digits).
fn check_image(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if is_image_id(s) {
        return Ok(());
    }
    super::reference::canonical_reference(s).map(|_| ())
}

pub use super::reference::is_image_id;

fn no_nul(errors: &mut Errors, field: &str, items: &[String]) {
    for (i, item) in items.iter().enumerate() {
        if item.contains('\0') {
            errors.add(format!("{field}[{i}]"), "must not contain NUL");
        }
    }
}

/// Validates a wire App into its domain form.
pub fn validate_app(doc: &AppDocument) -> Result<AppSpec, Vec<SpecError>> {
    let mut errors = Errors::default();
    let meta = &doc.metadata;
    let namespace = meta
        .namespace
        .clone()
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    if let Err(e) = check_namespace(&namespace) {
        errors.add("metadata.namespace", e);
    }
    if let Err(e) = check_name(&meta.name) {
        errors.add("metadata.name", e);
    }
    for (field, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
        for (k, v) in map {
            if !check_label_key(k) {
                errors.add(
                    format!("metadata.{field}.{k}"),
                    "invalid key: use letters, digits, '-', '_', '.', '/'",
                );
            }
            if field == "labels" && v.len() > 253 {
                errors.add(
                    format!("metadata.{field}.{k}"),
                    "value longer than 253 characters",
                );
            }
        }
    }
    let spec = &doc.spec;
    if let Err(e) = check_image(&spec.image) {
        errors.add("spec.image", e);
    }
    if let Some(owner) = &spec.owner
        && let Err(e) = check_owner(owner)
    {
        errors.add("spec.owner", e);
    }
    for (field, items) in [
        ("spec.command", &spec.command),
        ("spec.entrypoint", &spec.entrypoint),
    ] {
        if let Some(items) = items {
            no_nul(&mut errors, field, items);
        }
    }
    if let Some(dir) = &spec.working_dir
        && !dir.starts_with('/')
    {
        errors.add("spec.workingDir", "must be an absolute path");
    }

    let env = normalise_env(spec.env.as_ref(), &mut errors);
    let ports = normalise_ports(spec, &mut errors);
    let (volumes, binds) = normalise_volumes(&spec.volumes, &mut errors);
    let capabilities = spec.capabilities.clone().unwrap_or_default();
    let mut caps = |field: &str, list: &[String]| -> Vec<String> {
        let mut out = BTreeSet::new();
        for (i, c) in list.iter().enumerate() {
            match normalise_capability(c) {
                Ok(c) => {
                    out.insert(c);
                }
                Err(e) => errors.add(format!("spec.capabilities.{field}[{i}]"), e),
            }
        }
        out.into_iter().collect()
    };
    let cap_add = caps("add", &capabilities.add);
    let cap_drop = caps("drop", &capabilities.drop);
    let mut devices = Vec::new();
    for (i, d) in spec.devices.iter().enumerate() {
        if let Err(e) = check_host_path(&d.host_path) {
            errors.add(format!("spec.devices[{i}].hostPath"), e);
        }
        let container_path = d
            .container_path
            .clone()
            .unwrap_or_else(|| d.host_path.clone());
        if let Err(e) = check_host_path(&container_path) {
            errors.add(format!("spec.devices[{i}].containerPath"), e);
        }
        let permissions = d.permissions.clone().unwrap_or_else(|| "rwm".to_string());
        if permissions.is_empty() || !permissions.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            errors.add(
                format!("spec.devices[{i}].permissions"),
                "use any of r, w and m",
            );
        }
        devices.push(Device {
            host_path: d.host_path.clone(),
            container_path,
            permissions,
        });
    }
    if spec.host_network {
        if !spec.ports.is_empty() {
            errors.add(
                "spec.ports",
                "an app on the host's network (hostNetwork) publishes no ports; its ports are the host's",
            );
        }
        if spec.port_area.is_some() {
            errors.add(
                "spec.portArea",
                "an app on the host's network has no port area",
            );
        }
    }
    let healthcheck = spec.healthcheck.as_ref().and_then(|h| {
        let kind = h.cmd.first().map(String::as_str);
        if !matches!(kind, Some("CMD" | "CMD-SHELL" | "NONE")) {
            errors.add(
                "spec.healthcheck.cmd",
                "must start with \"CMD\", \"CMD-SHELL\" or \"NONE\"",
            );
            return None;
        }
        if kind != Some("NONE") && h.cmd.len() < 2 {
            errors.add("spec.healthcheck.cmd", "names no command to run");
        }
        let ns = |d: &Option<super::quantity::DurationText>| {
            d.as_ref()
                .map(|d| d.duration().as_nanos().min(i64::MAX as u128) as i64)
        };
        Some(Health {
            test: h.cmd.clone(),
            interval_ns: ns(&h.interval),
            timeout_ns: ns(&h.timeout),
            retries: h.retries.map(i64::from),
            start_period_ns: ns(&h.start_period),
        })
    });
    let limits = normalise_limits(spec, &mut errors);
    let blkio = normalise_blkio(spec, &mut errors);

    let port_area = spec.port_area.as_ref().map(|a| a.size);
    if let Some(size) = port_area {
        if size == 0 {
            errors.add("spec.portArea.size", "must be at least 1");
        }
        for (i, p) in spec.ports.iter().enumerate() {
            if let Ok(p) = p.to_object() {
                if p.container_port >= size {
                    errors.add(
                        format!("spec.ports[{i}].containerPort"),
                        format!(
                            "{} is outside the port area (size {size})",
                            p.container_port
                        ),
                    );
                }
                if p.host_port.is_some() {
                    errors.add(
                        format!("spec.ports[{i}].hostPort"),
                        "is assigned from the port area; do not set it",
                    );
                }
            }
        }
    }

    let min_ready = spec
        .update
        .as_ref()
        .and_then(|u| u.min_ready_seconds)
        .unwrap_or(DEFAULT_MIN_READY_SECONDS);
    if min_ready > MAX_MIN_READY_SECONDS {
        errors.add(
            "spec.update.minReadySeconds",
            format!("must be at most {MAX_MIN_READY_SECONDS}"),
        );
    }

    let swarm = swarm_settings(spec, min_ready, &mut errors);

    if !errors.0.is_empty() {
        return Err(errors.0);
    }
    Ok(AppSpec {
        key: AppKey {
            namespace,
            name: meta.name.clone(),
        },
        owner: spec.owner.clone(),
        state: spec.state.unwrap_or_default(),
        container: ContainerConfig {
            image: spec.image.clone(),
            command: spec.command.clone(),
            entrypoint: spec.entrypoint.clone(),
            working_dir: spec.working_dir.clone(),
            env,
            ports,
            volumes,
            healthcheck,
            stop_grace_seconds: spec
                .stop_grace_period
                .as_ref()
                .map(|d| d.duration().as_secs()),
            blkio,
            binds,
            privileged: spec.privileged,
            host_network: spec.host_network,
            host_pid: spec.host_pid,
            host_ipc: spec.host_ipc,
            cap_add,
            cap_drop,
            devices,
        },
        limits,
        port_area,
        min_ready: std::time::Duration::from_secs(u64::from(min_ready)),
        swarm,
    })
}

/// The swarm-only parts of a spec, with every swarm-only field it sets noted (solo mode
/// refuses them; see `spec::mode`).
fn swarm_settings(spec: &wire::AppSpec, min_ready: u32, errors: &mut Errors) -> SwarmSettings {
    let mut out = SwarmSettings::default();
    let mut set = |field: &str| out.fields_set.push(field.to_string());
    if let Some(r) = spec.replicas {
        if r != 1 {
            set("spec.replicas");
        }
        out.replicas = r;
    }
    if let Some(mode) = spec.mode {
        set("spec.mode");
        out.global = mode == wire::ServiceMode::Global;
        if out.global && spec.replicas.is_some() {
            errors.add(
                "spec.replicas",
                "a global app runs one task per node; do not set replicas",
            );
        }
        if out.global && spec.state == Some(wire::DesiredState::Stopped) {
            errors.add(
                "spec.state",
                "a global app runs on every eligible node and cannot be scaled to nothing; delete it, or make it replicated to stop it",
            );
        }
    }
    if let Some(p) = &spec.placement {
        set("spec.placement");
        for (i, c) in p.constraints.iter().enumerate() {
            if !["==", "!="].iter().any(|op| c.contains(op)) || c.contains('\0') {
                errors.add(
                    format!("spec.placement.constraints[{i}]"),
                    format!("{c:?} is not a constraint (write e.g. \"node.role==worker\")"),
                );
            }
        }
        out.constraints = p.constraints.clone();
        for (i, pref) in p.preferences.iter().enumerate() {
            if pref.spread.trim().is_empty() || pref.spread.contains('\0') {
                errors.add(
                    format!("spec.placement.preferences[{i}].spread"),
                    "must name a node attribute, e.g. node.labels.zone",
                );
            }
        }
        out.spread = p.preferences.iter().map(|p| p.spread.clone()).collect();
        if p.max_replicas_per_node == Some(0) {
            errors.add("spec.placement.maxReplicasPerNode", "must be at least 1");
        }
        out.max_replicas_per_node = p.max_replicas_per_node;
    }
    if let Some(r) = spec
        .resources
        .as_ref()
        .and_then(|r| r.reservations.as_ref())
    {
        set("spec.resources.reservations");
        out.reserve_memory = r.memory.as_ref().map(|m| m.bytes() as i64);
        if let Some(c) = r.cpus {
            if !(c.is_finite() && (0.01..=1024.0).contains(&c)) {
                errors.add(
                    "spec.resources.reservations.cpus",
                    "must be between 0.01 and 1024 CPUs",
                );
            }
            out.reserve_nano_cpus = Some((c * 1e9).round() as i64);
        }
    }
    let ns = |d: &super::quantity::DurationText| {
        i64::try_from(d.duration().as_nanos()).unwrap_or(i64::MAX)
    };
    out.update.monitor_ns = i64::from(min_ready) * 1_000_000_000;
    if let Some(u) = &spec.update {
        let mut field = |name: &str, present: bool| {
            if present {
                out.fields_set.push(format!("spec.update.{name}"));
            }
        };
        field("parallelism", u.parallelism.is_some());
        field("delay", u.delay.is_some());
        field("order", u.order.is_some());
        field("failureAction", u.failure_action.is_some());
        field("monitor", u.monitor.is_some());
        field("maxFailureRatio", u.max_failure_ratio.is_some());
        out.update.parallelism = u.parallelism.unwrap_or(1);
        out.update.delay_ns = u.delay.as_ref().map_or(0, ns);
        out.update.order = u.order.unwrap_or_default();
        out.update.failure_action = u.failure_action.unwrap_or_default();
        if let Some(m) = &u.monitor {
            if u.min_ready_seconds.is_some() {
                errors.add(
                    "spec.update.monitor",
                    "give monitor or minReadySeconds, not both (minReadySeconds is the monitor period in swarm mode)",
                );
            }
            out.update.monitor_ns = ns(m);
        }
        if let Some(r) = u.max_failure_ratio {
            if !(0.0..=1.0).contains(&r) {
                errors.add("spec.update.maxFailureRatio", "must be between 0 and 1");
            }
            out.update.max_failure_ratio = r;
        }
    }
    if let Some(d) = spec.restart_policy.as_ref().and_then(|r| r.delay.as_ref()) {
        out.fields_set.push("spec.restartPolicy.delay".into());
        out.restart_delay_ns = Some(ns(d));
    }
    for (i, port) in spec.ports.iter().enumerate() {
        if let wire::Port::Long(p) = port
            && let Some(mode) = p.mode
        {
            out.fields_set.push(format!("spec.ports[{i}].mode"));
            if mode == wire::PortMode::Host {
                out.host_mode_ports
                    .push((p.container_port, p.protocol.unwrap_or_default()));
            }
        }
    }
    out.host_mode_ports.sort();
    out
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && !k.contains('=') && !k.contains('\0')
}

fn normalise_env(env: Option<&Env>, errors: &mut Errors) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match env {
        None => {}
        Some(Env::Map(map)) => {
            for (k, v) in map {
                if !valid_env_name(k) {
                    errors.add(format!("spec.env.{k}"), "invalid variable name");
                }
                if v.0.contains('\0') {
                    errors.add(format!("spec.env.{k}"), "value must not contain NUL");
                }
                out.insert(k.clone(), v.0.clone());
            }
        }
        Some(Env::List(list)) => {
            for (i, item) in list.iter().enumerate() {
                match item.split_once('=') {
                    Some((k, v)) if valid_env_name(k) && !v.contains('\0') => {
                        if out.insert(k.to_string(), v.to_string()).is_some() {
                            errors.add(format!("spec.env[{i}]"), format!("{k} is set twice"));
                        }
                    }
                    _ => errors.add(
                        format!("spec.env[{i}]"),
                        format!("{item:?} is not NAME=value"),
                    ),
                }
            }
        }
    }
    out
}

fn normalise_ports(spec: &wire::AppSpec, errors: &mut Errors) -> Vec<PortBinding> {
    let mut out = Vec::new();
    let mut container_seen = BTreeSet::new();
    let mut host_seen = BTreeSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let p = match port.to_object() {
            Ok(p) => p,
            Err(e) => {
                errors.add(format!("spec.ports[{i}]"), e);
                continue;
            }
        };
        if p.container_port == 0 {
            errors.add(format!("spec.ports[{i}].containerPort"), "must be 1-65535");
        }
        if p.host_port == Some(0) {
            errors.add(format!("spec.ports[{i}].hostPort"), "must be 1-65535");
        }
        if let Some(ip) = &p.host_ip
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            errors.add(
                format!("spec.ports[{i}].hostIP"),
                format!("{ip:?} is not an IP address"),
            );
        }
        let protocol = p.protocol.unwrap_or_default();
        if !container_seen.insert((p.container_port, protocol, p.host_ip.clone())) {
            errors.add(
                format!("spec.ports[{i}]"),
                format!(
                    "container port {}/{protocol} is declared twice",
                    p.container_port
                ),
            );
        }
        if let Some(h) = p.host_port
            && !host_seen.insert((h, protocol))
        {
            errors.add(
                format!("spec.ports[{i}].hostPort"),
                format!("host port {h}/{protocol} is declared twice"),
            );
        }
        out.push(PortBinding {
            container_port: p.container_port,
            protocol,
            host_port: p.host_port,
            host_ip: p.host_ip,
        });
    }
    out.sort();
    out
}

fn normalise_volumes(
    volumes: &[wire::VolumeMount],
    errors: &mut Errors,
) -> (Vec<Volume>, Vec<Bind>) {
    let mut out = Vec::new();
    let mut binds = Vec::new();
    let mut paths = BTreeSet::new();
    for (i, v) in volumes.iter().enumerate() {
        if !v.mount_path.starts_with('/')
            || v.mount_path.contains('\0')
            || v.mount_path.contains(':')
        {
            errors.add(
                format!("spec.volumes[{i}].mountPath"),
                "must be an absolute path without ':'",
            );
        } else if !paths.insert(v.mount_path.trim_end_matches('/').to_string()) {
            errors.add(
                format!("spec.volumes[{i}].mountPath"),
                format!("{} is mounted twice", v.mount_path),
            );
        }
        match (&v.name, &v.host_path) {
            (Some(name), None) => {
                let name_ok = !name.is_empty()
                    && name.len() <= 63
                    && name.as_bytes()[0].is_ascii_alphanumeric()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
                if !name_ok {
                    errors.add(
                        format!("spec.volumes[{i}].name"),
                        format!("invalid volume name {name:?}: letters, digits, '-', '_', '.'"),
                    );
                }
                out.push(Volume {
                    mount_path: v.mount_path.clone(),
                    name: name.clone(),
                    read_only: v.read_only,
                });
            }
            (None, Some(host_path)) => {
                if let Err(e) = check_host_path(host_path) {
                    errors.add(format!("spec.volumes[{i}].hostPath"), e);
                }
                binds.push(Bind {
                    mount_path: v.mount_path.clone(),
                    host_path: host_path.clone(),
                    read_only: v.read_only,
                    index: i,
                });
            }
            _ => errors.add(
                format!("spec.volumes[{i}]"),
                "give exactly one of name (a named volume) and hostPath (a bind mount)",
            ),
        }
    }
    out.sort();
    binds.sort();
    (out, binds)
}

/// Docker refuses memory limits below 6 MiB.
const MIN_MEMORY: u64 = 6 << 20;

fn normalise_limits(spec: &wire::AppSpec, errors: &mut Errors) -> Limits {
    let mut limits = Limits {
        restart: normalise_restart(spec.restart_policy.as_ref(), errors),
        ..Limits::default()
    };
    let Some(r) = &spec.resources else {
        return limits;
    };
    if let Some(m) = &r.memory {
        if m.bytes() < MIN_MEMORY {
            errors.add(
                "spec.resources.memory",
                format!("{m} is below Docker's minimum of 6Mi"),
            );
        }
        limits.memory = Some(m.bytes() as i64);
        limits.memory_swap = Some(m.bytes() as i64);
    }
    if let Some(s) = &r.memory_swap {
        match &r.memory {
            None => errors.add("spec.resources.memorySwap", "needs resources.memory"),
            Some(m) if s.bytes() < m.bytes() => errors.add(
                "spec.resources.memorySwap",
                format!("{s} is less than memory {m}"),
            ),
            Some(_) => limits.memory_swap = Some(s.bytes() as i64),
        }
    }
    let cpu_limit = |field: &str, cpus: f64, errors: &mut Errors| {
        if !(cpus.is_finite() && (0.01..=1024.0).contains(&cpus)) {
            errors.add(field, "must be between 0.01 and 1024 CPUs");
            None
        } else {
            Some((cpus * 1e9).round() as i64)
        }
    };
    match (r.cpus, r.cpu_percent) {
        (Some(_), Some(_)) => errors.add(
            "spec.resources.cpuPercent",
            "give cpus or cpuPercent, not both",
        ),
        (Some(c), None) => limits.nano_cpus = cpu_limit("spec.resources.cpus", c, errors),
        (None, Some(p)) => {
            limits.nano_cpus = cpu_limit("spec.resources.cpuPercent", p / 100.0, errors)
        }
        (None, None) => {}
    }
    if let Some(p) = r.pids {
        if p < 1 {
            errors.add("spec.resources.pids", "must be at least 1");
        }
        limits.pids = Some(p);
    }
    limits
}

fn normalise_blkio(spec: &wire::AppSpec, errors: &mut Errors) -> Blkio {
    let mut out = Blkio::default();
    let Some(b) = spec.resources.as_ref().and_then(|r| r.blkio.as_ref()) else {
        return out;
    };
    let check = |field: &str, i: usize, path: &str, rate: u64, errors: &mut Errors| {
        if !path.starts_with("/dev/") || path.contains("..") {
            errors.add(
                format!("spec.resources.blkio.{field}[{i}].path"),
                "must be a device path under /dev/",
            );
        }
        if rate == 0 {
            errors.add(
                format!("spec.resources.blkio.{field}[{i}].rate"),
                "must be greater than 0",
            );
        }
        Throttle {
            path: path.to_string(),
            rate,
        }
    };
    let sorted = |mut v: Vec<Throttle>| {
        v.sort();
        v
    };
    let bytes = |field: &str, list: &[wire::ThrottleBytes], errors: &mut Errors| {
        sorted(
            list.iter()
                .enumerate()
                .map(|(i, t)| check(field, i, &t.path, t.rate.bytes(), errors))
                .collect(),
        )
    };
    let ops = |field: &str, list: &[wire::ThrottleOps], errors: &mut Errors| {
        sorted(
            list.iter()
                .enumerate()
                .map(|(i, t)| check(field, i, &t.path, t.rate, errors))
                .collect(),
        )
    };
    out.device_read_bps = bytes("deviceReadBps", &b.device_read_bps, errors);
    out.device_write_bps = bytes("deviceWriteBps", &b.device_write_bps, errors);
    out.device_read_iops = ops("deviceReadIops", &b.device_read_iops, errors);
    out.device_write_iops = ops("deviceWriteIops", &b.device_write_iops, errors);
    out
}

fn normalise_restart(policy: Option<&wire::RestartPolicy>, errors: &mut Errors) -> Restart {
    let Some(p) = policy else {
        return Restart::default();
    };
    if p.max_retries.is_some() && p.name != RestartPolicyName::OnFailure {
        errors.add(
            "spec.restartPolicy.maxRetries",
            "only applies to on-failure",
        );
    }
    match p.name {
        RestartPolicyName::No => Restart::No,
        RestartPolicyName::Always => Restart::Always,
        RestartPolicyName::UnlessStopped => Restart::UnlessStopped,
        RestartPolicyName::OnFailure => Restart::OnFailure {
            max_retries: p.max_retries.unwrap_or(0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Document;
    use crate::spec::parse::{Format, parse_documents};
    use crate::spec::wire::DesiredState;

    fn app(yaml: &str) -> Result<AppSpec, Vec<SpecError>> {
        let docs = parse_documents(yaml, Format::Yaml, None).expect("parses");
        let Document::App(doc) = &docs[0].document else {
            panic!("not an App")
        };
        validate_app(doc)
    }

    const BASE: &str = "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo}\nspec:\n  image: busybox\n";

    #[test]
    fn defaults_are_filled() {
        let a = app(BASE).unwrap();
        assert_eq!(a.key.namespace, "demo");
        assert_eq!(a.state, DesiredState::Running);
        assert_eq!(a.limits.restart, Restart::UnlessStopped);
    }

    #[test]
    fn env_map_and_list_hash_the_same() {
        let a = app(&format!("{BASE}  env: {{B: '2', A: 1}}\n")).unwrap();
        let b = app(&format!("{BASE}  env: [A=1, B=2]\n")).unwrap();
        assert_eq!(a.container.env, b.container.env);
        assert_eq!(a.hashes(), b.hashes());
    }

    #[test]
    fn port_order_and_spelling_do_not_change_the_hash() {
        let a = app(&format!(
            "{BASE}  ports: ['8080:80', {{containerPort: 53, protocol: udp}}]\n"
        ))
        .unwrap();
        let b = app(&format!(
            "{BASE}  ports: ['53/udp', {{containerPort: 80, hostPort: 8080}}]\n"
        ))
        .unwrap();
        assert_eq!(a.hashes(), b.hashes());
    }

    #[test]
    fn limits_change_only_the_update_hash() {
        let a = app(&format!("{BASE}  resources: {{memory: 256Mi}}\n")).unwrap();
        let b = app(&format!("{BASE}  resources: {{memory: 512m}}\n")).unwrap();
        assert_eq!(a.hashes().recreate, b.hashes().recreate);
        assert_ne!(a.hashes().update, b.hashes().update);
        assert_eq!(b.limits.memory_swap, Some(512 << 20), "swap follows memory");
    }

    #[test]
    fn cpu_percent_is_a_share_of_one_core() {
        let a = app(&format!("{BASE}  resources: {{cpuPercent: 50}}\n")).unwrap();
        assert_eq!(a.limits.nano_cpus, Some(500_000_000));
        let b = app(&format!("{BASE}  resources: {{cpus: 1.5}}\n")).unwrap();
        assert_eq!(b.limits.nano_cpus, Some(1_500_000_000));
    }

    #[test]
    fn cross_field_errors_name_their_fields() {
        let errors = app(&format!(
            "{BASE}  resources: {{cpus: 1, cpuPercent: 50, memorySwap: 1g, pids: 0}}\n  ports: ['80', '80']\n  volumes: [{{name: a, mountPath: rel}}]\n  restartPolicy: {{name: always, maxRetries: 3}}\n"
        ))
        .unwrap_err();
        let fields: Vec<_> = errors.iter().filter_map(|e| e.field.clone()).collect();
        for f in [
            "spec.resources.cpuPercent",
            "spec.resources.memorySwap",
            "spec.resources.pids",
            "spec.ports[1]",
            "spec.volumes[0].mountPath",
            "spec.restartPolicy.maxRetries",
        ] {
            assert!(fields.iter().any(|x| x == f), "missing {f} in {fields:?}");
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("jupyter--john").is_ok());
        assert!(check_name("-x").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_namespace("Demo").is_err());
        assert!(check_owner("jo--hn").is_err());
        assert!(check_owner("-john").is_err());
        assert!(check_owner("john_doe-2").is_ok());
    }

    #[test]
    fn port_area_rules() {
        let e = app(&format!(
            "{BASE}  portArea: {{size: 100}}\n  ports: [{{containerPort: 150}}, '8080:80']\n"
        ))
        .unwrap_err();
        assert_eq!(e.len(), 2);
    }
}
