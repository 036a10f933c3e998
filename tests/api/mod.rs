//! The REST API through `router(state)` with no socket and the recording fake runtime: status
//! codes and the error shape users' scripts rely on.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::sync::{Notify, watch};
use tower::ServiceExt;
use wharf::auth::token_digest;
use wharf::http::{ApiState, router};
use wharf::reconcile::{Controller, ControllerConfig, Health};
use wharf::runtime::fake::FakeRuntime;
use wharf::store::{Admission, Store};

const TOKEN: &str = "test-token";

mod security;
mod sets;

struct Api {
    app: axum::Router,
    store: Store,
    fake: Arc<FakeRuntime>,
    _dir: tempfile::TempDir,
}

async fn api() -> Api {
    api_with(ControllerConfig::default()).await
}

async fn api_with(config: ControllerConfig) -> Api {
    let dir = tempfile::tempdir().unwrap();
    // The fake engine's host has 8 GiB; apps may declare 90 % of it, as `wharf serve` defaults.
    let store = Store::open(&dir.path().join("db.sqlite"))
        .await
        .unwrap()
        .with_admission(Admission {
            host_memory: wharf::runtime::fake::FAKE_HOST_MEMORY,
            host_memory_percent: 90,
            ..Admission::default()
        });
    let runtime: Arc<FakeRuntime> = Arc::new(FakeRuntime::default());
    let wake = Arc::new(Notify::new());
    let controller = Controller::new(store.clone(), runtime.clone(), config, Arc::clone(&wake));
    let store_handle = store.clone();
    let state = ApiState {
        store,
        runtime: runtime.clone(),
        images: controller.images(),
        controller,
        stats: wharf::stats::StatsConfig::default(),
        wake,
        admin_sha256: token_digest(TOKEN),
        health: watch::channel(Health::default()).1,
        instance: "api-test".into(),
        max_body: 16 * 1024,
        agents: None,
        git: None,
        stopping: tokio_util::sync::CancellationToken::new(),
        leadership: wharf::cluster::Leadership::default(),
    };
    Api {
        app: router(state),
        store: store_handle,
        fake: runtime,
        _dir: dir,
    }
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("content-type", content_type);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        crate::support::openapi::check(
            method,
            path,
            status.as_u16(),
            content_type.as_deref(),
            &bytes,
        );
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    async fn send(&self, method: &str, path: &str, body: &str) -> (StatusCode, Value) {
        self.call(method, path, "application/yaml", body, Some(TOKEN))
            .await
    }
}

fn app(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: wharf/v1\nkind: App\nmetadata:\n  name: {name}\n  namespace: demo\n  labels: {{team: astro}}\nspec:\n  image: busybox\n{extra}"
    )
}

