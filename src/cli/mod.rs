//! The client side of the `wharf` binary: apply, get, describe, delete, diff, validate, schema.
//!
//! Files are parsed and validated locally first (so errors name file, line and field), then sent
//! to the server as JSON. Exit codes are part of the contract (see `Exit`).

pub mod apps;
pub mod args;
pub mod images;
pub mod security;
pub mod stats;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use crate::reconcile::status::AppStatus;
use crate::spec::{self, AppKey, Format, Kind, SpecError, Validated};

/// Exit codes CI can rely on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// `diff` found differences.
    Differences = 1,
    /// Bad command line (clap also uses 2).
    Usage = 2,
    /// A spec failed to parse or validate (locally or on the server: 422).
    Invalid = 3,
    /// The server refused a write: ownership or resourceVersion conflict (409).
    Conflict = 4,
    /// `--wait` ran out of time.
    Timeout = 5,
    /// Anything else: server unreachable, not found, server error.
    Failure = 6,
    /// The token was refused (401) or may not do this (403, including policy refusals).
    Denied = 7,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
}

impl CliError {
    fn new(exit: Exit, message: impl Into<String>) -> Self {
        Self {
            exit,
            message: message.into(),
        }
    }
}

pub type CliResult<T = Exit> = Result<T, CliError>;

