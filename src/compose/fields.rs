//! The compose values wharf reads, each into its wharf form: scalars, command words,
//! quantities, restart policies, ports (short and long syntax) and Image documents. Pure.

use serde_json::{Map, Value, json};

use super::interpolate::shell_words;
use crate::spec::wire::API_VERSION;

/// A scalar as compose takes it: strings, numbers and booleans as their text.
pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A list of strings, or one string split as a shell would.
pub(super) fn words(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::String(s) => shell_words(s),
        Value::Array(items) => items
            .iter()
            .map(|i| text(i).ok_or_else(|| format!("{i} is not a string")))
            .collect(),
        other => Err(format!("{other} is neither a string nor a list")),
    }
}

/// `512m`, `1gb`, `2g`, bytes: wharf's quantity (`512m`, `1g`, …).
pub(super) fn quantity(v: &Value) -> Option<String> {
    let t = text(v)?.trim().to_ascii_lowercase();
    let t = t
        .strip_suffix("ib")
        .map(|s| format!("{s}i"))
        .or_else(|| {
            t.strip_suffix('b')
                .filter(|s| s.ends_with(['k', 'm', 'g', 't']))
                .map(str::to_string)
        })
        .unwrap_or(t);
    let t = match t.strip_suffix('i') {
        Some(unit) if unit.ends_with(['k', 'm', 'g', 't']) => {
            let (n, u) = unit.split_at(unit.len() - 1);
            format!("{n}{}i", u.to_ascii_uppercase())
        }
        _ => t,
    };
    Some(t)
}

pub(super) fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `restart:` as wharf's restart policy.
pub(super) fn restart(value: &Value) -> Option<Value> {
    let t = text(value)?;
    let (name, retries) = match t.split_once(':') {
        Some((n, r)) => (n.to_string(), r.parse::<u32>().ok()),
        None => (t, None),
    };
    match name.as_str() {
        "no" | "false" => Some(json!({"name": "no"})),
        "always" | "unless-stopped" => Some(json!({"name": name})),
        "on-failure" => Some(match retries {
            Some(n) => json!({"name": "on-failure", "maxRetries": n}),
            None => json!({"name": "on-failure"}),
        }),
        _ => None,
    }
}

/// The long port syntax: `{target, published, host_ip, protocol, mode}`.
pub(super) fn long_port(o: &Map<String, Value>) -> Result<Value, String> {
    let target = o
        .get("target")
        .and_then(number)
        .ok_or("a long-syntax port needs `target`")?;
    let mut port = json!({"containerPort": target as u16});
    if let Some(published) = o.get("published").and_then(text) {
        let host: u16 = published
            .parse()
            .map_err(|_| format!("published {published:?}: a port range is not carried over"))?;
        port["hostPort"] = json!(host);
    }
    if let Some(ip) = o.get("host_ip").and_then(text) {
        port["hostIP"] = json!(ip);
    }
    if let Some(protocol) = o.get("protocol").and_then(text) {
        port["protocol"] = json!(protocol);
    }
    if let Some(mode) = o.get("mode").and_then(text) {
        port["mode"] = json!(mode);
    }
    Ok(port)
}

/// The short port syntax `[[IP:]HOST[-HOST]:]CONTAINER[-CONTAINER][/PROTOCOL]`; a range
/// becomes one port each (at most 100).
pub(super) fn short_ports(spec: &str) -> Result<Vec<Value>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, Some(p)),
        None => (spec, None),
    };
    // An IPv6 host address is in brackets.
    let (ip, rest) = match rest.strip_prefix('[') {
        Some(r) => {
            let (ip, r) = r
                .split_once("]:")
                .ok_or_else(|| format!("{spec:?}: unclosed `[`"))?;
            (Some(ip.to_string()), r)
        }
        None => (None, rest),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, container) = match parts.as_slice() {
        [c] => (ip, None, *c),
        [h, c] => (ip, Some(*h), *c),
        [i, h, c] if ip.is_none() => (Some(i.to_string()), Some(*h), *c),
        _ => return Err(format!("{spec:?} is not a port")),
    };
    let range = |s: &str| -> Result<(u16, u16), String> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a
            .parse()
            .map_err(|_| format!("{spec:?}: {s:?} is not a port"))?;
        let b: u16 = b
            .parse()
            .map_err(|_| format!("{spec:?}: {s:?} is not a port"))?;
        if b < a || b - a >= 100 {
            return Err(format!(
                "{spec:?}: a range of more than 100 ports is not carried over"
            ));
        }
        Ok((a, b))
    };
    let (c0, c1) = range(container)?;
    let hosts = match host.filter(|h| !h.is_empty()) {
        Some(h) => {
            let (h0, h1) = range(h)?;
            if h1 - h0 != c1 - c0 {
                return Err(format!(
                    "{spec:?}: the host and container ranges differ in length"
                ));
            }
            Some(h0)
        }
        None => None,
    };
    Ok((0..=(c1 - c0))
        .map(|i| {
            let mut port = json!({"containerPort": c0 + i});
            if let Some(h0) = hosts {
                port["hostPort"] = json!(h0 + i);
            }
            if let Some(ip) = &ip
                && !ip.is_empty()
            {
                port["hostIP"] = json!(ip);
            }
            if let Some(p) = protocol {
                port["protocol"] = json!(p);
            }
            port
        })
        .collect())
}

/// An Image document for `reference`, named after it.
pub(super) fn image_document(reference: &str, pull_policy: &str) -> Value {
    let mut name: String = reference
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    name.truncate(63);
    let name = name
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string();
    json!({
        "apiVersion": API_VERSION,
        "kind": "Image",
        "metadata": {"name": name},
        "spec": {"ref": reference, "pullPolicy": pull_policy},
    })
}
