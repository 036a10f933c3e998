//! App commands beyond apply/get: actions (`restart`, `kill`, `hard-reset`), state shorthands
//! (`start`, `stop`, `pause`, `unpause`: a PATCH of `spec.state`), `logs`, `inspect`, `users`,
//! `git`, and `run IMAGE --owner USER`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::apply::apply_bundle;
use super::client::{CliError, CliResult, Client, Exit};
use super::output::{Output, print_value, table, urlencode};
use crate::spec::validate::{check_name, check_owner};
use crate::spec::{parse_values, validate_bundle};

fn app_path(namespace: &str, name: &str) -> String {
    format!("/namespaces/{namespace}/apps/{name}")
}

/// `wharf restart|kill|hard-reset app NAME`.
pub async fn action(
    client: &Client,
    namespace: &str,
    name: &str,
    action: &str,
    query: &[(&str, String)],
) -> CliResult {
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect();
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    // A hard reset may pull an image and waits for the loop's work on the app.
    let response = client
        .request(
            reqwest::Method::POST,
            &format!("{}/{action}{query}", app_path(namespace, name)),
            None,
            Some(Duration::from_secs(3600)),
        )
        .await?;
    let value: Value = response.json().await.unwrap_or(Value::Null);
    println!(
        "app/{namespace}/{name}: {}",
        value["message"].as_str().unwrap_or(action)
    );
    Ok(Exit::Ok)
}

/// `wharf start|stop|pause|unpause app NAME`: sets `spec.state` (apps owned by a spec file are
/// changed in their file; the server refuses and names it).
pub async fn set_state(client: &Client, namespace: &str, name: &str, state: &str) -> CliResult {
    let doc = client
        .send(
            reqwest::Method::PATCH,
            &app_path(namespace, name),
            Some(json!({ "spec": { "state": state } })),
        )
        .await
        .map_err(|e| match e.exit {
            Exit::Conflict => CliError::new(
                Exit::Conflict,
                format!(
                    "{}; `wharf {}` only changes apps managed through the API",
                    e.message,
                    verb(state)
                ),
            ),
            _ => e,
        })?;
    println!(
        "app/{namespace}/{name}: state {state} (generation {})",
        doc.pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
    );
    Ok(Exit::Ok)
}

fn verb(state: &str) -> &'static str {
    match state {
        "running" => "start",
        "stopped" => "stop",
        "paused" => "pause",
        _ => "unpause",
    }
}

/// `wharf logs app NAME [--tail N] [--since T] [-f]`: the container's output as it comes.
pub async fn logs(
    client: &Client,
    namespace: &str,
    name: &str,
    tail: Option<&str>,
    since: Option<&str>,
    follow: bool,
    task: Option<&str>,
) -> CliResult {
    let mut query = vec![format!("follow={follow}")];
    if let Some(t) = task {
        query.push(format!("task={}", urlencode(t)));
    }
    if let Some(t) = tail {
        query.push(format!("tail={}", urlencode(t)));
    }
    if let Some(s) = since {
        query.push(format!("since={}", urlencode(s)));
    }
    let response = client
        .request(
            reqwest::Method::GET,
            &format!("{}/logs?{}", app_path(namespace, name), query.join("&")),
            None,
            // Following has no end of its own.
            Some(Duration::from_secs(if follow {
                365 * 24 * 3600
            } else {
                300
            })),
        )
        .await?;
    let mut response = response;
    let mut out = tokio::io::stdout();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| CliError::new(Exit::Failure, format!("log stream: {e}")))?
    {
        out.write_all(&chunk)
            .await
            .map_err(|e| CliError::new(Exit::Failure, format!("stdout: {e}")))?;
        out.flush()
            .await
            .map_err(|e| CliError::new(Exit::Failure, format!("stdout: {e}")))?;
    }
    Ok(Exit::Ok)
}

/// `wharf inspect app NAME`: the engine's inspect data of the app's container.
pub async fn inspect(
    client: &Client,
    namespace: &str,
    name: &str,
    output: Output,
    task: Option<&str>,
) -> CliResult {
    let task = task
        .map(|t| format!("?task={}", urlencode(t)))
        .unwrap_or_default();
    let value = client
        .get(&format!("{}/inspect{task}", app_path(namespace, name)))
        .await?;
    let output = if output == Output::Table {
        Output::Json
    } else {
        output
    };
    print_value(&value, output);
    Ok(Exit::Ok)
}

/// `wharf users [-n NS]`: the owners of the namespace's apps.
pub async fn users(client: &Client, namespace: &str, output: Output) -> CliResult {
    let value = client
        .get(&format!("/namespaces/{namespace}/users"))
        .await?;
    if output != Output::Table {
        print_value(&value, output);
        return Ok(Exit::Ok);
    }
    let mut rows = vec![vec!["USER".to_string(), "APPS".to_string()]];
    for user in value["items"].as_array().into_iter().flatten() {
        let apps: Vec<&str> = user["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        rows.push(vec![
            user["name"].as_str().unwrap_or("").to_string(),
            apps.join(","),
        ]);
    }
    if rows.len() == 1 {
        eprintln!("no owners in namespace {namespace}");
    } else {
        table(&rows);
    }
    Ok(Exit::Ok)
}

