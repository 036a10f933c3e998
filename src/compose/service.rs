//! One compose service as an App (and an Image when it sets `pull_policy`), with a warning
//! for every key that is not carried over.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use super::fields::{
    image_document, long_port, number, quantity, restart, short_ports, text, words,
};
use super::interpolate::parse_env_file;
use super::{Options, Warning};
use crate::spec::mode::Mode;
use crate::spec::wire::API_VERSION;

/// One service being converted.
pub(super) struct Service<'a> {
    pub(super) name: &'a str,
    pub(super) path: &'a str,
    pub(super) dir: &'a Path,
    pub(super) options: &'a Options,
    pub(super) fields: &'a Map<String, Value>,
    pub(super) warnings: &'a mut Vec<Warning>,
}

impl Service<'_> {
    fn warn(&mut self, key: &str, message: impl Into<String>) {
        self.warnings.push(Warning {
            path: format!("{}.{key}", self.path),
            message: message.into(),
        });
    }

    fn solo(&self) -> bool {
        self.options.mode == Mode::Solo
    }

    /// The service's App (and Image), or `None` when it cannot run as an app.
    pub(super) fn documents(&mut self) -> Result<Option<Vec<Value>>, String> {
        let Some(image) = self.fields.get("image").and_then(text) else {
            let why = if self.fields.contains_key("build") {
                "has `build` and no `image`: wharf runs images; build and push it, then set `image`"
            } else {
                "has no `image`"
            };
            self.warnings.push(Warning {
                path: self.path.to_string(),
                message: format!("skipped: {why}"),
            });
            return Ok(None);
        };
        let mut spec = Map::new();
        spec.insert("image".into(), json!(image));
        let mut labels = Map::new();
        let mut resources = Map::new();
        let mut reservations = Map::new();
        let mut env: BTreeMap<String, String> = BTreeMap::new();
        let mut ports = Vec::new();
        let mut volumes = Vec::new();
        let mut image_doc = None;
        for (key, value) in self.fields {
            match key.as_str() {
                "image" => {}
                "command" | "entrypoint" => match words(value) {
                    Ok(w) => {
                        spec.insert(key.clone(), json!(w));
                    }
                    Err(e) => self.warn(key, format!("not carried over: {e}")),
                },
                "working_dir" => {
                    spec.insert("workingDir".into(), value.clone());
                }
                "environment" => self.environment(value, &mut env),
                "env_file" => self.env_files(value, &mut env)?,
                "ports" => self.ports(value, &mut ports),
                "expose" => {
                    for p in value.as_array().into_iter().flatten() {
                        let port = text(p).and_then(|t| {
                            t.split('/').next().and_then(|n| n.parse::<u16>().ok())
                        });
                        match port {
                            Some(port) => ports.push(json!({"containerPort": port})),
                            None => self.warn(key, format!("{p} is not a port: not carried over")),
                        }
                    }
                }
                "volumes" => self.volumes(value, &mut volumes),
                "mem_limit" => {
                    resources.insert("memory".into(), json!(quantity(value)));
                }
                "memswap_limit" => {
                    resources.insert("memorySwap".into(), json!(quantity(value)));
                }
                "mem_reservation" => {
                    reservations.insert("memory".into(), json!(quantity(value)));
                }
                "cpus" => {
                    resources.insert("cpus".into(), json!(number(value)));
                }
                "pids_limit" => {
                    resources.insert("pids".into(), json!(number(value).map(|n| n as i64)));
                }
                "deploy" => self.deploy(value, &mut spec, &mut resources, &mut reservations),
                "restart" => match restart(value) {
                    Some(policy) => {
                        spec.insert("restartPolicy".into(), policy);
                    }
                    None => self.warn(key, format!("{value} is not a restart policy: not carried over")),
                },
                "healthcheck" => {
                    if let Some(check) = self.healthcheck(value) {
                        spec.insert("healthcheck".into(), check);
                    }
                }
                "labels" => self.labels(value, &mut labels),
                "stop_grace_period" => {
                    spec.insert("stopGracePeriod".into(), value.clone());
                }
                "privileged" => {
                    spec.insert("privileged".into(), value.clone());
                }
                "network_mode" if text(value).as_deref() == Some("host") => {
                    spec.insert("hostNetwork".into(), json!(true));
                }
                "pid" if text(value).as_deref() == Some("host") => {
                    spec.insert("hostPID".into(), json!(true));
                }
                "ipc" if text(value).as_deref() == Some("host") => {
                    spec.insert("hostIPC".into(), json!(true));
                }
                "cap_add" | "cap_drop" => {
                    let caps = spec
                        .entry("capabilities")
                        .or_insert_with(|| json!({}));
                    let field = if key == "cap_add" { "add" } else { "drop" };
                    caps[field] = value.clone();
                }
                "devices" => {
                    let mut devices = Vec::new();
                    for d in value.as_array().into_iter().flatten() {
                        let parts: Vec<String> =
                            text(d).unwrap_or_default().split(':').map(str::to_string).collect();
                        let mut device = json!({"hostPath": parts[0]});
                        if let Some(c) = parts.get(1) {
                            device["containerPath"] = json!(c);
                        }
                        if let Some(p) = parts.get(2) {
                            device["permissions"] = json!(p);
                        }
                        devices.push(device);
                    }
                    spec.insert("devices".into(), json!(devices));
                }
                "pull_policy" => {
                    let policy = match text(value).as_deref() {
                        Some("always") => Some("Always"),
                        Some("missing" | "if_not_present") => Some("IfNotPresent"),
                        Some("never") => Some("Never"),
                        _ => None,
                    };
                    match policy {
                        Some(p) => image_doc = Some(image_document(&image, p)),
                        None => self.warn(key, format!("{value}: not carried over (wharf has Always, IfNotPresent and Never)")),
                    }
                }
                "container_name" => self.warn(key, "not carried over: wharf names the container NAMESPACE.NAME"),
                "depends_on" => self.warn(key, "not carried over: wharf starts every app on its own, with no ordering; an app that needs another should retry until it answers"),
                "networks" | "links" | "external_links" => self.warn(key, "not carried over: wharf apps use Docker's default bridge; publish ports or use hostNetwork"),
                "build" => self.warn(key, "not carried over: wharf runs images; build and push it elsewhere"),
                "tmpfs" => self.warn(key, "not carried over: wharf has no tmpfs mounts"),
                other => self.warn(other, "not carried over: wharf has no such setting"),
            }
        }
        if !env.is_empty() {
            spec.insert("env".into(), json!(env));
        }
        if !ports.is_empty() {
            spec.insert("ports".into(), json!(ports));
        }
        if !volumes.is_empty() {
            spec.insert("volumes".into(), json!(volumes));
        }
        if !reservations.is_empty() {
            if self.solo() {
                self.warn("deploy.resources.reservations", "dropped: reservations are for the swarm scheduler (convert --mode swarm keeps them)");
            } else {
                resources.insert("reservations".into(), Value::Object(reservations));
            }
        }
        resources.retain(|_, v| !v.is_null());
        if !resources.is_empty() {
            spec.insert("resources".into(), Value::Object(resources));
        }
        let mut metadata = json!({"name": self.name, "namespace": self.options.namespace});
        if !labels.is_empty() {
            metadata["labels"] = Value::Object(labels);
        }
        let app = json!({
            "apiVersion": API_VERSION,
            "kind": "App",
            "metadata": metadata,
            "spec": spec,
        });
        Ok(Some(image_doc.into_iter().chain([app]).collect()))
    }

    fn environment(&mut self, value: &Value, env: &mut BTreeMap<String, String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match text(v) {
                        Some(t) => {
                            env.insert(k.clone(), t);
                        }
                        None => self.warn(&format!("environment.{k}"), "has no value: compose passes the host's variable; wharf does not (set a value)"),
                    }
                }
            }
            Value::Array(items) => {
                for item in items {
                    let t = text(item).unwrap_or_default();
                    match t.split_once('=') {
                        Some((k, v)) => {
                            env.insert(k.into(), v.into());
                        }
                        None => self.warn(&format!("environment.{t}"), "has no value: compose passes the host's variable; wharf does not (set a value)"),
                    }
                }
            }
            _ => self.warn(
                "environment",
                "is neither a mapping nor a list: not carried over",
            ),
        }
    }

    /// Reads each env file (relative to the compose file); `environment` wins over them.
    fn env_files(
        &mut self,
        value: &Value,
        env: &mut BTreeMap<String, String>,
    ) -> Result<(), String> {
        let entries: Vec<(String, bool)> = match value {
            Value::String(s) => vec![(s.clone(), true)],
            Value::Array(items) => items
                .iter()
                .filter_map(|i| match i {
                    Value::String(s) => Some((s.clone(), true)),
                    Value::Object(o) => Some((
                        o.get("path").and_then(text)?,
                        o.get("required").and_then(Value::as_bool).unwrap_or(true),
                    )),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        for (file, required) in entries {
            let path = self.dir.join(&file);
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    let pairs =
                        parse_env_file(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                    for (k, v) in pairs {
                        env.entry(k).or_insert(v);
                    }
                }
                Err(e) if required => {
                    return Err(format!("{}.env_file {}: {e}", self.path, path.display()));
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    fn ports(&mut self, value: &Value, out: &mut Vec<Value>) {
        for (i, p) in value.as_array().into_iter().flatten().enumerate() {
            let key = format!("ports[{i}]");
            let result = match p {
                Value::Object(o) => long_port(o).map(|p| vec![p]),
                other => match text(other) {
                    Some(t) => short_ports(&t),
                    None => Err(format!("{other} is not a port")),
                },
            };
            match result {
                Ok(ports) => {
                    for port in ports {
                        if port.get("hostPort").is_none() {
                            self.warn(&key, "compose publishes it on a random host port; wharf exposes it unpublished (give a host port, or declare spec.portArea)");
                        }
                        if self.solo() && port.get("mode").is_some() {
                            self.warn(&key, "mode dropped: it is for swarm mode");
                            let mut port = port;
                            if let Some(o) = port.as_object_mut() {
                                o.remove("mode");
                            }
                            out.push(port);
                        } else {
                            out.push(port);
                        }
                    }
                }
                Err(e) => self.warn(&key, format!("not carried over: {e}")),
            }
        }
    }

    fn volumes(&mut self, value: &Value, out: &mut Vec<Value>) {
        for (i, v) in value.as_array().into_iter().flatten().enumerate() {
            let key = format!("volumes[{i}]");
            let (kind, source, target, read_only) = match v {
                Value::Object(o) => {
                    let kind = o
                        .get("type")
                        .and_then(text)
                        .unwrap_or_else(|| "volume".into());
                    (
                        kind,
                        o.get("source").and_then(text),
                        o.get("target").and_then(text),
                        o.get("read_only").and_then(Value::as_bool).unwrap_or(false),
                    )
                }
                other => {
                    let t = text(other).unwrap_or_default();
                    let parts: Vec<&str> = t.split(':').collect();
                    let (source, target, mode) = match parts.as_slice() {
                        [target] => (None, Some(target.to_string()), ""),
                        [source, target] => {
                            (Some(source.to_string()), Some(target.to_string()), "")
                        }
                        [source, target, mode] => {
                            (Some(source.to_string()), Some(target.to_string()), *mode)
                        }
                        _ => (None, None, ""),
                    };
                    let bind = source
                        .as_deref()
                        .is_some_and(|s| s.starts_with(['/', '.', '~']));
                    for option in mode
                        .split(',')
                        .filter(|o| !o.is_empty() && *o != "ro" && *o != "rw")
                    {
                        self.warn(&key, format!("option {option:?} dropped"));
                    }
                    (
                        if bind { "bind".into() } else { "volume".into() },
                        source,
                        target,
                        mode.split(',').any(|o| o == "ro"),
                    )
                }
            };
            let Some(target) = target else {
                self.warn(&key, format!("{v} has no target: not carried over"));
                continue;
            };
            let mut mount = json!({"mountPath": target});
            match (kind.as_str(), source) {
                ("bind", Some(source)) => {
                    mount["hostPath"] = json!(self.host_path(&source));
                }
                ("volume", Some(source)) => {
                    mount["name"] = json!(source);
                }
                ("volume", None) => {
                    let name = format!("{}-{i}", self.name);
                    self.warn(&key, format!("an anonymous volume: named {name:?}, kept until the app is deleted with its volumes"));
                    mount["name"] = json!(name);
                }
                (other, _) => {
                    self.warn(&key, format!("a {other} mount: not carried over"));
                    continue;
                }
            }
            if read_only {
                mount["readOnly"] = json!(true);
            }
            out.push(mount);
        }
    }

    /// A bind's source as an absolute host path (relative to the compose file; `~` is HOME).
    fn host_path(&self, source: &str) -> String {
        let path = if let Some(rest) = source.strip_prefix("~/") {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest)
        } else {
            self.dir.join(source)
        };
        let absolute = if path.is_absolute() {
            path
        } else {
            std::env::current_dir().unwrap_or_default().join(path)
        };
        // `./data` → `/srv/app/data`, without `.` components.
        let clean: PathBuf = absolute
            .components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect();
        clean.display().to_string()
    }

    fn deploy(
        &mut self,
        value: &Value,
        spec: &mut Map<String, Value>,
        resources: &mut Map<String, Value>,
        reservations: &mut Map<String, Value>,
    ) {
        let Some(deploy) = value.as_object() else {
            return;
        };
        for (key, v) in deploy {
            let path = format!("deploy.{key}");
            match key.as_str() {
                "replicas" => match number(v).map(|n| n as u64) {
                    Some(1) => {}
                    Some(n) if self.solo() => self.warn(&path, format!("{n} dropped: solo mode runs one container (convert --mode swarm keeps it)")),
                    Some(n) => {
                        spec.insert("replicas".into(), json!(n));
                    }
                    None => self.warn(&path, "is not a number"),
                },
                "mode" if text(v).as_deref() == Some("global") => {
                    if self.solo() {
                        self.warn(&path, "dropped: global is for swarm mode");
                    } else {
                        spec.insert("mode".into(), json!("global"));
                    }
                }
                "mode" => {}
                "resources" => {
                    let limits = v.get("limits").and_then(Value::as_object);
                    for (k, l) in limits.into_iter().flatten() {
                        match k.as_str() {
                            "memory" => {
                                resources.insert("memory".into(), json!(quantity(l)));
                            }
                            "cpus" => {
                                resources.insert("cpus".into(), json!(number(l)));
                            }
                            "pids" => {
                                resources.insert("pids".into(), json!(number(l).map(|n| n as i64)));
                            }
                            other => self.warn(&format!("{path}.limits.{other}"), "not carried over"),
                        }
                    }
                    let wants = v.get("reservations").and_then(Value::as_object);
                    for (k, r) in wants.into_iter().flatten() {
                        match k.as_str() {
                            "memory" => {
                                reservations.insert("memory".into(), json!(quantity(r)));
                            }
                            "cpus" => {
                                reservations.insert("cpus".into(), json!(number(r)));
                            }
                            other => self.warn(&format!("{path}.reservations.{other}"), "not carried over"),
                        }
                    }
                }
                "placement" => {
                    if self.solo() {
                        self.warn(&path, "dropped: placement is for swarm mode");
                        continue;
                    }
                    let mut placement = Map::new();
                    if let Some(c) = v.get("constraints") {
                        placement.insert("constraints".into(), c.clone());
                    }
                    if let Some(p) = v.get("preferences").and_then(Value::as_array) {
                        let prefs: Vec<Value> = p
                            .iter()
                            .filter_map(|p| p.get("spread").map(|s| json!({"spread": s})))
                            .collect();
                        placement.insert("preferences".into(), json!(prefs));
                    }
                    if let Some(m) = v.get("max_replicas_per_node") {
                        placement.insert("maxReplicasPerNode".into(), m.clone());
                    }
                    spec.insert("placement".into(), Value::Object(placement));
                }
                "update_config" => {
                    if self.solo() {
                        self.warn(&path, "dropped: update settings are for swarm mode (solo mode replaces safely, one at a time)");
                        continue;
                    }
                    let mut update = Map::new();
                    for (k, u) in v.as_object().into_iter().flatten() {
                        let field = match k.as_str() {
                            "parallelism" => "parallelism",
                            "delay" => "delay",
                            "order" => "order",
                            "failure_action" => "failureAction",
                            "monitor" => "monitor",
                            "max_failure_ratio" => "maxFailureRatio",
                            other => {
                                self.warn(&format!("{path}.{other}"), "not carried over");
                                continue;
                            }
                        };
                        update.insert(field.into(), u.clone());
                    }
                    spec.insert("update".into(), Value::Object(update));
                }
                "restart_policy" => {
                    let condition = v.get("condition").and_then(text);
                    let name = match condition.as_deref() {
                        Some("none") => "no",
                        Some("on-failure") => "on-failure",
                        _ => "always",
                    };
                    let mut policy = json!({"name": name});
                    if let Some(n) = v.get("max_attempts").and_then(number) {
                        policy["maxRetries"] = json!(n as u64);
                    }
                    if let Some(d) = v.get("delay")
                        && !self.solo()
                    {
                        policy["delay"] = d.clone();
                    }
                    spec.insert("restartPolicy".into(), policy);
                }
                other => self.warn(&format!("deploy.{other}"), "not carried over"),
            }
        }
    }

    fn healthcheck(&mut self, value: &Value) -> Option<Value> {
        let check = value.as_object()?;
        if check.get("disable").and_then(Value::as_bool) == Some(true) {
            return Some(json!({"cmd": ["NONE"]}));
        }
        let cmd = match check.get("test") {
            Some(Value::String(s)) => vec!["CMD-SHELL".to_string(), s.clone()],
            Some(v) => match words(v) {
                Ok(w) => w,
                Err(e) => {
                    self.warn("healthcheck.test", format!("not carried over: {e}"));
                    return None;
                }
            },
            None => {
                self.warn("healthcheck", "has no test: not carried over");
                return None;
            }
        };
        let mut out = json!({"cmd": cmd});
        for (from, to) in [
            ("interval", "interval"),
            ("timeout", "timeout"),
            ("retries", "retries"),
            ("start_period", "startPeriod"),
        ] {
            if let Some(v) = check.get(from) {
                out[to] = v.clone();
            }
        }
        for key in check.keys() {
            if ![
                "test",
                "interval",
                "timeout",
                "retries",
                "start_period",
                "disable",
            ]
            .contains(&key.as_str())
            {
                self.warn(&format!("healthcheck.{key}"), "not carried over");
            }
        }
        Some(out)
    }

    fn labels(&mut self, value: &Value, out: &mut Map<String, Value>) {
        let pairs: Vec<(String, String)> = match value {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| (k.clone(), text(v).unwrap_or_default()))
                .collect(),
            Value::Array(items) => items
                .iter()
                .filter_map(text)
                .map(|t| match t.split_once('=') {
                    Some((k, v)) => (k.to_string(), v.to_string()),
                    None => (t, String::new()),
                })
                .collect(),
            _ => Vec::new(),
        };
        for (k, v) in pairs {
            if crate::spec::names::check_label_key(&k) {
                out.insert(k, json!(v));
            } else {
                self.warn(
                    &format!("labels.{k}"),
                    "not a valid label key: not carried over",
                );
            }
        }
    }
}
