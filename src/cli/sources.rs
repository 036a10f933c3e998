//! `wharf sources`: where file-owned objects come from — with `serve --git`, the followed
//! branch and its applied commit — and every spec file that fails to load, with why. Exit 3
//! while any file is rejected, so a pipeline can wait for its push to be taken.

use serde_json::Value;

use super::client::{CliResult, Client, Exit};
use super::output::{Output, print_value};

pub async fn sources(client: &Client, output: Output) -> CliResult {
    let doc = client.get("/sources").await?;
    let errors = doc["errors"].as_array().cloned().unwrap_or_default();
    let rejected = doc.pointer("/git/rejected").is_some_and(|r| !r.is_null());
    let exit = if errors.is_empty() && !rejected {
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
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if let Some(git) = doc.get("git").filter(|g| !g.is_null()) {
        let path = git["path"]
            .as_str()
            .map(|p| format!(", path {p}"))
            .unwrap_or_default();
        println!(
            "git:      {} (branch {}{path})",
            s(git, "/url"),
            s(git, "/branch")
        );
        let commit = |c: &Value| {
            let short: String = s(c, "/sha").chars().take(12).collect();
            format!("{short} {} ({})", s(c, "/subject"), s(c, "/time"))
        };
        match git.get("commit").filter(|c| !c.is_null()) {
            Some(c) => println!("applied:  {}", commit(c)),
            None => println!("applied:  nothing yet"),
        }
        if let Some(c) = git.get("rejected").filter(|c| !c.is_null()) {
            println!(
                "rejected: {} — a spec file of it is invalid (below); the applied commit keeps running",
                commit(c)
            );
        }
        if let Some(t) = git["lastFetch"].as_str() {
            println!("fetched:  {t}");
        }
        if let Some(e) = git["error"].as_str() {
            println!("error:    {e}");
        }
    }
    if errors.is_empty() {
        println!("no spec file problems");
    }
    for e in &errors {
        println!("{} ({}):", s(e, "/source"), s(e, "/time"));
        for line in s(e, "/message").lines() {
            println!("  {line}");
        }
    }
    Ok(exit)
}
