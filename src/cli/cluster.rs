//! `wharf status`: the instances on the server's database, which one leads and since when.

use serde_json::Value;

use super::client::{CliResult, Client, Exit};
use super::output::{Output, print_value};

pub async fn status(client: &Client, output: Output) -> CliResult {
    let doc = client.get("/cluster").await?;
    let exit = if doc["leader"].is_string() {
        Exit::Ok
    } else {
        Exit::Invalid
    };
    if output != Output::Table {
        print_value(&doc, output);
        return Ok(exit);
    }
    let s = |v: &Value, p: &str| {
        v.pointer(p)
            .map(|v| match v {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| "-".into())
    };
    println!("database:   {}", s(&doc, "/database"));
    match doc["leader"].as_str() {
        Some(leader) => println!(
            "leader:     {leader} since {} (lease generation {})",
            s(&doc, "/since"),
            s(&doc, "/generation")
        ),
        None => println!("leader:     none holds the lease now (an election is under way)"),
    }
    println!("answered:   {}", s(&doc, "/self"));
    println!();
    println!(
        "{:<28} {:<8} {:<32} {:<10} {:<26} LAST SEEN",
        "INSTANCE", "ROLE", "ADDRESS", "VERSION", "STARTED"
    );
    for i in doc["instances"].as_array().into_iter().flatten() {
        let role = if i["leader"].as_bool() == Some(true) {
            "leader"
        } else {
            "follower"
        };
        println!(
            "{:<28} {:<8} {:<32} {:<10} {:<26} {}",
            s(i, "/id"),
            role,
            s(i, "/address"),
            s(i, "/version"),
            s(i, "/started"),
            s(i, "/lastSeen")
        );
    }
    Ok(exit)
}
