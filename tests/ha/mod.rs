//! Several `wharf serve` processes on one PostgreSQL database (started by the tests: Debian's
//! `postgresql`, `initdb` into a temp directory) and the real engine: one leads and reconciles,
//! writes through the other are reconciled by it, a SIGKILLed leader is replaced within 15 s
//! with nothing lost and no duplicate container, a SIGSTOPped leader issues no Docker write
//! once its lease passed (each instance reaches the engine through a recording socket proxy),
//! and PostgreSQL restarted under load loses no accepted write.
//!
//! `WHARF_HA_KILLS` sets how many times the leader is SIGKILLed (3 by default, 10 for the full
//! run); `WHARF_HA_APPS` the apps applied each round (50).

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::Value;

use crate::support::stall::StallProxy;
use crate::support::testkit::{containers_with, remove_containers};
use crate::support::{IMAGE_V1, SLEEPER, docker, images, poll_until, wait_for};

const ENGINE: &str = "/var/run/docker.sock";

/// One `wharf serve` child process; SIGKILLed on drop.
struct Instance {
    id: String,
    port: u16,
    child: Option<Child>,
    log: std::path::PathBuf,
}

struct Cluster {
    database: String,
    instance: String,
    namespace: String,
    token: String,
    data: tempfile::TempDir,
    http: reqwest::Client,
}

impl Cluster {
    fn new(database: &wharf::store::Database, name: &str) -> Self {
        let wharf::store::Database::Postgres(url) = database else {
            panic!("a PostgreSQL database")
        };
        let data = tempfile::tempdir().expect("tempdir");
        // Every instance gets the same admin token (README: copy admin.token to each).
        let token: String = (0..32)
            .map(|_| format!("{:02x}", rand::rng().random::<u8>()))
            .collect();
        Self {
            database: url.clone(),
            instance: format!("{name}-{}", std::process::id()),
            namespace: name.to_string(),
            token,
            data,
            http: reqwest::Client::new(),
        }
    }

