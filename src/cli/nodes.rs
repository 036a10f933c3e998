//! `wharf get nodes`, `wharf describe node NAME` and `wharf info` (swarm mode's nodes; the
//! server's mode, engine and cluster).

use serde_json::Value;

use super::client::{CliResult, Client, Exit};
use super::output::{Output, print_value, table, table_items};

/// `wharf get nodes [NAME]`: the swarm's nodes (a name shows the engine's inspect document).
pub async fn get(client: &Client, name: Option<&str>, output: Output) -> CliResult {
    if let Some(name) = name {
        let doc = client.get(&format!("/nodes/{name}")).await?;
        print_value(
            &doc,
            if output == Output::Table {
                Output::Yaml
            } else {
                output
            },
        );
        return Ok(Exit::Ok);
    }
    let Some(items) = table_items(client.get("/nodes").await?, output, false) else {
        return Ok(Exit::Ok);
    };
    let mut rows = vec![
        [
            "HOSTNAME",
            "ID",
            "ROLE",
            "STATUS",
            "AVAILABILITY",
            "MANAGER",
            "ENGINE",
            "TASKS",
            "AGENT",
            "DECLARED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for n in &items {
        let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
        let declared = n
            .pointer("/declared/spec/availability")
            .and_then(Value::as_str)
            .map(|a| format!("availability {a}"))
            .or_else(|| n.get("declared").map(|_| "labels".to_string()))
            .unwrap_or_default();
        rows.push(vec![
            s("hostname"),
            n["id"].as_str().unwrap_or("").chars().take(12).collect(),
            s("role"),
            s("status"),
            s("availability"),
            s("managerStatus"),
            s("engineVersion"),
            n["tasks"].as_u64().unwrap_or(0).to_string(),
            agent_column(n),
            declared,
        ]);
    }
    table(&rows);
    Ok(Exit::Ok)
}

/// `wharf describe node NAME`: the engine's document of the node.
/// `connected 0.1.0`, `gone` or `none`.
fn agent_column(node: &Value) -> String {
    match node.get("agent") {
        Some(a) if a["connected"] == true => {
            format!("connected {}", a["version"].as_str().unwrap_or(""))
        }
        Some(_) => "gone".to_string(),
        None => "none".to_string(),
    }
}

pub async fn describe(client: &Client, name: &str) -> CliResult {
    let doc = client.get(&format!("/nodes/{name}")).await?;
    print_value(&doc, Output::Yaml);
    Ok(Exit::Ok)
}

/// `wharf info`: the server's mode, engine and (swarm mode) cluster.
pub async fn info(client: &Client, output: Output) -> CliResult {
    let doc = client.get("/info").await?;
    if output != Output::Table {
        print_value(&doc, output);
        return Ok(Exit::Ok);
    }
    let s = |p: &str| {
        doc.pointer(p)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "-".into())
    };
    println!("mode:      {}", s("/mode"));
    println!("wharf:     {} (instance {})", s("/version"), s("/instance"));
    println!(
        "engine:    {} (connected: {})",
        s("/engine/version"),
        s("/engine/connected")
    );
    if doc.get("cluster").is_some() {
        println!(
            "cluster:   {} — {} nodes, {} managers; this engine is node {}",
            s("/cluster/clusterId"),
            s("/cluster/nodes"),
            s("/cluster/managers"),
            s("/cluster/nodeId")
        );
    }
    Ok(Exit::Ok)
}
