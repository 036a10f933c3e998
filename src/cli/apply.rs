//! `wharf apply` (with `--dry-run` and `--wait`), `wharf diff` and `wharf delete`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::reconcile::status::AppStatus;
use crate::spec::{AppKey, Kind};

use super::args::SetFlags;
use super::client::{CliError, CliResult, Client, Exit};
use super::files::{read_or_exit, wire_bundle};
use super::images;

/// `wharf apply -f … [--dry-run] [--set NAME [--prune]] [--wait --timeout]`.
pub async fn apply(
    client: &Client,
    paths: &[PathBuf],
    dry_run: bool,
    set: &SetFlags,
    wait: bool,
    timeout: Duration,
) -> CliResult {
    if let Some(name) = &set.set
        && let Err(e) = crate::spec::names::check_name(name)
    {
        return Err(CliError::new(Exit::Invalid, format!("--set {name:?}: {e}")));
    }
    let docs = read_or_exit(paths)?;
    apply_bundle(client, wire_bundle(&docs), dry_run, set, wait, timeout).await
}

/// Sends a validated bundle to `/apply`, prints each result, and optionally waits.
pub(crate) async fn apply_bundle(
    client: &Client,
    bundle: Value,
    dry_run: bool,
    set: &SetFlags,
    wait: bool,
    timeout: Duration,
) -> CliResult {
    let query = set.query(dry_run);
    let response = client
        .send(
            reqwest::Method::POST,
            &format!("/apply{query}"),
            Some(bundle),
        )
        .await?;
    let items = response["items"].as_array().cloned().unwrap_or_default();
    for item in &items {
        let suffix = if dry_run { " (dry run)" } else { "" };
        println!(
            "{} {}{suffix}",
            item_label(item),
            item["result"].as_str().unwrap_or("")
        );
        if dry_run {
            print_plan(item);
        }
    }
    if wait && !dry_run {
        let targets: Vec<Target> = items
            .iter()
            .filter(|i| i["result"] != "pruned")
            .map(|i| Target {
                image: i["kind"] == "Image",
                namespace: i["namespace"].as_str().unwrap_or("").to_string(),
                name: i["name"].as_str().unwrap_or("").to_string(),
                generation: i["generation"].as_i64().unwrap_or(0),
            })
            .collect();
        return wait_ready(client, &targets, timeout).await;
    }
    Ok(Exit::Ok)
}

/// `app/NAMESPACE/NAME` or `image/NAME` for an apply or diff result.
pub(crate) fn item_label(item: &Value) -> String {
    let name = item["name"].as_str().unwrap_or("");
    match item["kind"].as_str() {
        Some("Image") => format!("image/{name}"),
        _ => format!("app/{}/{name}", item["namespace"].as_str().unwrap_or("")),
    }
}

/// An object `apply --wait` waits for.
pub(crate) struct Target {
    image: bool,
    namespace: String,
    name: String,
    generation: i64,
}