    /// Starts instance `id`, reaching the engine at `socket`.
    fn start(&self, id: &str, port: u16, socket: &Path) -> Instance {
        let dir = self.data.path().join(id);
        std::fs::create_dir_all(&dir).expect("data dir");
        std::fs::write(dir.join("admin.token"), &self.token).expect("token");
        let log = dir.join("wharf.log");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
            .args([
                "serve",
                "--no-specs",
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["--instance", &self.instance, "--server-id", id])
            .args(["--database", &self.database, "--data"])
            .arg(&dir)
            .env("DOCKER_HOST", format!("unix://{}", socket.display()))
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start wharf serve");
        Instance {
            id: id.into(),
            port,
            child: Some(child),
            log,
        }
    }

    async fn call(&self, i: &Instance, method: &str, path: &str, body: &str) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = self
            .http
            .request(method, format!("http://127.0.0.1:{}{path}", i.port))
            .bearer_auth(&self.token)
            .header("content-type", "application/yaml")
            .timeout(Duration::from_secs(30))
            .body(body.to_string())
            .send()
            .await;
        match response {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    async fn up(&self, i: &Instance) {
        wait_for(
            &format!("{} answering", i.id),
            Duration::from_secs(60),
            || async {
                let (status, _) = self.call(i, "GET", "/api/v1/cluster", "").await;
                (status == 200).then_some(())
            },
        )
        .await;
    }

    /// Waits until `i` answers that `leader` leads; how long it took.
    async fn leader_is(&self, i: &Instance, leader: &str, within: Duration) -> Duration {
        let started = Instant::now();
        wait_for(
            &format!("{leader} leading, as {} sees it", i.id),
            within,
            || async {
                let (status, doc) = self.call(i, "GET", "/api/v1/cluster", "").await;
                (status == 200 && doc["leader"] == leader).then_some(())
            },
        )
        .await;
        started.elapsed()
    }

    fn bundle(&self, apps: usize, round: usize) -> String {
        let mut docs = String::new();
        for n in 0..apps {
            docs.push_str(&format!(
                "---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: app{n}, namespace: {}}}\nspec:\n  image: {IMAGE_V1}\n  command: {SLEEPER}\n  env: {{ROUND: \"{round}\"}}\n  stopGracePeriod: 2s\n",
                self.namespace
            ));
        }
        docs
    }

    fn label(&self) -> String {
        format!("wharf.instance={}", self.instance)
    }

    /// Every app has one running container with `ROUND=round`, and nothing else is there.
    async fn converged(&self, apps: usize, round: usize, within: Duration) {
        let docker = docker().await;
        let want = format!("ROUND={round}");
        let label = self.label();
        let settled = poll_until(within, || async {
            let containers = containers_with(&docker, &label).await;
            if containers.len() != apps
                || containers.iter().any(|c| {
                    c.state != Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                        || crate::support::testkit::set_aside(c)
                })
            {
                return None;
            }
            for c in &containers {
                let id = c.id.clone().unwrap_or_default();
                let env = docker
                    .inspect_container(&id, None)
                    .await
                    .ok()
                    .and_then(|i| i.config)
                    .and_then(|c| c.env)
                    .unwrap_or_default();
                if !env.contains(&want) {
                    return None;
                }
            }
            Some(containers)
        })
        .await;
        let Some(containers) = settled else {
            let present = containers_with(&docker, &label).await;
            panic!(
                "not converged to round {round}: {:?}",
                present
                    .iter()
                    .map(|c| (c.names.clone(), c.state))
                    .collect::<Vec<_>>()
            )
        };
        let mut apps_seen: Vec<String> = containers
            .iter()
            .filter_map(|c| c.labels.as_ref()?.get("wharf.app").cloned())
            .collect();
        apps_seen.sort();
        apps_seen.dedup();
        assert_eq!(apps_seen.len(), apps, "one container per app");
    }

    /// Removes the test's containers, and those an earlier run of it left (whose names its
    /// apps need).
    async fn clean(&self) {
        let docker = docker().await;
        remove_containers(
            &docker,
            &format!("wharf.namespace={}", self.namespace),
            |_| true,
        )
        .await
        .expect("clean up");
    }
}

impl Instance {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("running").id();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid as i32, signal) };
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn from_env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Two instances: one leads; both serve the API, show the cluster and their readiness; an
/// apply through the follower is reconciled by the leader at once (the write wakes it through
/// `LISTEN/NOTIFY`, long before its 30 s resync); an action on the follower is refused with the
/// leader named.
#[tokio::test]
async fn a_write_through_the_follower_is_reconciled_by_the_leader() {
    images().await;
    let db = wharf::store::testdb::database().await;
    let c = Cluster::new(&db, "ha-follower");
    c.clean().await;
    let engine = Path::new(ENGINE);
    let a = c.start("a", free_port(), engine);
    c.up(&a).await;
    c.leader_is(&a, "a", Duration::from_secs(15)).await;
    let b = c.start("b", free_port(), engine);
    c.up(&b).await;
    c.leader_is(&b, "a", Duration::from_secs(15)).await;

    let (status, cluster) = c.call(&b, "GET", "/api/v1/cluster", "").await;
    assert_eq!(status, 200);
    assert_eq!(cluster["self"], "b");
    assert_eq!(cluster["database"], "postgres");
    let ids: Vec<&str> = cluster["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    assert_eq!(ids, ["a", "b"], "{cluster}");
    for (i, role, metric) in [(&a, "leader", "1"), (&b, "follower", "0")] {
        let (status, ready) = c.call(i, "GET", "/readyz", "").await;
        assert_eq!(
            (status, ready["role"].as_str()),
            (200, Some(role)),
            "{ready}"
        );
        assert_eq!(ready["leader"], "a");
        let metrics = c
            .http
            .get(format!("http://127.0.0.1:{}/metrics", i.port))
            .bearer_auth(&c.token)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            metrics
                .lines()
                .any(|l| l == format!("wharf_leader {metric}")),
            "{}: wharf_leader {metric}",
            i.id
        );
    }

    let applied = Instant::now();
    let (status, body) = c.call(&b, "POST", "/api/v1/apply", &c.bundle(3, 0)).await;
    assert_eq!(status, 200, "{body}");
    c.converged(3, 0, Duration::from_secs(20)).await;
    let took = applied.elapsed();
    eprintln!("applied through the follower, running by the leader after {took:?}");
    assert!(
        took < Duration::from_secs(15),
        "the leader was not woken by the write ({took:?}; its resync is 30 s)"
    );

    let path = format!("/api/v1/namespaces/{}/apps/app0/restart", c.namespace);
    let (status, refused) = c.call(&b, "POST", &path, "").await;
    assert_eq!(status, 503, "{refused}");
    assert_eq!(refused["reason"], "NotLeader");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or_default()
            .contains("a leads"),
        "{refused}"
    );
    let (status, _) = c.call(&a, "POST", &path, "").await;
    assert_eq!(status, 200, "the leader runs the action");
    drop((a, b));
    c.clean().await;
}

