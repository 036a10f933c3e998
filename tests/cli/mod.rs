//! The `wharf` binary: offline validation for CI lint, and apply/get/diff/delete against a real
//! server and engine, with the documented exit codes.

mod watch;

use std::process::{Command, Output};
use std::time::Duration;

use crate::support::{Harness, IMAGE_V1};

pub(crate) fn wharf(h: Option<&Harness>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wharf"));
    cmd.args(args)
        .env_remove("WHARF_SERVER")
        .env_remove("WHARF_TOKEN");
    if let Some(h) = h {
        cmd.env("WHARF_SERVER", format!("http://{}", h.server().addr))
            .env("WHARF_DATA", h.data.path());
    }
    cmd.output().expect("run wharf")
}

pub(crate) fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn validate_is_offline_and_fails_on_any_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web}\nspec: {image: busybox}\n",
    )
    .unwrap();
    let out = wharf(None, &["validate", "-f", good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web}\nspec:\n  image: busybox\n  resources: {memory: lots}\n").unwrap();
    let out = wharf(None, &["validate", "-f", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let msg = text(&out);
    assert!(
        msg.contains("bad.yaml:6:") && msg.contains("spec.resources.memory"),
        "{msg}"
    );

    let out = wharf(None, &["validate"]);
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn schema_prints_the_app_schema() {
    let out = wharf(None, &["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(schema["title"], "App");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_wait_get_diff_delete() {
    let h = Harness::start("t-cli").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    std::fs::write(&file, h.sleeper_app("web", "")).unwrap();
    let path = file.to_str().unwrap().to_string();
    let ns = h.namespace.clone();

    let run = |args: Vec<String>| {
        let h = &h;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tokio::task::block_in_place(|| wharf(Some(h), &args))
        }
    };
    let out = run(vec![
        "apply".into(),
        "-f".into(),
        path.clone(),
        "--wait".into(),
        "--timeout".into(),
        "60s".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("all 1 app(s) ready"), "{}", text(&out));

    let out = run(vec!["get".into(), "apps".into(), "-n".into(), ns.clone()]).await;
    let listing = text(&out);
    assert!(
        listing.contains("NAME") && listing.contains("web") && listing.contains("Running"),
        "{listing}"
    );

    let out = run(vec!["diff".into(), "-f".into(), path.clone()]).await;
    assert_eq!(out.status.code(), Some(0), "no differences: {}", text(&out));
    std::fs::write(&file, h.sleeper_app("web", "  state: stopped\n")).unwrap();
    let out = run(vec!["diff".into(), "-f".into(), path.clone()]).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("+  state: stopped")
            && text(&out).contains("Stopped: running, declared stopped"),
        "{}",
        text(&out)
    );

    let out = run(vec![
        "describe".into(),
        "app".into(),
        "web".into(),
        "-n".into(),
        ns.clone(),
    ])
    .await;
    assert!(text(&out).contains("Started"), "{}", text(&out));

    // An app that cannot become ready: --wait gives up with exit 5.
    std::fs::write(&file, h.app_yaml("web", "  image: wharf-test/absent:1\n")).unwrap();
    let out = run(vec![
        "apply".into(),
        "-f".into(),
        path.clone(),
        "--wait".into(),
        "--timeout".into(),
        "4s".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("not ready"), "{}", text(&out));

    let out = run(vec!["delete".into(), "-f".into(), path.clone()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn images_apply_wait_get_pull_and_update_all() {
    let h = Harness::start("t-cli-img").await;
    let docker = crate::support::docker().await;
    let registry = crate::support::registry::Registry::start(None).await;
    let reference = registry.push(&docker, IMAGE_V1, "team/cli:1").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("image.yaml");
    std::fs::write(
        &file,
        format!("apiVersion: wharf/v1\nkind: Image\nmetadata: {{name: cli}}\nspec:\n  ref: {reference}\n"),
    )
    .unwrap();
    let path = file.to_str().unwrap().to_string();
    let run = |args: Vec<&'static str>, extra: Option<String>| {
        let h = &h;
        async move {
            let mut args: Vec<String> = args.into_iter().map(String::from).collect();
            args.extend(extra);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tokio::task::block_in_place(|| wharf(Some(h), &args))
        }
    };

    let out = run(
        vec!["apply", "--wait", "--timeout", "60s", "-f"],
        Some(path.clone()),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("image/cli created"), "{}", text(&out));
    assert!(
        text(&out).contains("all 1 object(s) ready"),
        "{}",
        text(&out)
    );

    let out = run(vec!["get", "images"], None).await;
    let listing = text(&out);
    assert!(
        listing.contains("MANAGED") && listing.contains(&reference) && listing.contains("Present"),
        "{listing}"
    );
    assert!(
        listing.contains(crate::support::IMAGE_V2),
        "unmanaged images are listed too: {listing}"
    );

    let out = run(vec!["images", "pull", "cli"], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("image/cli pulled"), "{}", text(&out));

    let out = run(vec!["images", "update-all"], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("image/cli") && text(&out).contains("unchanged"),
        "{}",
        text(&out)
    );

    let out = run(vec!["images", "pull", "nosuch"], None).await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    assert!(
        text(&out).contains("Image nosuch not found"),
        "{}",
        text(&out)
    );

    let out = run(vec!["delete", "-f"], Some(path.clone())).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("image/cli deleted"), "{}", text(&out));
    h.finish().await;
    registry.finish(&docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn run_creates_image_user_apps_and_state_shorthands_patch_the_spec() {
    let h = Harness::start("t-cli-run").await;
    let ns = h.namespace.clone();
    let run = |args: Vec<String>| {
        let h = &h;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tokio::task::block_in_place(|| wharf(Some(h), &args))
        }
    };
    let args = |s: &str| -> Vec<String> { s.split_whitespace().map(String::from).collect() };

    let mut command = args(&format!(
        "run {IMAGE_V1} --owner john -n {ns} -e GREETING=hi --wait --timeout 60s --"
    ));
    command.extend(
        [
            "sh",
            "-c",
            "trap 'exit 0' TERM; while true; do sleep 1; done",
        ]
        .map(String::from),
    );
    let out = run(command).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let doc = h
        .get_app("busybox--john")
        .await
        .expect("busybox--john exists");
    assert_eq!(doc["spec"]["owner"], "john");
    let out = run(args(&format!("run {IMAGE_V1} --owner jo--hn -n {ns}"))).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--owner"), "{}", text(&out));

    // stop / start shorthands change spec.state; restart is an action.
    let out = run(args(&format!("stop app busybox--john -n {ns}"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    h.wait_state("busybox--john", "exited").await;
    let out = run(args(&format!("restart app busybox--john -n {ns}"))).await;
    assert_eq!(
        out.status.code(),
        Some(4),
        "restart of a stopped app is a 409: {}",
        text(&out)
    );
    let out = run(args(&format!("start app busybox--john -n {ns}"))).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    h.wait_state("busybox--john", "running").await;
    let out = run(args(&format!("users -n {ns}"))).await;
    assert!(text(&out).contains("busybox--john"), "{}", text(&out));

    // A file-owned app is changed in its file: the shorthand says where.
    h.write_spec("owned.yaml", &h.sleeper_app("owned", ""));
    h.wait_ready("owned").await;
    let out = run(args(&format!("pause app owned -n {ns}"))).await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("owned.yaml"), "{}", text(&out));
    h.finish().await;
}

/// `wharf serve` on SIGTERM (what service managers and `docker stop` send): it stops taking
/// requests, lets its work finish, says so, and exits 0.
#[tokio::test(flavor = "multi_thread")]
async fn serve_stops_gracefully_on_sigterm() {
    crate::support::images().await;
    let data = tempfile::tempdir().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "--data",
            data.path().to_str().unwrap(),
            "serve",
            "--no-specs",
            "--listen",
            &addr.to_string(),
            "--instance",
            &format!("sigterm-{}", std::process::id()),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wharf serve");
    let http = reqwest::Client::new();
    crate::support::wait_for(
        "wharf ready",
        std::time::Duration::from_secs(60),
        || async {
            let r = http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("wharf exits");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&waited.stdout),
        String::from_utf8_lossy(&waited.stderr)
    );
    assert_eq!(waited.status.code(), Some(0), "{log}");
    assert!(log.contains("SIGTERM: shutting down"), "{log}");
    assert!(log.contains("stopped:"), "{log}");
}

/// On a machine whose engine is not there yet, `wharf serve` starts anyway: the API answers and
/// keeps writes, `/readyz` answers 503 saying how to start an engine, and the log says the same;
/// once the engine's socket appears, wharf connects and reconciles what it was given.
#[tokio::test(flavor = "multi_thread")]
async fn serve_without_an_engine_answers_503_then_reconciles_once_one_answers() {
    crate::support::images().await;
    let engine_socket = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(str::to_string))
        .unwrap_or_else(|| "/var/run/docker.sock".into());
    let data = tempfile::tempdir().unwrap();
    let socket_dir = tempfile::tempdir().unwrap();
    let socket = socket_dir.path().join("docker.sock");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let instance = format!("no-engine-{}", std::process::id());
    let child = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args([
            "--data",
            data.path().to_str().unwrap(),
            "serve",
            "--no-specs",
            "--listen",
            &addr.to_string(),
            "--instance",
            &instance,
        ])
        .env("DOCKER_HOST", format!("unix://{}", socket.display()))
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run wharf serve");
    let http = reqwest::Client::new();
    // Before its first attempt at the engine, /readyz says it is connecting; after it, how to
    // start one.
    let ready = crate::support::wait_for(
        "/readyz names the missing engine",
        Duration::from_secs(60),
        || async {
            let r = http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .ok()?;
            let status = r.status().as_u16();
            let body = r.json::<serde_json::Value>().await.ok()?;
            assert_eq!(status, 503, "not ready without an engine: {body}");
            let why = body["dockerError"].as_str().unwrap_or_default().to_string();
            assert!(!why.is_empty(), "a 503 says why: {body}");
            why.contains("start one").then_some(why)
        },
    )
    .await;
    assert!(ready.contains("DOCKER_HOST"), "{ready}");

    let token = std::fs::read_to_string(data.path().join("admin.token")).unwrap();
    let app = format!(
        "apiVersion: wharf/v1\nkind: App\nmetadata: {{name: web, namespace: later}}\nspec:\n{}",
        Harness::sleeper_spec(IMAGE_V1)
    );
    let r = http
        .post(format!("http://{addr}/api/v1/apply"))
        .bearer_auth(token.trim())
        .header("content-type", "application/yaml")
        .body(app)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        200,
        "a write is accepted without an engine"
    );

    std::os::unix::fs::symlink(&engine_socket, &socket).unwrap();
    crate::support::wait_for(
        "ready once the engine answers",
        Duration::from_secs(60),
        || async {
            let r = http
                .get(format!("http://{addr}/readyz"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        },
    )
    .await;
    let docker = crate::support::docker().await;
    crate::support::wait_for(
        "the app's container running",
        Duration::from_secs(60),
        || async {
            let c = docker.inspect_container("later.web", None).await.ok()?;
            c.state?.running?.then_some(())
        },
    )
    .await;

    let signalled = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(signalled.success());
    let waited = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .expect("wharf exits");
    crate::support::testkit::remove_containers(
        &docker,
        &format!("wharf.instance={instance}"),
        |_| true,
    )
    .await
    .expect("remove the test's container");
    let log = text(&waited);
    assert!(
        log.contains("start one") && log.contains("/readyz answers 503"),
        "the log says how to start an engine: {log}"
    );
}

/// `wharf backup` copies the database while the server writes to it; a damaged database is
/// refused at start with what to do, never read on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_copies_the_live_database_and_a_damaged_one_is_refused() {
    let h = Harness::start("t-backup").await;
    let (status, body) = h.apply(&h.sleeper_app("kept", "")).await;
    assert_eq!(status, 200, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let out = wharf(Some(&h), &["backup", "--out", copy.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("quick_check"), "{}", text(&out));
    // Never over an existing file.
    let again = wharf(Some(&h), &["backup", "--out", copy.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(4), "{}", text(&again));
    // The copy is a whole database: the app is in it.
    let restored_dir = tempfile::tempdir().unwrap();
    let restored = restored_dir.path().join("wharf.db");
    std::fs::copy(&copy, &restored).unwrap();
    let store = wharf::store::Store::open(&restored)
        .await
        .expect("the copy opens");
    let key = wharf::spec::validate::AppKey {
        namespace: h.namespace.clone(),
        name: "kept".into(),
    };
    assert!(
        store
            .get(wharf::spec::Kind::App, &key)
            .await
            .expect("read")
            .is_some()
    );
    store.close().await;
    h.finish().await;

    // A file that is not a database, and one with a page overwritten: each is refused by name,
    // with the way back.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x5a; 64 * 1024]).unwrap();
    let damaged = dir.path().join("damaged.db");
    let mut bytes = std::fs::read(&copy).unwrap();
    assert!(bytes.len() > 3 * 4096, "a database of several pages");
    for b in &mut bytes[4096..8192] {
        *b = 0xa5;
    }
    std::fs::write(&damaged, bytes).unwrap();
    for file in [&garbage, &damaged] {
        match wharf::store::Store::open(file).await {
            Err(e @ wharf::store::StoreError::Damaged { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains(&file.display().to_string())
                        && message.contains("wharf backup"),
                    "{message}"
                );
            }
            Err(other) => panic!("{}: not reported as damaged: {other}", file.display()),
            Ok(_) => panic!("{} opened", file.display()),
        }
    }
    // `wharf serve` on it exits with that message instead of starting.
    let data = tempfile::tempdir().unwrap();
    std::fs::copy(&damaged, data.path().join("wharf.db")).unwrap();
    let serve = Command::new(env!("CARGO_BIN_EXE_wharf"))
        .args(["serve", "--no-specs", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .output()
        .expect("run wharf serve");
    assert!(!serve.status.success());
    assert!(text(&serve).contains("is damaged"), "{}", text(&serve));
}

#[test]
fn completion_scripts_complete_commands_and_man_pages_cover_every_command() {
    // bash: source the script and ask it to complete `wharf ser` and `wharf images `.
    let out = wharf(None, &["completion", "bash"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("wharf.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let complete = |words: &str, cword: usize| {
        let probe = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _wharf wharf; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &probe])
            .output()
            .expect("run bash");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let replies = complete("wharf ser", 1);
    assert!(replies.lines().any(|l| l == "serve"), "{replies}");
    let replies = complete("wharf images ''", 2);
    for sub in ["pull", "update-all"] {
        assert!(replies.lines().any(|l| l == sub), "{sub} in {replies}");
    }
    // zsh and fish scripts name the binary.
    let zsh = wharf(None, &["completion", "zsh"]);
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef wharf"));
    let fish = wharf(None, &["completion", "fish"]);
    assert!(String::from_utf8_lossy(&fish.stdout).contains("complete -c wharf"));
    // An unknown shell is refused with the choices.
    let bad = wharf(None, &["completion", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(text(&bad).contains("bash"), "{}", text(&bad));

    // Man pages: one for wharf and one per command, each a roff page with its flags.
    let pages = dir.path().join("man");
    let out = wharf(None, &["man", "--out", pages.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for page in [
        "wharf.1",
        "wharf-serve.1",
        "wharf-apply.1",
        "wharf-images-pull.1",
    ] {
        let roff = std::fs::read_to_string(pages.join(page)).unwrap_or_default();
        assert!(roff.contains(".TH"), "{page}: {roff:.200}");
    }
    let serve = std::fs::read_to_string(pages.join("wharf-serve.1")).unwrap();
    assert!(serve.contains("min\\-pass\\-interval"), "{serve:.2000}");
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_sets_prune_only_their_own_left_out_apps_from_the_engine() {
    let h = Harness::start("t-cli-set").await;
    let dir = tempfile::tempdir().unwrap();
    for app in ["a", "b"] {
        std::fs::write(
            dir.path().join(format!("{app}.yaml")),
            h.sleeper_app(app, ""),
        )
        .unwrap();
    }
    let path = dir.path().to_str().unwrap().to_string();
    let run = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let h = &h;
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tokio::task::block_in_place(|| wharf(Some(h), &args))
        }
    };
    let out = run(&[
        "apply",
        "-f",
        &path,
        "--set",
        "ci",
        "--wait",
        "--timeout",
        "60s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // Beside the set: an app of the API without a set, one of another set, one of a file.
    let (status, body) = h.apply(&h.sleeper_app("plain", "")).await;
    assert_eq!(status, 200, "{body}");
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("o.yaml"), h.sleeper_app("o", "")).unwrap();
    let other = other.to_str().unwrap().to_string();
    let out = run(&["apply", "-f", &other, "--set", "other"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    h.write_spec("f.yaml", &h.sleeper_app("f", ""));
    for app in ["plain", "o", "f"] {
        h.wait_ready(app).await;
    }
    let ids = |apps: &'static [&'static str]| {
        let h = &h;
        async move {
            let mut ids = Vec::new();
            for app in apps {
                let name = h.container_name(app);
                let inspected = crate::support::docker()
                    .await
                    .inspect_container(&name, None)
                    .await;
                let id = inspected.map(|c| c.id.unwrap_or_default());
                ids.push(id.unwrap_or_else(|e| panic!("{name}: no container: {e}")));
            }
            ids
        }
    };
    const KEPT: &[&str] = &["a", "plain", "o", "f"];
    let before = ids(KEPT).await;

    // --prune needs --set: a usage error.
    let out = run(&["apply", "-f", &path, "--prune"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    std::fs::remove_file(dir.path().join("b.yaml")).unwrap();
    let out = run(&["apply", "-f", &path, "--set", "ci", "--prune", "--dry-run"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ns = &h.namespace;
    assert!(
        text(&out).contains(&format!("app/{ns}/b pruned (dry run)")),
        "{}",
        text(&out)
    );
    assert!(
        h.container_id("b").await.is_some(),
        "a dry run removes nothing"
    );

    let out = run(&[
        "apply",
        "-f",
        &path,
        "--set",
        "ci",
        "--prune",
        "--wait",
        "--timeout",
        "60s",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains(&format!("app/{ns}/b pruned")),
        "{}",
        text(&out)
    );
    crate::support::wait_for(
        "b's container removed",
        std::time::Duration::from_secs(30),
        || async { h.container_id("b").await.is_none().then_some(()) },
    )
    .await;
    crate::support::wait_for(
        "b forgotten",
        std::time::Duration::from_secs(30),
        || async { h.get_app("b").await.is_none().then_some(()) },
    )
    .await;
    assert_eq!(
        ids(KEPT).await,
        before,
        "nothing outside the pruned app was recreated"
    );
    h.finish().await;
}

/// `wharf convert` turns a compose file into documents that `wharf apply` runs on the real
/// engine as compose would have: image, command, environment (with `${VAR:-default}`), memory
/// limit and a published port.
#[tokio::test(flavor = "multi_thread")]
async fn a_converted_compose_file_runs_on_the_engine() {
    let h = Harness::start("t-convert").await;
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    std::fs::write(dir.path().join(".env"), "GREETING=from-dotenv\n").unwrap();
    let compose = dir.path().join("compose.yaml");
    std::fs::write(
        &compose,
        format!(
            r#"
services:
  web:
    image: {IMAGE_V1}
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    environment:
      GREETING: ${{GREETING}}
      MODE: ${{MODE:-plain}}
    mem_limit: 64m
    ports:
      - "127.0.0.1:{port}:8080"
    depends_on: [db]
    stop_grace_period: 2s
"#
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = wharf(
        Some(&h),
        &[
            "convert",
            "-f",
            compose.to_str().unwrap(),
            "-n",
            &h.namespace,
            "-o",
            out_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("services.web.depends_on"),
        "what is left behind is listed: {}",
        text(&out)
    );
    let strict = wharf(
        Some(&h),
        &["convert", "-f", compose.to_str().unwrap(), "--strict"],
    );
    assert_eq!(strict.status.code(), Some(3), "{}", text(&strict));

    let out_path = out_dir.to_str().unwrap().to_string();
    let out = tokio::task::block_in_place(|| {
        wharf(
            Some(&h),
            &["apply", "-f", &out_path, "--wait", "--timeout", "60s"],
        )
    });
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let c = h.inspect("web").await.expect("the container");
    let config = c.config.clone().unwrap_or_default();
    let env = config.env.unwrap_or_default();
    assert!(env.contains(&"GREETING=from-dotenv".to_string()), "{env:?}");
    assert!(env.contains(&"MODE=plain".to_string()), "{env:?}");
    let host = c.host_config.clone().unwrap_or_default();
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    let bindings = host.port_bindings.unwrap_or_default();
    let binding = bindings
        .get("8080/tcp")
        .cloned()
        .flatten()
        .unwrap_or_default();
    assert_eq!(
        binding.first().and_then(|b| b.host_port.clone()),
        Some(port.to_string()),
        "{bindings:?}"
    );
    h.finish().await;
}
