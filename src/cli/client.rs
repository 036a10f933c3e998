//! The API client and the CLI's error and exit codes (`Exit`: part of the contract CI scripts
//! rely on).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

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
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
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
    pub(crate) async fn request(
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

    pub(crate) async fn send(
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

/// Prints an error as the last thing a command does.
pub fn report(error: &CliError) {
    eprintln!("error: {}", error.message);
}

#[derive(serde::Deserialize)]
pub(crate) struct SpecErrorView {
    field: Option<String>,
    object: Option<String>,
    message: String,
}

impl SpecErrorView {
    pub(crate) fn render(&self) -> String {
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
