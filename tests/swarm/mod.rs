//! Swarm mode against a real three-node swarm built by the test itself (three dockerd daemons
//! in network namespaces): apps as services spread over nodes, scaling, rolling limit changes
//! with unchanged re-applies, rollback of a bad image, stop and start, a service removed
//! behind wharf's back, a drained node, a dead worker, and delete; and the mode rules (fields
//! refused per mode, a data directory keeps its mode, a non-manager engine is refused).

mod agents;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions};
use serde_json::Value;
use wharf::server::{ServeConfig, Server};
use wharf::spec::mode::Mode;

use crate::support::swarm::Cluster;
use crate::support::{Harness, IMAGE_V1, poll_until, wait_for};

/// Swarm moves tasks in seconds, and a worker is declared down after its heartbeats stop.
pub(super) const SWARM_WAIT: Duration = Duration::from_secs(120);

/// The task ids of `app`'s service that Swarm wants running.
async fn running_tasks(docker: &Docker, service: &str) -> BTreeSet<String> {
    let tasks = docker
        .list_tasks(Some(ListTasksOptions {
            filters: Some(HashMap::from([
                ("service".to_string(), vec![service.to_string()]),
                ("desired-state".to_string(), vec!["running".to_string()]),
            ])),
        }))
        .await
        .expect("list tasks");
    tasks.into_iter().filter_map(|t| t.id).collect()
}

/// The services carrying this harness's instance label: (id, name, version).
async fn services(docker: &Docker, h: &Harness) -> Vec<(String, String, u64)> {
    let list = docker
        .list_services(Some(ListServicesOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("wharf.instance={}", h.instance)],
            )])),
            ..Default::default()
        }))
        .await
        .expect("list services");
    list.into_iter()
        .map(|s| {
            (
                s.id.unwrap_or_default(),
                s.spec.and_then(|s| s.name).unwrap_or_default(),
                s.version.and_then(|v| v.index).unwrap_or(0),
            )
        })
        .collect()
}

fn replicas(doc: &Value) -> (u64, u64) {
    (
        doc.pointer("/status/replicas/desired")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX),
        doc.pointer("/status/replicas/running")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX),
    )
}

