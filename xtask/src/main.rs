//! `cargo xtask test`: on a Debian or Ubuntu machine, installs what wharf's tests need and is
//! missing, starts a Docker Engine when none answers, then runs the whole suite — format,
//! clippy, every test, and a bounded fuzz run of the spec reader. `.ci/run` runs exactly this.
//!
//! Every step is idempotent: what is installed stays, a running engine is used as it is. A
//! missing dependency that cannot be installed (not root, no apt) stops the run with what to
//! install; nothing is skipped.
//!
//! Only std: the task builds in seconds on a fresh machine.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Debian packages the tests use, each with how to tell it is there.
const PACKAGES: &[(&str, Check)] = &[
    // The real engine every behaviour test drives.
    ("docker.io", Check::Program("dockerd")),
    // Test images: a static busybox imported into the engine.
    ("busybox-static", Check::Package),
    // Registries on loopback for pulls, digests and credentials.
    ("docker-registry", Check::File("/usr/bin/docker-registry")),
    // The git source and git in containers.
    ("git", Check::Program("git")),
    // The swarm tests' network namespaces.
    ("iproute2", Check::Program("ip")),
    ("util-linux", Check::Program("nsenter")),
    // The systemd unit's verification.
    ("systemd", Check::Program("systemd-analyze")),
    // The store tests on PostgreSQL and the HA tests: a server each test process starts
    // (initdb into a temporary directory).
    ("postgresql", Check::Package),
    // The dashboard's tests: a real headless browser over WebDriver.
    ("chromium", Check::Program("chromium")),
    ("chromium-driver", Check::Program("chromedriver")),
];

#[derive(Clone, Copy)]
enum Check {
    /// A program on PATH.
    Program(&'static str),
    /// A file.
    File(&'static str),
    /// dpkg says it is installed.
    Package,
}

const USAGE: &str = "usage: cargo xtask test [--fuzz-seconds N] [-- ARGS for cargo test]

Installs what the tests need (Debian/Ubuntu, as root), starts dockerd when no engine
answers, then runs: cargo fmt --check, cargo clippy -D warnings, cargo test, and the spec
fuzzer for N seconds (default 120, or WHARF_FUZZ_SECONDS; 0 skips it).";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => Options::parse(&args[1..]).and_then(|o| test(&o)),
        Some("-h" | "--help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Options {
    fuzz_seconds: u64,
    test_args: Vec<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut fuzz_seconds = match std::env::var("WHARF_FUZZ_SECONDS") {
            Ok(s) => s
                .parse()
                .map_err(|_| format!("WHARF_FUZZ_SECONDS={s:?} is not a number of seconds"))?,
            Err(_) => 120,
        };
        let mut test_args = Vec::new();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            match arg.as_str() {
                "--fuzz-seconds" => {
                    let n = rest.next().ok_or("--fuzz-seconds needs a number")?;
                    fuzz_seconds = n
                        .parse()
                        .map_err(|_| format!("--fuzz-seconds {n:?} is not a number"))?;
                }
                "--" => test_args.extend(rest.by_ref().cloned()),
                other => return Err(format!("unknown option {other:?}\n{USAGE}")),
            }
        }
        Ok(Self {
            fuzz_seconds,
            test_args,
        })
    }
}