/// The leader SIGKILLed at random moments while it applies rounds of 50 apps (each round
/// replaces every container): the other instance leads within 15 s each time, and the end is
/// one running container per app with the last round's spec; no write is lost.
#[tokio::test]
async fn a_killed_leader_is_replaced_within_15s_and_nothing_is_lost() {
    images().await;
    let kills = from_env("WHARF_HA_KILLS", 3);
    let apps = from_env("WHARF_HA_APPS", 50);
    let db = wharf::store::testdb::database().await;
    let c = Cluster::new(&db, "ha-kill");
    c.clean().await;
    let engine = Path::new(ENGINE);
    let ports = [free_port(), free_port()];
    let ids = ["a", "b"];
    let mut running: [Option<Instance>; 2] = [Some(c.start("a", ports[0], engine)), None];
    c.up(running[0].as_ref().expect("a")).await;
    c.leader_is(
        running[0].as_ref().expect("a"),
        "a",
        Duration::from_secs(15),
    )
    .await;
    running[1] = Some(c.start("b", ports[1], engine));
    c.up(running[1].as_ref().expect("b")).await;
    let mut leader = 0;
    let mut failovers = Vec::new();
    let mut rng = rand::rng();
    for round in 0..=kills {
        // Writes alternate between the two instances.
        let through = running[round % 2].as_ref().expect("both run");
        let (status, body) = c
            .call(through, "POST", "/api/v1/apply", &c.bundle(apps, round))
            .await;
        assert_eq!(status, 200, "round {round} through {}: {body}", through.id);
        if round == kills {
            break;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(200..4000))).await;
        running[leader].as_mut().expect("the leader").kill();
        let killed = Instant::now();
        let other = 1 - leader;
        let survivor = running[other].as_ref().expect("the other");
        c.leader_is(survivor, ids[other], Duration::from_secs(20))
            .await;
        let failover = killed.elapsed();
        eprintln!(
            "kill {}: {} killed in round {round}; {} leads after {:.1}s",
            round + 1,
            ids[leader],
            ids[other],
            failover.as_secs_f64()
        );
        failovers.push(failover);
        running[leader] = Some(c.start(ids[leader], ports[leader], engine));
        c.up(running[leader].as_ref().expect("restarted")).await;
        leader = other;
    }
    c.converged(apps, kills, Duration::from_secs(240)).await;
    let (status, list) = c
        .call(
            running[0].as_ref().expect("a"),
            "GET",
            &format!("/api/v1/namespaces/{}/apps", c.namespace),
            "",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        list["items"].as_array().map(Vec::len),
        Some(apps),
        "every accepted app"
    );
    failovers.sort();
    let p50 = failovers[failovers.len() / 2];
    let max = failovers[failovers.len() - 1];
    eprintln!(
        "failover over {} kills: p50 {:.1}s, max {:.1}s",
        failovers.len(),
        p50.as_secs_f64(),
        max.as_secs_f64()
    );
    assert!(max <= Duration::from_secs(15), "failover took {max:?}");
    drop(running);
    c.clean().await;
}

/// The leader SIGSTOPped past its lease while it creates apps, then resumed: the other
/// instance leads, and the resumed one sends the engine no write at all (its proxy sees none)
/// because its lease's margin passed while it was stopped.
#[tokio::test]
async fn a_stopped_leader_issues_no_docker_write_once_resumed() {
    images().await;
    let db = wharf::store::testdb::database().await;
    let c = Cluster::new(&db, "ha-fence");
    c.clean().await;
    let proxy_a = StallProxy::start(Path::new(ENGINE)).await;
    let a = c.start("a", free_port(), &proxy_a.path());
    c.up(&a).await;
    c.leader_is(&a, "a", Duration::from_secs(15)).await;
    let b = c.start("b", free_port(), Path::new(ENGINE));
    c.up(&b).await;

    let (status, body) = c.call(&a, "POST", "/api/v1/apply", &c.bundle(30, 0)).await;
    assert_eq!(status, 200, "{body}");
    // In the middle of creating them.
    tokio::time::sleep(Duration::from_millis(700)).await;
    a.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    c.leader_is(&b, "b", Duration::from_secs(20)).await;
    eprintln!(
        "b leads {:.1}s after a stopped",
        stopped.elapsed().as_secs_f64()
    );
    let resumed = Instant::now();
    a.signal(libc::SIGCONT);
    // a's loop, work and timers all wake now; its lease is gone.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let writes = proxy_a.writes_since(resumed);
    assert!(writes.is_empty(), "a wrote after it resumed: {writes:?}");
    let (status, cluster) = c.call(&a, "GET", "/api/v1/cluster", "").await;
    assert_eq!(
        (status, cluster["leader"].as_str()),
        (200, Some("b")),
        "{cluster}"
    );
    let generation = cluster["generation"].as_i64().unwrap_or_default();
    assert!(generation >= 2, "the lease changed hands: {cluster}");
    let (_, ready) = c.call(&a, "GET", "/readyz", "").await;
    assert_eq!(ready["role"], "follower", "{ready}");
    assert!(
        a.log().contains("b leads"),
        "a's log says who leads:\n{}",
        a.log()
    );
    c.converged(30, 0, Duration::from_secs(120)).await;
    drop((a, b));
    c.clean().await;
}