fn assert_error_shape(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn apply_creates_then_reports_unchanged_and_configured() {
    let api = api().await;
    let (status, body) = api
        .send(
            "POST",
            "/api/v1/apply",
            &format!("{}---\n{}", app("a", ""), app("b", "")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"][0]["result"], "created");
    assert_eq!(body["items"][1]["result"], "created");
    let (_, body) = api.send("POST", "/api/v1/apply", &app("a", "")).await;
    assert_eq!(body["items"][0]["result"], "unchanged");
    assert_eq!(body["items"][0]["generation"], 1);
    let (_, body) = api
        .send("POST", "/api/v1/apply", &app("a", "  state: stopped\n"))
        .await;
    assert_eq!(body["items"][0]["result"], "configured");
    assert_eq!(body["items"][0]["generation"], 2);
    // JSON arrays work too.
    let json = r#"[{"apiVersion":"wharf/v1","kind":"App","metadata":{"name":"c","namespace":"demo"},"spec":{"image":"x"}}]"#;
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/apply",
            "application/json",
            json,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn invalid_documents_get_422_with_field_paths_and_nothing_is_stored() {
    let api = api().await;
    let bundle = format!(
        "{}---\n{}",
        app("good", ""),
        app("bad", "  resources: {memory: lots, cpus: -1}\n")
    );
    let (status, body) = api.send("POST", "/api/v1/apply", &bundle).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_error_shape(&body, 422, "Invalid");
    let cause = &body["details"]["causes"][0];
    assert_eq!(cause["field"], "spec.resources.memory");
    assert_eq!(cause["document"], 2);
    assert_eq!(cause["line"], 18);
    let (_, list) = api.send("GET", "/api/v1/apps", "").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "a bundle is all or nothing"
    );

    let (status, body) = api
        .send(
            "POST",
            "/api/v1/apply",
            &app("x", "  ports: ['80', '80']\n"),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["details"]["causes"][0]["field"], "spec.ports[1]");
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let api = api().await;
    let huge = format!(
        "{}  env: {{BIG: '{}'}}\n",
        app("a", ""),
        "x".repeat(32 * 1024)
    );
    let (status, body) = api.send("POST", "/api/v1/apply", &huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_error_shape(&body, 413, "RequestEntityTooLarge");
}

#[tokio::test]
async fn stale_resource_versions_get_409() {
    let api = api().await;
    api.send("POST", "/api/v1/apply", &app("web", "")).await;
    let (_, doc) = api
        .send("GET", "/api/v1/namespaces/demo/apps/web", "")
        .await;
    let rv = doc["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    // A write with the current version succeeds and moves it on...
    let patch =
        format!(r#"{{"metadata": {{"resourceVersion": "{rv}"}}, "spec": {{"state": "paused"}}}}"#);
    let (status, body) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/demo/apps/web",
            "application/merge-patch+json",
            &patch,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["spec"]["state"], "paused");
    assert_eq!(body["metadata"]["generation"], 2);
    // ...so the same version again is stale.
    let (status, body) = api
        .call(
            "PATCH",
            "/api/v1/namespaces/demo/apps/web",
            "application/merge-patch+json",
            &patch,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_shape(&body, 409, "Conflict");
    let (status, _) = api
        .send(
            "DELETE",
            &format!("/api/v1/namespaces/demo/apps/web?resourceVersion={rv}"),
            "",
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn put_replaces_and_checks_the_url() {
    let api = api().await;
    let (status, _) = api
        .send("PUT", "/api/v1/namespaces/demo/apps/web", &app("web", ""))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = api
        .send(
            "PUT",
            "/api/v1/namespaces/demo/apps/web",
            &app("web", "  owner: john\n"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["spec"]["owner"], "john");
    let (status, _) = api
        .send("PUT", "/api/v1/namespaces/demo/apps/other", &app("web", ""))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = api
        .send("GET", "/api/v1/namespaces/demo/apps/missing", "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, 404, "NotFound");
}

#[tokio::test]
async fn lists_filter_by_label_selector_and_owner() {
    let api = api().await;
    api.send(
        "POST",
        "/api/v1/apply",
        &format!(
            "{}---\n{}",
            app("a", "  owner: john\n"),
            app("b", "").replace("team: astro", "team: bio")
        ),
    )
    .await;
    let names = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (_, v) = api
        .send("GET", "/api/v1/apps?labelSelector=team%3Dastro", "")
        .await;
    assert_eq!(names(&v), ["a"]);
    let (_, v) = api
        .send(
            "GET",
            "/api/v1/namespaces/demo/apps?labelSelector=team%20in%20(astro,bio)",
            "",
        )
        .await;
    assert_eq!(names(&v), ["a", "b"]);
    let (_, v) = api.send("GET", "/api/v1/apps?owner=john", "").await;
    assert_eq!(names(&v), ["a"]);
    let (status, _) = api
        .send("GET", "/api/v1/apps?labelSelector=a%20in%20b", "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dry_run_returns_a_plan_and_a_diff_and_stores_nothing() {
    let api = api().await;
    let (_, body) = api
        .send("POST", "/api/v1/apply?dryRun=true", &app("web", ""))
        .await;
    assert_eq!(body["dryRun"], true);
    let item = &body["items"][0];
    assert_eq!(item["result"], "created");
    let steps: Vec<&str> = item["plan"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    // The fake engine has no busybox yet, so the plan pulls it first.
    assert_eq!(steps, ["Pulled", "Created", "Started"]);
    assert!(
        item["plan"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not in the engine"),
        "{item}"
    );
    assert!(
        item["diff"].as_str().unwrap().contains("+  image: busybox"),
        "{item}"
    );
    let (_, list) = api.send("GET", "/api/v1/apps", "").await;
    assert!(list["items"].as_array().unwrap().is_empty());

    api.send("POST", "/api/v1/apply", &app("web", "")).await;
    let (_, body) = api
        .send(
            "POST",
            "/api/v1/apply?dryRun=true",
            &app("web", "  state: stopped\n"),
        )
        .await;
    let item = &body["items"][0];
    assert_eq!(item["result"], "configured");
    assert!(
        item["diff"].as_str().unwrap().contains("+  state: stopped"),
        "{item}"
    );
}

#[tokio::test]
async fn a_dry_run_answers_503_when_the_engine_cannot_be_observed() {
    let api = api().await;
    api.fake.set_down(true);
    let (status, body) = api
        .send("POST", "/api/v1/apply?dryRun=true", &app("web", ""))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_error_shape(&body, 503, "EngineUnavailable");
    api.fake.set_down(false);
    let (status, _) = api
        .send("POST", "/api/v1/apply?dryRun=true", &app("web", ""))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_dry_run_plans_with_the_loop_s_image_objects_and_approval_gate() {
    let api = api_with(ControllerConfig {
        require_approved_images: true,
        ..ControllerConfig::default()
    })
    .await;
    let steps = |body: &Value| -> Vec<String> {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["kind"] == "App")
            .flat_map(|i| i["plan"].as_array().unwrap().clone())
            .map(|s| s["action"].as_str().unwrap().to_string())
            .collect()
    };
    // Not approved: the loop would create nothing, and neither does the preview.
    let (status, body) = api
        .send("POST", "/api/v1/apply?dryRun=true", &app("web", ""))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(steps(&body).is_empty(), "{body}");
    // Declared in the same bundle (pullPolicy Always, and the fake engine has no busybox yet):
    // the preview sees the Image object, approval and pull policy, as the loop will.
    let bundle = format!(
        "apiVersion: wharf/v1\nkind: Image\nmetadata: {{name: busybox}}\nspec: {{ref: busybox, pullPolicy: Always}}\n---\n{}",
        app("web", "")
    );
    let (status, body) = api.send("POST", "/api/v1/apply?dryRun=true", &bundle).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(steps(&body), ["Pulled", "Created", "Started"], "{body}");
}

#[tokio::test]
async fn unknown_routes_answer_in_the_error_shape() {
    let api = api().await;
    let (status, body) = api.send("GET", "/api/v1/nope", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, 404, "NotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_wait_for_each_other_instead_of_failing() {
    // Deferred SQLite transactions that read then write fail at once with SQLITE_BUSY when
    // another writer gets in between; every write must instead wait its turn.
    let api = api().await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let app = api.app.clone();
        tasks.push(tokio::spawn(async move {
            let body = format!(
                "{}---\n{}",
                self::app(&format!("a{i}"), ""),
                self::app(&format!("b{i}"), "  state: paused\n")
            );
            let request = Request::builder()
                .method("POST")
                .uri("/api/v1/apply")
                .header("content-type", "application/yaml")
                .header("authorization", format!("Bearer {TOKEN}"))
                .body(Body::from(body))
                .unwrap();
            app.oneshot(request).await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let (_, list) = api.send("GET", "/api/v1/apps", "").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 32);
}

#[tokio::test]
async fn actions_and_views_answer_in_the_error_shape() {
    let api = api().await;
    // No such app.
    let (status, body) = api
        .send("POST", "/api/v1/namespaces/demo/apps/ghost/restart", "")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_error_shape(&body, 404, "NotFound");

    // An app the loop has not created yet: nothing to act on or look at.
    let (status, _) = api
        .send("POST", "/api/v1/apply", &app("web", "  owner: john\n"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api
        .send("POST", "/api/v1/namespaces/demo/apps/web/kill", "")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_shape(&body, 409, "InvalidTransition");
    let (status, body) = api
        .send("GET", "/api/v1/namespaces/demo/apps/web/inspect", "")
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_error_shape(&body, 409, "NoContainer");

    // Bad parameters are refused before anything runs.
    for (method, path, body, reason) in [
        (
            "POST",
            "/api/v1/namespaces/demo/apps/web/kill?signal=SIGNOPE",
            "",
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/demo/apps/web/git/head",
            "{}",
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/demo/apps/web/git/checkout",
            r#"{"path": "/repo", "branch": "-f"}"#,
            "BadRequest",
        ),
        (
            "POST",
            "/api/v1/namespaces/demo/apps/web/git/push",
            r#"{"path": "/repo"}"#,
            "NotFound",
        ),
        (
            "GET",
            "/api/v1/namespaces/demo/apps/web/logs?tail=many",
            "",
            "BadRequest",
        ),
    ] {
        let (status, answer) = api
            .call(method, path, "application/json", body, Some(TOKEN))
            .await;
        assert!(status.is_client_error(), "{method} {path}: {status}");
        assert_eq!(answer["reason"], reason, "{method} {path}: {answer}");
    }

    let (status, users) = api.send("GET", "/api/v1/namespaces/demo/users", "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(users["items"][0]["name"], "john");
    assert_eq!(users["items"][0]["apps"][0], "web");
}

#[tokio::test]
async fn host_stats_carry_every_figure_of_the_flask_api() {
    let api = api().await;
    let (status, first) = api.send("GET", "/api/v1/host/stats", "").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    for pointer in [
        "/cpu/total",
        "/cpu/user",
        "/cpu/kernel",
        "/cpu/idle",
        "/cpu/iowait",
        "/cpu/softirq",
        "/contextSwitches",
        "/disk/sectorsRead",
        "/disk/sectorsWritten",
        "/disk/reads",
        "/disk/writes",
        "/disk/readsMerged",
        "/disk/writesMerged",
        "/disk/readTimeMs",
        "/disk/writeTimeMs",
        "/network/bytesSent",
        "/network/bytesReceived",
        "/loadAverage/one",
        "/loadAverage/five",
        "/loadAverage/fifteen",
        "/time",
    ] {
        assert!(
            first.pointer(pointer).is_some(),
            "{pointer} missing: {first}"
        );
    }
    let (_, second) = api.send("GET", "/api/v1/host/stats", "").await;
    for counter in [
        "/cpu/total",
        "/contextSwitches",
        "/disk/sectorsWritten",
        "/network/bytesReceived",
    ] {
        let (a, b) = (
            first.pointer(counter).unwrap(),
            second.pointer(counter).unwrap(),
        );
        assert!(b.as_f64() >= a.as_f64(), "{counter}: {a} then {b}");
    }
    let (status, history) = api
        .send("GET", "/api/v1/host/stats/history?since=0", "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(history["items"].is_array());
    let (status, body) = api
        .send("GET", "/api/v1/host/stats/history?since=soon", "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_error_shape(&body, 400, "BadRequest");
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_applies() {
    let api = api().await;
    let (status, _) = api.call("GET", "/metrics", "text/plain", "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        api.send("POST", "/api/v1/apply", &app("web", "")).await.0,
        StatusCode::OK
    );
    let bad = app("bad", "  resources: {memory: lots}\n");
    assert_eq!(
        api.send("POST", "/api/v1/apply", &bad).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let request = Request::builder()
        .uri("/metrics")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(Body::empty())
        .unwrap();
    let response = api.app.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let scrape = crate::support::parse_metrics(&text);
    let value = |m: &str, l: &[(&str, &str)]| crate::support::metric_value(&scrape, m, l);
    assert_eq!(
        value("wharf_apply_requests_total", &[("result", "ok")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value("wharf_apply_requests_total", &[("result", "invalid")]),
        Some(1.0)
    );
    assert_eq!(value("wharf_reconcile_queue_depth", &[]), Some(0.0));
    assert!(
        value("wharf_reconcile_passes_total", &[]).is_some(),
        "{text}"
    );
    assert!(
        text.contains("wharf_reconcile_pass_duration_seconds_bucket"),
        "{text}"
    );
    // The app has no container yet: it is counted as down, with no usage figures.
    assert_eq!(
        value("wharf_app_up", &[("namespace", "demo"), ("app", "web")]),
        Some(0.0)
    );
}

/// Many writers at once: one winner per `resourceVersion`, 409 for the others, and writers
/// that retry on 409 lose nothing; concurrent appliers of distinct apps all land.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_one_winner_per_version_and_lose_nothing() {
    let api = std::sync::Arc::new(api().await);
    api.send("POST", "/api/v1/apply", &app("web", "")).await;
    let version = |api: std::sync::Arc<Api>| async move {
        let (_, doc) = api
            .send("GET", "/api/v1/namespaces/demo/apps/web", "")
            .await;
        doc["metadata"]["resourceVersion"]
            .as_str()
            .expect("resourceVersion")
            .to_string()
    };
    let patch = |api: std::sync::Arc<Api>, rv: String, label: String| async move {
        let body = format!(
            r#"{{"metadata": {{"resourceVersion": "{rv}", "labels": {{"{label}": "x"}}}}}}"#
        );
        api.call(
            "PATCH",
            "/api/v1/namespaces/demo/apps/web",
            "application/merge-patch+json",
            &body,
            Some(TOKEN),
        )
        .await
        .0
    };

    // 50 writers holding the same version: exactly one wins.
    let rv = version(api.clone()).await;
    let writers: Vec<_> = (0..50)
        .map(|i| tokio::spawn(patch(api.clone(), rv.clone(), format!("first{i}"))))
        .collect();
    let mut statuses = Vec::new();
    for w in writers {
        statuses.push(w.await.expect("writer"));
    }
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let lost = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((won, lost), (1, 49), "{statuses:?}");

    // 50 writers that read, write with what they read, and retry on 409: every write lands.
    let writers: Vec<_> = (0..50)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                for attempt in 0..1000 {
                    let rv = version(api.clone()).await;
                    match patch(api.clone(), rv, format!("w{i}")).await {
                        StatusCode::OK => return attempt,
                        StatusCode::CONFLICT => continue,
                        other => panic!("writer {i}: {other}"),
                    }
                }
                panic!("writer {i} never won");
            })
        })
        .collect();
    let mut retries = 0;
    for w in writers {
        retries += w.await.expect("writer");
    }
    let (_, doc) = api
        .send("GET", "/api/v1/namespaces/demo/apps/web", "")
        .await;
    let labels = doc["metadata"]["labels"].as_object().expect("labels");
    let missing: Vec<String> = (0..50)
        .map(|i| format!("w{i}"))
        .filter(|l| !labels.contains_key(l))
        .collect();
    assert!(missing.is_empty(), "lost updates: {missing:?}");
    assert!(retries > 0, "the writers did race");

    // 20 appliers of 5 distinct apps each, at once: all 100 stored.
    let appliers: Vec<_> = (0..20)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                let bundle: String = (0..5)
                    .map(|j| format!("---\n{}", app(&format!("app-{i}-{j}"), "")))
                    .collect();
                api.send("POST", "/api/v1/apply", &bundle).await.0
            })
        })
        .collect();
    for a in appliers {
        assert_eq!(a.await.expect("applier"), StatusCode::OK);
    }
    let (_, list) = api.send("GET", "/api/v1/namespaces/demo/apps", "").await;
    let names = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|a| {
            a["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("app-"))
        })
        .count();
    assert_eq!(names, 100);
}

#[tokio::test]
async fn the_git_webhook_answers_404_when_no_repository_is_followed() {
    let api = api().await;
    let (status, body) = api
        .call("POST", "/api/v1/hooks/git", "application/json", "{}", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_error_shape(&body, 404, "NotFound");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("--git")),
        "{body}"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_token() {
    let api = api().await;
    let (status, body) = api
        .call("GET", "/api/v1/openapi.json", "application/json", "", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body == wharf::http::routes::openapi_document());
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schemas/openapi.json"))
            .expect("schemas/openapi.json"),
    )
    .expect("schemas/openapi.json is JSON");
    assert!(
        body == committed,
        "the served document is not schemas/openapi.json: run `cargo run -- schema --out schemas`"
    );
}

#[tokio::test]
async fn a_method_a_route_does_not_take_answers_405_in_the_error_shape() {
    let api = api().await;
    for (method, path) in [
        ("PUT", "/api/v1/apps"),
        ("DELETE", "/api/v1/apply"),
        ("POST", "/api/v1/openapi.json"),
        ("POST", "/readyz"),
    ] {
        let (status, body) = api.send(method, path, "").await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {body}"
        );
        assert_error_shape(&body, 405, "MethodNotAllowed");
    }
}