/// Server URL and token, from flags, the environment or the local data directory.
pub struct Client {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Client {
    /// `ca_cert`: a PEM certificate to trust besides the system's (a self-signed server).
    pub fn new(
        server: &str,
        token: Option<String>,
        data_dir: &Path,
        ca_cert: Option<&Path>,
    ) -> CliResult<Self> {
        let token = match token.filter(|t| !t.trim().is_empty()) {
            Some(t) => t.trim().to_string(),
            None => std::fs::read_to_string(data_dir.join(crate::server::TOKEN_FILE))
                .map(|t| t.trim().to_string())
                .map_err(|e| {
                    CliError::new(
                        Exit::Failure,
                        format!(
                            "no token: pass --token or set WHARF_TOKEN (reading {}: {e})",
                            data_dir.join(crate::server::TOKEN_FILE).display()
                        ),
                    )
                })?,
        };
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(60));
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::new(
                    Exit::Failure,
                    format!("CA certificate {}: {e}", path.display()),
                )
            })?;
            let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| {
                CliError::new(
                    Exit::Failure,
                    format!("CA certificate {}: {e}", path.display()),
                )
            })?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::new(Exit::Failure, e.to_string()))?;
        Ok(Self {
            base: server.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }

    /// Sends a request; an error status becomes a `CliError` with the server's message.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        timeout: Option<Duration>,
    ) -> CliResult<reqwest::Response> {
        let url = format!("{}/api/v1{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        if let Some(t) = timeout {
            request = request.timeout(t);
        }
        let response = request.send().await.map_err(|e| {
            CliError::new(
                Exit::Failure,
                format!("cannot reach wharf at {}: {e}", self.base),
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let value: Value = response.json().await.unwrap_or(Value::Null);
        let exit = match status.as_u16() {
            422 => Exit::Invalid,
            409 => Exit::Conflict,
            401 | 403 => Exit::Denied,
            _ => Exit::Failure,
        };
        let mut message = value
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("server answered {status}"));
        if let Some(causes) = value.pointer("/details/causes").and_then(Value::as_array)
            && causes.len() > 1
        {
            for cause in causes {
                if let Ok(e) = serde_json::from_value::<SpecErrorView>(cause.clone()) {
                    message.push_str(&format!("\n  {}", e.render()));
                }
            }
        }
        Err(CliError::new(exit, message))
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> CliResult<Value> {
        let response = self.request(method, path, body, None).await?;
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> CliResult<Value> {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Option<Value>) -> CliResult<Value> {
        self.send(reqwest::Method::POST, path, body).await
    }
}

#[derive(serde::Deserialize)]
struct SpecErrorView {
    field: Option<String>,
    object: Option<String>,
    message: String,
}

impl SpecErrorView {
    fn render(&self) -> String {
        let mut s = String::new();
        if let Some(o) = &self.object {
            s.push_str(&format!("{o}: "));
        }
        if let Some(f) = &self.field {
            s.push_str(&format!("{f}: "));
        }
        s + &self.message
    }
}

/// Reads and validates every document of the given paths (files, directories, `-` for stdin).
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<(String, Validated)>, Vec<SpecError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut read_one =
        |label: String, text: Result<String, std::io::Error>, format: Format| match text {
            Err(e) => errors.push(SpecError {
                file: Some(label),
                ..SpecError::message(format!("cannot read: {e}"))
            }),
            Ok(text) => match spec::read_bundle(&text, format, Some(&label)) {
                Ok(docs) => out.extend(docs.into_iter().map(|d| (label.clone(), d))),
                Err(e) => errors.extend(e),
            },
        };
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            let r = std::io::stdin().read_to_string(&mut text).map(|_| text);
            read_one("<stdin>".into(), r, Format::Yaml);
        } else if path.is_dir() {
            match crate::source::spec_files(path) {
                Ok(files) => {
                    for f in files {
                        read_one(
                            f.display().to_string(),
                            std::fs::read_to_string(&f),
                            Format::for_path(&f),
                        );
                    }
                }
                Err(e) => read_one(path.display().to_string(), Err(e), Format::Yaml),
            }
        } else {
            read_one(
                path.display().to_string(),
                std::fs::read_to_string(path),
                Format::for_path(path),
            );
        }
    }
    // The same object twice across files is an error too.
    let mut seen: BTreeMap<_, &str> = BTreeMap::new();
    for (file, v) in &out {
        if let Some(first) = seen.insert((v.kind(), v.key().clone()), file) {
            errors.push(SpecError {
                file: Some(file.clone()),
                object: Some(v.describe()),
                line: Some(v.line),
                ..SpecError::message(format!("also declared in {first}"))
            });
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn read_or_exit(paths: &[PathBuf]) -> CliResult<Vec<(String, Validated)>> {
    if paths.is_empty() {
        return Err(CliError::new(
            Exit::Usage,
            "give at least one -f FILE|DIR|-",
        ));
    }
    read_paths(paths).map_err(|errors| {
        let text = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        CliError::new(Exit::Invalid, text)
    })
}

fn wire_bundle(docs: &[(String, Validated)]) -> Value {
    Value::Array(docs.iter().map(|(_, v)| v.document.to_value()).collect())
}

/// `wharf validate -f …`: offline.
pub fn validate(paths: &[PathBuf]) -> CliResult {
    let docs = read_or_exit(paths)?;
    for (file, v) in &docs {
        println!("{file}: {} is valid", v.describe());
    }
    Ok(Exit::Ok)
}

/// `wharf apply -f … [--dry-run] [--wait --timeout]`.
pub async fn apply(
    client: &Client,
    paths: &[PathBuf],
    dry_run: bool,
    wait: bool,
    timeout: Duration,
) -> CliResult {
    let docs = read_or_exit(paths)?;
    apply_bundle(client, wire_bundle(&docs), dry_run, wait, timeout).await
}

/// Sends a validated bundle to `/apply`, prints each result, and optionally waits.
async fn apply_bundle(
    client: &Client,
    bundle: Value,
    dry_run: bool,
    wait: bool,
    timeout: Duration,
) -> CliResult {
    let query = if dry_run { "?dryRun=true" } else { "" };
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
fn item_label(item: &Value) -> String {
    let name = item["name"].as_str().unwrap_or("");
    match item["kind"].as_str() {
        Some("Image") => format!("image/{name}"),
        _ => format!("app/{}/{name}", item["namespace"].as_str().unwrap_or("")),
    }
}

/// An object `apply --wait` waits for.
struct Target {
    image: bool,
    namespace: String,
    name: String,
    generation: i64,
}

impl Target {
    fn label(&self) -> String {
        if self.image {
            format!("image/{}", self.name)
        } else {
            format!("{}/{}", self.namespace, self.name)
        }
    }

    fn path(&self) -> String {
        if self.image {
            format!("/images/{}", self.name)
        } else {
            format!("/namespaces/{}/apps/{}", self.namespace, self.name)
        }
    }
}

/// Whether an Image document is present at `generation`, and a line describing it.
fn image_progress(doc: &Value, generation: i64) -> (bool, String) {
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

fn print_plan(item: &Value) {
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
async fn wait_ready(client: &Client, targets: &[Target], timeout: Duration) -> CliResult {
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Table,
    Yaml,
    Json,
}

pub(crate) fn print_value(value: &Value, output: Output) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        _ => print!("{}", serde_saphyr::to_string(value).unwrap_or_default()),
    }
}

fn age(created: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(created) else {
        return "?".into();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub(crate) fn table(rows: &[Vec<String>]) {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", line.join("   ").trim_end());
    }
}

/// `wharf get apps [NAME]`.
pub async fn get_apps(
    client: &Client,
    namespace: Option<&str>,
    name: Option<&str>,
    selector: Option<&str>,
    owner: Option<&str>,
    output: Output,
) -> CliResult {
    let items: Vec<Value> = match name {
        Some(name) => vec![
            client
                .get(&format!(
                    "/namespaces/{}/apps/{name}",
                    namespace.unwrap_or("default")
                ))
                .await?,
        ],
        None => {
            let base = match namespace {
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
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            let list = client.get(&format!("{base}{query}")).await?;
            if output != Output::Table {
                print_value(&list, output);
                return Ok(Exit::Ok);
            }
            list["items"].as_array().cloned().unwrap_or_default()
        }
    };
    if output != Output::Table {
        for item in &items {
            print_value(item, output);
        }
        return Ok(Exit::Ok);
    }
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
    table(&rows);
    Ok(Exit::Ok)
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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

/// The kinds `wharf schema` prints.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum SchemaKind {
    App,
    Image,
}

/// `wharf schema [KIND] [--out DIR]`.
pub fn schema(kind: SchemaKind, out: Option<&Path>) -> CliResult {
    let wanted = match kind {
        SchemaKind::App => "app.json",
        SchemaKind::Image => "image.json",
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

/// Prints an error as the last thing a command does.
pub fn report(error: &CliError) {
    eprintln!("error: {}", error.message);
}
