//! A remote git repository as the source of spec files (`wharf serve --git URL`).
//!
//! wharf keeps a clone in its data directory (`DATA/git`) and follows one branch itself, every
//! poll interval and whenever a signed webhook arrives. It runs the git program as a child
//! process with an argv, never through a shell: git speaks every transport and credential
//! setup users already have (HTTPS, SSH, `file://`, `git://`), and the argv keeps the URL,
//! branch and path data, not code. Transports that run commands (`ext::`) are refused.
//!
//! A commit is applied whole: when any of its spec files is invalid, nothing of it is applied —
//! the objects of the last applied commit keep running — and each bad file is reported with
//! file, line and field, as the watched directory's are. Files own their objects as in the
//! watched directory; each object records the commit it was last applied from.
//!
//! Credentials (an HTTPS token, an SSH key) reach git through its environment, never its argv;
//! the URL's user information and the token are redacted from everything git says before it
//! is logged or shown. This module never talks to Docker.

use schemars::JsonSchema;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{apply_scan, report_problems, scan_blocking};
use crate::notify::Notifier;
use crate::store::{Store, StoreError, now_rfc3339};

/// The setting under which the source's state is stored (shown at `/api/v1/sources`).
pub const STATUS_SETTING: &str = "git";
/// The longest any one git command may take (a fetch of a large repository included).
const GIT_TIMEOUT: Duration = Duration::from_secs(300);
/// Transports git may use: no `ext::` or `fd::`, which run commands.
const ALLOWED_PROTOCOLS: &str = "file:git:http:https:ssh";
/// The branch's remote-tracking ref in the clone.
const TRACKING: &str = "refs/remotes/wharf/head";

/// `wharf serve --git …`.
#[derive(Clone, Debug)]
pub struct GitConfig {
    pub url: String,
    pub branch: String,
    /// The directory of spec files inside the repository (default: its root).
    pub path: Option<PathBuf>,
    pub poll: Duration,
    /// A private key for SSH URLs (the host must be in known_hosts).
    pub ssh_key: Option<PathBuf>,
    /// A file holding an HTTPS access token (read at every fetch, so it can be rotated).
    pub token_file: Option<PathBuf>,
    /// `WHARF_GIT_TOKEN`, when no token file is given.
    pub token_env: Option<String>,
    /// A file holding the webhook secret (GitHub, Gitea: HMAC key; GitLab: the token).
    pub webhook_secret_file: Option<PathBuf>,
}

impl GitConfig {
    /// Refuses settings git would take as options or that leave the checkout.
    pub fn check(&self) -> Result<(), String> {
        if self.url.is_empty() || self.url.starts_with('-') {
            return Err(format!("--git {:?} is not a repository URL", self.url));
        }
        let branch_ok = !self.branch.is_empty()
            && !self.branch.starts_with('-')
            && !self.branch.contains("..")
            && !self
                .branch
                .chars()
                .any(|c| c.is_control() || " ~^:?*[\\".contains(c));
        if !branch_ok {
            return Err(format!(
                "--git-branch {:?} is not a branch name",
                self.branch
            ));
        }
        if let Some(path) = &self.path
            && (path.is_absolute()
                || path
                    .components()
                    .any(|c| !matches!(c, std::path::Component::Normal(_))))
        {
            return Err(format!(
                "--git-path {} must be a relative path inside the repository, without '..'",
                path.display()
            ));
        }
        if let Some(key) = &self.ssh_key
            && key.to_string_lossy().contains(['\'', '\n'])
        {
            return Err(format!(
                "--git-ssh-key {}: a path with a quote or a newline is refused",
                key.display()
            ));
        }
        Ok(())
    }
}

/// A commit of the followed branch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Commit {
    pub sha: String,
    pub subject: String,
    /// Committer time, RFC 3339.
    pub time: String,
}

/// What the source did last: shown at `GET /api/v1/sources`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitStatus {
    /// The repository, without user information.
    pub url: String,
    pub branch: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The commit whose objects are applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
    /// The branch's head, refused whole because a file of it is invalid (see the sources'
    /// errors); the applied commit's objects keep running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rejected: Option<Commit>,
    /// When the last fetch succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fetch: Option<String>,
    /// Why the last fetch or checkout failed (cleared by the next success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The webhook's side of the source: its secret and the trigger of a fetch.
pub struct GitHook {
    secret: Option<Vec<u8>>,
    trigger: Arc<Notify>,
}

impl GitHook {
    /// Checks a delivery's signature; on success a fetch starts at once. Returns the forge
    /// whose signature matched, or why the delivery is refused.
    pub fn deliver<'h>(
        &self,
        header: impl Fn(&str) -> Option<&'h str>,
        body: &[u8],
    ) -> Result<&'static str, String> {
        let secret = self.secret.as_deref().ok_or(
            "this server has no webhook secret: start it with --git-webhook-secret-file FILE",
        )?;
        let forge = verify_signature(secret, header, body)?;
        self.trigger.notify_one();
        Ok(forge)
    }
}

