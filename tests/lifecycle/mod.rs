//! Lifecycle features against the real Docker Engine: actions (restart, kill, hard-reset), port
//! areas, health checks, safe replace with rollback (crash loops, health), git in the
//! container, inspect, logs, users and owners.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use wharf::runtime::Runtime;
use wharf::runtime::docker::{Deadlines, DockerRuntime};

use crate::support::{Harness, IMAGE_V1, docker, wait_for};

const GIT_IMAGE: &str = "wharf-test/git:1";

/// Runs `argv` in `container` through wharf's own exec; returns (exit code, stdout).
async fn exec(container: &str, argv: &[&str]) -> (i64, String) {
    let runtime = DockerRuntime::connect_local(Deadlines::default());
    runtime.ping().await.expect("engine answers");
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let out = runtime
        .exec(container, &argv, None, Duration::from_secs(60))
        .await
        .expect("exec");
    (out.exit_code, out.stdout)
}

impl Harness {
    async fn app_post(&self, path: &str, body: Option<&str>) -> (u16, Value) {
        let path = format!("/api/v1/namespaces/{}/apps/{path}", self.namespace);
        self.request(
            reqwest::Method::POST,
            &path,
            "application/json",
            body.map(str::to_string),
        )
        .await
    }

    /// Waits until the app's status satisfies `f`; returns the document.
    async fn wait_status(&self, app: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        wait_for(what, Duration::from_secs(60), || async {
            let doc = self.get_app(app).await?;
            f(&doc).then_some(doc)
        })
        .await
    }
}

