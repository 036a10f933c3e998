//! Admission policy: what an App may ask of the host, how much one app and one namespace may
//! take, and the host-level memory admission check.
//!
//! The server's flags give the base policy; an admin may override any field per namespace
//! (stored in the database). Every check is a pure function of the policy, the app and the
//! usage the store computed from the stored apps in the same write transaction, so concurrent
//! writes cannot both slip under a quota. Feature rules answer 403, limits and quotas 422; both
//! name the rule.

use std::collections::BTreeSet;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::spec::AppSpec;
use crate::spec::quantity::{ByteQuantity, format_bytes};
use crate::spec::wire::DesiredState;

/// The capabilities Docker grants every container by default; adding one of them changes
/// nothing, so they are the default allowed set.
pub const DOCKER_DEFAULT_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "NET_RAW",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// `--host-memory-admission` when not given: apps may together declare 90 % of the host's
/// memory (the Flask API's rule).
pub const DEFAULT_HOST_MEMORY_PERCENT: u8 = crate::defaults::HOST_MEMORY_PERCENT;

/// A policy, or the part of one a namespace overrides. Absent fields take the server's value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Allow `spec.privileged`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privileged: Option<bool>,
    /// Allow `spec.hostNetwork`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_host_network: Option<bool>,
    /// Allow `spec.hostPID`.
    #[serde(
        default,
        rename = "allowHostPID",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_host_pid: Option<bool>,
    /// Allow `spec.hostIPC`.
    #[serde(
        default,
        rename = "allowHostIPC",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow_host_ipc: Option<bool>,
    /// Host directories bind mounts may come from (a mount must lie inside one). Empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_host_paths: Option<Vec<String>>,
    /// Host devices apps may use. Empty: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_devices: Option<Vec<String>>,
    /// Capabilities `spec.capabilities.add` may name. Default: Docker's default set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_capabilities: Option<Vec<String>>,
    /// Largest memory limit of one app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_app_memory: Option<ByteQuantity>,
    /// Most CPUs of one app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_app_cpus: Option<f64>,
    /// Most processes of one app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_app_pids: Option<i64>,
    /// Every limit of one app must be set (memory, cpus, pids), so quotas count everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_limits: Option<bool>,
    /// What all apps of one namespace may declare together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
}

/// A namespace's quota over its apps that are not stopped.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Quota {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ByteQuantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// Number of apps (stopped ones included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apps: Option<i64>,
}

impl Policy {
    /// This policy with every field `over` sets replaced (quota fields one by one).
    pub fn overridden_by(&self, over: &Policy) -> Policy {
        fn pick<T: Clone>(base: &Option<T>, over: &Option<T>) -> Option<T> {
            over.clone().or_else(|| base.clone())
        }
        let quota = match (&self.quota, &over.quota) {
            (None, None) => None,
            (b, o) => {
                let (b, o) = (b.clone().unwrap_or_default(), o.clone().unwrap_or_default());
                Some(Quota {
                    memory: pick(&b.memory, &o.memory),
                    cpus: pick(&b.cpus, &o.cpus),
                    pids: pick(&b.pids, &o.pids),
                    apps: pick(&b.apps, &o.apps),
                })
            }
        };
        Policy {
            allow_privileged: pick(&self.allow_privileged, &over.allow_privileged),
            allow_host_network: pick(&self.allow_host_network, &over.allow_host_network),
            allow_host_pid: pick(&self.allow_host_pid, &over.allow_host_pid),
            allow_host_ipc: pick(&self.allow_host_ipc, &over.allow_host_ipc),
            allowed_host_paths: pick(&self.allowed_host_paths, &over.allowed_host_paths),
            allowed_devices: pick(&self.allowed_devices, &over.allowed_devices),
            allowed_capabilities: pick(&self.allowed_capabilities, &over.allowed_capabilities),
            max_app_memory: pick(&self.max_app_memory, &over.max_app_memory),
            max_app_cpus: pick(&self.max_app_cpus, &over.max_app_cpus),
            max_app_pids: pick(&self.max_app_pids, &over.max_app_pids),
            require_limits: pick(&self.require_limits, &over.require_limits),
            quota,
        }
    }