/// Verifies a webhook delivery the way each forge signs it: GitHub's `X-Hub-Signature-256`
/// (`sha256=` HMAC-SHA256 of the body), Gitea's (and Gogs') `X-Gitea-Signature` (the same
/// HMAC, bare hex), GitLab's `X-Gitlab-Token` (the secret itself). Comparisons take constant
/// time. Returns the forge.
pub fn verify_signature<'h>(
    secret: &[u8],
    header: impl Fn(&str) -> Option<&'h str>,
    body: &[u8],
) -> Result<&'static str, String> {
    let hmac = |hex_sig: &str| -> bool {
        let Ok(sig) = hex_decode(hex_sig.trim()) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
            return false;
        };
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    };
    if let Some(sig) = header("x-hub-signature-256") {
        let ok = sig.strip_prefix("sha256=").is_some_and(hmac);
        return if ok {
            Ok("github")
        } else {
            Err("X-Hub-Signature-256 does not match the secret".into())
        };
    }
    for (name, forge) in [("x-gitea-signature", "gitea"), ("x-gogs-signature", "gogs")] {
        if let Some(sig) = header(name) {
            return if hmac(sig) {
                Ok(forge)
            } else {
                Err(format!("{name} does not match the secret"))
            };
        }
    }
    if let Some(token) = header("x-gitlab-token") {
        // Digests of both, compared in constant time: neither length nor content leaks.
        let digest = |b: &[u8]| -> [u8; 32] { Sha256::digest(b).into() };
        return if crate::auth::digests_equal(&digest(token.as_bytes()), &digest(secret)) {
            Ok("gitlab")
        } else {
            Err("X-Gitlab-Token does not match the secret".into())
        };
    }
    Err("no signature: expected X-Hub-Signature-256 (GitHub), X-Gitea-Signature (Gitea) or X-Gitlab-Token (GitLab)".into())
}

fn hex_decode(s: &str) -> Result<Vec<u8>, ()> {
    if s.len() % 2 != 0 {
        return Err(());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2).ok_or(())?, 16).map_err(|_| ()))
        .collect()
}