impl Target {
    pub(crate) fn label(&self) -> String {
        if self.image {
            format!("image/{}", self.name)
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    pub(crate) fn path(&self) -> String {
        if self.image {
            format!("/images/{}", self.name)
        } else {
            format!("/namespaces/{}/apps/{}", self.namespace, self.name)
        }
    }
}

/// Whether an Image document is present at `generation`, and a line describing it.
pub(crate) fn image_progress(doc: &Value, generation: i64) -> (bool, String) {
    let phase = doc
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Pending");
    let observed = doc
        .pointer("/status/observedGeneration")
        .and_then(Value::as_i64);
    let condition = doc.pointer("/status/conditions/0");
    let reason = condition.and_then(|c| c["reason"].as_str()).unwrap_or("");
    let message = condition
        .and_then(|c| c["message"].as_str())
        .filter(|m| !m.is_empty());
    let ready = phase == "Present" && observed.is_some_and(|g| g >= generation);
    let line = match message {
        Some(m) => format!("{phase} ({reason}: {m})"),
        None => format!("{phase} ({reason})"),
    };
    (ready, line)
}

pub(crate) fn print_plan(item: &Value) {
    for step in item["plan"].as_array().into_iter().flatten() {
        println!(
            "  - {}: {}",
            step["action"].as_str().unwrap_or(""),
            step["reason"].as_str().unwrap_or("")
        );
    }
}

/// Polls until every app is Ready and every Image present at its generation, printing changes
/// and drawing the layers of pulls in progress.
pub(crate) async fn wait_ready(
    client: &Client,
    targets: &[Target],
    timeout: Duration,
) -> CliResult {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    let mut bars = images::PullBars::default();
    loop {
        let mut pending = Vec::new();
        for target in targets {
            let label = target.label();
            let doc = client.get(&target.path()).await?;
            if doc.pointer("/status/pull/state").and_then(Value::as_str) == Some("Pulling") {
                bars.update(&target.name, &doc["status"]["pull"]);
            }
            let (ready, line) = if target.image {
                image_progress(&doc, target.generation)
            } else {
                let status: Option<AppStatus> = doc
                    .get("status")
                    .cloned()
                    .and_then(|s| serde_json::from_value(s).ok());
                let ready = status
                    .as_ref()
                    .is_some_and(|s| s.is_ready_at(target.generation));
                let line = match &status {
                    None => "Pending (not reconciled yet)".to_string(),
                    Some(s) => {
                        let cond = s.condition("Ready");
                        let reason = cond.map(|c| c.reason.as_str()).unwrap_or("");
                        let message = cond.map(|c| c.message.as_str()).filter(|m| !m.is_empty());
                        match message {
                            Some(m) => format!("{:?} ({reason}: {m})", s.phase),
                            None => format!("{:?} ({reason})", s.phase),
                        }
                    }
                };
                (ready, line)
            };
            if last.get(&label) != Some(&line) {
                println!("{label}: {line}{}", if ready { " ✓" } else { "" });
                last.insert(label.clone(), line.clone());
            }
            if !ready {
                pending.push(format!("{label}: {line}"));
            }
        }
        if pending.is_empty() {
            bars.finish();
            let what = if targets.iter().any(|t| t.image) {
                "object(s)"
            } else {
                "app(s)"
            };
            println!("all {} {what} ready", targets.len());
            return Ok(Exit::Ok);
        }
        if tokio::time::Instant::now() >= deadline {
            bars.finish();
            return Err(CliError::new(
                Exit::Timeout,
                format!(
                    "timed out after {}s; not ready:\n  {}",
                    timeout.as_secs(),
                    pending.join("\n  ")
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `wharf diff -f …`: exit 1 when anything would change.
pub async fn diff(client: &Client, paths: &[PathBuf]) -> CliResult {
    let docs = read_or_exit(paths)?;
    let response = client
        .send(
            reqwest::Method::POST,
            "/apply?dryRun=true",
            Some(wire_bundle(&docs)),
        )
        .await?;
    let mut changed = false;
    for item in response["items"].as_array().into_iter().flatten() {
        if item["result"] == "unchanged" {
            continue;
        }
        changed = true;
        println!(
            "{} would be {}",
            item_label(item),
            item["result"].as_str().unwrap_or("")
        );
        print!("{}", item["diff"].as_str().unwrap_or(""));
        print_plan(item);
    }
    Ok(if changed { Exit::Differences } else { Exit::Ok })
}

/// `wharf delete node NAME`: the `kind: Node` object (the node stays as it is).
pub async fn delete_node(client: &Client, name: &str) -> CliResult {
    match client
        .send(reqwest::Method::DELETE, &format!("/nodes/{name}"), None)
        .await
    {
        Ok(_) => {
            println!("node/{name} deleted (the node keeps its availability and labels)");
            Ok(Exit::Ok)
        }
        Err(e) => {
            eprintln!("node/{name}: {}", e.message);
            Ok(e.exit)
        }
    }
}

/// `wharf delete app NAME` or `wharf delete -f …`.
pub async fn delete(
    client: &Client,
    namespace: &str,
    name: Option<&str>,
    paths: &[PathBuf],
) -> CliResult {
    let keys: Vec<(Kind, AppKey)> = match name {
        Some(n) => vec![(
            Kind::App,
            AppKey {
                namespace: namespace.to_string(),
                name: n.to_string(),
            },
        )],
        None => read_or_exit(paths)?
            .into_iter()
            .map(|(_, v)| (v.kind(), v.key().clone()))
            .collect(),
    };
    let mut result = Exit::Ok;
    for (kind, key) in keys {
        let (path, label) = match kind {
            Kind::App => (
                format!("/namespaces/{}/apps/{}", key.namespace, key.name),
                format!("app/{key}"),
            ),
            Kind::Image => (format!("/images/{}", key.name), format!("image/{key}")),
            Kind::Node => (format!("/nodes/{}", key.name), format!("node/{key}")),
        };
        match client.send(reqwest::Method::DELETE, &path, None).await {
            Ok(_) => println!("{label} deleted"),
            Err(e) => {
                eprintln!("{label}: {}", e.message);
                result = e.exit;
            }
        }
    }
    Ok(result)
}
