//! Compose import (`wharf convert`): a docker compose file becomes wharf App documents (and
//! Image documents for services that set `pull_policy`). Pure apart from reading the compose
//! file's `env_file`s: no engine, no server.
//!
//! Every key that is not carried over is reported with why (`build`, `depends_on` ordering,
//! custom networks …), naming its path in the file. Variables are interpolated first, from the
//! environment over the `.env` file beside the compose file.
//!
//! - `interpolate`: `${VAR:-default}` and friends, `.env` files, command strings.
//! - `service`: one service as an App (and an Image), with its warnings.
//! - `fields`: the values a service holds (ports, quantities, restart policies …) in wharf's
//!   form.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::spec::mode::Mode;

mod fields;
pub mod interpolate;
mod service;

use interpolate::{Findings, Vars, interpolate, parse_env_file};
use service::Service;

/// A key of the compose file that wharf does not carry over, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    /// `services.web.build`.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// What a conversion made.
#[derive(Debug, Default)]
pub struct Converted {
    /// `(service name, documents)`: its App, and an Image when it sets `pull_policy`.
    pub services: Vec<(String, Vec<Value>)>,
    pub warnings: Vec<Warning>,
}

/// How to convert.
#[derive(Clone, Debug)]
pub struct Options {
    /// The namespace of every App.
    pub namespace: String,
    /// Solo drops what only swarm mode has (replicas above 1, placement, reservations, update
    /// settings), with a warning; swarm keeps them.
    pub mode: Mode,
}

/// Reads `file` (and the `.env` beside it, and the services' `env_file`s) with `env` (the
/// process environment) and converts it. `Err` when the file cannot be read or parsed, or a
/// `${VAR?}` variable is missing.
pub fn convert_file(
    file: &Path,
    env: &BTreeMap<String, String>,
    options: &Options,
) -> Result<Converted, String> {
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut vars = Vars::default();
    let dotenv = dir.join(".env");
    if dotenv.is_file() {
        let text =
            std::fs::read_to_string(&dotenv).map_err(|e| format!("{}: {e}", dotenv.display()))?;
        let pairs = parse_env_file(&text).map_err(|e| format!("{}: {e}", dotenv.display()))?;
        vars.values.extend(pairs);
    }
    vars.values
        .extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    convert(&text, &vars, &dir, options).map_err(|e| format!("{}: {e}", file.display()))
}

/// Converts compose `text`; `dir` is where relative paths (binds, env files) start.
pub fn convert(
    text: &str,
    vars: &Vars,
    dir: &Path,
    options: &Options,
) -> Result<Converted, String> {
    let raw: Value = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    let mut findings = Findings::default();
    let doc = interpolate_all(raw, vars, &mut findings)?;
    let mut out = Converted::default();
    let mut unset = findings.unset;
    unset.sort();
    unset.dedup();
    for name in unset {
        out.warnings.push(Warning {
            path: format!("${{{name}}}"),
            message: "is not set (in the environment or .env) and has no default: taken as empty"
                .into(),
        });
    }
    let top = doc
        .as_object()
        .ok_or("a compose file is a mapping with `services:`")?;
    for (key, _) in top {
        match key.as_str() {
            "services" | "version" | "name" | "volumes" => {}
            "networks" => out.warn("networks", "not carried over: wharf apps use Docker's default bridge; publish ports or use hostNetwork"),
            "secrets" => out.warn("secrets", "not carried over: mount the files with a hostPath volume (read-only)"),
            "configs" => out.warn("configs", "not carried over: mount the files with a hostPath volume (read-only)"),
            k if k.starts_with("x-") => {}
            other => out.warn(other, "not carried over: wharf has no such setting"),
        }
    }
    let services = top
        .get("services")
        .and_then(Value::as_object)
        .ok_or("the file has no `services:` mapping")?;
    for (name, service) in services {
        let path = format!("services.{name}");
        let Some(service) = service.as_object() else {
            out.warn(&path, "is not a mapping: skipped");
            continue;
        };
        if let Err(e) = crate::spec::names::check_name(name) {
            out.warn(&path, &format!("skipped: {e}"));
            continue;
        }
        let mut s = Service {
            name,
            path: &path,
            dir,
            options,
            fields: service,
            warnings: &mut out.warnings,
        };
        if let Some(docs) = s.documents()? {
            out.services.push((name.clone(), docs));
        }
    }
    Ok(out)
}

impl Converted {
    fn warn(&mut self, path: &str, message: &str) {
        self.warnings.push(Warning {
            path: path.into(),
            message: message.into(),
        });
    }
}

/// Every string of the tree interpolated (mapping keys are left as they are, as in compose).
fn interpolate_all(value: Value, vars: &Vars, found: &mut Findings) -> Result<Value, String> {
    Ok(match value {
        Value::String(s) => Value::String(interpolate(&s, vars, found)?),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| interpolate_all(v, vars, found))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| Ok((k, interpolate_all(v, vars, found)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

#[cfg(test)]
mod tests;