    /// Checks the policy document itself (paths absolute, numbers positive).
    pub fn validate(&self) -> Result<(), String> {
        for (field, paths) in [
            ("allowedHostPaths", &self.allowed_host_paths),
            ("allowedDevices", &self.allowed_devices),
        ] {
            for p in paths.iter().flatten() {
                if !p.starts_with('/') || p.split('/').any(|c| c == "..") || p.contains('\0') {
                    return Err(format!(
                        "{field}: {p:?} must be an absolute path without '..'"
                    ));
                }
            }
        }
        for cap in self.allowed_capabilities.iter().flatten() {
            crate::spec::validate::normalise_capability(cap)
                .map_err(|e| format!("allowedCapabilities: {e}"))?;
        }
        let positive = |field: &str, v: Option<f64>| match v {
            Some(v) if !(v.is_finite() && v > 0.0) => Err(format!("{field} must be above 0")),
            _ => Ok(()),
        };
        positive("maxAppCpus", self.max_app_cpus)?;
        positive("maxAppPids", self.max_app_pids.map(|p| p as f64))?;
        if let Some(q) = &self.quota {
            positive("quota.cpus", q.cpus)?;
            positive("quota.pids", q.pids.map(|p| p as f64))?;
            positive("quota.apps", q.apps.map(|p| p as f64))?;
        }
        Ok(())
    }

    fn capabilities(&self) -> BTreeSet<String> {
        match &self.allowed_capabilities {
            Some(list) => list
                .iter()
                .filter_map(|c| crate::spec::validate::normalise_capability(c).ok())
                .collect(),
            None => DOCKER_DEFAULT_CAPABILITIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
        }
    }
}

/// What kind of rule refused a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ViolationKind {
    /// A feature the namespace's policy does not allow (the API answers 403).
    Forbidden,
    /// A limit or quota exceeded (the API answers 422).
    OverLimit,
}

/// A refusal, naming the rule that made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub kind: ViolationKind,
    /// e.g. `policy.allowPrivileged`, `quota.memory`, `admission.hostMemory`.
    pub rule: &'static str,
    /// The spec field at fault.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (rule {})", self.field, self.message, self.rule)
    }
}

fn forbidden(
    rule: &'static str,
    field: impl Into<String>,
    message: impl Into<String>,
) -> Violation {
    Violation {
        kind: ViolationKind::Forbidden,
        rule,
        field: field.into(),
        message: message.into(),
    }
}

fn too_much(rule: &'static str, field: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        kind: ViolationKind::OverLimit,
        rule,
        field: field.into(),
        message: message.into(),
    }
}

/// Whether `path` lies inside `root`, component by component (`/srv/a` is not inside `/srv/ab`).
fn inside(path: &str, root: &str) -> bool {
    let root = root.trim_end_matches('/');
    root.is_empty() || path == root || path.starts_with(&format!("{root}/"))
}

/// The feature rules and the per-app maxima.
pub fn check_app(policy: &Policy, app: &AppSpec) -> Result<(), Violation> {
    let c = &app.container;
    let flags = [
        (
            c.privileged,
            policy.allow_privileged,
            "policy.allowPrivileged",
            "spec.privileged",
            "privileged containers",
        ),
        (
            c.host_network,
            policy.allow_host_network,
            "policy.allowHostNetwork",
            "spec.hostNetwork",
            "the host's network",
        ),
        (
            c.host_pid,
            policy.allow_host_pid,
            "policy.allowHostPID",
            "spec.hostPID",
            "the host's PID namespace",
        ),
        (
            c.host_ipc,
            policy.allow_host_ipc,
            "policy.allowHostIPC",
            "spec.hostIPC",
            "the host's IPC namespace",
        ),
    ];
    for (wanted, allowed, rule, field, what) in flags {
        if wanted && allowed != Some(true) {
            return Err(forbidden(
                rule,
                field,
                format!(
                    "the policy of namespace {} does not allow {what}",
                    app.key.namespace
                ),
            ));
        }
    }
    let roots = policy.allowed_host_paths.clone().unwrap_or_default();
    for b in &c.binds {
        if !roots.iter().any(|r| inside(&b.host_path, r)) {
            let allowed = if roots.is_empty() {
                "no host paths are allowed".to_string()
            } else {
                format!("allowed: {}", roots.join(", "))
            };
            return Err(forbidden(
                "policy.allowedHostPaths",
                format!("spec.volumes[{}].hostPath", b.index),
                format!("bind mount of {} is not allowed ({allowed})", b.host_path),
            ));
        }
    }
    let devices = policy.allowed_devices.clone().unwrap_or_default();
    for (i, d) in c.devices.iter().enumerate() {
        if !devices.iter().any(|a| a == &d.host_path) {
            return Err(forbidden(
                "policy.allowedDevices",
                format!("spec.devices[{i}].hostPath"),
                format!("device {} is not allowed", d.host_path),
            ));
        }
    }
    let caps = policy.capabilities();
    for (i, cap) in c.cap_add.iter().enumerate() {
        if !caps.contains(cap) {
            return Err(forbidden(
                "policy.allowedCapabilities",
                format!("spec.capabilities.add[{i}]"),
                format!("capability {cap} is not allowed"),
            ));
        }
    }
    let l = &app.limits;
    if policy.require_limits == Some(true) {
        for (missing, field) in [
            (l.memory.is_none(), "spec.resources.memory"),
            (l.nano_cpus.is_none(), "spec.resources.cpus"),
            (l.pids.is_none(), "spec.resources.pids"),
        ] {
            if missing {
                return Err(too_much(
                    "policy.requireLimits",
                    field,
                    "the namespace's policy requires every app to set memory, cpus and pids limits",
                ));
            }
        }
    }
    let over = |rule, field, what: &str, shown: Option<String>, max: String| {
        let message = match shown {
            Some(v) => format!("{v} is above the most {what} one app may have, {max}"),
            None => format!(
                "no {what} limit is set; the namespace's policy requires one of at most {max}"
            ),
        };
        Err(too_much(rule, field, message))
    };
    if let Some(max) = &policy.max_app_memory {
        let max = max.bytes() as i64;
        if l.memory.is_none_or(|m| m > max) {
            return over(
                "policy.maxAppMemory",
                "spec.resources.memory",
                "memory",
                l.memory.map(bytes),
                bytes(max),
            );
        }
    }
    if let Some(max) = policy.max_app_cpus
        && !l.nano_cpus.is_some_and(|n| n as f64 / 1e9 <= max + 1e-9)
    {
        return over(
            "policy.maxAppCpus",
            "spec.resources.cpus",
            "CPUs",
            l.nano_cpus.map(|n| format!("{}", n as f64 / 1e9)),
            max.to_string(),
        );
    }
    if let Some(max) = policy.max_app_pids
        && !l.pids.is_some_and(|p| p > 0 && p <= max)
    {
        return over(
            "policy.maxAppPids",
            "spec.resources.pids",
            "processes",
            l.pids.map(|p| p.to_string()),
            max.to_string(),
        );
    }
    Ok(())
}

