//! `wharf get apps -w` and the stream under it, `GET /api/v1/watch`: the list first, then each
//! change of an app as it happens, against the real engine.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::Harness;

/// Reads lines from `lines` until one satisfies `wanted`; panics with what came after
/// `timeout`.
fn line_with(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => {
                seen.push(line.clone());
                if wanted(&line) {
                    return line;
                }
            }
            Err(_) => panic!(
                "no line with {what}; the watch printed:\n{}",
                seen.join("\n")
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn get_apps_watch_prints_the_list_then_each_change() {
    let h = Harness::start("t-cli-watch").await;
    let (status, body) = h.apply(&h.sleeper_app("first", "")).await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready("first").await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["get", "apps", "-w", "-n", &h.namespace])
        .env_remove("WHARF_TOKEN")
        .env("WHARF_SERVER", format!("http://{}", h.server().addr))
        .env("WHARF_DATA", h.data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run wharf get apps -w");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let head = line_with(&lines, &mut seen, "the header", |l| l.starts_with("EVENT"));
    assert!(
        head.contains("NAMESPACE") && head.contains("PHASE"),
        "{head}"
    );
    let listed = line_with(&lines, &mut seen, "the existing app", |l| {
        l.contains("first")
    });
    assert!(
        listed.starts_with("ADDED") && listed.contains("Running"),
        "{listed}"
    );

    // A new app: added, then modified as wharf starts it.
    let (status, body) = h.apply(&h.sleeper_app("second", "")).await;
    assert_eq!(status, 200, "{body}");
    let added = line_with(&lines, &mut seen, "the new app", |l| l.contains("second"));
    assert!(added.starts_with("ADDED"), "{added}");
    line_with(&lines, &mut seen, "the new app running", |l| {
        l.starts_with("MODIFIED") && l.contains("second") && l.contains("Running")
    });
    // Stopped, then deleted.
    let (status, body) = h.patch("second", r#"{"spec": {"state": "stopped"}}"#).await;
    assert_eq!(status, 200, "{body}");
    line_with(&lines, &mut seen, "the app stopped", |l| {
        l.starts_with("MODIFIED") && l.contains("second") && l.contains("Stopped")
    });
    let (status, body) = h.delete("second").await;
    assert_eq!(status, 200, "{body}");
    line_with(&lines, &mut seen, "the app deleted", |l| {
        l.starts_with("DELETED") && l.contains("second")
    });
    let _ = child.kill();
    let _ = child.wait();

    // The stream's own refusals, in the error shape.
    for (query, status) in [
        ("kind=pods", 400),
        ("kind=images&namespace=x", 400),
        ("kind=nodes", 409),
    ] {
        let (got, body) = h.get(&format!("/api/v1/watch?{query}")).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(body["message"].as_str().is_some(), "{query}: {body}");
    }
    let refused = super::wharf(Some(&h), &["get", "images", "-w"]);
    assert_eq!(refused.status.code(), Some(2), "{}", super::text(&refused));
    assert!(
        super::text(&refused).contains("kind=images"),
        "{}",
        super::text(&refused)
    );
    h.finish().await;
}

/// A watch lasts only as long as its token: revoked, the stream ends with a 401 `ERROR`.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_ends_its_watch() {
    let h = Harness::start("t-watch-revoke").await;
    let (status, made) = h
        .request(
            reqwest::Method::POST,
            "/api/v1/tokens",
            "application/json",
            Some(
                serde_json::json!({"grants": [{"namespace": h.namespace, "role": "viewer"}]})
                    .to_string(),
            ),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let secret = made["token"].as_str().expect("secret").to_string();
    let id = made["id"].as_str().expect("id").to_string();
    // Another namespace's apps, or the nodes: refused, as their own routes would.
    for query in ["kind=apps&namespace=elsewhere", "kind=nodes"] {
        let refused = h
            .http
            .get(h.url(&format!("/api/v1/watch?{query}")))
            .bearer_auth(&secret)
            .send()
            .await
            .expect("watch");
        assert_eq!(refused.status(), 403, "{query}");
    }
    let mut stream = h
        .http
        .get(h.url(&format!(
            "/api/v1/watch?kind=apps&namespace={}",
            h.namespace
        )))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("watch");
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut text = String::new();
    while !text.contains("SYNCED") {
        let chunk = stream.chunk().await.expect("read").expect("a chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let (status, body) = h
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{id}"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let revoked = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(chunk) = stream.chunk().await.expect("read") {
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the stream went on after the revocation: {text}"
    );
    let last = text.rsplit("event: ").next().unwrap_or_default();
    assert!(
        last.starts_with("ERROR") && last.contains("401") && last.contains("revoked"),
        "{text}"
    );
    println!(
        "a revoked token's watch ended {} ms after the revocation",
        revoked.elapsed().as_millis()
    );
    h.finish().await;
}