/// `url` without its user information (`https://***@host/…`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // scp-like `user@host:path` carries no secret.
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// Why a sync did not happen.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error("{0}")]
    Git(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The source: the clone, the followed branch, the store it fills.
pub struct GitSource {
    config: GitConfig,
    /// `DATA/git`: the clone (with its working tree at the last commit looked at).
    repo: PathBuf,
    store: Store,
    wake: Arc<Notify>,
    trigger: Arc<Notify>,
    notifier: Notifier,
}

impl GitSource {
    /// The source and its webhook. Fails when the configuration or the secret file is bad.
    pub fn new(
        config: GitConfig,
        data_dir: &Path,
        store: Store,
        wake: Arc<Notify>,
        notifier: Notifier,
    ) -> Result<(Self, Arc<GitHook>), String> {
        config.check()?;
        let secret = match &config.webhook_secret_file {
            Some(file) => Some(
                crate::auth::read_secret_file(file)
                    .map_err(|e| format!("--git-webhook-secret-file {e}"))?,
            ),
            None => None,
        };
        let trigger = Arc::new(Notify::new());
        let hook = Arc::new(GitHook {
            secret,
            trigger: Arc::clone(&trigger),
        });
        let source = Self {
            config,
            repo: data_dir.join("git"),
            store,
            wake,
            trigger,
            notifier,
        };
        Ok((source, hook))
    }

    /// Follows the branch until aborted: a sync now, then one every poll interval and on every
    /// accepted webhook.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut status = match self.store.setting::<GitStatus>(STATUS_SETTING).await {
                Ok(Some(s)) if s.url == redact_url(&self.config.url) => s,
                Ok(_) => GitStatus::default(),
                Err(e) => {
                    tracing::error!("reading the git source's state: {e}");
                    GitStatus::default()
                }
            };
            status.url = redact_url(&self.config.url);
            status.branch.clone_from(&self.config.branch);
            status.path = self.config.path.as_ref().map(|p| p.display().to_string());
            tracing::info!(url = %status.url, branch = %status.branch, "following a git branch");
            loop {
                let before = status.clone();
                match self.sync(&mut status).await {
                    Ok(true) => self.wake.notify_one(),
                    Ok(false) => {}
                    Err(SyncError::Git(e)) => {
                        if status.error.as_deref() != Some(e.as_str()) {
                            tracing::error!(url = %status.url, "git source: {e}; the applied commit's objects keep running; retrying every {}", humantime::format_duration(self.config.poll));
                        }
                        status.error = Some(e);
                    }
                    Err(SyncError::Store(e)) => {
                        tracing::error!("storing the git source's commit failed: {e}");
                    }
                }
                if status != before
                    && let Err(e) = self.store.put_setting(STATUS_SETTING, &status).await
                {
                    tracing::error!("storing the git source's state: {e}");
                }
                tokio::select! {
                    _ = self.trigger.notified() => {
                        tracing::info!("webhook: fetching now");
                    }
                    _ = tokio::time::sleep(self.config.poll) => {}
                }
            }
        })
    }

    /// Fetches the branch and, when its head is a commit not yet looked at, applies it whole.
    /// Returns whether any object changed.
    async fn sync(&self, status: &mut GitStatus) -> Result<bool, SyncError> {
        self.ensure_repo().await?;
        let refspec = format!("+refs/heads/{}:{TRACKING}", self.config.branch);
        self.git(
            "fetch",
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-recurse-submodules",
                "--",
                &self.config.url,
                &refspec,
            ],
        )
        .await?;
        status.last_fetch = Some(now_rfc3339());
        status.error = None;
        let sha = self
            .git(
                "rev-parse",
                &["rev-parse", "--verify", &format!("{TRACKING}^{{commit}}")],
            )
            .await?
            .trim()
            .to_string();
        let seen = |c: &Option<Commit>| c.as_ref().is_some_and(|c| c.sha == sha);
        if seen(&status.commit) || seen(&status.rejected) {
            return Ok(false);
        }
        let info = self
            .git("log", &["log", "-1", "--format=%H%n%cI%n%s", &sha])
            .await?;
        let mut lines = info.lines();
        let commit = Commit {
            sha: lines.next().unwrap_or(&sha).to_string(),
            time: lines.next().unwrap_or_default().to_string(),
            subject: lines.next().unwrap_or_default().to_string(),
        };
        let short = &commit.sha[..commit.sha.len().min(12)];
        self.git(
            "checkout",
            &[
                "-c",
                "advice.detachedHead=false",
                "checkout",
                "--quiet",
                "--force",
                "--detach",
                &sha,
            ],
        )
        .await?;
        self.git("clean", &["clean", "-ffdxq"]).await?;
        let root = match &self.config.path {
            Some(path) => self.repo.join(path),
            None => self.repo.clone(),
        };
        if !root.is_dir() {
            status.rejected = Some(commit.clone());
            return Err(SyncError::Git(format!(
                "commit {short} has no directory {}; nothing of it is applied",
                root.strip_prefix(&self.repo).unwrap_or(&root).display()
            )));
        }
        let Some(scanned) = scan_blocking(&root).await else {
            return Err(SyncError::Git(format!(
                "cannot read the files of commit {short}"
            )));
        };
        if !scanned.bad.is_empty() {
            let kept = format!(
                "; commit {short} ({}) is rejected whole: the objects of the last applied commit keep running",
                commit.subject
            );
            report_problems(
                &self.store,
                &scanned,
                &BTreeMap::new(),
                &kept,
                &self.notifier,
            )
            .await?;
            tracing::error!(commit = %short, subject = %commit.subject, files = scanned.bad.len(), "commit rejected: a spec file of it is invalid");
            status.rejected = Some(commit);
            return Ok(false);
        }
        let changed = apply_scan(&self.store, &scanned, Some(&commit.sha), &self.notifier).await?;
        tracing::info!(commit = %short, subject = %commit.subject, "applied the commit");
        status.commit = Some(commit);
        status.rejected = None;
        Ok(changed)
    }

    /// Makes the clone's directory a repository (once).
    async fn ensure_repo(&self) -> Result<(), SyncError> {
        if self.repo.join(".git").is_dir() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.repo)
            .map_err(|e| SyncError::Git(format!("creating {}: {e}", self.repo.display())))?;
        self.git("init", &["init", "--quiet"]).await?;
        Ok(())
    }

    /// Runs `git -C REPO args…` with the credentials in its environment; its stdout, or what
    /// it said on failure with every secret redacted.
    async fn git(&self, op: &str, args: &[&str]) -> Result<String, SyncError> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("-C")
            .arg(&self.repo)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
            .env("LC_ALL", "C");
        let token = self.token()?;
        if let Some(token) = &token {
            let user = url_user(&self.config.url).unwrap_or("x-access-token");
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
            cmd.env("GIT_CONFIG_COUNT", "1")
                .env("GIT_CONFIG_KEY_0", "http.extraHeader")
                .env(
                    "GIT_CONFIG_VALUE_0",
                    format!("Authorization: Basic {basic}"),
                );
        }
        if let Some(key) = &self.config.ssh_key {
            // git runs this through sh; the path was checked to hold no quote.
            cmd.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes",
                    key.display()
                ),
            );
        }
        let output = match tokio::time::timeout(GIT_TIMEOUT, cmd.output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return Err(SyncError::Git(format!(
                    "cannot run git ({e}): install git (Debian: apt-get install git)"
                )));
            }
            Err(_) => {
                return Err(SyncError::Git(format!(
                    "git {op} took longer than {}s",
                    GIT_TIMEOUT.as_secs()
                )));
            }
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let said = String::from_utf8_lossy(&output.stderr);
        Err(SyncError::Git(format!(
            "git {op} failed ({}): {}",
            output.status,
            self.redact(said.trim(), token.as_deref())
        )))
    }

    /// The HTTPS token: the file's first line (read now), or the environment's.
    fn token(&self) -> Result<Option<String>, SyncError> {
        match &self.config.token_file {
            Some(file) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    SyncError::Git(format!("--git-token-file {}: {e}", file.display()))
                })?;
                Ok(
                    Some(text.lines().next().unwrap_or_default().trim().to_string())
                        .filter(|t| !t.is_empty()),
                )
            }
            None => Ok(self.config.token_env.clone().filter(|t| !t.is_empty())),
        }
    }

    /// `text` without the URL's user information or the token.
    fn redact(&self, text: &str, token: Option<&str>) -> String {
        let mut text = text.replace(&self.config.url, &redact_url(&self.config.url));
        if let Some(token) = token {
            text = text.replace(token, "***");
        }
        text
    }
}