fn bytes(b: i64) -> String {
    format_bytes(b.max(0) as u64)
}

/// What one app counts against its namespace's quota and the host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub memory: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    /// Whether it runs (or is paused): stopped apps hold no memory, CPU or processes.
    pub active: bool,
}

impl Usage {
    pub fn of(app: &AppSpec) -> Usage {
        let active = app.state != DesiredState::Stopped;
        let l = &app.limits;
        Usage {
            memory: if active { l.memory.unwrap_or(0) } else { 0 },
            nano_cpus: if active { l.nano_cpus.unwrap_or(0) } else { 0 },
            pids: if active {
                l.pids.unwrap_or(0).max(0)
            } else {
                0
            },
            active,
        }
    }
}

/// Totals over a set of apps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub memory: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    pub apps: i64,
}

impl Totals {
    pub fn add(&mut self, u: &Usage) {
        self.memory += u.memory;
        self.nano_cpus += u.nano_cpus;
        self.pids += u.pids;
        self.apps += 1;
    }
}

/// The namespace quota, for an app whose usage goes from `old` (None: new) to `new`, with
/// `others` the totals of every other app of the namespace. Only growth is refused, so an app
/// over a quota that was tightened later may still shrink.
pub fn check_quota(
    policy: &Policy,
    namespace: &str,
    others: &Totals,
    old: Option<&Usage>,
    new: &Usage,
) -> Result<(), Violation> {
    let Some(q) = &policy.quota else {
        return Ok(());
    };
    let old = old.copied().unwrap_or_default();
    type Check = (
        Option<i64>,
        i64,
        i64,
        i64,
        &'static str,
        &'static str,
        fn(i64) -> String,
    );
    let checks: [Check; 3] = [
        (
            q.memory.as_ref().map(|m| m.bytes() as i64),
            others.memory,
            new.memory,
            old.memory,
            "quota.memory",
            "spec.resources.memory",
            bytes,
        ),
        (
            q.cpus.map(|c| (c * 1e9).round() as i64),
            others.nano_cpus,
            new.nano_cpus,
            old.nano_cpus,
            "quota.cpus",
            "spec.resources.cpus",
            |n| format!("{} CPUs", n as f64 / 1e9),
        ),
        (
            q.pids,
            others.pids,
            new.pids,
            old.pids,
            "quota.pids",
            "spec.resources.pids",
            |p| format!("{p} processes"),
        ),
    ];
    for (limit, used, new_v, old_v, rule, field, show) in checks {
        let Some(limit) = limit else { continue };
        if new_v > old_v && used + new_v > limit {
            return Err(too_much(
                rule,
                field,
                format!(
                    "namespace {namespace} would declare {} of its quota of {} (other apps: {})",
                    show(used + new_v),
                    show(limit),
                    show(used)
                ),
            ));
        }
    }
    Ok(())
}

