//! The dashboard at `/ui`, in a real headless Chromium, against a real wharf on the real
//! engine: roles shape what it offers, the editor applies, the buttons act on Docker, charts,
//! uptime and logs show what the engine did, and errors are the API's. Screenshots of every
//! page, wide and narrow, go to `target/ui-screenshots/`.

mod browser;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Harness, IMAGE_V1, SLEEPER};
use browser::Browser;

/// A token of `role` in `namespace`, made through the API.
async fn token(h: &Harness, namespace: &str, role: &str) -> String {
    let (status, body) = h
        .request(
            reqwest::Method::POST,
            "/api/v1/tokens",
            "application/json",
            Some(json!({"grants": [{"namespace": namespace, "role": role}]}).to_string()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().expect("the secret").to_string()
}

/// Logs in through the form and waits for the Apps page.
async fn log_in(b: &Browser, token: &str) {
    b.goto("/ui/#/login").await;
    b.type_into("#token", token).await;
    b.click("#login").await;
    b.wait_js(
        "the apps page",
        Duration::from_secs(20),
        "return document.querySelector('#apps-table') !== null && document.body.dataset.appsRendered !== undefined",
    )
    .await;
}

fn base(h: &Harness) -> String {
    h.url("")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_gets_no_actions_and_a_wrong_token_is_told_so() {
    let h = Harness::start("t-ui-view").await;
    let (status, body) = h.apply(&h.sleeper_app("shown", "")).await;
    assert_eq!(status, 200, "{body}");
    h.wait_ready("shown").await;
    let viewer = token(&h, &h.namespace, "viewer").await;
    let b = Browser::start(&base(&h), 1280, 800).await;

    // The page itself: the policy that forbids inline scripts and other hosts.
    let page = reqwest::get(h.url("/ui/")).await.expect("GET /ui/");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );

    b.goto("/ui/").await;
    b.shot("login-1280").await;
    b.type_into("#token", "not-a-token").await;
    b.click("#login").await;
    let refused = b.text_of("#login-error .error").await;
    assert!(refused.contains("refused"), "{refused}");
    let kept = b
        .js("return sessionStorage.getItem('wharf.token')", vec![])
        .await;
    assert_eq!(kept, Value::Null, "a refused token is not kept");

    log_in(&b, &viewer).await;
    let row = b
        .wait_js(
            "the app's row",
            Duration::from_secs(20),
            "const a = [...document.querySelectorAll('#apps-table a')].find(a => a.textContent === 'shown'); return a ? a.closest('tr').innerText : null;",
        )
        .await;
    assert!(row.as_str().unwrap().contains("Running"), "{row}");
    let new_app = b
        .js(
            "return document.querySelector('#new-app-open').disabled",
            vec![],
        )
        .await;
    assert_eq!(new_app, json!(true), "a viewer may not create apps");
    b.goto(&format!("/ui/#/apps/{}/shown", h.namespace)).await;
    b.text_of("h1").await;
    b.wait_js(
        "the app's spec",
        Duration::from_secs(20),
        "return document.querySelector('#spec pre') !== null",
    )
    .await;
    let actions = b
        .js(
            "return document.querySelectorAll('[data-action]').length",
            vec![],
        )
        .await;
    assert_eq!(actions, json!(0), "a viewer sees no action buttons");
    assert_eq!(
        b.js("return document.querySelector('#spec textarea')", vec![])
            .await,
        Value::Null,
        "nor an editor"
    );
    let hidden = b
        .js(
            "return ['host', 'sources', 'audit'].every(p => document.querySelector(`[data-page=${p}]`).hidden)",
            vec![],
        )
        .await;
    assert_eq!(
        hidden,
        json!(true),
        "a namespace's viewer is not offered the host's pages"
    );
    let whoami = b.text_of("#who-name").await;
    assert!(whoami.contains("viewer"), "{whoami}");

    // Dark, as the system asks: the same page in the dark palette.
    let dark = Browser::start_with(&base(&h), 1280, 800, &["--force-dark-mode"]).await;
    log_in(&dark, &viewer).await;
    let matches = dark
        .js(
            "return matchMedia('(prefers-color-scheme: dark)').matches",
            vec![],
        )
        .await;
    assert_eq!(matches, json!(true), "the browser asks for dark");
    let background = dark
        .js(
            "return getComputedStyle(document.body).backgroundColor",
            vec![],
        )
        .await;
    assert_eq!(background, json!("rgb(21, 23, 26)"), "the dark palette");
    dark.goto(&format!("/ui/#/apps/{}/shown", h.namespace))
        .await;
    dark.text_of("[data-chart='CPU']").await;
    dark.shot("app-dark-1280").await;
    dark.finish().await;

    // Log out: the token leaves sessionStorage and the login form is back.
    b.click("#logout").await;
    b.text_of("#token").await;
    assert_eq!(
        b.js("return sessionStorage.getItem('wharf.token')", vec![])
            .await,
        Value::Null
    );
    b.finish().await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_editor_applies_watches_stops_and_reads_an_app_in_the_browser() {
    let h = Harness::start_with("t-ui", |c| c.stats.interval = Duration::from_secs(1)).await;
    let ns = h.namespace.clone();
    let editor = token(&h, &ns, "editor").await;
    let b = Browser::start(&base(&h), 1280, 800).await;
    log_in(&b, &editor).await;

    // Apply a new app through the editor: preview (dry run), then apply.
    b.click("#new-app-open").await;
    let doc = format!(
        "apiVersion: wharf/v1\nkind: App\nmetadata:\n  name: web\n  namespace: {ns}\nspec:\n  image: {IMAGE_V1}\n  command: [\"sh\", \"-c\", \"echo hello from the dashboard; trap 'exit 0' TERM; while true; do sleep 1; done\"]\n  stopGracePeriod: 2s\n  resources:\n    memory: 64Mi\n"
    );
    b.js(
        "const t = document.querySelector('#new-app-text'); t.value = arguments[0]; t.dispatchEvent(new Event('input'));",
        vec![json!(doc)],
    )
    .await;
    b.click("#new-app-preview").await;
    let preview = b.text_of("#new-app-result p").await;
    assert!(preview.contains("(dry run)"), "{preview}");
    assert!(h.get_app("web").await.is_none(), "a dry run stores nothing");
    b.shot("apps-new-1280").await;
    b.click("#new-app-apply").await;
    let applied = b.text_of("#new-app-result p").await;
    assert!(applied.contains("created"), "{applied}");

    // The list follows the watch: Running without a reload.
    b.wait_js(
        "web Running in the list",
        Duration::from_secs(60),
        "const a = [...document.querySelectorAll('#apps-table a')].find(a => a.textContent === 'web'); return a && a.closest('tr').innerText.includes('Running') ? true : null;",
    )
    .await;
    h.wait_ready("web").await;

    // A container's change reaches the page through the watch: stopped behind wharf's back.
    let docker = crate::support::docker().await;
    let container = h.container_name("web");
    let changed = Instant::now();
    docker
        .stop_container(
            &container,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .expect("docker stop");
    let stopped_at = changed.elapsed();
    b.wait_js(
        "the list to show the container's change",
        Duration::from_secs(30),
        "const a = [...document.querySelectorAll('#apps-table a')].find(a => a.textContent === 'web'); return a && !a.closest('tr').innerText.includes('Running') ? true : null;",
    )
    .await;
    let delay = changed.elapsed().saturating_sub(stopped_at);
    println!(
        "figure: a container's change reached the page {} ms after `docker stop` returned",
        delay.as_millis()
    );
    h.wait_ready("web").await; // wharf repairs the drift

    // The app page: status, charts with points after two sampling intervals, logs.
    b.goto(&format!("/ui/#/apps/{ns}/web")).await;
    let head = b.text_of("h1").await;
    assert!(head.contains("web"), "{head}");
    let points = b
        .wait_js(
            "a CPU chart with data points",
            Duration::from_secs(30),
            "const l = document.querySelector('[data-chart=\"CPU\"] polyline'); const n = l ? Number(l.dataset.points) : 0; return n >= 2 ? n : null;",
        )
        .await;
    assert!(points.as_u64().unwrap() >= 2, "{points}");
    let memory_points = b
        .js(
            "const l = document.querySelector('[data-chart=\"Memory\"] polyline'); return l ? Number(l.dataset.points) : 0;",
            vec![],
        )
        .await;
    assert!(memory_points.as_u64().unwrap() >= 2, "{memory_points}");
    let logs = b
        .wait_js(
            "the container's output in the log",
            Duration::from_secs(20),
            "const t = document.querySelector('#logs').textContent; return t.includes('hello from the dashboard') ? t : null;",
        )
        .await;
    assert!(logs.as_str().unwrap().contains("hello"), "{logs}");
    let uptime = b.text_of("#uptime p").await;
    assert!(uptime.contains("available"), "{uptime}");
    // The spec as YAML round-trips: a dry run of it changes nothing.
    b.wait_js(
        "the spec editor",
        Duration::from_secs(20),
        "return document.querySelector('#spec-text') !== null",
    )
    .await;
    b.click("#spec-preview").await;
    let same = b.text_of("#spec-result p").await;
    assert!(
        same.contains("unchanged"),
        "the page's YAML is the app: {same}"
    );
    // The memory bar is drawn to scale (the policy forbids style attributes; the page sets
    // the property).
    let share = b
        .wait_js(
            "the memory bar",
            Duration::from_secs(20),
            "const s = document.querySelector('h1 ~ p .bar > span'); if (!s) return null; return s.getBoundingClientRect().width / s.parentElement.getBoundingClientRect().width;",
        )
        .await;
    let share = share.as_f64().unwrap();
    assert!(share < 0.5, "a 64 MiB limit is far from used: {share}");
    b.shot("app-1280").await;

    // Follow the log, restart with the button: the new container's output arrives.
    b.click("#follow").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.click("[data-action='restart']").await;
    b.click("#confirm-ok").await;
    b.wait_js(
        "the restarted container's output, followed",
        Duration::from_secs(30),
        "return document.querySelector('#logs').textContent.split('hello from the dashboard').length - 1 >= 2 ? true : null;",
    )
    .await;
    h.wait_ready("web").await;

    // Stop with the button (confirmed) → the container is stopped in Docker.
    b.click("[data-action='stop']").await;
    b.click("#confirm-ok").await;
    crate::support::wait_for(
        "the container stopped by the button",
        Duration::from_secs(30),
        || async {
            let c = docker.inspect_container(&container, None).await.ok()?;
            (c.state?.running == Some(false)).then_some(())
        },
    )
    .await;
    let spec = h.get_app("web").await.expect("the app");
    assert_eq!(spec["spec"]["state"], "stopped", "{spec}");
    b.wait_js(
        "the page to show Stopped",
        Duration::from_secs(30),
        "return document.querySelector('h1').innerText.includes('Stopped') ? true : null;",
    )
    .await;

    // A refused action shows the API's error as it is: update-all needs an admin.
    b.goto("/ui/#/images").await;
    b.text_of("#images-table table").await;
    b.click("#update-all").await;
    let refused = b.text_of("#image-error .error").await;
    assert!(refused.contains("403"), "{refused}");
    assert!(refused.to_lowercase().contains("admin"), "{refused}");

    // Every page, wide and narrow.
    for (width, height) in [(1280, 800), (390, 844)] {
        b.client
            .set_window_size(width, height)
            .await
            .expect("resize");
        for (page, ready) in [
            ("apps", "#apps-table table"),
            ("images", "#images-table table"),
            ("image-requests", "#requests"),
        ] {
            b.goto(&format!("/ui/#/{page}")).await;
            b.text_of(ready).await;
            b.shot(&format!("{page}-{width}")).await;
        }
        b.goto(&format!("/ui/#/apps/{ns}/web")).await;
        b.text_of("[data-chart='CPU']").await;
        b.shot(&format!("app-{width}")).await;
        // The whole page at once, to look at every section.
        b.client.set_window_size(width, 3200).await.expect("resize");
        b.shot(&format!("app-whole-{width}")).await;
    }
    // The admin's pages: the host's charts (after two host samples) and the audit log.
    b.client.set_window_size(1280, 800).await.expect("resize");
    log_in(&b, &h.token()).await;
    let hidden = b
        .js(
            "return document.querySelector('[data-page=host]').hidden",
            vec![],
        )
        .await;
    assert_eq!(hidden, json!(false), "an admin sees Host");
    b.goto("/ui/#/host").await;
    b.text_of("#host-charts figure").await;
    b.shot("host-1280").await;

    // The image's delete guard speaks through the page: web's image, declared, is in use.
    let (status, body) = h
        .apply(&format!(
            "apiVersion: wharf/v1\nkind: Image\nmetadata:\n  name: ui-busybox\nspec:\n  ref: {IMAGE_V1}\n  pullPolicy: Never\n"
        ))
        .await;
    assert_eq!(status, 200, "{body}");
    b.goto("/ui/#/images").await;
    let delete = "const row = [...document.querySelectorAll('#images-table tr')].find(r => r.cells[0] && r.cells[0].innerText === 'ui-busybox'); if (!row) return null; row.querySelector('button.danger').click(); return true;";
    b.wait_js("the image's Delete button", Duration::from_secs(20), delete)
        .await;
    b.click("#confirm-ok").await;
    let guard = b.text_of("#image-error .error").await;
    assert!(guard.contains("409"), "{guard}");
    assert!(guard.contains("web"), "the guard names its user: {guard}");

    // A file-owned app is read-only and names its file.
    h.write_spec("owned.yaml", &h.sleeper_app("owned", ""));
    h.wait_ready("owned").await;
    b.goto(&format!("/ui/#/apps/{ns}/owned")).await;
    let owned = b.text_of("#spec p").await;
    assert!(owned.contains("owned.yaml"), "{owned}");
    assert_eq!(
        b.js("return document.querySelector('#spec textarea')", vec![])
            .await,
        Value::Null,
        "no editor for a file's app"
    );
    b.goto("/ui/#/sources").await;
    b.text_of("#source-errors").await;
    b.shot("sources-1280").await;
    b.goto("/ui/#/audit").await;
    let audit = b.text_of("#audit tbody").await;
    assert!(
        audit.contains("/apply"),
        "the editor's apply is audited: {audit:.500}"
    );
    b.shot("audit-1280").await;
    b.finish().await;
    h.finish().await;
}

/// The figure: time to first render of Apps with 100 apps (from navigation to the table).
#[tokio::test(flavor = "multi_thread")]
async fn the_apps_page_renders_a_hundred_apps() {
    let h = Harness::start("t-ui-many").await;
    // An image on a loopback port nothing listens on: the apps stay Pending, no container is
    // made and no request leaves the machine.
    let mut bundle = String::new();
    for i in 0..100 {
        bundle.push_str(&format!(
            "---\n{}",
            h.app_yaml(
                &format!("app-{i:03}"),
                &format!("  image: 127.0.0.1:9/wharf-ui/absent:1\n  command: {SLEEPER}\n"),
            )
        ));
    }
    let (status, body) = h.apply(&bundle).await;
    assert_eq!(status, 200, "{body}");
    let b = Browser::start(&base(&h), 1280, 800).await;
    log_in(&b, &h.token()).await;
    let mut figures = Vec::new();
    for _ in 0..3 {
        // A fresh page each time: the timeline starts at its navigation.
        b.goto("/ui/#/apps").await;
        b.client.refresh().await.expect("reload");
        let rows = b
            .wait_js(
                "100 rows",
                Duration::from_secs(30),
                "const n = document.querySelectorAll('#apps-table tbody tr').length; return n >= 100 ? n : null;",
            )
            .await;
        assert_eq!(rows, json!(100));
        let ms = b
            .js("return Number(document.body.dataset.appsRendered)", vec![])
            .await;
        figures.push(ms.as_f64().unwrap_or_default());
    }
    figures.sort_by(f64::total_cmp);
    println!(
        "figure: Apps with 100 apps first rendered {:.0} ms after navigation (median of 3; runs {figures:?})",
        figures[1]
    );
    b.shot("apps-100-1280").await;
    b.finish().await;
    h.finish().await;
}
