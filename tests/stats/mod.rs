//! Stats history against the real engine: CPU % of a busy container under a CPU limit, memory
//! use as a container allocates, the latest sample in the app's status, samples kept across a
//! wharf restart and removed with the app.

use std::time::Duration;

use serde_json::Value;

use crate::support::{Harness, IMAGE_V1, wait_for};

/// A wharf sampling every second.
async fn sampling(name: &str) -> Harness {
    Harness::start_with(name, |c| c.stats.interval = Duration::from_secs(1)).await
}

impl Harness {
    async fn series(&self, app: &str, query: &str) -> Vec<Value> {
        let path = format!(
            "/api/v1/namespaces/{}/apps/{app}/stats?{query}",
            self.namespace
        );
        let (status, body) = self.get(&path).await;
        assert_eq!(status, 200, "{body}");
        body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits for at least `n` raw samples of `app` in the last hour.
    async fn samples(&self, app: &str, n: usize) -> Vec<Value> {
        wait_for(
            &format!("{n} samples of {app}"),
            Duration::from_secs(60),
            || async {
                let items = self.series(app, "step=raw").await;
                (items.len() >= n).then_some(items)
            },
        )
        .await
    }
}

fn numbers(items: &[Value], key: &str) -> Vec<f64> {
    items.iter().filter_map(|i| i[key].as_f64()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn cpu_and_memory_are_sampled_from_the_engine() {
    let h = sampling("t-stats").await;
    let busy = h.app_yaml(
        "busy",
        &format!(
            "  image: {IMAGE_V1}\n  command: [\"sh\", \"-c\", \"yes > /dev/null\"]\n  resources: {{cpus: 0.5, memory: 256Mi}}\n  stopGracePeriod: 1s\n"
        ),
    );
    // Fills /dev/shm (charged to the container's memory) by 8 MiB a second, six times.
    let grow = h.app_yaml(
        "grow",
        &format!(
            "  image: {IMAGE_V1}\n  command: [\"sh\", \"-c\", \"sleep 2; for i in 1 2 3 4 5 6; do dd if=/dev/zero of=/dev/shm/f$i bs=1M count=8 2>/dev/null; sleep 1; done; while true; do sleep 1; done\"]\n  stopGracePeriod: 1s\n"
        ),
    );
    assert_eq!(h.apply(&format!("{busy}---\n{grow}")).await.0, 200);
    h.wait_ready("busy").await;
    h.wait_ready("grow").await;

    // A busy loop under a 0.5 CPU limit: 50 % of one core, within 15 %.
    let items = h.samples("busy", 6).await;
    let cpu = numbers(&items[1..], "cpuPercent");
    let mean = cpu.iter().sum::<f64>() / cpu.len() as f64;
    assert!((42.5..=57.5).contains(&mean), "cpu {mean:.1}% from {cpu:?}");
    assert_eq!(items[0]["memLimit"].as_i64(), Some(256 << 20));

    // Memory use rises as the container allocates.
    let items = h.samples("grow", 10).await;
    let mem = numbers(&items, "memUsage");
    let rise = mem.last().unwrap() - mem.first().unwrap();
    assert!(
        rise >= 32.0 * 1048576.0,
        "memory rose by {rise} bytes: {mem:?}"
    );

    // The latest sample is in the app's status, as in the Flask API's container listing.
    let doc = h.get_app("busy").await.unwrap();
    let status = &doc["status"];
    assert!(
        status["cpuPercent"].as_f64().is_some_and(|c| c > 20.0),
        "{status:#}"
    );
    assert_eq!(status["memLimit"].as_i64(), Some(256 << 20));
    assert!(
        status["memUsage"].as_i64().is_some_and(|m| m > 0),
        "{status:#}"
    );
    assert!(status.get("memMaxUsage").is_some(), "{status:#}");
    let (_, list) = h
        .get(&format!("/api/v1/namespaces/{}/apps", h.namespace))
        .await;
    assert!(
        list["items"][0]["status"]["cpuPercent"].is_number(),
        "{list:#}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn samples_survive_a_restart_and_go_with_the_app() {
    let mut h = sampling("t-stats-keep").await;
    assert_eq!(h.apply(&h.sleeper_app("web", "")).await.0, 200);
    h.wait_ready("web").await;
    let before = h.samples("web", 3).await;
    let uid = h.get_app("web").await.unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();

    // The host is sampled with the apps.
    let (_, host) = h.get("/api/v1/host/stats/history").await;
    let host = host["items"].as_array().cloned().unwrap_or_default();
    assert!(host.len() >= 2, "{host:?}");
    assert!(host[1]["contextSwitches"].as_u64() >= host[0]["contextSwitches"].as_u64());

    h.restart().await;
    let after = h.series("web", "step=raw").await;
    assert!(
        after.len() >= before.len(),
        "{} then {}",
        before.len(),
        after.len()
    );
    assert_eq!(after[0]["t"], before[0]["t"], "the same first sample");
    // Bad parameters are named.
    let path = format!("/api/v1/namespaces/{}/apps/web/stats?step=5m", h.namespace);
    assert_eq!(h.get(&path).await.0, 400);

    assert_eq!(h.delete("web").await.0, 200);
    wait_for("web forgotten", Duration::from_secs(30), || async {
        h.get_app("web").await.is_none().then_some(())
    })
    .await;
    let left = h
        .server()
        .store
        .stats_series(&uid, "", 0, i64::MAX, wharf::store::Resolution::Raw)
        .await
        .unwrap();
    assert!(left.is_empty(), "{} samples left behind", left.len());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn uptime_follows_the_engine_events_and_marks_unwatched_time_unknown() {
    use bollard::query_parameters::KillContainerOptions;
    let mut h = sampling("t-uptime").await;
    let spec = Harness::sleeper_spec(IMAGE_V1) + "  restartPolicy: {name: \"no\"}\n";
    assert_eq!(h.apply(&h.app_yaml("web", &spec)).await.0, 200);
    h.wait_ready("web").await;
    let path = format!("/api/v1/namespaces/{}/apps/web", h.namespace);

    // Killed behind wharf's back (restart policy "no": it stays down), started again through
    // the API, paused and unpaused through the spec.
    crate::support::docker()
        .await
        .kill_container(&h.container_name("web"), None::<KillContainerOptions>)
        .await
        .unwrap();
    h.wait_state("web", "exited").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = h
        .request(
            reqwest::Method::POST,
            &format!("{path}/restart"),
            "application/json",
            None,
        )
        .await;
    assert_eq!(status, 200);
    h.wait_state("web", "running").await;
    assert_eq!(
        h.patch("web", r#"{"spec": {"state": "paused"}}"#).await.0,
        200
    );
    h.wait_state("web", "paused").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        h.patch("web", r#"{"spec": {"state": "running"}}"#).await.0,
        200
    );
    h.wait_state("web", "running").await;

    let summary = wait_for("the unpause recorded", Duration::from_secs(10), || async {
        let (_, s) = h.get(&format!("{path}/uptime?duration=hour")).await;
        let events: Vec<String> = s["series"]
            .as_array()?
            .iter()
            .filter_map(|e| e["event"].as_str().map(str::to_string))
            .collect();
        events.contains(&"unpaused".to_string()).then_some(s)
    })
    .await;
    let events: Vec<&str> = summary["series"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    for e in ["died", "started", "paused", "unpaused"] {
        assert!(events.contains(&e), "{e} missing from {events:?}");
    }
    let died = summary["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "died")
        .unwrap();
    assert_eq!(died["detail"], "exit code 137");
    assert_eq!(summary["restarts"], 1, "{summary:#}");
    let downtime = summary["downtime"].as_array().unwrap();
    assert_eq!(downtime.len(), 2, "{summary:#}");
    assert!(downtime[0]["reason"].as_str().unwrap().starts_with("died"));
    assert_eq!(downtime[1]["reason"], "paused");
    let availability = summary["availabilityPercent"].as_f64().unwrap();
    assert!(availability > 0.0 && availability < 100.0, "{availability}");
    assert!(
        summary["downSeconds"].as_f64().unwrap() >= 2.5,
        "{summary:#}"
    );

    // The time wharf is not running is unknown, not up.
    h.restart().await;
    let summary = wait_for(
        "wharf's look after the restart",
        Duration::from_secs(10),
        || async {
            let (_, s) = h.get(&format!("{path}/uptime?duration=hour")).await;
            let events: Vec<String> = s["series"]
                .as_array()?
                .iter()
                .filter_map(|e| e["event"].as_str().map(str::to_string))
                .collect();
            events
                .ends_with(&["unwatched".to_string(), "observed".to_string()])
                .then_some(s)
        },
    )
    .await;
    assert!(
        summary["unknownSeconds"].as_f64().unwrap() > 0.0,
        "{summary:#}"
    );
    let (status, _) = h.get(&format!("{path}/uptime?duration=year")).await;
    assert_eq!(status, 400);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_draws_stats_and_uptime() {
    let h = sampling("t-stats-cli").await;
    assert_eq!(h.apply(&h.sleeper_app("web", "")).await.0, 200);
    h.wait_ready("web").await;
    h.samples("web", 3).await;
    let ns = h.namespace.clone();
    let run = |args: Vec<String>| {
        let h = &h;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tokio::task::block_in_place(|| crate::cli::wharf(Some(h), &args))
        }
    };
    let args = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };
    let out = run(args(&format!("stats app web -n {ns} --since 10m"))).await;
    let text = crate::cli::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("cpu  ") && text.contains("mem  ") && text.contains("CPU%"),
        "{text}"
    );
    let out = run(args(&format!("uptime app web -n {ns} --duration hour"))).await;
    let text = crate::cli::text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("availability 100.00%") && text.contains('█'),
        "{text}"
    );
    h.finish().await;
}
