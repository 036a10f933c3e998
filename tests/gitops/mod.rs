//! A remote git repository as the source of spec files (`wharf serve --git`), against the
//! real engine: a bare repository on disk and one served by `git daemon` on loopback. Each
//! push is applied within the poll interval, or at once on a signed webhook; a commit with a bad
//! file is refused whole while the last good commit keeps running; objects record their commit.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use wharf::source::git::GitConfig;

use crate::support::{Harness, wait_for};

/// A working clone that commits and pushes to a bare repository.
struct Repo {
    _dir: tempfile::TempDir,
    bare: PathBuf,
    work: PathBuf,
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=wharf test",
            "-c",
            "user.email=test@wharf.invalid",
        ])
        .args(args)
        .output()
        .expect("git runs (Debian: apt-get install git)");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Repo {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bare = dir.path().join("specs.git");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&bare).unwrap();
        std::fs::create_dir_all(&work).unwrap();
        git(
            &bare,
            &["init", "--quiet", "--bare", "--initial-branch=main"],
        );
        git(&work, &["init", "--quiet", "--initial-branch=main"]);
        std::fs::write(work.join("README.md"), "specs\n").unwrap();
        std::fs::create_dir_all(work.join("apps")).unwrap();
        Self {
            _dir: dir,
            bare,
            work,
        }
    }

    /// Writes (or with `None` removes) files under `apps/`, commits with `subject` and pushes;
    /// returns the commit's sha.
    fn push(&self, files: &[(&str, Option<&str>)], subject: &str) -> String {
        for (name, text) in files {
            let path = self.work.join("apps").join(name);
            match text {
                Some(t) => std::fs::write(&path, t).unwrap(),
                None => std::fs::remove_file(&path).unwrap(),
            }
        }
        git(&self.work, &["add", "--all"]);
        git(&self.work, &["commit", "--quiet", "-m", subject]);
        git(
            &self.work,
            &["push", "--quiet", self.bare.to_str().unwrap(), "HEAD:main"],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }
}

fn config(url: String, poll: Duration, secret: Option<PathBuf>) -> GitConfig {
    GitConfig {
        url,
        branch: "main".into(),
        path: Some("apps".into()),
        poll,
        ssh_key: None,
        token_file: None,
        token_env: None,
        webhook_secret_file: secret,
    }
}