fn ready_reason(doc: &Value) -> String {
    doc["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready")
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_kill_and_hard_reset_act_on_the_container_and_keep_the_spec() {
    let h = Harness::start("t-actions").await;
    let spec = Harness::sleeper_spec(IMAGE_V1)
        + "  restartPolicy: {name: \"no\"}\n  volumes: [{name: keep, mountPath: /data}]\n";
    assert_eq!(h.apply(&h.app_yaml("web", &spec)).await.0, 200);
    let doc = h.wait_ready("web").await;
    let generation = doc["metadata"]["generation"].as_i64();
    let id = h.container_id("web").await.unwrap();
    let started = |c: &bollard::models::ContainerInspectResponse| {
        c.state.as_ref().and_then(|s| s.started_at.clone())
    };
    let before = started(&h.inspect("web").await.unwrap());

    // restart: same container, started again.
    let (status, body) = h.app_post("web/restart", None).await;
    assert_eq!(status, 200, "{body}");
    let c = h.wait_state("web", "running").await;
    assert_eq!(c.id.as_deref(), Some(id.as_str()));
    assert_ne!(started(&c), before, "restarted");

    // kill: the signal reaches the process; a second kill is an invalid transition.
    let (status, body) = h.app_post("web/kill?signal=KILL", None).await;
    assert_eq!(status, 200, "{body}");
    let c = h.wait_state("web", "exited").await;
    assert_eq!(c.state.unwrap().exit_code, Some(137));
    let (status, body) = h.app_post("web/kill", None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["reason"], "InvalidTransition");
    assert!(
        body["message"].as_str().unwrap().contains("not running"),
        "{body}"
    );
    let (status, _) = h.app_post("web/kill?signal=SIGFOO", None).await;
    assert_eq!(status, 400);

    // hard-reset: a new container from the image; the writable layer is gone, the volume kept.
    let (status, _) = h.app_post("web/restart", None).await;
    assert_eq!(status, 200);
    h.wait_state("web", "running").await;
    let name = h.container_name("web");
    assert_eq!(exec(&name, &["touch", "/scratch", "/data/keep"]).await.0, 0);
    let (status, body) = h.app_post("web/hard-reset", None).await;
    assert_eq!(status, 200, "{body}");
    let c = h.wait_state("web", "running").await;
    let reset_id = c.id.clone().unwrap();
    assert_ne!(reset_id, id, "a new container");
    assert_ne!(
        exec(&name, &["test", "-e", "/scratch"]).await.0,
        0,
        "layer discarded"
    );
    assert_eq!(
        exec(&name, &["test", "-e", "/data/keep"]).await.0,
        0,
        "volume kept"
    );
    // ...and with volumes=true the volume goes too.
    let (status, body) = h.app_post("web/hard-reset?volumes=true", None).await;
    assert_eq!(status, 200, "{body}");
    h.wait_state("web", "running").await;
    assert_ne!(
        exec(&name, &["test", "-e", "/data/keep"]).await.0,
        0,
        "volume discarded"
    );

    // None of it changed the spec; each is an event.
    let doc = h.wait_ready("web").await;
    assert_eq!(doc["metadata"]["generation"].as_i64(), generation);
    let reasons: Vec<String> = h
        .events("web")
        .await
        .iter()
        .filter_map(|e| e["reason"].as_str().map(str::to_string))
        .collect();
    for r in ["Restarted", "Killed", "HardReset", "VolumeRemoved"] {
        assert!(
            reasons.iter().any(|x| x == r),
            "{r} missing from {reasons:?}"
        );
    }

    // Restart of an app declared stopped is refused with the reason.
    assert_eq!(
        h.patch("web", r#"{"spec": {"state": "stopped"}}"#).await.0,
        200
    );
    h.wait_state("web", "exited").await;
    let (status, body) = h.app_post("web/restart", None).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("declared stopped"),
        "{body}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_areas_never_overlap_survive_a_restart_and_are_freed_on_delete() {
    let mut h = Harness::start("t-port-areas").await;
    let mut yaml = String::new();
    for i in 0..20 {
        // Only the first runs (its ports are checked on the engine); the others need no
        // process to hold their blocks.
        let state = if i == 0 { "running" } else { "stopped" };
        yaml += &h.app_yaml(
            &format!("a{i}"),
            &format!(
                "{}  state: {state}\n  portArea: {{size: {}}}\n  ports: [{{containerPort: 5}}, '7/udp']\n",
                Harness::sleeper_spec(IMAGE_V1),
                10 + i
            ),
        );
        yaml += "---\n";
    }
    let (status, body) = h.apply(&yaml).await;
    assert_eq!(status, 200, "{body}");
    let mut blocks = Vec::new();
    for i in 0..20 {
        let doc = h.wait_ready(&format!("a{i}")).await;
        let root = doc["status"]["hostPortRoot"]
            .as_u64()
            .expect("hostPortRoot");
        blocks.push((root, root + 10 + i - 1));
    }
    let mut sorted = blocks.clone();
    sorted.sort();
    for pair in sorted.windows(2) {
        assert!(pair[0].1 < pair[1].0, "blocks overlap: {pair:?}");
    }
    // Container port p is published on root + p.
    let root = blocks[0].0;
    let host = h.inspect("a0").await.unwrap().host_config.unwrap();
    let bindings = host.port_bindings.unwrap();
    let published = |key: &str| bindings[key].clone().unwrap()[0].host_port.clone().unwrap();
    assert_eq!(published("5/tcp"), (root + 5).to_string());
    assert_eq!(published("7/udp"), (root + 7).to_string());

    // An explicit host port inside another app's block is refused, naming that app.
    let clash = h.app_yaml(
        "clash",
        &format!(
            "{}  ports: ['{}:80']\n",
            Harness::sleeper_spec(IMAGE_V1),
            blocks[3].0 + 2
        ),
    );
    let (status, body) = h.apply(&clash).await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("{}/a3", h.namespace)),
        "{message}"
    );
    assert!(message.contains("spec.ports[0].hostPort"), "{message}");

    // A restart keeps every block.
    h.restart().await;
    for (i, (root, _)) in blocks.iter().enumerate() {
        let doc = h.wait_ready(&format!("a{i}")).await;
        assert_eq!(doc["status"]["hostPortRoot"].as_u64(), Some(*root), "a{i}");
    }

    // Deleting an app frees its block: the next app of that size gets it (lowest fit).
    let lowest = sorted[0];
    let owner = blocks.iter().position(|b| *b == lowest).unwrap();
    assert_eq!(h.delete(&format!("a{owner}")).await.0, 200);
    wait_for("the app is forgotten", Duration::from_secs(30), || async {
        h.get_app(&format!("a{owner}"))
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let size = lowest.1 - lowest.0 + 1;
    let again = h.sleeper_app(
        "again",
        &format!("  state: stopped\n  portArea: {{size: {size}}}\n"),
    );
    assert_eq!(h.apply(&again).await.0, 200);
    let doc = h.wait_ready("again").await;
    assert_eq!(doc["status"]["hostPortRoot"].as_u64(), Some(lowest.0));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_requires_a_passing_health_check() {
    let h = Harness::start("t-health").await;
    let check = |cmd: &str| {
        format!(
            "{}  healthcheck: {{cmd: [\"CMD\", \"{cmd}\"], interval: 1s, timeout: 1s, retries: 1}}\n",
            Harness::sleeper_spec(IMAGE_V1)
        )
    };
    let yaml = h.app_yaml("good", &check("true")) + "---\n" + &h.app_yaml("bad", &check("false"));
    assert_eq!(h.apply(&yaml).await.0, 200);
    let good = h.wait_ready("good").await;
    assert_eq!(good["status"]["health"], "healthy");

    let bad = h
        .wait_status("bad", "bad unhealthy", |d| {
            d["status"]["health"] == "unhealthy"
        })
        .await;
    assert_eq!(ready_reason(&bad), "Unhealthy", "{bad:#}");
    // It stays not ready: the container runs, the check keeps failing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let bad = h.get_app("bad").await.unwrap();
    let ready = bad["status"]["conditions"][0].clone();
    assert_eq!(
        (ready["type"].as_str(), ready["status"].as_str()),
        (Some("Ready"), Some("False"))
    );
    assert_eq!(bad["status"]["phase"], "Running");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_looping_or_unhealthy_replacement_rolls_back_and_stays_rolled_back() {
    let mut h = Harness::start("t-safe-replace").await;
    let base = format!(
        "{}  env: {{KEEP: me}}\n  ports: ['127.0.0.1:18291:80']\n  update: {{minReadySeconds: 2}}\n",
        Harness::sleeper_spec(IMAGE_V1)
    );
    assert_eq!(h.apply(&h.app_yaml("web", &base)).await.0, 200);
    h.wait_ready("web").await;
    let old = h.container_id("web").await.unwrap();

    // A command that exits at once under restart policy "always" (the default) crash-loops.
    let (status, _) = h
        .patch("web", r#"{"spec": {"command": ["sh", "-c", "exit 3"]}}"#)
        .await;
    assert_eq!(status, 200);
    let doc = h
        .wait_status("web", "web Degraded", |d| {
            d["status"]["phase"] == "Degraded"
        })
        .await;
    assert_eq!(ready_reason(&doc), "RolledBack");
    let message = doc["status"]["rolledBack"]["message"].as_str().unwrap();
    assert!(
        message.contains("crash-looped") || message.contains("code 3"),
        "{message}"
    );
    // The old container runs again, with everything it had.
    let c = h.wait_state("web", "running").await;
    assert_eq!(c.id.as_deref(), Some(old.as_str()));
    assert!(
        c.config
            .unwrap()
            .env
            .unwrap()
            .contains(&"KEEP=me".to_string())
    );
    let bindings = c.host_config.unwrap().port_bindings.unwrap();
    assert_eq!(
        bindings["80/tcp"].clone().unwrap()[0].host_port.as_deref(),
        Some("18291")
    );

    // Not retried, also not after a wharf restart.
    h.restart().await;
    h.settle(3).await;
    assert_eq!(h.container_id("web").await.as_deref(), Some(old.as_str()));
    let doc = h.get_app("web").await.unwrap();
    assert_eq!(doc["status"]["phase"], "Degraded", "{doc:#}");
    let attempts = h
        .events("web")
        .await
        .iter()
        .filter(|e| e["reason"] == "RolledBack")
        .count();
    assert_eq!(attempts, 1, "one attempt per generation");

    // A replacement whose health check fails rolls back too.
    let (status, _) = h
        .patch(
            "web",
            r#"{"spec": {"command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"], "healthcheck": {"cmd": ["CMD", "false"], "interval": "1s", "timeout": "1s", "retries": 1}}}"#,
        )
        .await;
    assert_eq!(status, 200);
    let doc = h
        .wait_status("web", "unhealthy replacement rolled back", |d| {
            d["status"]["rolledBack"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("unhealthy"))
        })
        .await;
    assert_eq!(doc["status"]["phase"], "Degraded");
    assert_eq!(h.container_id("web").await.as_deref(), Some(old.as_str()));

    // A good spec rolls forward.
    let (status, body) = h
        .patch(
            "web",
            r#"{"spec": {"healthcheck": {"cmd": ["CMD", "true"], "interval": "1s"}}}"#,
        )
        .await;
    assert_eq!(status, 200);
    let doc = h
        .wait_ready_at("web", body["metadata"]["generation"].as_i64())
        .await;
    assert_eq!(doc["status"]["phase"], "Running");
    assert!(doc["status"].get("rolledBack").is_none(), "{doc:#}");
    assert_ne!(h.container_id("web").await.unwrap(), old);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn git_runs_in_the_container_with_validated_arguments() {
    let h = Harness::start("t-git").await;
    crate::support::testkit::import_git(&docker().await, GIT_IMAGE)
        .await
        .expect("git image");
    let yaml = h.app_yaml("dev", &Harness::sleeper_spec(GIT_IMAGE))
        + "---\n"
        + &h.sleeper_app("plain", "");
    assert_eq!(h.apply(&yaml).await.0, 200);
    h.wait_ready("dev").await;
    h.wait_ready("plain").await;
    let name = h.container_name("dev");

    // An "origin" repository with one commit, cloned to /work/repo (test set-up).
    let commit = |message: &'static str| {
        let name = name.clone();
        async move {
            let argv = [
                "git",
                "-C",
                "/origin",
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "--allow-empty",
                "-q",
                "-m",
                message,
            ];
            assert_eq!(exec(&name, &argv).await.0, 0, "commit {message}");
        }
    };
    let (status, body) = h
        .app_post("dev/git/init", Some(r#"{"path": "/origin"}"#))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["exitCode"], 0, "{body}");
    commit("one").await;
    assert_eq!(
        exec(&name, &["git", "clone", "-q", "/origin", "/work/repo"])
            .await
            .0,
        0
    );

    let git = |op: &'static str, body: &'static str| h.post_owned(format!("dev/git/{op}"), body);
    let (_, head) = git("head", r#"{"path": "/work/repo"}"#).await;
    let first = head["head"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 40, "{head}");

    commit("two").await;
    let (status, pulled) = git("pull", r#"{"path": "/work/repo"}"#).await;
    assert_eq!(
        (status, pulled["exitCode"].as_i64()),
        (200, Some(0)),
        "{pulled}"
    );
    let (_, head) = git("head", r#"{"path": "/work/repo"}"#).await;
    assert_ne!(head["head"].as_str().unwrap(), first, "pull moved HEAD");

    assert_eq!(
        exec(&name, &["git", "-C", "/work/repo", "branch", "feature"])
            .await
            .0,
        0
    );
    let (_, branches) = git("branches", r#"{"path": "/work/repo"}"#).await;
    let names: BTreeSet<&str> = branches["branches"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains("feature") && names.len() == 2, "{branches}");
    let (_, checkout) = git("checkout", r#"{"path": "/work/repo", "branch": "feature"}"#).await;
    assert_eq!(checkout["exitCode"], 0, "{checkout}");
    let (_, branch) = git("branch", r#"{"path": "/work/repo"}"#).await;
    assert_eq!(branch["branch"], "feature");

    // A failing git command reports git's own exit code and words.
    let (status, missing) = git("checkout", r#"{"path": "/work/repo", "branch": "nope"}"#).await;
    assert_eq!(status, 200);
    assert_ne!(missing["exitCode"], 0);
    assert!(
        missing["stderr"].as_str().unwrap().contains("nope"),
        "{missing}"
    );

    // Hostile arguments never reach git.
    for (op, body) in [
        (
            "checkout",
            r#"{"path": "/work/repo", "branch": "--orphan=x"}"#,
        ),
        ("pull", r#"{"path": "/work/../etc"}"#),
        ("pull", r#"{"path": "-c core.sshCommand=x"}"#),
        ("pull", r#"{"path": "/work/repo", "branch": "main"}"#),
    ] {
        let (status, body) = git(op, body).await;
        assert_eq!(status, 400, "{op} {body}");
    }
    let (status, _) = h
        .app_post("dev/git/rm", Some(r#"{"path": "/work/repo"}"#))
        .await;
    assert_eq!(status, 404);

    // A container without git: a clear 422.
    let (status, body) = h
        .app_post("plain/git/head", Some(r#"{"path": "/work"}"#))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["reason"], "GitNotAvailable");
    h.finish().await;
}

impl Harness {
    async fn post_owned(&self, path: String, body: &'static str) -> (u16, Value) {
        self.app_post(&path, Some(body)).await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn inspect_logs_users_and_owner_filters() {
    let h = Harness::start("t-views").await;
    let talker = r#"["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"]"#;
    let app = |owner: &str| {
        format!(
            "  image: {IMAGE_V1}\n  owner: {owner}\n  command: {talker}\n  stopGracePeriod: 1s\n"
        )
    };
    let yaml = h.app_yaml("nb--john", &app("john"))
        + "---\n"
        + &h.app_yaml("shell--john", &app("john"))
        + "---\n"
        + &h.app_yaml("nb--ann", &app("ann"));
    assert_eq!(h.apply(&yaml).await.0, 200);
    h.wait_ready("nb--john").await;
    let ns = h.namespace.clone();

    let (status, users) = h.get(&format!("/api/v1/namespaces/{ns}/users")).await;
    assert_eq!(status, 200);
    assert_eq!(users["items"][0]["name"], "ann");
    assert_eq!(users["items"][1]["name"], "john");
    assert_eq!(users["items"][1]["apps"].as_array().unwrap().len(), 2);
    let (_, johns) = h
        .get(&format!("/api/v1/namespaces/{ns}/apps?owner=john"))
        .await;
    assert_eq!(johns["items"].as_array().unwrap().len(), 2);

    let (status, inspected) = h
        .get(&format!("/api/v1/namespaces/{ns}/apps/nb--john/inspect"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        inspected["Id"].as_str(),
        h.container_id("nb--john").await.as_deref()
    );

    // Logs: the last lines, then a followed stream that keeps delivering.
    wait_for("some output", Duration::from_secs(10), || async {
        let url = h.url(&format!(
            "/api/v1/namespaces/{ns}/apps/nb--john/logs?tail=2"
        ));
        let text = h
            .http
            .get(url)
            .bearer_auth(h.token())
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (text.lines().count() == 2 && text.contains("tick")).then_some(())
    })
    .await;
    let url = h.url(&format!(
        "/api/v1/namespaces/{ns}/apps/nb--john/logs?follow=true&tail=0"
    ));
    let mut response = h.http.get(url).bearer_auth(h.token()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while seen.matches("tick").count() < 3 && tokio::time::Instant::now() < deadline {
        if let Ok(Ok(Some(chunk))) =
            tokio::time::timeout(Duration::from_secs(2), response.chunk()).await
        {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(seen.matches("tick").count() >= 3, "streamed: {seen:?}");
    let (status, _) = h
        .get(&format!(
            "/api/v1/namespaces/{ns}/apps/nb--john/logs?since=yesterday"
        ))
        .await;
    assert_eq!(status, 400);
    h.finish().await;
}