/// PostgreSQL stopped for longer than the lease's margin while apps are applied one by one:
/// requests answer 503 DatabaseUnavailable (never a 500 or a hang), the leader stops its Docker
/// writes and takes the lease again when the database is back, and every accepted app runs.
#[tokio::test]
async fn postgres_restarted_under_load_loses_no_accepted_write() {
    images().await;
    // A server of this test's own: the others' keeps running.
    let server = wharf::store::testdb::PgServer::start_new(false).expect("postgres");
    let db = server.fresh_database().await;
    let c = Cluster::new(&db, "ha-pg");
    c.clean().await;
    let a = c.start("a", free_port(), Path::new(ENGINE));
    c.up(&a).await;
    c.leader_is(&a, "a", Duration::from_secs(15)).await;
    let (_, before) = c.call(&a, "GET", "/api/v1/cluster", "").await;

    let mut accepted = Vec::new();
    let mut unavailable = 0;
    let mut stopped_at = None;
    let started = Instant::now();
    for n in 0..80 {
        if n == 15 {
            server.stop();
            stopped_at = Some(Instant::now());
        }
        if stopped_at.is_some_and(|t| t.elapsed() > Duration::from_secs(9)) {
            server.start().expect("postgres back");
            stopped_at = None;
        }
        let doc = format!(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: w{n}, namespace: {}}}\nspec:\n  image: {IMAGE_V1}\n  command: {SLEEPER}\n  stopGracePeriod: 2s\n",
            c.namespace
        );
        let sent = Instant::now();
        let (status, body) = c.call(&a, "POST", "/api/v1/apply", &doc).await;
        assert!(
            sent.elapsed() < Duration::from_secs(15),
            "an apply hung for {:?}",
            sent.elapsed()
        );
        match status {
            200 => accepted.push(n),
            503 => {
                assert_eq!(body["reason"], "DatabaseUnavailable", "{body}");
                unavailable += 1;
            }
            other => panic!("apply {n} answered {other}: {body}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if stopped_at.is_some() {
        server.start().expect("postgres back");
    }
    eprintln!(
        "{} applies accepted, {unavailable} answered 503 while PostgreSQL was down, in {:.1}s",
        accepted.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(unavailable > 0, "the database was down for some requests");
    assert!(a.log().contains("Docker writes stop"), "{}", a.log());
    c.leader_is(&a, "a", Duration::from_secs(30)).await;
    let (_, after) = c.call(&a, "GET", "/api/v1/cluster", "").await;
    assert!(
        after["generation"].as_i64() > before["generation"].as_i64(),
        "the lease lapsed and was taken again: {before} / {after}"
    );
    let (status, list) = c
        .call(
            &a,
            "GET",
            &format!("/api/v1/namespaces/{}/apps", c.namespace),
            "",
        )
        .await;
    assert_eq!(status, 200);
    let mut names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    let mut want: Vec<String> = accepted.iter().map(|n| format!("w{n}")).collect();
    want.sort();
    assert_eq!(names, want, "every accepted write and nothing else");
    let docker = docker().await;
    let label = c.label();
    let running = poll_until(Duration::from_secs(120), || async {
        let n = containers_with(&docker, &label)
            .await
            .iter()
            .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING))
            .count();
        (n == want.len()).then_some(n)
    })
    .await;
    assert_eq!(running, Some(want.len()), "every accepted app runs");
    drop(a);
    c.clean().await;
}