async fn sources(h: &Harness) -> Value {
    let (status, body) = h.get("/api/v1/sources").await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn wait_commit(h: &Harness, field: &str, sha: &str) -> Value {
    wait_for(
        &format!("git.{field} at {sha}"),
        Duration::from_secs(30),
        || async {
            let body = sources(h).await;
            (body["git"][field]["sha"] == sha).then_some(body)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn pushes_are_applied_whole_and_a_bad_commit_keeps_the_last_good_one() {
    let repo = Repo::new();
    let url = repo.bare.to_str().unwrap().to_string();
    let h = Harness::start_with("t-git", |c| {
        c.specs_dir = None;
        c.git = Some(config(url, Duration::from_secs(1), None));
    })
    .await;
    let c1 = repo.push(&[("web.yaml", Some(&h.sleeper_app("web", "")))], "add web");
    h.wait_ready("web").await;
    let body = wait_commit(&h, "commit", &c1).await;
    assert_eq!(body["git"]["commit"]["subject"], "add web", "{body}");
    assert_eq!(body["git"]["branch"], "main");
    let web = h.get_app("web").await.expect("web");
    assert_eq!(web["metadata"]["source"], "file:web.yaml", "{web}");
    assert_eq!(web["metadata"]["sourceCommit"], c1.as_str(), "{web}");
    let web_id = h.container_id("web").await.expect("web runs");

    // A second app: applied within the poll interval; web is left as it is.
    let c2 = repo.push(&[("api.yaml", Some(&h.sleeper_app("api", "")))], "add api");
    h.wait_ready("api").await;
    wait_commit(&h, "commit", &c2).await;
    let web = h.get_app("web").await.expect("web");
    assert_eq!(
        web["metadata"]["sourceCommit"],
        c2.as_str(),
        "web is in commit 2 too"
    );

    // A commit with one bad file and one new app: nothing of it is applied.
    let bad_web = h.app_yaml(
        "web",
        "  image: wharf-test/busybox:1\n  resources: {memory: lots}\n",
    );
    let c3 = repo.push(
        &[
            ("web.yaml", Some(&bad_web)),
            ("extra.yaml", Some(&h.sleeper_app("extra", ""))),
        ],
        "break web",
    );
    let body = wait_commit(&h, "rejected", &c3).await;
    assert_eq!(
        body["git"]["commit"]["sha"],
        c2.as_str(),
        "commit 2 stays applied: {body}"
    );
    let error = body["errors"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["source"] == "file:web.yaml"))
        .unwrap_or_else(|| panic!("web.yaml's problem is reported: {body}"));
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("web.yaml:") && message.contains("spec.resources.memory"),
        "file, line and field: {message}"
    );
    let out = tokio::task::block_in_place(|| crate::cli::wharf(Some(&h), &["sources"]));
    let said = crate::cli::text(&out);
    assert_eq!(
        out.status.code(),
        Some(3),
        "a rejected head exits 3: {said}"
    );
    assert!(
        said.contains("rejected:") && said.contains("break web") && said.contains("file:web.yaml"),
        "{said}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        h.get_app("extra").await.is_none(),
        "no file of a rejected commit is applied"
    );
    assert_eq!(
        h.container_id("web").await,
        Some(web_id.clone()),
        "web keeps running"
    );

    // The fix: web as before, extra and api gone.
    let c4 = repo.push(
        &[
            ("web.yaml", Some(&h.sleeper_app("web", ""))),
            ("extra.yaml", None),
            ("api.yaml", None),
        ],
        "fix web, drop api",
    );
    let body = wait_commit(&h, "commit", &c4).await;
    assert!(body["git"]["rejected"].is_null(), "{body}");
    assert!(
        body["errors"].as_array().is_some_and(Vec::is_empty),
        "{body}"
    );
    let out = tokio::task::block_in_place(|| crate::cli::wharf(Some(&h), &["sources"]));
    let said = crate::cli::text(&out);
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(
        said.contains("applied:") && said.contains("fix web, drop api"),
        "{said}"
    );
    wait_for("api removed", Duration::from_secs(30), || async {
        h.container_id("api").await.is_none().then_some(())
    })
    .await;
    assert_eq!(
        h.container_id("web").await,
        Some(web_id),
        "web was never recreated"
    );
    h.finish().await;
}

/// `git daemon` serving a directory of bare repositories on a loopback port.
struct Daemon {
    child: std::process::Child,
    port: u16,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn git_daemon(base: &Path) -> Daemon {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // git-daemon itself, not the `git` wrapper that would leave it running when killed.
    let exec_path = git(Path::new("/"), &["--exec-path"]);
    let child = Command::new(Path::new(&exec_path).join("git-daemon"))
        .args([
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", base.display()),
            base.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("git daemon runs (Debian's git package)");
    let daemon = Daemon { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return daemon;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("git daemon did not listen on 127.0.0.1:{port}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_webhook_fetches_at_once_and_a_bad_signature_changes_nothing() {
    let repo = Repo::new();
    let daemon = git_daemon(repo.bare.parent().unwrap());
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("hook-secret");
    std::fs::write(&secret_file, "s3cret-hook\n").unwrap();
    let url = format!("git://127.0.0.1:{}/specs.git", daemon.port);
    let c0 = repo.push(&[("keep.txt", Some("not a spec\n"))], "start");
    // Polls only hourly: only the webhook can make it fetch within the test.
    let h = Harness::start_with("t-git-hook", |c| {
        c.specs_dir = None;
        c.git = Some(config(url, Duration::from_secs(3600), Some(secret_file)));
    })
    .await;
    wait_commit(&h, "commit", &c0).await;
    assert_eq!(
        sources(&h).await["git"]["url"],
        format!("git://127.0.0.1:{}/specs.git", daemon.port)
    );

    let c1 = repo.push(&[("web.yaml", Some(&h.sleeper_app("web", "")))], "add web");
    let body = br#"{"ref": "refs/heads/main"}"#.to_vec();
    let hook = h.url("/api/v1/hooks/git");
    let post = |headers: Vec<(&'static str, String)>| {
        let http = reqwest::Client::new();
        let hook = hook.clone();
        let body = body.clone();
        async move {
            let mut r = http.post(&hook).body(body);
            for (k, v) in headers {
                r = r.header(k, v);
            }
            let response = r.send().await.expect("hook answers");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    for bad in [
        vec![],
        vec![(
            "X-Hub-Signature-256",
            wharf::notify::signature(b"wrong", &body),
        )],
        vec![("X-Gitlab-Token", "wrong".to_string())],
    ] {
        let (status, answer) = post(bad.clone()).await;
        assert_eq!(status, 401, "{bad:?}: {answer}");
        assert_eq!(answer["reason"], "Unauthorized", "{answer}");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sources(&h).await["git"]["commit"]["sha"],
        c0.as_str(),
        "refused deliveries fetch nothing"
    );
    assert!(h.get_app("web").await.is_none());

    let (status, answer) = post(vec![(
        "X-Hub-Signature-256",
        wharf::notify::signature(b"s3cret-hook", &body),
    )])
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["forge"], "github");
    wait_commit(&h, "commit", &c1).await;
    h.wait_ready("web").await;

    let c2 = repo.push(&[("web.yaml", None)], "drop web");
    let (status, answer) = post(vec![("X-Gitlab-Token", "s3cret-hook".to_string())]).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["forge"], "gitlab");
    wait_commit(&h, "commit", &c2).await;
    wait_for("web removed", Duration::from_secs(30), || async {
        h.container_id("web").await.is_none().then_some(())
    })
    .await;
    h.finish().await;
}

/// An HTTP server on loopback that records each request's head and answers 404.
async fn recording_http() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let record = std::sync::Arc::clone(&record);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                record
                    .lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&head).into_owned());
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (port, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_token_reaches_git_and_no_secret_reaches_the_status() {
    let (port, seen) = recording_http().await;
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("token");
    std::fs::write(&token_file, "tok-7f3a9\n").unwrap();
    let url = format!("http://bot:pw-55e1@127.0.0.1:{port}/org/specs.git");
    let h = Harness::start_with("t-git-token", |c| {
        c.specs_dir = None;
        let mut git = config(url, Duration::from_secs(1), None);
        git.token_file = Some(token_file);
        c.git = Some(git);
    })
    .await;
    let body = wait_for("the fetch fails", Duration::from_secs(30), || async {
        let body = sources(&h).await;
        body["git"]["error"].is_string().then_some(body)
    })
    .await;
    let text = body.to_string();
    assert!(
        !text.contains("tok-7f3a9") && !text.contains("pw-55e1"),
        "no secret is shown: {text}"
    );
    assert_eq!(
        body["git"]["url"],
        format!("http://***@127.0.0.1:{port}/org/specs.git"),
        "{text}"
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("bot:tok-7f3a9");
    let requests = seen.lock().unwrap().join("\n");
    assert!(
        requests
            .to_ascii_lowercase()
            .contains(&format!("authorization: basic {basic}").to_ascii_lowercase()),
        "git sent the token: {requests}"
    );
    h.finish().await;
}