/// `wharf git app NAME OP --path P [--branch B]`: git in the app's container. The exit code
/// is git's (0, or 1 when git failed).
pub async fn git(
    client: &Client,
    namespace: &str,
    name: &str,
    op: &str,
    path: &str,
    branch: Option<&str>,
    task: Option<&str>,
) -> CliResult {
    let mut body = json!({ "path": path });
    if let Some(b) = branch {
        body["branch"] = json!(b);
    }
    if let Some(t) = task {
        body["task"] = json!(t);
    }
    let response = client
        .request(
            reqwest::Method::POST,
            &format!("{}/git/{op}", app_path(namespace, name)),
            Some(body),
            Some(Duration::from_secs(360)),
        )
        .await?;
    let value: Value = response.json().await.unwrap_or(Value::Null);
    print!("{}", value["stdout"].as_str().unwrap_or(""));
    eprint!("{}", value["stderr"].as_str().unwrap_or(""));
    match value["exitCode"].as_i64() {
        Some(0) => Ok(Exit::Ok),
        code => Err(CliError::new(
            Exit::Failure,
            format!("git {op} exited with code {}", code.unwrap_or(-1)),
        )),
    }
}

/// The SRC API's app name for `image` run by `owner`: `IMAGE--USER`, IMAGE being the last part
/// of the repository without tag or digest.
pub fn run_name(image: &str, owner: &str) -> Result<String, String> {
    check_owner(owner).map_err(|e| format!("--owner: {e}"))?;
    let repository = image.split('@').next().unwrap_or(image);
    let last = repository.rsplit('/').next().unwrap_or(repository);
    let base = last.split(':').next().unwrap_or(last);
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = base.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let name = format!("{base}--{owner}");
    check_name(&name).map_err(|e| format!("the generated name: {e}; pass --name"))?;
    Ok(name)
}

/// What `wharf run` declares.
pub struct RunOptions<'a> {
    pub image: &'a str,
    pub owner: &'a str,
    pub namespace: &'a str,
    pub name: Option<&'a str>,
    pub env: &'a [String],
    pub ports: &'a [String],
    pub memory: Option<&'a str>,
    pub cpus: Option<f64>,
    pub command: &'a [String],
    pub dry_run: bool,
    pub wait: bool,
    pub timeout: Duration,
}

/// `wharf run IMAGE --owner USER`: declares an App named `IMAGE--USER` through the API.
pub async fn run(client: &Client, o: RunOptions<'_>) -> CliResult {
    let name = match o.name {
        Some(n) => n.to_string(),
        None => run_name(o.image, o.owner).map_err(|e| CliError::new(Exit::Usage, e))?,
    };
    let mut spec = json!({ "image": o.image, "owner": o.owner });
    if !o.env.is_empty() {
        spec["env"] = json!(o.env);
    }
    if !o.ports.is_empty() {
        spec["ports"] = json!(o.ports);
    }
    if !o.command.is_empty() {
        spec["command"] = json!(o.command);
    }
    let mut resources = serde_json::Map::new();
    if let Some(m) = o.memory {
        resources.insert("memory".into(), json!(m));
    }
    if let Some(c) = o.cpus {
        resources.insert("cpus".into(), json!(c));
    }
    if !resources.is_empty() {
        spec["resources"] = Value::Object(resources);
    }
    let doc = json!({
        "apiVersion": "wharf/v1",
        "kind": "App",
        "metadata": { "name": name, "namespace": o.namespace },
        "spec": spec,
    });
    // The same checks as any applied file, before anything is sent.
    let validated = parse_values(vec![doc.clone()])
        .and_then(|parsed| validate_bundle(parsed, None))
        .map_err(|errors| {
            let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
            CliError::new(Exit::Invalid, text.join("\n"))
        })?;
    let bundle = Value::Array(validated.iter().map(|v| v.document.to_value()).collect());
    apply_bundle(
        client,
        bundle,
        o.dry_run,
        &super::args::SetFlags::default(),
        o.wait,
        o.timeout,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_follow_the_src_api() {
        assert_eq!(
            run_name("jupyter/base:2024.1", "john").unwrap(),
            "base--john"
        );
        assert_eq!(
            run_name("127.0.0.1:5000/team/notebook@sha256:abc", "ann_b").unwrap(),
            "notebook--ann_b"
        );
        assert_eq!(run_name("busybox", "x-1").unwrap(), "busybox--x-1");
        assert!(run_name("busybox", "jo--hn").is_err());
        assert!(run_name("busybox", "-john").is_err());
        assert!(run_name("busybox", "jo hn").is_err());
    }
}
