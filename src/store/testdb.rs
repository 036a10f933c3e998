//! A PostgreSQL server for the tests, from Debian's `postgresql` package: `initdb` into a
//! temporary directory and `postgres` on a free loopback port, started once per test process,
//! with a fresh database for each test that asks.
//!
//! Set-up learned here:
//! - PostgreSQL refuses to run as root, so as root the server runs as the package's `postgres`
//!   user (its directory is handed to that user first).
//! - The server is the child of a thread that lives as long as the process, with a
//!   parent-death signal (SIGINT: a fast shutdown), so it ends with the test process even when a
//!   test panics; the data directories of processes that are gone are removed on the next start.
//! - Authentication is `trust` on loopback only; `fsync` is off unless asked for (benchmarks
//!   measure with it on).
//! - `stop` and `start` restart the same server on the same port and data (fault tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Connection;

use super::Database;

/// The user the server connects as.
const USER: &str = "wharf";

enum Order {
    Start(mpsc::Sender<Result<(), String>>),
    Stop(mpsc::Sender<()>),
}

/// A running test server.
pub struct PgServer {
    pub port: u16,
    pub data: PathBuf,
    orders: Mutex<mpsc::Sender<Order>>,
}

/// The process's server with `fsync` off, started on first use.
pub fn server() -> &'static PgServer {
    static SERVER: OnceLock<PgServer> = OnceLock::new();
    SERVER.get_or_init(|| PgServer::start_new(false).unwrap_or_else(|e| panic!("{e}")))
}

/// A fresh, empty database on the process's server.
pub async fn database() -> Database {
    server().fresh_database().await
}

impl PgServer {
    /// Initialises a data directory and starts a server on it. `fsync`: whether the server
    /// makes its writes durable (benchmarks against SQLite's `synchronous=FULL`).
    pub fn start_new(fsync: bool) -> Result<Self, String> {
        let bin = bin_dir()?;
        remove_stale_dirs();
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let data = std::env::temp_dir().join(format!(
            "wharf-pg-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
        let owner = run_as()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid))
                .map_err(|e| format!("chown {}: {e}", data.display()))?;
        }
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args(["-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8", "-D"])
            .arg(data.join("db"))
            .stdin(Stdio::null());
        as_owner(&mut initdb, owner);
        let out = initdb.output().map_err(|e| format!("initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = free_port()?;
        let mut args: Vec<String> = vec![
            "-D".into(),
            data.join("db").display().to_string(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            data.display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
            "-c".into(),
            "max_connections=200".into(),
        ];
        if !fsync {
            for setting in ["fsync=off", "full_page_writes=off"] {
                args.push("-c".into());
                args.push(setting.into());
            }
        }
        let log = data.join("postgres.log");
        let postgres = bin.join("postgres");
        let (orders, inbox) = mpsc::channel::<Order>();
        // The thread that owns the server process: it never ends, so the parent-death signal
        // fires only when the test process does.
        std::thread::Builder::new()
            .name("test-postgres".into())
            .spawn(move || {
                let mut child: Option<Child> = None;
                for order in inbox {
                    match order {
                        Order::Start(reply) => {
                            let spawned =
                                spawn(&postgres, &args, &log, owner).map(|c| child = Some(c));
                            let _ = reply.send(spawned);
                        }
                        Order::Stop(reply) => {
                            if let Some(mut c) = child.take() {
                                // SAFETY: kill(2) on our own child's pid.
                                unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
                                let _ = c.wait();
                            }
                            let _ = reply.send(());
                        }
                    }
                }
                // The sender is kept in a static: this loop ends only with the process.
                loop {
                    std::thread::park();
                }
            })
            .map_err(|e| format!("a thread for postgres: {e}"))?;
        let server = PgServer {
            port,
            data,
            orders: Mutex::new(orders),
        };
        server.start()?;
        Ok(server)
    }

    /// Starts the server (after `stop`) and waits until it takes connections.
    pub fn start(&self) -> Result<(), String> {
        let (reply, answer) = mpsc::channel();
        self.send(Order::Start(reply));
        answer
            .recv()
            .map_err(|_| "the postgres thread is gone".to_string())??;
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "postgres did not listen on 127.0.0.1:{} within 30 s; its log: {}",
                    self.port,
                    std::fs::read_to_string(self.data.join("postgres.log")).unwrap_or_default()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Stops the server (a fast shutdown: sessions are ended, committed work is kept).
    pub fn stop(&self) {
        let (reply, answer) = mpsc::channel();
        self.send(Order::Stop(reply));
        let _ = answer.recv();
    }

    fn send(&self, order: Order) {
        self.orders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(order)
            .expect("the postgres thread is gone");
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and answers its URL as a [`Database`].
    pub async fn fresh_database(&self) -> Database {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let name = format!("t_{}", SEQ.fetch_add(1, Ordering::Relaxed));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = async {
                let mut conn = sqlx::PgConnection::connect(&self.url("postgres")).await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await?;
                conn.close().await
            }
            .await;
            match created {
                Ok(()) => return Database::Postgres(self.url(&name)),
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("test postgres not ready: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("creating test database {name}: {e}"),
            }
        }
    }
}

impl Drop for PgServer {
    /// A server of a test's own stops with it (the process's shared one lives in a static).
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn(
    postgres: &Path,
    args: &[String],
    log: &Path,
    owner: Option<(u32, u32)>,
) -> Result<Child, String> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let err_file = log_file
        .try_clone()
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let mut command = Command::new(postgres);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(log_file)
        .stderr(err_file);
    as_owner(&mut command, owner);
    // SAFETY: prctl(2) is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
        .spawn()
        .map_err(|e| format!("{}: {e}", postgres.display()))
}

fn as_owner(command: &mut Command, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        std::os::unix::process::CommandExt::uid(command, uid);
        std::os::unix::process::CommandExt::gid(command, gid);
    }
}

/// The newest installed PostgreSQL's programs (`WHARF_TEST_PG_BIN` overrides).
fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("WHARF_TEST_PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "PostgreSQL is not installed: these tests need Debian's postgresql package \
         (apt-get install postgresql; `cargo xtask test` installs it), or WHARF_TEST_PG_BIN \
         naming a directory with initdb and postgres"
            .to_string()
    })
}

/// As root: the uid and gid of the `postgres` user the package makes (PostgreSQL refuses to
/// run as root). Otherwise: none, the server runs as the test's own user.
fn run_as() -> Result<Option<(u32, u32)>, String> {
    // SAFETY: geteuid(2) cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| format!("/etc/passwd: {e}"))?;
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .map(Some)
        .ok_or_else(|| {
            "running as root, and there is no `postgres` user to run PostgreSQL as \
             (Debian's postgresql package makes it)"
                .to_string()
        })
}

fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("a free loopback port: {e}"))
}

/// Data directories of test processes that are gone (their servers went with them).
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("wharf-pg-")) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