fn task_nodes(doc: &Value) -> BTreeSet<String> {
    doc.pointer("/status/tasks")
        .and_then(Value::as_array)
        .map(|tasks| {
            tasks
                .iter()
                .filter(|t| t["state"] == "running")
                .filter_map(|t| t.pointer("/node/hostname").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `app` reports `running` replicas running, and returns its document.
pub(super) async fn wait_running(h: &Harness, app: &str, running: u64) -> Value {
    match poll_until(SWARM_WAIT, || async {
        let doc = h.get_app(app).await?;
        let ready = doc
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        (ready && replicas(&doc) == (running, running)).then_some(doc)
    })
    .await
    {
        Some(doc) => doc,
        None => panic!(
            "timed out waiting for {app} to run {running} replicas; last seen: {:#}",
            h.get_app(app).await.unwrap_or_default()
        ),
    }
}

fn app(h: &Harness, name: &str, extra: &str) -> String {
    h.sleeper_app(name, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn apps_become_services_on_a_three_node_swarm() {
    let cluster = Cluster::start(3).await;
    let h = Harness::start_swarm("swarm-apps", &cluster).await;
    let manager = cluster.docker(1).await;

    // The mode and the cluster.
    let (status, info) = h.get("/api/v1/info").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["mode"], "swarm");
    assert_eq!(info["cluster"]["nodes"], 3, "{info}");
    let (status, nodes) = h.get("/api/v1/nodes").await;
    assert_eq!(status, 200, "{nodes}");
    let hostnames: BTreeSet<&str> = nodes["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["hostname"].as_str())
        .collect();
    assert_eq!(
        hostnames,
        BTreeSet::from(["wharf-node1", "wharf-node2", "wharf-node3"])
    );
    let (status, node) = h.get("/api/v1/nodes/wharf-node2").await;
    assert_eq!(status, 200, "{node}");
    assert_eq!(node["Description"]["Hostname"], "wharf-node2", "{node}");
    assert_eq!(h.get("/api/v1/nodes/nowhere").await.0, 404);

    // Fields with no Swarm meaning are refused by name.
    let (status, body) = h
        .apply(&app(
            &h,
            "paused",
            "  state: paused\n  portArea: {size: 10}\n",
        ))
        .await;
    assert_eq!(status, 422, "{body}");
    let causes: Vec<(&str, &str)> = body["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or_default(),
                c["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(causes.len(), 2, "{body}");
    assert_eq!(causes[0].0, "spec.portArea");
    assert_eq!(causes[1].0, "spec.state: paused");
    assert!(causes.iter().all(|c| c.1.contains("solo only")), "{body}");

    // A global app: one task on every node.
    assert_eq!(
        h.apply(&app(&h, "everywhere", "  mode: global\n")).await.0,
        200
    );
    let doc = wait_running(&h, "everywhere", 3).await;
    assert_eq!(task_nodes(&doc).len(), 3, "{doc:#}");
    assert_eq!(h.delete("everywhere").await.0, 200);
    wait_for("everywhere gone", SWARM_WAIT, || async {
        h.get_app("everywhere").await.is_none().then_some(())
    })
    .await;

    // Three replicas, spread over the nodes.
    let (status, body) = h
        .apply(&app(
            &h,
            "web",
            "  replicas: 3\n  resources: {memory: 64Mi}\n  update: {parallelism: 3, minReadySeconds: 1}\n",
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    let doc = wait_running(&h, "web", 3).await;
    assert_eq!(doc["status"]["phase"], "Running", "{doc}");
    let service_id = doc["status"]["serviceId"]
        .as_str()
        .expect("serviceId")
        .to_string();
    assert!(
        task_nodes(&doc).len() >= 2,
        "3 replicas on at least two nodes: {doc:#}"
    );
    let all = services(&manager, &h).await;
    assert_eq!(all.len(), 1, "one service: {all:?}");
    assert_eq!(all[0].1, "swarm-apps_web");

    // An unchanged re-apply changes nothing: same service version, same tasks.
    let tasks_before = running_tasks(&manager, &service_id).await;
    let version_before = services(&manager, &h).await[0].2;
    let (status, body) = h
        .apply(&app(
            &h,
            "web",
            "  replicas: 3\n  resources: {memory: 64Mi}\n  update: {parallelism: 3, minReadySeconds: 1}\n",
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["result"], "unchanged", "{body}");
    h.settle(3).await;
    assert_eq!(services(&manager, &h).await[0].2, version_before);
    assert_eq!(running_tasks(&manager, &service_id).await, tasks_before);

    // The dry run plans through the swarm planner: one service update, naming what changes.
    let (status, body) = h
        .request(
            reqwest::Method::POST,
            "/api/v1/apply?dryRun=true",
            "application/yaml",
            Some(app(
                &h,
                "web",
                "  replicas: 4\n  resources: {memory: 64Mi}\n  update: {parallelism: 3, minReadySeconds: 1}\n",
            )),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let plan = &body["items"][0]["plan"];
    assert_eq!(plan.as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(plan[0]["action"], "ServiceUpdated", "{body}");
    assert!(
        plan[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("replicas")),
        "{body}"
    );

    // A limit change is one service update: Swarm rolls every task.
    let (status, body) = h
        .apply(&app(
            &h,
            "web",
            "  replicas: 3\n  resources: {memory: 96Mi}\n  update: {parallelism: 3, minReadySeconds: 1}\n",
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready_within("web", Some(2), SWARM_WAIT).await;
    let doc = wait_running(&h, "web", 3).await;
    assert_eq!(
        doc["status"]["updateStatus"]["state"], "completed",
        "{doc:#}"
    );
    let inspected = manager
        .inspect_service(&service_id, None)
        .await
        .expect("inspect");
    let memory = inspected
        .spec
        .and_then(|s| s.task_template)
        .and_then(|t| t.resources)
        .and_then(|r| r.limits)
        .and_then(|l| l.memory_bytes);
    assert_eq!(memory, Some(96 << 20));
    let tasks_after = running_tasks(&manager, &service_id).await;
    assert!(
        tasks_after.is_disjoint(&tasks_before),
        "every task replaced: {tasks_before:?} → {tasks_after:?}"
    );

    // Scale up and down.
    let scaled = |n: u64| {
        app(
            &h,
            "web",
            &format!(
                "  replicas: {n}\n  resources: {{memory: 96Mi}}\n  update: {{parallelism: 3, minReadySeconds: 1}}\n"
            ),
        )
    };
    assert_eq!(h.apply(&scaled(5)).await.0, 200);
    wait_running(&h, "web", 5).await;
    assert_eq!(h.apply(&scaled(2)).await.0, 200);
    wait_running(&h, "web", 2).await;

    // Stopped: the service stays, with no task; running again: back to its replicas.
    assert_eq!(
        h.patch("web", r#"{"spec":{"state":"stopped"}}"#).await.0,
        200
    );
    let doc = wait_for("web stopped", SWARM_WAIT, || async {
        let doc = h.get_app("web").await?;
        (doc["status"]["phase"] == "Stopped" && replicas(&doc) == (0, 0)).then_some(doc)
    })
    .await;
    assert_eq!(doc["status"]["serviceId"], service_id.as_str());
    assert!(running_tasks(&manager, &service_id).await.is_empty());
    assert_eq!(
        h.patch("web", r#"{"spec":{"state":"running"}}"#).await.0,
        200
    );
    wait_running(&h, "web", 2).await;

    // A restart replaces every task, following the update settings.
    let before = running_tasks(&manager, &service_id).await;
    let (status, body) = h
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/namespaces/{}/apps/web/restart", h.namespace),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    wait_for("new tasks after the restart", SWARM_WAIT, || async {
        let now = running_tasks(&manager, &service_id).await;
        (now.len() == 2 && now.is_disjoint(&before)).then_some(())
    })
    .await;
    // Inspect (as git and kill) goes through the node agents, which this cluster does not
    // run: 503 naming the node (tests/swarm/agents.rs runs them).
    wait_running(&h, "web", 2).await;
    let (status, body) = h
        .get(&format!(
            "/api/v1/namespaces/{}/apps/web/inspect",
            h.namespace
        ))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["reason"], "AgentUnavailable", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("wharf-node")),
        "{body}"
    );
    let (status, body) = h
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/namespaces/{}/apps/web/kill", h.namespace),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("agent")),
        "{body}"
    );

    // A bad image: Swarm cannot start the new tasks and rolls the update back; the app says
    // so, keeps running the old tasks, and the update is not sent again.
    let bad = format!(
        "  image: wharf-test/missing:1\n  command: {}\n  stopGracePeriod: 2s\n  replicas: 2\n  resources: {{memory: 96Mi}}\n  update: {{parallelism: 2, minReadySeconds: 2}}\n",
        crate::support::SLEEPER
    );
    assert_eq!(h.apply(&h.app_yaml("web", &bad)).await.0, 200);
    let doc = wait_for("web rolled back", SWARM_WAIT, || async {
        let doc = h.get_app("web").await?;
        let ready = doc
            .pointer("/status/conditions")?
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        (doc["status"]["phase"] == "Degraded" && ready["reason"] == "RolledBack").then_some(doc)
    })
    .await;
    assert!(
        doc["status"]["updateStatus"]["state"]
            .as_str()
            .is_some_and(|s| s.starts_with("rollback")),
        "{doc:#}\nevents: {:#?}",
        h.events("web").await
    );
    wait_for("the rollback to finish", SWARM_WAIT, || async {
        let doc = h.get_app("web").await?;
        (doc["status"]["updateStatus"]["state"] == "rollback_completed" && replicas(&doc) == (2, 2))
            .then_some(())
    })
    .await;
    let version_after_rollback = services(&manager, &h).await[0].2;
    h.settle(3).await;
    assert_eq!(
        services(&manager, &h).await[0].2,
        version_after_rollback,
        "a rolled-back update is not sent again"
    );
    // A good spec again.
    assert_eq!(h.apply(&scaled(2)).await.0, 200);
    h.wait_ready_within("web", None, SWARM_WAIT).await;

    // Removed behind wharf's back: it comes back.
    manager
        .delete_service(&service_id)
        .await
        .expect("remove the service");
    let doc = wait_for("the service back", SWARM_WAIT, || async {
        let doc = h.get_app("web").await?;
        let id = doc["status"]["serviceId"].as_str()?;
        (id != service_id && replicas(&doc) == (2, 2)).then_some(doc)
    })
    .await;
    let service_id = doc["status"]["serviceId"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // Scaled behind wharf's back: put back.
    let out = std::process::Command::new("docker")
        .args(["-H", &format!("unix://{}", cluster.socket(1))])
        .args(["service", "scale", "--detach", &format!("{service_id}=4")])
        .output()
        .expect("docker service scale");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the scale put back", SWARM_WAIT, || async {
        let doc = h.get_app("web").await?;
        let events = h.events("web").await;
        let put_back = events.iter().any(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.contains("changed behind wharf's back"))
        });
        (put_back && replicas(&doc) == (2, 2)).then_some(())
    })
    .await;

    // A Node spec drains a worker: its tasks move, the app stays Ready; the node gets the
    // declared labels. Deleting the object leaves the node as it is.
    let node_doc = |availability: &str| {
        format!(
            "apiVersion: wharf/v1\nkind: Node\nmetadata: {{name: wharf-node3}}\nspec:\n  availability: {availability}\n  labels: {{zone: b}}\n"
        )
    };
    let (status, body) = h.apply(&node_doc("drain")).await;
    assert_eq!(status, 200, "{body}");
    let doc = wait_for("node3 drained and web off it", SWARM_WAIT, || async {
        let (_, nodes) = h.get("/api/v1/nodes").await;
        let node3 = nodes["items"]
            .as_array()?
            .iter()
            .find(|n| n["hostname"] == "wharf-node3")?
            .clone();
        let drained = node3["availability"] == "drain"
            && node3["labels"]["zone"] == "b"
            && node3["declared"]["status"]["conditions"][0]["status"] == "True";
        let doc = h.get_app("web").await?;
        let off = !task_nodes(&doc).contains("wharf-node3") && replicas(&doc) == (2, 2);
        (drained && off).then_some(doc)
    })
    .await;
    assert_eq!(doc["status"]["phase"], "Running", "{doc:#}");
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "--server",
            &h.url(""),
            "--token",
            &h.token(),
            "get",
            "nodes",
        ])
        .output()
        .expect("wharf get nodes");
    let table = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success() && table.contains("wharf-node3") && table.contains("drain"),
        "{table}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert_eq!(h.apply(&node_doc("active")).await.0, 200);
    wait_for("node3 active again", SWARM_WAIT, || async {
        let (_, nodes) = h.get("/api/v1/nodes").await;
        nodes["items"]
            .as_array()?
            .iter()
            .any(|n| n["hostname"] == "wharf-node3" && n["availability"] == "active")
            .then_some(())
    })
    .await;
    let (status, body) = h
        .request(
            reqwest::Method::DELETE,
            "/api/v1/nodes/wharf-node3",
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    h.settle(2).await;
    let (_, nodes) = h.get("/api/v1/nodes").await;
    let node3 = nodes["items"]
        .as_array()
        .and_then(|items| items.iter().find(|n| n["hostname"] == "wharf-node3"))
        .cloned()
        .unwrap_or_default();
    assert!(node3.get("declared").is_none(), "{node3}");
    assert_eq!(node3["labels"]["zone"], "b", "the node is left as it is");

    // A dead worker: its tasks move to the other nodes, the node shows down.
    let doc = h.get_app("web").await.expect("web");
    let victim = task_nodes(&doc)
        .into_iter()
        .find(|n| n != "wharf-node1")
        .unwrap_or_else(|| "wharf-node2".to_string());
    let index: usize = victim
        .trim_start_matches("wharf-node")
        .parse()
        .expect("node number");
    cluster.kill_node(index);
    wait_for("the dead node down", SWARM_WAIT, || async {
        let (_, nodes) = h.get("/api/v1/nodes").await;
        nodes["items"]
            .as_array()?
            .iter()
            .any(|n| n["hostname"] == victim.as_str() && n["status"] == "down")
            .then_some(())
    })
    .await;
    let doc = wait_for("web running elsewhere", SWARM_WAIT, || async {
        let doc = h.get_app("web").await?;
        let nodes = task_nodes(&doc);
        (replicas(&doc) == (2, 2) && !nodes.contains(&victim)).then_some(doc)
    })
    .await;
    assert_eq!(doc["status"]["phase"], "Running", "{doc:#}");

    // Delete removes the service and nothing else.
    let other = manager
        .create_service(
            bollard::models::ServiceSpec {
                name: Some("not-wharfs".into()),
                task_template: Some(bollard::models::TaskSpec {
                    container_spec: Some(bollard::models::TaskSpecContainerSpec {
                        image: Some(IMAGE_V1.into()),
                        args: Some(vec!["sleep".into(), "600".into()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
        )
        .await
        .expect("a service wharf does not manage")
        .id
        .expect("id");
    assert_eq!(h.delete("web").await.0, 200);
    wait_for("web gone", SWARM_WAIT, || async {
        h.get_app("web").await.is_none().then_some(())
    })
    .await;
    assert!(services(&manager, &h).await.is_empty());
    manager
        .inspect_service(&other, None)
        .await
        .expect("the other service is still there");
}

#[tokio::test]
async fn each_mode_refuses_what_it_cannot_do() {
    // Solo mode: more than one replica, and swarm-only settings, are refused by name.
    let h = Harness::start("solo-refuses-swarm").await;
    let (status, body) = h
        .apply(&h.sleeper_app(
            "web",
            "  replicas: 3\n  placement: {constraints: [node.role==worker]}\n",
        ))
        .await;
    assert_eq!(status, 422, "{body}");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .filter_map(|c| c["field"].as_str())
        .collect();
    assert_eq!(fields, ["spec.replicas", "spec.placement"], "{body}");
    let (status, body) = h
        .apply(
            "apiVersion: wharf/v1\nkind: Node\nmetadata: {name: n1}\nspec: {availability: drain}\n",
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["details"]["causes"][0]["field"], "kind", "{body}");
    let (status, info) = h.get("/api/v1/info").await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["mode"], "solo");
    assert!(info.get("cluster").is_none(), "{info}");
    let (status, body) = h.get("/api/v1/nodes").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("solo mode")),
        "{body}"
    );

    // The data directory remembers its mode: swarm mode is refused on it.
    let store = wharf::store::Store::open(&h.data.path().join(wharf::server::DATABASE_FILE))
        .await
        .expect("the store opens");
    let refused = store.claim_mode(Mode::Swarm).await.expect_err("refused");
    assert!(
        refused.to_string().contains("made for solo mode"),
        "{refused}"
    );
    store.claim_mode(Mode::Solo).await.expect("solo again");
    h.finish().await;

    // This machine's engine is no swarm manager, which swarm mode says before anything else.
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = ServeConfig::new(data.path().to_path_buf());
    config.specs_dir = None;
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.mode = Mode::Swarm;
    let refused = Server::start(config).await.err().expect("refused");
    let message = refused.to_string();
    assert!(
        message.contains("not part of a swarm") && message.contains("docker swarm init"),
        "{message}"
    );
}
