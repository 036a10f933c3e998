//! Node agents on a real three-node swarm: one `wharf agent` process per node, each talking to
//! its own node's engine (DOCKER_HOST) and dialling the server. (The agents run in the host's
//! network namespace: the node namespaces have no route to the server's loopback address; each
//! still sees only its own engine.)
//!
//! Stats of tasks on every node, a busy task under `cpus: 0.5`, node statistics and per-task
//! metrics; kill of a task on a worker (Swarm replaces it), inspect, git and logs of tasks; a
//! container without wharf's labels refused by the agent; agent tokens (and only they) connect;
//! an agent killed → `AgentConnected=False`, its node's commands answer 503, the gap is unknown
//! in uptime; the agent back → samples resume.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wharf::agent::hub::HubError;
use wharf::agent::protocol::Command;

use super::{SWARM_WAIT, wait_running};
use crate::support::swarm::Cluster;
use crate::support::{Harness, poll_until, wait_for};

/// The sampling interval of these tests.
const INTERVAL: Duration = Duration::from_secs(2);
const GIT_IMAGE: &str = "wharf-test/git:1";

/// A `wharf agent` process; killed on drop.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn spawn(h: &Harness, cluster: &Cluster, node: usize, token_file: &Path) -> Self {
        Self::spawn_to(h, &h.url(""), None, cluster, node, token_file)
    }

    /// An agent of `node` dialling `server`, trusting `ca_cert`.
    fn spawn_to(
        h: &Harness,
        server: &str,
        ca_cert: Option<&Path>,
        cluster: &Cluster,
        node: usize,
        token_file: &Path,
    ) -> Self {
        let log = h
            .data
            .path()
            .join(format!("agent{node}-{}.log", rand_tag()));
        let out = std::fs::File::create(&log).expect("agent log");
        let mut command = Process::new(env!("CARGO_BIN_EXE_wharf"));
        command
            .args(["agent", "--server", server, "--token-file"])
            .arg(token_file)
            .env_remove("WHARF_CA_CERT")
            .env_remove("WHARF_TOKEN")
            .env("DOCKER_HOST", format!("unix://{}", cluster.socket(node)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(out);
        if let Some(ca) = ca_cert {
            command.arg("--ca-cert").arg(ca);
        }
        let child = command.spawn().expect("start wharf agent");
        Self { child, log }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill();
    }
}

fn rand_tag() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Creates a token with `grants` and writes it to a file.
async fn token_file(h: &Harness, name: &str, grants: Value) -> PathBuf {
    let (status, created) = h
        .request(
            reqwest::Method::POST,
            "/api/v1/tokens",
            "application/json",
            Some(json!({ "grants": grants, "description": name }).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let path = h.data.path().join(format!("{name}.token"));
    std::fs::write(&path, created["token"].as_str().expect("token")).expect("token file");
    path
}

/// The node views of `GET /nodes`, by hostname.
async fn nodes(h: &Harness) -> Vec<Value> {
    let (status, body) = h.get("/api/v1/nodes").await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().cloned().unwrap_or_default()
}

fn node_named<'a>(nodes: &'a [Value], hostname: &str) -> &'a Value {
    nodes
        .iter()
        .find(|n| n["hostname"] == hostname)
        .unwrap_or_else(|| panic!("no node {hostname}: {nodes:?}"))
}

fn agent_condition(node: &Value) -> String {
    node["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "AgentConnected"))
        .map(|c| c["status"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// The app's stats with every task's series.
async fn stats(h: &Harness, app: &str, query: &str) -> Value {
    let (status, body) = h
        .get(&format!(
            "/api/v1/namespaces/{}/apps/{app}/stats?step=raw&since={}{query}",
            h.namespace,
            chrono::Utc::now().timestamp() - 600
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Running tasks of an app from its status: (task id, slot, hostname).
fn running_tasks(doc: &Value) -> Vec<(String, u64, String)> {
    doc.pointer("/status/tasks")
        .and_then(Value::as_array)
        .map(|tasks| {
            tasks
                .iter()
                .filter(|t| t["state"] == "running")
                .map(|t| {
                    (
                        t["id"].as_str().unwrap_or_default().to_string(),
                        t["slot"].as_u64().unwrap_or(0),
                        t.pointer("/node/hostname")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn post(h: &Harness, path: &str, body: Option<&str>) -> (u16, Value) {
    h.request(
        reqwest::Method::POST,
        &format!("/api/v1/namespaces/{}/apps/{path}", h.namespace),
        "application/json",
        body.map(str::to_string),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn node_agents_read_and_act_on_the_tasks_of_every_node() {
    let cluster = Cluster::start(3).await;
    for i in 1..=3 {
        crate::support::testkit::import_git(&cluster.docker(i).await, GIT_IMAGE)
            .await
            .expect("git image");
    }
    let mut h = Harness::start_swarm_with("swarm-agents", &cluster, |c| {
        c.stats.interval = INTERVAL;
    })
    .await;

    // Only an agent token connects; an agent token does nothing else.
    let (status, body) = h
        .request(
            reqwest::Method::POST,
            "/api/v1/tokens",
            "application/json",
            Some(r#"{"grants": [{"namespace": "*", "role": "agent"}, {"namespace": "*", "role": "viewer"}]}"#.into()),
        )
        .await;
    assert_eq!(
        status, 400,
        "an agent token holds the agent role only: {body}"
    );
    let agent_token = token_file(&h, "agent", json!([{"namespace": "*", "role": "agent"}])).await;
    let viewer_token =
        token_file(&h, "viewer", json!([{"namespace": "*", "role": "viewer"}])).await;
    let agent_secret = std::fs::read_to_string(&agent_token).expect("token");
    let as_agent = h
        .http
        .get(h.url("/api/v1/apps"))
        .bearer_auth(agent_secret.trim())
        .send()
        .await
        .expect("request");
    assert_eq!(as_agent.status(), 403, "an agent token reads nothing");
    for (what, file) in [
        ("viewer", viewer_token.clone()),
        ("wrong", {
            let p = h.data.path().join("wrong.token");
            std::fs::write(&p, "wharf_0000").expect("write");
            p
        }),
    ] {
        let mut refused = Agent::spawn(&h, &cluster, 2, &file);
        let status = wait_for("a refused agent to exit", Duration::from_secs(30), || {
            let exited = refused.child.try_wait().ok().flatten();
            async move { exited }
        })
        .await;
        assert!(!status.success(), "a {what} token must not connect");
        let log = refused.log();
        assert!(log.contains("refused the agent's token"), "{what}: {log}");
    }

    // One agent per node.
    let mut agents: Vec<Agent> = (1..=3)
        .map(|i| Agent::spawn(&h, &cluster, i, &agent_token))
        .collect();
    wait_for(
        "three agents connected",
        Duration::from_secs(60),
        || async {
            let list = nodes(&h).await;
            (list.len() == 3 && list.iter().all(|n| agent_condition(n) == "True")).then_some(())
        },
    )
    .await;
    let list = nodes(&h).await;
    let node3 = node_named(&list, "wharf-node3");
    assert_eq!(
        node3["agent"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{node3}"
    );
    let node_ids: Vec<(String, String)> = list
        .iter()
        .map(|n| {
            (
                n["hostname"].as_str().unwrap_or_default().to_string(),
                n["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let id_of = |hostname: &str| {
        node_ids
            .iter()
            .find(|(h, _)| h == hostname)
            .map(|(_, id)| id.clone())
            .expect("node id")
    };

    // A busy task on every node, each limited to half a core.
    let busy = h.app_yaml(
        "busy",
        &format!(
            "  image: {}\n  command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while :; do :; done\"]\n  replicas: 3\n  placement: {{maxReplicasPerNode: 1}}\n  resources: {{cpus: 0.5, memory: 64Mi}}\n  stopGracePeriod: 2s\n",
            crate::support::IMAGE_V1
        ),
    );
    assert_eq!(h.apply(&busy).await.0, 200);
    let doc = wait_running(&h, "busy", 3).await;
    let started = Instant::now();
    let tasks = running_tasks(&doc);
    let hosts: BTreeSet<&str> = tasks.iter().map(|t| t.2.as_str()).collect();
    assert_eq!(hosts.len(), 3, "a task on every node: {tasks:?}");
    // Every task has samples (the first needs two readings).
    let sampled = poll_until(Duration::from_secs(60), || async {
        let body = stats(&h, "busy", "").await;
        let with_points = body["tasks"]
            .as_array()?
            .iter()
            .filter(|t| t["items"].as_array().is_some_and(|i| !i.is_empty()))
            .filter_map(|t| t["node"].as_str().map(str::to_string))
            .collect::<BTreeSet<_>>();
        (with_points.len() == 3).then_some(())
    })
    .await;
    if sampled.is_none() {
        panic!(
            "no stats from every node's task: {:#}",
            stats(&h, "busy", "").await
        );
    }
    let first_samples = started.elapsed();
    eprintln!(
        "stats of the tasks on all three nodes {:.1}s after the app ran ({}s interval)",
        first_samples.as_secs_f64(),
        INTERVAL.as_secs()
    );
    assert!(
        first_samples <= INTERVAL * 2 + Duration::from_secs(6),
        "task stats took {first_samples:?}"
    );
    // About 50 % each, once the counters have a full interval behind them.
    let cpu = poll_until(Duration::from_secs(60), || async {
        let body = stats(&h, "busy", "").await;
        let latest: Vec<f64> = body["tasks"]
            .as_array()?
            .iter()
            .filter_map(|t| t["items"].as_array()?.last()?["cpuPercent"].as_f64())
            .collect();
        (latest.len() == 3 && latest.iter().all(|c| (35.0..=65.0).contains(c))).then_some(latest)
    })
    .await;
    assert!(
        cpu.is_some(),
        "each task near 50 %: {:#}",
        stats(&h, "busy", "").await["tasks"]
    );
    eprintln!("cpu of the three tasks under cpus: 0.5: {cpu:?}");
    // The app's own series is the sum of its tasks.
    let app_cpu = poll_until(Duration::from_secs(20), || async {
        let body = stats(&h, "busy", "").await;
        let last = body["items"].as_array()?.last()?["cpuPercent"].as_f64()?;
        (105.0..=195.0).contains(&last).then_some(last)
    })
    .await;
    eprintln!("the app's cpu (sum of its tasks): {app_cpu:?}");
    assert!(
        app_cpu.is_some(),
        "the app's cpu is its tasks' sum (about 150 %): {:#}",
        stats(&h, "busy", "").await
    );
    // One task's series by slot.
    let worker_task = tasks
        .iter()
        .find(|t| t.2 == "wharf-node2")
        .expect("a task on node 2")
        .clone();
    let one = stats(&h, "busy", &format!("&task={}", worker_task.1)).await;
    assert_eq!(one["task"]["task"], worker_task.0, "{one}");
    assert!(!one["items"].as_array().expect("items").is_empty(), "{one}");

    // The CLI: one task's inspect data, and the nodes' agents.
    let cli = |args: &[&str]| {
        Process::new(env!("CARGO_BIN_EXE_wharf"))
            .args(["--server", &h.url(""), "--token", &h.token()])
            .args(args)
            .output()
            .expect("run wharf")
    };
    let slot = worker_task.1.to_string();
    let out = cli(&[
        "inspect",
        "app",
        "busy",
        "-n",
        &h.namespace,
        "--task",
        &slot,
    ]);
    let inspected: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        inspected["Config"]["Labels"]["com.docker.swarm.task.id"],
        worker_task.0,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(&["get", "nodes"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("AGENT") && table.matches("connected").count() == 3,
        "{table}"
    );

    // Per-task metrics, labelled by slot and node.
    let metrics = h
        .http
        .get(h.url("/metrics"))
        .bearer_auth(h.token())
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let task_lines: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("wharf_task_cpu_percent{") && l.contains("app=\"busy\""))
        .collect();
    assert_eq!(task_lines.len(), 3, "{metrics}");
    assert!(
        task_lines
            .iter()
            .any(|l| l.contains("node=\"wharf-node3\"")),
        "{task_lines:?}"
    );

    // Node statistics from the node's agent.
    let (status, now) = h.get("/api/v1/nodes/wharf-node2/stats").await;
    assert_eq!(status, 200, "{now}");
    assert_eq!(now["hostname"], "wharf-node2");
    assert!(
        now["memory"].is_object() || now["cpu"].is_object() || now["loadAverage"].is_array(),
        "{now}"
    );
    let (status, history) = h.get("/api/v1/nodes/wharf-node2/stats/history").await;
    assert_eq!(status, 200, "{history}");
    assert!(
        !history["items"].as_array().expect("items").is_empty(),
        "{history}"
    );

    // Inspect one task on a worker, by slot.
    let (status, inspected) = h
        .get(&format!(
            "/api/v1/namespaces/{}/apps/busy/inspect?task={}",
            h.namespace, worker_task.1
        ))
        .await;
    assert_eq!(status, 200, "{inspected}");
    assert_eq!(
        inspected["Config"]["Labels"]["com.docker.swarm.task.id"], worker_task.0,
        "{inspected}"
    );

    // The agent touches only wharf's task containers.
    let docker2 = cluster.docker(2).await;
    let plain = docker2
        .create_container(
            None::<bollard::query_parameters::CreateContainerOptions>,
            bollard::models::ContainerCreateBody {
                image: Some(crate::support::IMAGE_V1.to_string()),
                cmd: Some(vec!["sleep".into(), "300".into()]),
                ..Default::default()
            },
        )
        .await
        .expect("a plain container");
    docker2
        .start_container(
            &plain.id,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .expect("start it");
    let hub = h
        .server()
        .agents
        .clone()
        .expect("swarm mode has an agent hub");
    let refused = hub
        .command(
            &id_of("wharf-node2"),
            Command::Kill {
                container: plain.id.clone(),
                signal: "SIGKILL".into(),
            },
            Duration::from_secs(30),
        )
        .await;
    match refused {
        Err(HubError::Refused { error, .. }) => assert_eq!(error.code, "NotWharf", "{error:?}"),
        other => panic!("the agent must refuse a container without wharf labels: {other:?}"),
    }
    let still = docker2
        .inspect_container(&plain.id, None)
        .await
        .expect("inspect");
    assert_eq!(
        still.state.and_then(|s| s.running),
        Some(true),
        "left alone"
    );

    // Kill the task on a worker: it ends, and Swarm replaces it.
    let (status, killed) = post(
        &h,
        &format!("busy/kill?task={}&signal=SIGKILL", worker_task.0),
        None,
    )
    .await;
    assert_eq!(status, 200, "{killed}");
    eprintln!("kill: {}", killed["message"]);
    assert!(
        killed["message"]
            .as_str()
            .unwrap_or_default()
            .contains("wharf-node2"),
        "{killed}"
    );
    wait_for("the killed task replaced", SWARM_WAIT, || async {
        let doc = h.get_app("busy").await?;
        let now = running_tasks(&doc);
        (now.len() == 3 && now.iter().all(|t| t.0 != worker_task.0)).then_some(())
    })
    .await;
    let events = h.events("busy").await;
    assert!(events.iter().any(|e| e["reason"] == "Kill"), "{events:?}");

    // Git in a task on a worker (node 3), and the service's logs through the manager.
    let repo = h.app_yaml(
        "repo",
        &format!(
            "  image: {GIT_IMAGE}\n  command: [\"sh\", \"-c\", \"echo repo-ready; trap 'exit 0' TERM; while true; do sleep 1; done\"]\n  placement: {{constraints: [\"node.hostname == wharf-node3\"]}}\n  stopGracePeriod: 2s\n"
        ),
    );
    assert_eq!(h.apply(&repo).await.0, 200);
    wait_running(&h, "repo", 1).await;
    let (status, init) = post(&h, "repo/git/init", Some(r#"{"path": "/work/r"}"#)).await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(init["exitCode"], 0, "{init}");
    let (status, branch) = post(
        &h,
        "repo/git/branches",
        Some(r#"{"path": "/work/r", "task": "1"}"#),
    )
    .await;
    assert_eq!(status, 200, "{branch}");
    let events = h.events("repo").await;
    assert!(
        events.iter().any(|e| e["reason"] == "Git"
            && e["message"]
                .as_str()
                .unwrap_or_default()
                .contains("wharf-node3")),
        "{events:?}"
    );
    let logs = wait_for("the service's logs", Duration::from_secs(30), || async {
        let text = h
            .http
            .get(h.url(&format!(
                "/api/v1/namespaces/{}/apps/repo/logs?tail=10",
                h.namespace
            )))
            .bearer_auth(h.token())
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("repo-ready").then_some(text)
    })
    .await;
    assert!(logs.contains("repo-ready"));

    // The worker's agent dies: the node shows it, its commands answer 503 naming it, and the
    // apps with a task there are unknown, never up.
    let before_gap = chrono::Utc::now().timestamp_millis();
    agents[2].kill();
    wait_for("node 3's agent gone", Duration::from_secs(30), || async {
        let list = nodes(&h).await;
        (agent_condition(node_named(&list, "wharf-node3")) == "False").then_some(())
    })
    .await;
    let (status, refused) = post(&h, "repo/git/head", Some(r#"{"path": "/work/r"}"#)).await;
    assert_eq!(status, 503, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("wharf-node3"),
        "{refused}"
    );
    let (status, _) = h.get("/api/v1/nodes/wharf-node3/stats").await;
    assert_eq!(status, 503);
    let uptime = wait_for(
        "busy unknown while node 3 is unwatched",
        Duration::from_secs(30),
        || async {
            let (_, up) = h
                .get(&format!(
                    "/api/v1/namespaces/{}/apps/busy/uptime?duration=hour",
                    h.namespace
                ))
                .await;
            let unknown = up["series"].as_array()?.iter().any(|t| {
                t["state"] == "unknown" && t["t"].as_i64().is_some_and(|t| t >= before_gap)
            });
            unknown.then_some(up)
        },
    )
    .await;
    assert!(
        uptime["series"]
            .as_array()
            .expect("series")
            .iter()
            .any(|t| t["state"] == "up"),
        "{uptime:#}"
    );
    for t in uptime["series"].as_array().expect("series") {
        eprintln!("uptime: {} {} {}", t["state"], t["event"], t["detail"]);
    }
    eprintln!("503 for node 3: {}", refused["message"]);

    // The agent comes back: node 3's task has samples again.
    let back_at = chrono::Utc::now().timestamp_millis();
    agents[2] = Agent::spawn(&h, &cluster, 3, &agent_token);
    wait_for(
        "node 3's samples resume",
        Duration::from_secs(60),
        || async {
            let body = stats(&h, "busy", "").await;
            body["tasks"]
                .as_array()?
                .iter()
                .any(|t| {
                    t["node"] == "wharf-node3"
                        && t["items"].as_array().is_some_and(|items| {
                            items
                                .iter()
                                .any(|p| p["t"].as_i64().is_some_and(|t| t > back_at))
                        })
                })
                .then_some(())
        },
    )
    .await;
    let list = nodes(&h).await;
    assert_eq!(
        agent_condition(node_named(&list, "wharf-node3")),
        "True",
        "{list:?}"
    );
    wait_for("busy up again", Duration::from_secs(30), || async {
        let (_, up) = h
            .get(&format!(
                "/api/v1/namespaces/{}/apps/busy/uptime?duration=hour",
                h.namespace
            ))
            .await;
        let last = up["series"].as_array()?.last()?.clone();
        (last["state"] == "up").then_some(())
    })
    .await;

    // The server restarts: every agent dials it again.
    let restarted = Instant::now();
    h.restart_keeping_address().await;
    let back = poll_until(Duration::from_secs(60), || async {
        let list = nodes(&h).await;
        (list.len() == 3 && list.iter().all(|n| agent_condition(n) == "True")).then_some(())
    })
    .await;
    assert!(
        back.is_some(),
        "the agents did not come back: {:#?}\n{}",
        nodes(&h).await,
        agents
            .iter()
            .map(Agent::log)
            .collect::<Vec<_>>()
            .join("\n---\n")
    );
    eprintln!(
        "all three agents reconnected {:.1}s after the server's restart began",
        restarted.elapsed().as_secs_f64()
    );

    for agent in &mut agents {
        agent.kill();
    }

    // Over HTTPS: a second wharf (its own instance) on the same manager, serving TLS with a
    // self-signed certificate; the agent trusts it with --ca-cert, and without it does not.
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("cert");
    let cert_path = h.data.path().join("tls-cert.pem");
    let key_path = h.data.path().join("tls-key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).expect("cert file");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("key file");
    let (c, k) = (cert_path.clone(), key_path.clone());
    let tls = Harness::start_swarm_with("swarm-agents-tls", &cluster, move |config| {
        config.tls = Some(wharf::server::TlsFiles { cert: c, key: k });
    })
    .await;
    let base = format!("https://localhost:{}", tls.server().addr.port());
    let https = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).expect("pem"),
        )
        .build()
        .expect("client");
    let created: Value = https
        .post(format!("{base}/api/v1/tokens"))
        .bearer_auth(tls.token())
        .json(&json!({"grants": [{"namespace": "*", "role": "agent"}]}))
        .send()
        .await
        .expect("create token")
        .json()
        .await
        .expect("json");
    let tls_token = h.data.path().join("tls-agent.token");
    std::fs::write(&tls_token, created["token"].as_str().expect("token")).expect("write");
    let untrusting = Agent::spawn_to(&h, &base, None, &cluster, 1, &tls_token);
    let _trusting = Agent::spawn_to(&h, &base, Some(&cert_path), &cluster, 2, &tls_token);
    wait_for(
        "an agent connected over HTTPS",
        Duration::from_secs(60),
        || async {
            let body: Value = https
                .get(format!("{base}/api/v1/nodes"))
                .bearer_auth(tls.token())
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let items = body["items"].as_array()?.clone();
            (agent_condition(node_named(&items, "wharf-node2")) == "True").then_some(items)
        },
    )
    .await;
    let log = wait_for(
        "the untrusting agent's TLS failure",
        Duration::from_secs(30),
        || async {
            let log = untrusting.log();
            log.contains("dialling again").then_some(log)
        },
    )
    .await;
    eprintln!(
        "agent without --ca-cert: {}",
        log.lines().last().unwrap_or_default()
    );
    drop(tls);
    assert_eq!(h.delete("busy").await.0, 200);
    assert_eq!(h.delete("repo").await.0, 200);
    let _ = docker2
        .remove_container(
            &plain.id,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await;
}
