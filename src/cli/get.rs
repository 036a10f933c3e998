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
    let mut rows = vec![APP_COLUMNS.map(String::from).to_vec()];
    rows.extend(items.iter().map(app_row));
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

const APP_COLUMNS: [&str; 8] = [
    "NAMESPACE",
    "NAME",
    "PHASE",
    "READY",
    "IMAGE",
    "OWNER",
    "SOURCE",
    "AGE",
];

/// An app's row of `wharf get apps`.
fn app_row(item: &Value) -> Vec<String> {
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
    vec![
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
    ]
}

/// `wharf get apps -w`: the apps, then each change as it happens (`GET /api/v1/watch`), one
/// line per event with the event first; `-o json` prints each event as one JSON line. Runs
/// until interrupted; a stream the server ends is an error.
pub async fn watch_apps(
    client: &Client,
    namespace: Option<&str>,
    name: Option<&str>,
    selector: Option<&str>,
    owner: Option<&str>,
    output: Output,
) -> CliResult {
    let selector = crate::http::selector::Selector::parse(selector.unwrap_or(""))
        .map_err(|e| CliError::new(Exit::Usage, format!("--selector: {e}")))?;
    let mut path = "/watch?kind=apps".to_string();
    if let Some(ns) = namespace {
        path.push_str(&format!("&namespace={}", urlencode(ns)));
    }
    let mut response = client
        .request(
            reqwest::Method::GET,
            &path,
            None,
            // A watch has no end of its own.
            Some(std::time::Duration::from_secs(365 * 24 * 3600)),
        )
        .await?;
    let wanted = |app: &Value| {
        let labels: std::collections::BTreeMap<String, String> = app
            .pointer("/metadata/labels")
            .and_then(|l| serde_json::from_value(l.clone()).ok())
            .unwrap_or_default();
        let field = |p: &str| app.pointer(p).and_then(Value::as_str);
        selector.matches(&labels)
            && name.is_none_or(|n| field("/metadata/name") == Some(n))
            && owner.is_none_or(|o| field("/spec/owner") == Some(o))
    };
    let widths = [9, 10, 20, 11, 6, 28, 10, 12, 5];
    let line = |cells: &[String]| {
        let mut text = String::new();
        for (cell, width) in cells.iter().zip(widths) {
            text.push_str(&format!("{cell:<width$} "));
        }
        println!("{}", text.trim_end());
    };
    if output == Output::Table {
        let mut head = vec!["EVENT".to_string()];
        head.extend(APP_COLUMNS.map(String::from));
        line(&head);
    }
    let mut buffer = String::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CliError::new(Exit::Failure, format!("watch stream: {e}")))?
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .collect();
            let Ok(event) = serde_json::from_str::<Value>(&data) else {
                continue; // a keep-alive comment
            };
            let kind = event["type"].as_str().unwrap_or_default();
            if kind == "ERROR" {
                eprintln!(
                    "watch: {}",
                    event
                        .pointer("/error/message")
                        .and_then(Value::as_str)
                        .unwrap_or("error")
                );
                continue;
            }
            let Some(app) = event.get("object").filter(|a| wanted(a)) else {
                continue;
            };
            match output {
                Output::Table => {
                    let mut cells = vec![kind.to_string()];
                    cells.extend(app_row(app));
                    line(&cells);
                }
                _ => println!("{event}"),
            }
        }
    }
    Err(CliError::new(
        Exit::Failure,
        "the server ended the watch (it stopped, or the connection was lost)",
    ))
}

/// `wharf get images|nodes -w`: a usage error that says where those changes are.
pub fn watch_refused(resource: &str) -> CliResult {
    let kind = if resource.starts_with("image") {
        "images"
    } else {
        "nodes"
    };
    Err(CliError::new(
        Exit::Usage,
        format!(
            "--watch: only apps are watched from the CLI (GET /api/v1/watch?kind={kind} streams the {kind}, and the dashboard shows them live)"
        ),
    ))
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
