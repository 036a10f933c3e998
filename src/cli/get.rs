//! `wharf get apps`, `wharf describe` and `wharf schema`.

use std::path::Path;

use serde_json::Value;

use super::client::{CliError, CliResult, Client, Exit};
use super::output::{Output, age, print_value, table, table_items, urlencode};

/// `wharf get apps [NAME]`.
pub async fn get_apps(
    client: &Client,
    namespace: Option<&str>,
    name: Option<&str>,
    selector: Option<&str>,
    owner: Option<&str>,
    output: Output,
) -> CliResult {
    let path = match (name, namespace) {
        (Some(name), ns) => format!("/namespaces/{}/apps/{name}", ns.unwrap_or("default")),
        (None, ns) => {
            let base = match ns {
                Some(ns) => format!("/namespaces/{ns}/apps"),
                None => "/apps".to_string(),
            };
            let mut query: Vec<String> = Vec::new();
            if let Some(s) = selector {
                query.push(format!("labelSelector={}", urlencode(s)));
            }
            if let Some(o) = owner {
                query.push(format!("owner={}", urlencode(o)));
            }
            if query.is_empty() {
                base
            } else {
                format!("{base}?{}", query.join("&"))
            }
        }
    };
    let Some(items) = table_items(client.get(&path).await?, output, name.is_some()) else {
        return Ok(Exit::Ok);
    };
    let mut rows = vec![
        [
            "NAMESPACE",
            "NAME",
            "PHASE",
            "READY",
            "IMAGE",
            "OWNER",
            "SOURCE",
            "AGE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for item in &items {
        let ready = item
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c["type"] == "Ready")
                    .map(|c| c["status"] == "True")
            });
        let s = |p: &str| {
            item.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        rows.push(vec![
            s("/metadata/namespace"),
            s("/metadata/name"),
            item.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending")
                .to_string(),
            match ready {
                Some(true) => "True".into(),
                Some(false) => "False".into(),
                None => "-".into(),
            },
            s("/spec/image"),
            s("/spec/owner"),
            s("/metadata/source"),
            age(&s("/metadata/creationTimestamp")),
        ]);
    }
    if rows.len() == 1 && name.is_none() {
        eprintln!("no apps found");
        return Ok(Exit::Ok);
    }
    // Swarm mode: running/desired replicas after READY.
    if items
        .iter()
        .any(|i| i.pointer("/status/replicas").is_some())
    {
        rows[0].insert(4, "REPLICAS".into());
        for (row, item) in rows.iter_mut().skip(1).zip(&items) {
            let n = |p: &str| item.pointer(p).and_then(Value::as_u64);
            let replicas = match (n("/status/replicas/running"), n("/status/replicas/desired")) {
                (Some(r), Some(d)) => format!("{r}/{d}"),
                _ => "-".into(),
            };
            row.insert(4, replicas);
        }
    }
    table(&rows);
    Ok(Exit::Ok)
}

/// `wharf describe app NAME`: the object, then its events.
pub async fn describe(client: &Client, namespace: &str, name: &str) -> CliResult {
    let doc = client
        .get(&format!("/namespaces/{namespace}/apps/{name}"))
        .await?;
    print_value(&doc, Output::Yaml);
    let events = client
        .get(&format!("/namespaces/{namespace}/apps/{name}/events"))
        .await?;
    println!("events:");
    let mut rows = vec![
        ["TIME", "TYPE", "REASON", "MESSAGE"]
            .map(String::from)
            .to_vec(),
    ];
    for e in events["items"].as_array().into_iter().flatten() {
        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
        rows.push(vec![s("time"), s("type"), s("reason"), s("message")]);
    }
    if rows.len() == 1 {
        println!("  (none)");
    } else {
        table(&rows);
    }
    Ok(Exit::Ok)
}

/// The kinds `wharf schema` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SchemaKind {
    App,
    Image,
    Node,
    Policy,
    /// The REST API's OpenAPI 3.1 document.
    Openapi,
}

/// `wharf schema [KIND] [--out DIR]`.
pub fn schema(kind: SchemaKind, out: Option<&Path>) -> CliResult {
    let wanted = match kind {
        SchemaKind::App => "app.json",
        SchemaKind::Image => "image.json",
        SchemaKind::Node => "node.json",
        SchemaKind::Policy => "policy.json",
        SchemaKind::Openapi => "openapi.json",
    };
    let schemas = crate::schemas::published()
        .map_err(|e| CliError::new(Exit::Failure, format!("generating the schemas: {e}")))?;
    for (file, text) in schemas {
        match out {
            Some(dir) => {
                let path = dir.join(file);
                std::fs::write(&path, text).map_err(|e| {
                    CliError::new(Exit::Failure, format!("{}: {e}", path.display()))
                })?;
                println!("wrote {}", path.display());
            }
            None if file == wanted => print!("{text}"),
            None => {}
        }
    }
    Ok(Exit::Ok)
}