/// The user name in an `https://user[:password]@host/…` URL.
fn url_user(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    let userinfo = &authority[..authority.rfind('@')?];
    let user = userinfo.split(':').next()?;
    (!user.is_empty()).then_some(user)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<&'a str> {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        }
    }

    #[test]
    fn signatures_of_each_forge_are_verified_and_anything_else_is_refused() {
        // GitHub's documented example ("Validating webhook deliveries").
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let github = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(
            verify_signature(secret, headers(&[("X-Hub-Signature-256", github)]), body),
            Ok("github")
        );
        let gitea = github.trim_start_matches("sha256=");
        assert_eq!(
            verify_signature(secret, headers(&[("X-Gitea-Signature", gitea)]), body),
            Ok("gitea")
        );
        assert_eq!(
            verify_signature(
                secret,
                headers(&[("X-Gitlab-Token", "It's a Secret to Everybody")]),
                body
            ),
            Ok("gitlab")
        );
        for pairs in [
            [("X-Hub-Signature-256", github)],
            [("X-Gitea-Signature", gitea)],
        ] {
            assert!(
                verify_signature(secret, headers(&pairs), b"Hello, World?").is_err(),
                "{pairs:?}: a changed body is refused"
            );
        }
        let wrong_token = [("X-Gitlab-Token", "It's a Secret")];
        assert!(verify_signature(secret, headers(&wrong_token), body).is_err());
        assert!(
            verify_signature(
                b"another",
                headers(&[("X-Hub-Signature-256", github)]),
                body
            )
            .is_err()
        );
        assert!(
            verify_signature(
                secret,
                headers(&[("X-Hub-Signature-256", "sha256=zz")]),
                body
            )
            .is_err()
        );
        assert!(
            verify_signature(secret, headers(&[("X-Hub-Signature-256", gitea)]), body).is_err(),
            "the prefix is required"
        );
        let none = verify_signature(secret, headers(&[]), body).expect_err("no signature");
        assert!(none.contains("X-Hub-Signature-256"), "{none}");
    }

    #[test]
    fn urls_lose_their_user_information_and_bad_settings_are_refused() {
        assert_eq!(
            redact_url("https://bot:s3cret@git.example.com/org/specs.git"),
            "https://***@git.example.com/org/specs.git"
        );
        assert_eq!(
            redact_url("git@host:org/specs.git"),
            "git@host:org/specs.git"
        );
        assert_eq!(redact_url("file:///srv/specs.git"), "file:///srv/specs.git");
        assert_eq!(url_user("https://bot:s3cret@host/x"), Some("bot"));
        assert_eq!(url_user("https://host/x"), None);

        let good = GitConfig {
            url: "https://host/specs.git".into(),
            branch: "main".into(),
            path: Some("apps/prod".into()),
            poll: Duration::from_secs(60),
            ssh_key: None,
            token_file: None,
            token_env: None,
            webhook_secret_file: None,
        };
        assert!(good.check().is_ok());
        for bad in [
            GitConfig {
                url: "--upload-pack=x".into(),
                ..good.clone()
            },
            GitConfig {
                branch: "-f".into(),
                ..good.clone()
            },
            GitConfig {
                branch: "a..b".into(),
                ..good.clone()
            },
            GitConfig {
                path: Some("../etc".into()),
                ..good.clone()
            },
            GitConfig {
                path: Some("/etc".into()),
                ..good.clone()
            },
            GitConfig {
                ssh_key: Some("/k'; rm -rf /".into()),
                ..good.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
