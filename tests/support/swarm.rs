//! A real multi-node Docker Swarm on this machine, built by `swarm.sh` (next to this file):
//! several dockerd daemons, each in its own network and UTS namespace with its own data and
//! exec roots, joined over a bridge in a namespace of their own. Torn down on drop (a failing
//! test too). Node 1 is the manager; the others are workers. Needs root, dockerd, iproute2,
//! nsenter and unshare (Debian's docker.io, iproute2 and util-linux).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use bollard::Docker;

use super::testkit::import_busybox;
use super::{IMAGE_V1, IMAGE_V2};

pub struct Cluster {
    dir: PathBuf,
    pub nodes: usize,
    /// One cluster at a time: three daemons with vfs storage fill this machine's two cores.
    _turn: tokio::sync::OwnedMutexGuard<()>,
}

static TURN: std::sync::LazyLock<Arc<tokio::sync::Mutex<()>>> =
    std::sync::LazyLock::new(|| Arc::new(tokio::sync::Mutex::new(())));

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/swarm.sh")
}

impl Cluster {
    /// Builds a swarm of `nodes` nodes with the test images on every node.
    pub async fn start(nodes: usize) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "wharf-swarm-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let turn = Arc::clone(&TURN).lock_owned().await;
        let cluster = Self {
            dir,
            nodes,
            _turn: turn,
        };
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(&cluster.dir)
            .arg(nodes.to_string())
            .output()
            .expect("run tests/support/swarm.sh");
        assert!(
            out.status.success(),
            "building a {nodes}-node swarm failed (the swarm tests need root, dockerd, iproute2, nsenter and unshare):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for i in 1..=nodes {
            let docker = cluster.docker(i).await;
            for (reference, version) in [(IMAGE_V1, "1"), (IMAGE_V2, "2")] {
                import_busybox(&docker, reference, version)
                    .await
                    .unwrap_or_else(|e| panic!("node {i}: {e}"));
            }
        }
        cluster
    }

    /// One private dockerd in no swarm (an engine a test may stop and start), with the test
    /// images.
    pub async fn start_solo() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "wharf-engine-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        let turn = Arc::clone(&TURN).lock_owned().await;
        let cluster = Self {
            dir,
            nodes: 1,
            _turn: turn,
        };
        cluster.script(&["solo"]);
        let docker = cluster.docker(1).await;
        for (reference, version) in [(IMAGE_V1, "1"), (IMAGE_V2, "2")] {
            import_busybox(&docker, reference, version)
                .await
                .unwrap_or_else(|e| panic!("private engine: {e}"));
        }
        cluster
    }

    /// Runs `swarm.sh CMD DIR ARGS…`; panics with its output when it fails.
    fn script(&self, args: &[&str]) {
        let (cmd, rest) = args.split_first().expect("a command");
        let out = Command::new("bash")
            .arg(script())
            .arg(cmd)
            .arg(&self.dir)
            .args(rest)
            .output()
            .expect("run tests/support/swarm.sh");
        assert!(
            out.status.success(),
            "swarm.sh {args:?} failed (the engine tests need root, dockerd, iproute2, nsenter and unshare):\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops node `i`'s dockerd with `signal` (`TERM` or `KILL`) and waits for it to exit.
    pub fn stop_engine(&self, i: usize, signal: &str) {
        self.script(&["stop", &i.to_string(), signal]);
    }

    /// Starts node `i`'s dockerd again on its data.
    pub fn start_engine(&self, i: usize) {
        self.script(&["start", &i.to_string()]);
    }

    /// Node `i`'s engine socket (1-based).
    pub fn socket(&self, i: usize) -> String {
        self.dir
            .join(format!("node{i}/docker.sock"))
            .display()
            .to_string()
    }

    /// A client for node `i`'s engine.
    pub async fn docker(&self, i: usize) -> Docker {
        let docker = Docker::connect_with_unix(&self.socket(i), 120, bollard::API_DEFAULT_VERSION)
            .expect("client");
        docker
            .negotiate_version()
            .await
            .expect("node engine answers")
    }

    /// wharf's engine adapter for the manager.
    pub fn manager_runtime(&self) -> Arc<wharf::runtime::docker::DockerRuntime> {
        Arc::new(
            wharf::runtime::docker::DockerRuntime::connect_socket(
                &self.socket(1),
                wharf::runtime::docker::Deadlines::default(),
            )
            .expect("manager client"),
        )
    }

    /// SIGKILLs node `i`'s dockerd (and its containerd and shims).
    pub fn kill_node(&self, i: usize) {
        let out = Command::new("bash")
            .arg(script())
            .arg("kill")
            .arg(&self.dir)
            .arg(i.to_string())
            .output()
            .expect("run swarm.sh kill");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let out = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&self.dir)
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "tearing down the swarm in {} failed: {}",
                self.dir.display(),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("tearing down the swarm: {e}"),
        }
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}