/// The app-count quota for a new app.
pub fn check_app_count(policy: &Policy, namespace: &str, others: &Totals) -> Result<(), Violation> {
    match policy.quota.as_ref().and_then(|q| q.apps) {
        Some(limit) if others.apps + 1 > limit => Err(too_much(
            "quota.apps",
            "metadata.name",
            format!(
                "namespace {namespace} already has {} apps, its quota",
                others.apps
            ),
        )),
        _ => Ok(()),
    }
}

/// The host-level admission: every active app's memory limit together at most `percent` of
/// the host's memory. `others` covers every other app on this wharf.
pub fn check_host_memory(
    host_memory: i64,
    percent: u8,
    others: &Totals,
    old: Option<&Usage>,
    new: &Usage,
) -> Result<(), Violation> {
    if percent == 0 || host_memory <= 0 {
        return Ok(());
    }
    let limit = host_memory / 100 * i64::from(percent);
    let old = old.map_or(0, |u| u.memory);
    if new.memory > old && others.memory + new.memory > limit {
        return Err(too_much(
            "admission.hostMemory",
            "spec.resources.memory",
            format!(
                "apps would declare {} of memory, above {percent}% of the host's {} ({}); other apps declare {}",
                bytes(others.memory + new.memory),
                bytes(host_memory),
                bytes(limit),
                bytes(others.memory)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(memory: i64) -> Usage {
        Usage {
            memory,
            active: true,
            ..Usage::default()
        }
    }

    #[test]
    fn host_paths_match_whole_components() {
        assert!(inside("/srv/demo/www", "/srv/demo"));
        assert!(inside("/srv/demo", "/srv/demo/"));
        assert!(!inside("/srv/demox", "/srv/demo"));
        assert!(!inside("/etc", "/srv"));
    }

    #[test]
    fn a_namespace_override_replaces_fields_one_by_one() {
        let base = Policy {
            allow_privileged: Some(false),
            max_app_cpus: Some(2.0),
            quota: Some(Quota {
                memory: Some(ByteQuantity::parse("8Gi").expect("quantity")),
                apps: Some(10),
                ..Quota::default()
            }),
            ..Policy::default()
        };
        let over = Policy {
            allow_privileged: Some(true),
            quota: Some(Quota {
                apps: Some(3),
                ..Quota::default()
            }),
            ..Policy::default()
        };
        let merged = base.overridden_by(&over);
        assert_eq!(merged.allow_privileged, Some(true));
        assert_eq!(merged.max_app_cpus, Some(2.0));
        let quota = merged.quota.expect("quota");
        assert_eq!(quota.apps, Some(3));
        assert_eq!(quota.memory.map(|m| m.bytes()), Some(8 << 30));
    }

    #[test]
    fn only_growth_over_a_quota_is_refused() {
        let policy = Policy {
            quota: Some(Quota {
                memory: Some(ByteQuantity::parse("1Gi").expect("quantity")),
                ..Quota::default()
            }),
            ..Policy::default()
        };
        let others = Totals {
            memory: 900 << 20,
            apps: 1,
            ..Totals::default()
        };
        let refused = check_quota(&policy, "demo", &others, None, &usage(200 << 20))
            .expect_err("over the quota");
        assert_eq!(
            (refused.rule, refused.kind),
            ("quota.memory", ViolationKind::OverLimit)
        );
        // Already over (the quota was tightened): shrinking passes, growing does not.
        assert!(
            check_quota(
                &policy,
                "demo",
                &others,
                Some(&usage(300 << 20)),
                &usage(200 << 20)
            )
            .is_ok()
        );
        assert!(
            check_quota(
                &policy,
                "demo",
                &others,
                Some(&usage(200 << 20)),
                &usage(300 << 20)
            )
            .is_err()
        );
        assert!(
            check_host_memory(1 << 30, 90, &Totals::default(), None, &usage(900 << 20)).is_ok()
        );
        let host = check_host_memory(1 << 30, 90, &Totals::default(), None, &usage(1000 << 20))
            .expect_err("above 90 %");
        assert_eq!(host.rule, "admission.hostMemory");
        assert!(check_host_memory(1 << 30, 0, &Totals::default(), None, &usage(4 << 30)).is_ok());
    }

    #[test]
    fn policy_documents_are_checked() {
        let bad = Policy {
            allowed_host_paths: Some(vec!["/srv/../etc".into()]),
            ..Policy::default()
        };
        assert!(bad.validate().is_err());
        let bad = Policy {
            max_app_cpus: Some(-1.0),
            ..Policy::default()
        };
        assert!(bad.validate().is_err());
        assert!(Policy::default().validate().is_ok());
    }
}
