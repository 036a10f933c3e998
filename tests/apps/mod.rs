//! Apps against the real Docker Engine: create, in-place update, recreate, state changes, drift
//! repair, delete, adoption after restart, foreign containers, the watched directory.

use std::time::Duration;

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{
    CreateContainerOptions, KillContainerOptions, RemoveContainerOptions, StopContainerOptions,
};
use serde_json::Value;

use crate::support::{Harness, IMAGE_V1, IMAGE_V2, SLEEPER, block_device, docker, wait_for};

fn env_of(c: &bollard::models::ContainerInspectResponse) -> Vec<String> {
    c.config
        .as_ref()
        .and_then(|c| c.env.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_creates_a_container_with_every_declared_field() {
    let h = Harness::start("t-create").await;
    let device = block_device();
    let yaml = h.app_yaml(
        "web",
        &format!(
            "  image: {IMAGE_V1}\n  owner: john\n  command: {SLEEPER}\n  env: {{TZ: UTC, GREETING: hello}}\n  ports: ['127.0.0.1:18181:80/tcp', {{containerPort: 53, protocol: udp}}]\n  resources:\n    memory: 64Mi\n    cpus: 0.5\n    pids: 64\n    blkio:\n      deviceReadBps: [{{path: {device}, rate: 10Mi}}]\n      deviceWriteIops: [{{path: {device}, rate: 100}}]\n  volumes: [{{name: work, mountPath: /work}}]\n  restartPolicy: {{name: on-failure, maxRetries: 3}}\n  stopGracePeriod: 2s\n"
        ),
    ) + "---\n" + &h.sleeper_app("half", "  resources: {cpuPercent: 50, memory: 32m}\n");
    let (status, body) = h.apply(&yaml).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["items"][0]["result"], "created");

    let doc = h.wait_ready("web").await;
    let c = h.inspect("web").await.expect("container exists");
    let config = c.config.clone().expect("config");
    let host = c.host_config.clone().expect("host config");
    assert_eq!(config.image.as_deref(), Some(IMAGE_V1));
    assert_eq!(
        config.cmd.clone().unwrap(),
        [
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done"
        ]
    );
    let env = env_of(&c);
    assert!(
        env.contains(&"TZ=UTC".to_string()) && env.contains(&"GREETING=hello".to_string()),
        "{env:?}"
    );
    let bindings = host.port_bindings.clone().expect("port bindings");
    let web = bindings["80/tcp"].clone().expect("80/tcp published");
    assert_eq!(web[0].host_port.as_deref(), Some("18181"));
    assert_eq!(web[0].host_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        config
            .exposed_ports
            .clone()
            .unwrap()
            .contains(&"53/udp".to_string())
    );
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.memory_swap, Some(64 << 20), "swap follows memory");
    assert_eq!(host.nano_cpus, Some(500_000_000));
    assert_eq!(host.pids_limit, Some(64));
    let read_bps = host.blkio_device_read_bps.clone().expect("blkio read bps");
    assert_eq!(
        (read_bps[0].path.as_deref(), read_bps[0].rate),
        (Some(device.as_str()), Some(10 << 20))
    );
    let write_iops = host
        .blkio_device_write_iops
        .clone()
        .expect("blkio write iops");
    assert_eq!(write_iops[0].rate, Some(100));
    let restart = host.restart_policy.clone().expect("restart policy");
    assert_eq!(
        restart.name.map(|n| n.to_string()).as_deref(),
        Some("on-failure")
    );
    assert_eq!(restart.maximum_retry_count, Some(3));
    let mounts = c.mounts.clone().expect("mounts");
    assert_eq!(
        mounts[0].name.as_deref(),
        Some(format!("wharf.{}.work", h.namespace).as_str())
    );
    assert_eq!(mounts[0].destination.as_deref(), Some("/work"));
    assert_eq!(config.stop_timeout, Some(2));
    let labels = config.labels.clone().unwrap();
    assert_eq!(labels["wharf.managed-by"], "wharf");
    assert_eq!(labels["wharf.app"], "web");
    assert_eq!(
        labels["wharf.uid"],
        doc["metadata"]["uid"].as_str().unwrap()
    );

    // Status shows phase, container id, observed generation, Ready.
    assert_eq!(doc["status"]["phase"], "Running");
    assert_eq!(doc["status"]["containerId"].as_str(), c.id.as_deref());
    assert_eq!(doc["status"]["observedGeneration"], 1);

    // cpuPercent is a share of one core.
    h.wait_ready("half").await;
    let half = h.inspect("half").await.unwrap().host_config.unwrap();
    assert_eq!(half.nano_cpus, Some(500_000_000));
    assert_eq!(half.memory, Some(32 << 20));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unchanged_reapply_keeps_the_container() {
    let h = Harness::start("t-unchanged").await;
    let yaml = h.sleeper_app("web", "  env: [B=2, A=1]\n  ports: ['18282:80']\n");
    h.apply(&yaml).await;
    h.wait_ready("web").await;
    let before = h.container_id("web").await.unwrap();
    let (_, body) = h.apply(&yaml).await;
    assert_eq!(body["items"][0]["result"], "unchanged");
    // The same spec spelled differently (env as a map, ports as objects) is also no change.
    let respelled = h.sleeper_app(
        "web",
        "  env: {A: '1', B: '2'}\n  ports: [{containerPort: 80, hostPort: 18282}]\n",
    );
    let (_, body) = h.apply(&respelled).await;
    assert_eq!(
        body["items"][0]["result"], "configured",
        "the text changed, so the generation moves"
    );
    h.wait_ready("web").await;
    h.settle(3).await;
    assert_eq!(
        h.container_id("web").await.unwrap(),
        before,
        "NotRecreated: unchanged apply keeps the container id"
    );
    assert_eq!(h.containers().await.len(), 1);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_changes_are_applied_in_place() {
    let h = Harness::start("t-inplace").await;
    let spec = |memory: &str, cpus: &str, pids: u32| {
        h.sleeper_app("web", &format!("  resources: {{memory: {memory}, cpus: {cpus}, pids: {pids}}}\n  restartPolicy: {{name: always}}\n"))
    };
    h.apply(&spec("64Mi", "0.5", 50)).await;
    h.wait_ready("web").await;
    let before = h.inspect("web").await.unwrap();
    let started = before.state.as_ref().unwrap().started_at.clone();

    // Raising memory above the old memory+swap only works because swap is raised with it.
    h.apply(&spec("256Mi", "1", 80)).await;
    h.wait_ready("web").await;
    let after = h.inspect("web").await.unwrap();
    assert_eq!(after.id, before.id, "same container");
    let state = after.state.as_ref().unwrap();
    assert_eq!(state.running, Some(true));
    assert_eq!(state.started_at, started, "not restarted");
    let host = after.host_config.unwrap();
    assert_eq!(host.memory, Some(256 << 20));
    assert_eq!(host.memory_swap, Some(256 << 20));
    assert_eq!(host.nano_cpus, Some(1_000_000_000));
    assert_eq!(host.pids_limit, Some(80));

    // The update happened once, with a reason naming the change.
    let events = h.events("web").await;
    let updates: Vec<&Value> = events.iter().filter(|e| e["reason"] == "Updated").collect();
    assert_eq!(updates.len(), 1, "{events:?}");
    assert!(
        updates[0]["message"]
            .as_str()
            .unwrap()
            .contains("memory 64Mi→256Mi"),
        "{events:?}"
    );

    // Lifting the memory limit cannot be done in place: the container is replaced.
    h.apply(&h.sleeper_app(
        "web",
        "  resources: {cpus: 1, pids: 80}\n  restartPolicy: {name: always}\n",
    ))
    .await;
    h.wait_ready("web").await;
    let lifted = h.inspect("web").await.unwrap();
    assert_ne!(lifted.id, before.id);
    assert_eq!(lifted.host_config.unwrap().memory, Some(0));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_class_changes_replace_the_container() {
    let h = Harness::start("t-recreate").await;
    h.apply(&h.sleeper_app(
        "web",
        "  env: {V: a}\n  volumes: [{name: data, mountPath: /data}]\n",
    ))
    .await;
    h.wait_ready("web").await;
    let first = h.container_id("web").await.unwrap();

    h.apply(&h.app_yaml(
        "web",
        &format!(
            "{}  env: {{V: b}}\n  volumes: [{{name: data, mountPath: /data}}]\n",
            Harness::sleeper_spec(IMAGE_V2)
        ),
    ))
    .await;
    let doc = h.wait_ready("web").await;
    let c = h.inspect("web").await.unwrap();
    assert_ne!(c.id.as_deref(), Some(first.as_str()), "replaced");
    assert_eq!(c.config.as_ref().unwrap().image.as_deref(), Some(IMAGE_V2));
    assert!(env_of(&c).contains(&"V=b".to_string()));
    assert_eq!(doc["status"]["observedGeneration"], 2);
    assert_eq!(h.containers().await.len(), 1, "the old container is gone");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn declared_state_pauses_stops_and_starts() {
    let h = Harness::start("t-state").await;
    h.apply(&h.sleeper_app("web", "")).await;
    h.wait_ready("web").await;
    let id = h.container_id("web").await.unwrap();

    for (state, docker_state, phase) in [
        ("paused", "paused", "Paused"),
        ("running", "running", "Running"),
        ("stopped", "exited", "Stopped"),
        ("running", "running", "Running"),
        ("paused", "paused", "Paused"),
        ("stopped", "exited", "Stopped"),
    ] {
        let (status, body) = h
            .patch("web", &format!(r#"{{"spec": {{"state": "{state}"}}}}"#))
            .await;
        assert_eq!(status, 200, "{body}");
        let doc = h.wait_ready("web").await;
        assert_eq!(doc["status"]["phase"], phase);
        let c = h.wait_state("web", docker_state).await;
        assert_eq!(
            c.id.as_deref(),
            Some(id.as_str()),
            "state changes keep the container"
        );
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drift_behind_wharfs_back_is_repaired() {
    let h = Harness::start("t-drift").await;
    h.apply(&h.sleeper_app("web", "")).await;
    h.wait_ready("web").await;
    let docker = docker().await;
    let name = h.container_name("web");

    let t = std::time::Instant::now();
    docker
        .stop_container(
            &name,
            Some(StopContainerOptions {
                t: Some(5),
                signal: None,
            }),
        )
        .await
        .unwrap();
    h.wait_state("web", "running").await;
    println!("docker stop repaired in {:?}", t.elapsed());

    let t = std::time::Instant::now();
    docker
        .kill_container(
            &name,
            Some(KillContainerOptions {
                signal: "KILL".into(),
            }),
        )
        .await
        .unwrap();
    wait_for(
        "running again after kill",
        Duration::from_secs(15),
        || async {
            let c = h.inspect("web").await?;
            (c.state?.running == Some(true)).then_some(())
        },
    )
    .await;
    println!("docker kill repaired in {:?}", t.elapsed());

    let before = h.container_id("web").await.unwrap();
    let t = std::time::Instant::now();
    docker
        .remove_container(
            &name,
            Some(RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
        .unwrap();
    let after = wait_for(
        "a new container after rm -f",
        Duration::from_secs(15),
        || async {
            let c = h.inspect("web").await?;
            (c.id.as_deref() != Some(before.as_str()) && c.state.as_ref()?.running == Some(true))
                .then_some(c)
        },
    )
    .await;
    println!("docker rm -f repaired in {:?}", t.elapsed());
    assert_eq!(after.config.unwrap().image.as_deref(), Some(IMAGE_V1));

    // Repairs are events on the app and count as restarts.
    let doc = h.wait_ready("web").await;
    assert!(
        doc["status"]["restartCount"].as_i64().unwrap() >= 2,
        "{doc}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_policy_no_leaves_an_exited_container() {
    let h = Harness::start("t-policy-no").await;
    h.apply(&h.app_yaml(
        "once",
        &format!(
            "  image: {IMAGE_V1}\n  command: [sh, -c, 'exit 3']\n  restartPolicy: {{name: 'no'}}\n"
        ),
    ))
    .await;
    let doc = wait_for("once failed", Duration::from_secs(30), || async {
        let doc = h.get_app("once").await?;
        (doc["status"]["phase"] == "Failed" && doc["status"]["exitCode"] == 3).then_some(doc)
    })
    .await;
    let id = doc["status"]["containerId"].as_str().unwrap().to_string();
    h.settle(3).await;
    let c = h.inspect("once").await.unwrap();
    assert_eq!(c.id.as_deref(), Some(id.as_str()));
    assert_eq!(c.state.unwrap().running, Some(false), "not restarted");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_containers_are_never_touched() {
    let h = Harness::start("t-foreign").await;
    let docker = docker().await;
    // Same namespace-like name pattern, but no wharf labels; and one from another wharf instance.
    let foreign = format!("{}.stranger", h.namespace);
    let other = format!("{}.other-instance", h.namespace);
    for (name, labels) in [
        (&foreign, None),
        (
            &other,
            Some(std::collections::HashMap::from([
                ("wharf.managed-by".to_string(), "wharf".to_string()),
                ("wharf.instance".to_string(), "someone-else".to_string()),
                ("wharf.uid".to_string(), "not-ours".to_string()),
            ])),
        ),
    ] {
        let _ = docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
        docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                ContainerCreateBody {
                    image: Some(IMAGE_V1.into()),
                    cmd: Some(vec!["sleep".into(), "300".into()]),
                    labels,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        docker.start_container(name, None).await.unwrap();
    }
    h.apply(&h.sleeper_app("web", "")).await;
    h.wait_ready("web").await;
    h.settle(3).await;
    for name in [&foreign, &other] {
        let c = docker
            .inspect_container(name, None)
            .await
            .expect("still exists");
        assert_eq!(c.state.unwrap().running, Some(true), "{name} untouched");
        docker
            .remove_container(
                name,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_adopts_containers_without_duplicates() {
    let mut h = Harness::start("t-adopt").await;
    h.apply(&h.sleeper_app("a", "")).await;
    h.write_spec("b.yaml", &h.sleeper_app("b", ""));
    h.wait_ready("a").await;
    h.wait_ready("b").await;
    let (a, b) = (
        h.container_id("a").await.unwrap(),
        h.container_id("b").await.unwrap(),
    );
    h.restart().await;
    h.wait_ready("a").await;
    h.wait_ready("b").await;
    h.settle(3).await;
    assert_eq!(h.container_id("a").await.unwrap(), a);
    assert_eq!(h.container_id("b").await.unwrap(), b);
    assert_eq!(h.containers().await.len(), 2, "no duplicates");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_spec_file_leaves_the_running_app_untouched() {
    let h = Harness::start("t-invalid").await;
    let good = h.sleeper_app("web", "  resources: {memory: 64Mi}\n");
    h.write_spec("team/web.yaml", &good);
    h.wait_ready("web").await;
    let id = h.container_id("web").await.unwrap();

    for (bad, expect) in [
        (
            good.replace("memory: 64Mi", "memory: lots"),
            "team/web.yaml:10:",
        ),
        (good.replace("resources:", "resourcez:"), "spec.resourcez"),
        (
            good.replace("  image:", "image: [\n  image:"),
            "team/web.yaml:",
        ),
    ] {
        h.write_spec("team/web.yaml", &bad);
        let (_, sources) = wait_for("the file's error", Duration::from_secs(10), || async {
            let (s, body) = h
                .request(
                    reqwest::Method::GET,
                    "/api/v1/sources",
                    "application/json",
                    None,
                )
                .await;
            let msg = body["errors"][0]["message"].as_str()?.to_string();
            (msg.contains(expect)).then_some((s, body))
        })
        .await;
        assert_eq!(sources["errors"][0]["source"], "file:team/web.yaml");
        let c = h.inspect("web").await.unwrap();
        assert_eq!(
            c.id.as_deref(),
            Some(id.as_str()),
            "previous version keeps running"
        );
        assert_eq!(c.state.unwrap().running, Some(true));
        assert_eq!(h.get_app("web").await.unwrap()["metadata"]["generation"], 1);
    }
    let events = h.events("web").await;
    assert!(
        events.iter().any(|e| e["reason"] == "InvalidSpec"
            && e["message"]
                .as_str()
                .unwrap()
                .contains("spec.resources.memory: invalid quantity \"lots\"")),
        "{events:?}"
    );

    // Fixing the file applies it and clears the error.
    h.write_spec("team/web.yaml", &good.replace("64Mi", "96Mi"));
    let doc = h.wait_ready_at("web", Some(2)).await;
    assert_eq!(doc["metadata"]["generation"], 2);
    assert_eq!(
        h.inspect("web").await.unwrap().host_config.unwrap().memory,
        Some(96 << 20)
    );
    let (_, sources) = h
        .request(
            reqwest::Method::GET,
            "/api/v1/sources",
            "application/json",
            None,
        )
        .await;
    assert_eq!(sources["errors"].as_array().unwrap().len(), 0);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_file_or_an_object_removes_the_container() {
    let h = Harness::start("t-delete").await;
    let path = h.write_spec("web.yaml", &h.sleeper_app("web", ""));
    h.apply(&h.sleeper_app("api", "")).await;
    h.wait_ready("web").await;
    h.wait_ready("api").await;

    std::fs::remove_file(path).unwrap();
    wait_for("file app gone", Duration::from_secs(20), || async {
        (h.get_app("web").await.is_none() && h.inspect("web").await.is_none()).then_some(())
    })
    .await;

    let (status, body) = h.delete("api").await;
    assert_eq!(status, 200);
    assert!(body["metadata"]["deletionTimestamp"].is_string());
    wait_for("api app gone", Duration::from_secs(20), || async {
        (h.get_app("api").await.is_none() && h.inspect("api").await.is_none()).then_some(())
    })
    .await;
    assert!(h.containers().await.is_empty());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_and_the_api_cannot_take_each_others_objects() {
    let h = Harness::start("t-owner").await;
    h.write_spec("web.yaml", &h.sleeper_app("web", ""));
    h.wait_ready("web").await;
    // The API may not change a file's object...
    let (status, body) = h
        .apply(&h.app_yaml("web", &Harness::sleeper_spec(IMAGE_V2)))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("web.yaml"),
        "{body}"
    );
    let (status, _) = h.delete("web").await;
    assert_eq!(status, 409);
    // ...and a file may not take the API's.
    h.apply(&h.sleeper_app("api", "")).await;
    h.wait_ready("api").await;
    let api_id = h.container_id("api").await.unwrap();
    h.write_spec(
        "steal.yaml",
        &h.app_yaml("api", &Harness::sleeper_spec(IMAGE_V2)),
    );
    let (_, sources) = wait_for("conflict reported", Duration::from_secs(10), || async {
        let r = h
            .request(
                reqwest::Method::GET,
                "/api/v1/sources",
                "application/json",
                None,
            )
            .await;
        r.1["errors"]
            .as_array()
            .is_some_and(|e| !e.is_empty())
            .then_some(r)
    })
    .await;
    assert!(
        sources["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("managed through the API"),
        "{sources}"
    );
    assert_eq!(h.container_id("api").await.unwrap(), api_id);
    assert_eq!(h.get_app("api").await.unwrap()["metadata"]["source"], "api");
    h.finish().await;
}
