//! Security against the real engine: image approval end to end, policy on bind mounts,
//! capabilities and devices as Docker sees them, refusals reported on spec files, and HTTPS with
//! the CLI talking to it.

use std::time::Duration;

use serde_json::Value;

use crate::cli::{text, wharf};
use crate::support::{Harness, IMAGE_V1, wait_for};

fn set_env(cmd: &mut std::process::Command, h: &Harness, token: &str) {
    cmd.env("WHARF_SERVER", format!("http://{}", h.server().addr))
        .env("WHARF_TOKEN", token)
        .env_remove("WHARF_CA_CERT");
}

/// `wharf ARGS` as the holder of `token`.
fn wharf_as(h: &Harness, token: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
    cmd.args(args);
    set_env(&mut cmd, h, token);
    cmd.output().expect("run wharf")
}

fn created_token(h: &Harness, args: &[&str]) -> String {
    let out = wharf(Some(h), &[&["token", "create"], args].concat());
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_app_waits_for_its_image_to_be_approved_then_runs() {
    let h = Harness::start_with("t-approval", |c| {
        c.controller.require_approved_images = true;
    })
    .await;
    let ns = h.namespace.clone();
    let editor = created_token(&h, &["--namespace", &ns, "--role", "editor"]);
    let spec_file = h.data.path().join("web.yaml");
    std::fs::write(&spec_file, h.sleeper_app("web", "")).unwrap();
    let out = wharf_as(&h, &editor, &["apply", "-f", spec_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    let waiting = wait_for(
        "the ImageNotApproved condition",
        Duration::from_secs(30),
        || async {
            let app = h.get_app("web").await?;
            let ready = app["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?
                .clone();
            (ready["reason"] == "ImageNotApproved").then_some(ready)
        },
    )
    .await;
    let message = waiting["message"].as_str().unwrap();
    assert!(message.contains("is not approved"), "{message}");
    assert!(message.contains("wharf images request"), "{message}");
    assert!(
        h.container_id("web").await.is_none(),
        "nothing is created before approval"
    );

    let out = wharf_as(
        &h,
        &editor,
        &["images", "request", IMAGE_V1, "--reason", "tests"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    let id = said
        .split_whitespace()
        .nth(2)
        .expect("image request N for REF")
        .trim_end_matches(':')
        .to_string();
    let pending = wait_for(
        "the pending request in the condition",
        Duration::from_secs(30),
        || async {
            let app = h.get_app("web").await?;
            let message = app["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready")?["message"]
                .as_str()?
                .to_string();
            message.contains("waiting for an admin").then_some(message)
        },
    )
    .await;
    assert!(
        pending.contains(&format!("wharf images approve {id}")),
        "{pending}"
    );

    // An editor cannot approve (exit 7, 403); the admin can.
    let out = wharf_as(&h, &editor, &["images", "approve", &id]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    let out = wharf(Some(&h), &["images", "approve", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("approved docker.io/wharf-test/busybox:1"),
        "{}",
        text(&out)
    );

    let ready = h.wait_ready("web").await;
    assert_eq!(ready["status"]["phase"], "Running", "{ready}");
    assert!(h.container_id("web").await.is_some());
    let out = wharf(Some(&h), &["images", "requests", "-o", "json"]);
    let list: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(list["items"][0]["state"], "Approved");
    let out = wharf(Some(&h), &["audit", "-o", "json"]);
    let audit: Value = serde_json::from_slice(&out.stdout).expect("json");
    let results: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["result"].as_str())
        .collect();
    assert!(
        results
            .iter()
            .any(|r| r.starts_with("approved image request")),
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r.starts_with("requested image")),
        "{results:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_shapes_what_docker_creates_and_refusals_reach_spec_files() {
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("index"), "hello from the host\n").unwrap();
    let root = allowed.path().to_str().unwrap().to_string();
    let h = Harness::start_with("t-policy", |c| {
        c.policy.allowed_host_paths = Some(vec![root.clone()]);
        c.policy.allowed_devices = Some(vec!["/dev/zero".into()]);
    })
    .await;
    let ns = h.namespace.clone();
    let spec = format!(
        "{}  volumes:\n    - {{hostPath: {root}, mountPath: /www, readOnly: true}}\n  devices:\n    - {{hostPath: /dev/zero, containerPath: /dev/nothing, permissions: r}}\n  capabilities: {{add: [NET_ADMIN], drop: [MKNOD]}}\n",
        Harness::sleeper_spec(IMAGE_V1)
    );
    let (status, body) = h.apply(&h.app_yaml("web", &spec)).await;
    assert_eq!(
        status, 403,
        "NET_ADMIN is beyond Docker's default set: {body}"
    );
    assert_eq!(body["details"]["rule"], "policy.allowedCapabilities");
    let out = wharf(Some(&h), &["policy", "get", "-n", &ns]);
    assert!(text(&out).contains(&root), "{}", text(&out));
    let policy_file = h.data.path().join("policy.yaml");
    std::fs::write(&policy_file, "allowedCapabilities: [NET_ADMIN, CHOWN]\n").unwrap();
    let out = wharf(
        Some(&h),
        &[
            "policy",
            "set",
            "-n",
            &ns,
            "-f",
            policy_file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let (status, body) = h.apply(&h.app_yaml("web", &spec)).await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready("web").await;
    let inspect = h.inspect("web").await.expect("container");
    let host = inspect.host_config.expect("host config");
    assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string()]));
    assert_eq!(host.cap_drop, Some(vec!["MKNOD".to_string()]));
    let device = &host.devices.expect("devices")[0];
    assert_eq!(device.path_on_host.as_deref(), Some("/dev/zero"));
    assert_eq!(device.path_in_container.as_deref(), Some("/dev/nothing"));
    let mount = inspect
        .mounts
        .expect("mounts")
        .into_iter()
        .find(|m| m.destination.as_deref() == Some("/www"))
        .expect("/www mounted");
    assert_eq!(mount.source.as_deref(), Some(root.as_str()));
    assert_eq!(mount.rw, Some(false));
    let logs_app = format!(
        "  image: {IMAGE_V1}\n  command: [\"sh\", \"-c\", \"cat /www/index; sleep 600\"]\n  volumes:\n    - {{hostPath: {root}, mountPath: /www}}\n"
    );
    h.apply(&h.app_yaml("reader", &logs_app)).await;
    h.wait_ready("reader").await;
    let logs = wait_for(
        "the host file in the logs",
        Duration::from_secs(20),
        || async {
            let response = h
                .http
                .get(h.url(&format!("/api/v1/namespaces/{ns}/apps/reader/logs")))
                .bearer_auth(h.token())
                .send()
                .await
                .ok()?;
            let body = response.text().await.ok()?;
            body.contains("hello from the host").then_some(body)
        },
    )
    .await;
    assert!(logs.contains("hello from the host"));

    // A spec file that breaks the policy is reported on the file; nothing is created.
    h.write_spec("bad.yaml", &h.sleeper_app("priv", "  privileged: true\n"));
    let error = wait_for(
        "the refusal on bad.yaml",
        Duration::from_secs(20),
        || async {
            let (_, sources) = h.get("/api/v1/sources").await;
            sources["errors"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["source"]
                        .as_str()
                        .is_some_and(|s| s.ends_with("bad.yaml"))
                })
                .and_then(|e| e["message"].as_str().map(str::to_string))
        },
    )
    .await;
    assert!(error.contains("policy.allowPrivileged"), "{error}");
    assert!(h.get_app("priv").await.is_none());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_a_generated_certificate_and_the_cli_over_it() {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("certificate");
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let (c, k) = (cert_path.clone(), key_path.clone());
    let h = Harness::start_with("t-tls", move |config| {
        config.tls = Some(wharf::server::TlsFiles { cert: c, key: k });
    })
    .await;
    let port = h.server().addr.port();
    let url = format!("https://localhost:{port}");
    let run = |args: &[&str], ca: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"));
        cmd.args(args)
            .env("WHARF_SERVER", &url)
            .env("WHARF_DATA", h.data.path())
            .env_remove("WHARF_TOKEN");
        if ca {
            cmd.env("WHARF_CA_CERT", &cert_path);
        } else {
            cmd.env_remove("WHARF_CA_CERT");
        }
        cmd.output().expect("run wharf")
    };
    let out = run(&["whoami"], true);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("admin admin@*"), "{}", text(&out));
    let spec = h.data.path().join("web.yaml");
    std::fs::write(&spec, h.sleeper_app("web", "")).unwrap();
    let out = run(&["apply", "-f", spec.to_str().unwrap(), "--wait"], true);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&["get", "apps", "-n", &h.namespace], true);
    assert!(text(&out).contains("web"), "{}", text(&out));
    // Without the CA the certificate is not trusted; plain HTTP gets no answer.
    let out = run(&["whoami"], false);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(text(&out).contains("cannot reach wharf"), "{}", text(&out));
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    h.finish().await;
}