fn test(options: &Options) -> Result<(), String> {
    let root = workspace_root();
    install_missing()?;
    ensure_engine()?;
    run(&root, "cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        &root,
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let mut test = vec!["test".to_string()];
    test.extend(options.test_args.iter().cloned());
    run_owned(&root, "cargo", &test)?;
    if options.fuzz_seconds > 0 {
        fuzz(&root, options.fuzz_seconds)?;
    }
    println!("xtask: every check passed");
    Ok(())
}

/// The repository: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn present(check: Check, package: &str) -> bool {
    match check {
        Check::Program(p) => on_path(p),
        Check::File(f) => Path::new(f).exists(),
        Check::Package => Command::new("dpkg")
            .args(["-s", package])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
        || ["/usr/sbin", "/sbin"]
            .iter()
            .any(|dir| Path::new(dir).join(program).is_file())
}

fn install_missing() -> Result<(), String> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(package, check)| !present(*check, package))
        .map(|(package, _)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("apt-get install -y {}", missing.join(" "));
    if !on_path("apt-get") {
        return Err(format!(
            "the tests need {} and this machine has no apt-get: install them, then run again",
            missing.join(", ")
        ));
    }
    if !is_root() {
        return Err(format!(
            "the tests need {}: run `sudo {command}` (or this task as root), then run again",
            missing.join(", ")
        ));
    }
    println!("xtask: installing {}", missing.join(" "));
    let quiet = |cmd: &mut Command| {
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
    };
    let mut update = Command::new("apt-get");
    update.args(["update", "-qq"]);
    quiet(&mut update);
    check_status(&mut update, "apt-get update")?;
    let mut install = Command::new("apt-get");
    install.args(["install", "-y", "-qq"]).args(&missing);
    quiet(&mut install);
    check_status(&mut install, &command)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn engine_answers() -> bool {
    Command::new("docker")
        .arg("info")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Uses the engine that answers, or starts `dockerd` in the background and waits for it.
fn ensure_engine() -> Result<(), String> {
    if !engine_answers() {
        if !is_root() {
            return Err(
                "no Docker Engine answers and only root can start one: `sudo systemctl start docker` or `sudo dockerd &`".into(),
            );
        }
        let log_path = std::env::temp_dir().join("wharf-xtask-dockerd.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
        let err_log = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", log_path.display()))?;
        println!("xtask: starting dockerd (log: {})", log_path.display());
        let mut dockerd = Command::new("dockerd");
        dockerd.stdin(Stdio::null()).stdout(log).stderr(err_log);
        // Its own process group: the engine outlives this task (and a ^C of it).
        std::os::unix::process::CommandExt::process_group(&mut dockerd, 0);
        dockerd
            .spawn()
            .map_err(|e| format!("cannot start dockerd: {e}"))?;
        let started = Instant::now();
        while !engine_answers() {
            if started.elapsed() > Duration::from_secs(60) {
                let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
                let lines: Vec<&str> = tail.lines().rev().take(30).collect();
                let tail: Vec<&str> = lines.into_iter().rev().collect();
                return Err(format!(
                    "dockerd did not answer within 60 s; its log:\n{}",
                    tail.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    let version = Command::new("docker")
        .args([
            "version",
            "--format",
            "{{.Server.Version}} (API {{.Server.APIVersion}})",
        ])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("xtask: Docker Engine {version}");
    Ok(())
}

/// The spec reader and validator under libFuzzer (cargo-fuzz, nightly) for `seconds`: a
/// panic, a hang over 10 s or a memory blow-up fails the run and leaves the input in
/// fuzz/artifacts.
fn fuzz(root: &Path, seconds: u64) -> Result<(), String> {
    let toolchains = Command::new("rustup")
        .args(["toolchain", "list"])
        .output()
        .map_err(|e| format!("the fuzz run needs rustup ({e})"))?;
    if !String::from_utf8_lossy(&toolchains.stdout)
        .lines()
        .any(|l| l.starts_with("nightly"))
    {
        return Err(
            "the fuzz run needs a nightly Rust toolchain: rustup toolchain install nightly (or --fuzz-seconds 0)".into(),
        );
    }
    if !on_path("cargo-fuzz") {
        run(root, "cargo", &["install", "cargo-fuzz", "--locked"])?;
    }
    let fuzz_dir = root.join("fuzz");
    std::fs::create_dir_all(fuzz_dir.join("corpus/spec"))
        .map_err(|e| format!("creating the fuzz corpus: {e}"))?;
    run_owned(
        &fuzz_dir,
        "cargo",
        &[
            "+nightly".into(),
            "fuzz".into(),
            "run".into(),
            "spec".into(),
            "corpus/spec".into(),
            "seeds/spec".into(),
            "--".into(),
            format!("-max_total_time={seconds}"),
            "-timeout=10".into(),
            "-rss_limit_mb=2048".into(),
            "-max_len=16384".into(),
        ],
    )
}

fn run(dir: &Path, program: &str, args: &[&str]) -> Result<(), String> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    run_owned(dir, program, &args)
}

fn run_owned(dir: &Path, program: &str, args: &[String]) -> Result<(), String> {
    println!("xtask: {program} {}", args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args).current_dir(dir);
    check_status(&mut cmd, &format!("{program} {}", args.join(" ")))
}

fn check_status(cmd: &mut Command, what: &str) -> Result<(), String> {
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}
