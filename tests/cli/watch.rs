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
