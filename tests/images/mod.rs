//! Images against a real engine and a real registry (Debian's docker-registry on loopback):
//! pull policies, a failing pull that backs off without hurting other apps, update-all by
//! registry digest with a one-at-a-time rollout, a wider rollout and one a rollback stops,
//! usedBy, delete refused while in use, registry credentials, and a replacement that rolls back.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::support::registry::Registry;
use crate::support::testkit::import_busybox;
use crate::support::{Harness, IMAGE_V1, IMAGE_V2, docker, poll_until, wait_for};

fn image_yaml(name: &str, reference: &str, extra: &str) -> String {
    format!(
        "apiVersion: wharf/v1\nkind: Image\nmetadata:\n  name: {name}\nspec:\n  ref: {reference}\n{extra}"
    )
}

impl Harness {
    async fn post(&self, path: &str) -> (u16, Value) {
        self.request(Method::POST, path, "application/json", None)
            .await
    }

    async fn image(&self, name: &str) -> Value {
        self.get(&format!("/api/v1/images/{name}")).await.1
    }

    /// Waits until the Image's status says `phase`.
    async fn wait_image(&self, name: &str, phase: &str) -> Value {
        let found = poll_until(Duration::from_secs(30), || async {
            let doc = self.image(name).await;
            (doc.pointer("/status/phase") == Some(&Value::from(phase))).then_some(doc)
        })
        .await;
        match found {
            Some(doc) => doc,
            None => panic!(
                "timed out waiting for Image {name} to be {phase}; last seen: {:#}",
                self.image(name).await
            ),
        }
    }

    /// Waits until `app`'s Ready condition has `reason`; returns the document.
    async fn wait_reason(&self, app: &str, reason: &str) -> Value {
        wait_for(
            &format!("{app} with reason {reason}"),
            Duration::from_secs(30),
            || async {
                let doc = self.get_app(app).await?;
                let ready = doc
                    .pointer("/status/conditions")?
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "Ready")?
                    .clone();
                (ready["reason"] == reason).then_some(doc)
            },
        )
        .await
    }

    async fn image_id_of(&self, app: &str) -> String {
        let c = self.inspect(app).await.expect("container");
        c.image.expect("image id")
    }

    fn reasons(events: &[Value]) -> Vec<String> {
        events
            .iter()
            .map(|e| e["reason"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_pull_missing_images_and_images_report_their_users() {
    let h = Harness::start("t-img-pull").await;
    let docker = docker().await;
    let registry = Registry::start(None).await;
    let web = registry.push(&docker, IMAGE_V1, "team/web:1").await;
    let never = registry.reference("team/never:1");

    // IfNotPresent (the default for an undeclared image): the app's image is pulled first.
    let app = h.app_yaml("web", &Harness::sleeper_spec(&web));
    assert_eq!(h.apply(&app).await.0, 200);
    h.wait_ready("web").await;
    let events = Harness::reasons(&h.events("web").await);
    assert_eq!(
        events.iter().take(3).collect::<Vec<_>>(),
        ["Pulled", "Created", "Started"],
        "{events:?}"
    );

    // Declaring the image shows what the engine has and who uses it.
    let (status, _) = h.apply(&image_yaml("web", &web, "")).await;
    assert_eq!(status, 200);
    let doc = h.wait_image("web", "Present").await;
    let s = &doc["status"];
    assert_eq!(s["usedBy"], 1, "{doc:#}");
    assert_eq!(s["usedByApps"][0], format!("{}/web", h.namespace));
    assert_eq!(s["id"].as_str(), Some(h.image_id_of("web").await.as_str()));
    assert!(
        s["digest"].as_str().unwrap().starts_with("sha256:"),
        "{doc:#}"
    );
    assert!(s["tags"].as_array().unwrap().iter().any(|t| t == &web));
    assert!(s["size"].as_i64().unwrap() > 0);
    assert!(s["created"].is_string());

    // The engine's other images are listed as not managed.
    let (_, list) = h.get("/api/v1/images").await;
    let items = list["items"].as_array().unwrap();
    assert!(
        items
            .iter()
            .any(|i| i["managed"] == true && i["metadata"]["name"] == "web")
    );
    assert!(
        items.iter().any(|i| i["managed"] == false
            && i["status"]["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == IMAGE_V2)),
        "{list:#}"
    );

    // Never: nothing is pulled; the Image and an app using it say why.
    let (status, _) = h
        .apply(&image_yaml("never", &never, "  pullPolicy: Never\n"))
        .await;
    assert_eq!(status, 200);
    let doc = h.wait_image("never", "Missing").await;
    assert_eq!(doc["status"]["conditions"][0]["reason"], "NeverPull");
    let app = h.app_yaml("nope", &Harness::sleeper_spec(&never));
    h.apply(&app).await;
    let doc = h.wait_reason("nope", "Waiting").await;
    assert!(
        doc["status"]["message"]
            .as_str()
            .unwrap()
            .contains("pullPolicy Never"),
        "{doc:#}"
    );
    assert!(
        h.inspect("nope").await.is_none(),
        "no container without its image"
    );

    // Always: the Image is pulled when declared and again for each new generation.
    let other = registry.push(&docker, IMAGE_V2, "team/other:1").await;
    let (status, _) = h
        .apply(&image_yaml("always", &other, "  pullPolicy: Always\n"))
        .await;
    assert_eq!(status, 200);
    h.wait_image("always", "Present").await;
    let pulls = |events: Vec<Value>| events.iter().filter(|e| e["reason"] == "Pulled").count();
    let first = wait_for("the first pull", Duration::from_secs(10), || async {
        let n = pulls(h.image_events("always").await);
        (n == 1).then_some(n)
    })
    .await;
    let (status, _) = h
        .apply(&image_yaml(
            "always",
            &other,
            "  pullPolicy: Always\n  updateInterval: 1h\n",
        ))
        .await;
    assert_eq!(status, 200);
    wait_for(
        "a pull for generation 2",
        Duration::from_secs(10),
        || async { (pulls(h.image_events("always").await) == first + 1).then_some(()) },
    )
    .await;

    h.finish().await;
    registry.finish(&docker).await;
}

impl Harness {
    async fn image_events(&self, name: &str) -> Vec<Value> {
        let (_, body) = self.get(&format!("/api/v1/images/{name}/events")).await;
        body["items"].as_array().cloned().unwrap_or_default()
    }

    async fn delete_image(&self, name: &str, query: &str) -> (u16, Value) {
        self.request(
            Method::DELETE,
            &format!("/api/v1/images/{name}{query}"),
            "application/json",
            None,
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_pull_backs_off_and_other_apps_are_unaffected() {
    let h = Harness::start("t-img-backoff").await;
    let docker = docker().await;
    let registry = Registry::start(None).await;
    let fine = registry.push(&docker, IMAGE_V1, "team/fine:1").await;
    let missing = registry.reference("team/missing:1");
    let bundle = format!(
        "{}---\n{}",
        h.app_yaml("missing", &Harness::sleeper_spec(&missing)),
        h.app_yaml("fine", &Harness::sleeper_spec(&fine))
    );
    assert_eq!(h.apply(&bundle).await.0, 200);
    h.wait_ready("fine").await;
    let doc = h.wait_reason("missing", "ImagePullBackOff").await;
    assert_eq!(doc["status"]["phase"], "Pending", "{doc:#}");
    let message = doc["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains(&missing), "{message}");
    assert!(
        message.contains("not found") || message.contains("manifest unknown"),
        "the registry's message is shown: {message}"
    );
    // Retried with backoff (1 s, 2 s, 4 s ...), not in a tight loop: the gaps between the
    // failed attempts grow.
    let times: Vec<chrono::DateTime<chrono::Utc>> =
        wait_for("three failed pulls", Duration::from_secs(30), || async {
            let times: Vec<_> = h
                .events("missing")
                .await
                .iter()
                .filter(|e| e["reason"] == "ImagePullBackOff")
                .filter_map(|e| e["time"].as_str()?.parse().ok())
                .collect();
            (times.len() >= 3).then_some(times)
        })
        .await;
    let gaps: Vec<i64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    assert!(
        gaps[0] >= 900 && gaps[1] >= 1800 && gaps[1] > gaps[0],
        "pull attempts not backed off: gaps {gaps:?} ms"
    );

    // Once the image exists, the next attempt pulls it and the app runs.
    registry.push(&docker, IMAGE_V1, "team/missing:1").await;
    let doc = poll_until(Duration::from_secs(40), || async {
        let doc = h.get_app("missing").await?;
        (doc["status"]["phase"] == "Running").then_some(doc)
    })
    .await;
    assert!(doc.is_some(), "the app runs after the image appears");
    h.finish().await;
    registry.finish(&docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn update_all_pulls_only_changed_images_and_rolls_their_apps_one_at_a_time() {
    let h = Harness::start("t-img-update").await;
    let docker = docker().await;
    let registry = Registry::start(None).await;
    let app_ref = registry.push(&docker, IMAGE_V1, "team/app:stable").await;
    let other_ref = registry.push(&docker, IMAGE_V1, "team/other:stable").await;
    let bundle = [
        image_yaml("app", &app_ref, ""),
        image_yaml("other", &other_ref, ""),
        h.app_yaml("a1", &Harness::sleeper_spec(&app_ref)),
        h.app_yaml("a2", &Harness::sleeper_spec(&app_ref)),
        h.app_yaml("o1", &Harness::sleeper_spec(&other_ref)),
    ]
    .join("---\n");
    assert_eq!(h.apply(&bundle).await.0, 200);
    for app in ["a1", "a2", "o1"] {
        h.wait_ready(app).await;
    }
    let mut before = Vec::new();
    for app in ["a1", "a2", "o1"] {
        before.push(h.container_id(app).await.unwrap());
    }
    let old_image = h.image_id_of("a1").await;

    // Nothing changed in the registry: nothing is pulled.
    let (status, body) = h.post("/api/v1/images:update-all").await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["pulled"], 0, "{body:#}");

    // A new push of team/app:stable; team/other is untouched. The push tags the engine's copy
    // too: point it back at the old version, as on a host where someone else pushed (else the
    // check finds the engine already up to date, or not, depending on whether the loop's image
    // list saw the tag move).
    registry.push(&docker, IMAGE_V2, "team/app:stable").await;
    crate::support::testkit::retag(&docker, IMAGE_V1, &app_ref)
        .await
        .expect("tag");
    let (status, body) = h.post("/api/v1/images:update-all").await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(
        body["pulled"], 1,
        "only the changed image is pulled: {body:#}"
    );
    let result = |name: &str| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .map(|i| i["result"].as_str().unwrap().to_string())
    };
    assert_eq!(result("app").as_deref(), Some("pulled"));
    assert_eq!(result("other").as_deref(), Some("unchanged"));

    // Both apps of the changed image roll to it; the other app keeps its container.
    let new_image = wait_for(
        "a1 and a2 on the new image",
        Duration::from_secs(40),
        || async {
            let a1 = h.inspect("a1").await?.image?;
            let a2 = h.inspect("a2").await?.image?;
            (a1 != old_image && a1 == a2).then_some(a1)
        },
    )
    .await;
    for app in ["a1", "a2"] {
        h.wait_ready(app).await;
        assert_eq!(h.image_id_of(app).await, new_image);
    }
    assert_ne!(h.container_id("a1").await.unwrap(), before[0]);
    assert_ne!(h.container_id("a2").await.unwrap(), before[1]);
    assert_eq!(
        h.container_id("o1").await.unwrap(),
        before[2],
        "o1 untouched"
    );

    // One at a time: each old container was removed only after its replacement ran for the
    // settle time, and the second app started replacing after the first finished.
    let replaced_at = |events: Vec<Value>| {
        events
            .iter()
            .find(|e| e["reason"] == "Replaced")
            .and_then(|e| e["time"].as_str())
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .expect("a Replaced event")
    };
    let t1 = replaced_at(h.events("a1").await);
    let t2 = replaced_at(h.events("a2").await);
    let gap = (t1 - t2).num_milliseconds().abs();
    assert!(
        gap >= 1000,
        "the two replacements overlapped ({gap} ms apart)"
    );
    let doc = h.wait_image("app", "Present").await;
    assert_eq!(doc["status"]["usedBy"], 2, "{doc:#}");

    h.finish().await;
    registry.finish(&docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_an_image_is_refused_while_a_container_uses_it() {
    let h = Harness::start("t-img-delete").await;
    let docker = docker().await;
    let registry = Registry::start(None).await;
    let web = registry.push(&docker, IMAGE_V1, "team/web:1").await;
    let bundle = format!(
        "{}---\n{}",
        image_yaml("web", &web, ""),
        h.app_yaml("web", &Harness::sleeper_spec(&web))
    );
    assert_eq!(h.apply(&bundle).await.0, 200);
    h.wait_ready("web").await;

    let (status, body) = h.delete_image("web", "").await;
    assert_eq!(status, 409, "{body:#}");
    assert_eq!(body["reason"], "ImageInUse");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&h.container_name("web")),
        "{body:#}"
    );

    assert_eq!(h.delete("web").await.0, 200);
    wait_for(
        "the app's container to go",
        Duration::from_secs(30),
        || async { h.inspect("web").await.is_none().then_some(()) },
    )
    .await;
    let (status, body) = h.delete_image("web", "").await;
    assert_eq!(status, 200, "{body:#}");
    wait_for("the Image to go", Duration::from_secs(10), || async {
        (h.get("/api/v1/images/web").await.0 == 404).then_some(())
    })
    .await;
    let tags: Vec<String> = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .collect();
    assert!(!tags.contains(&web), "the engine no longer has {web}");
    h.finish().await;
    registry.finish(&docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn registry_credentials_come_from_a_secret_file_and_are_never_shown() {
    let h = Harness::start("t-img-auth").await;
    let docker = docker().await;
    let registry = Registry::start(Some(("ci", "s3cret-pass"))).await;
    let private = registry.push(&docker, IMAGE_V1, "team/private:1").await;

    // Without credentials the registry refuses, and the app says so.
    let app = h.app_yaml("private", &Harness::sleeper_spec(&private));
    assert_eq!(h.apply(&app).await.0, 200);
    let doc = h.wait_reason("private", "ImagePullBackOff").await;
    let message = doc["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("auth") || message.contains("unauthorized"),
        "{message}"
    );

    // Declaring the Image with a secret file pulls it; the app then runs.
    let secret = h.data.path().join("registry-auth");
    std::fs::write(
        &secret,
        "ci:s3cret-pass
",
    )
    .unwrap();
    let image = image_yaml(
        "private",
        &private,
        &format!(
            "  credentials:
    secretFile: {}
",
            secret.display()
        ),
    );
    assert_eq!(h.apply(&image).await.0, 200);
    h.wait_image("private", "Present").await;
    let doc = poll_until(Duration::from_secs(40), || async {
        let doc = h.get_app("private").await?;
        (doc["status"]["phase"] == "Running").then_some(doc)
    })
    .await;
    assert!(doc.is_some(), "the app runs once the image is pulled");

    // The registry check works with the same credentials; the secret is never echoed.
    let (status, body) = h.post("/api/v1/images:update-all").await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["result"], "unchanged", "{body:#}");
    let (_, doc) = h.get("/api/v1/images/private").await;
    let (_, list) = h.get("/api/v1/images").await;
    for text in [doc.to_string(), list.to_string(), body.to_string()] {
        assert!(!text.contains("s3cret-pass"), "{text}");
    }
    h.finish().await;
    registry.finish(&docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_replacement_whose_new_container_exits_rolls_back_to_the_old_one() {
    let h = Harness::start("t-img-rollback").await;
    // Without a restart policy the new container's exit code is what the rollback reports (a
    // crash loop under one is the lifecycle tests' case).
    let spec = Harness::sleeper_spec(IMAGE_V1)
        + "  restartPolicy: {name: \"no\"}\n  update: {minReadySeconds: 2}\n";
    assert_eq!(h.apply(&h.app_yaml("web", &spec)).await.0, 200);
    h.wait_ready("web").await;
    let old = h.container_id("web").await.unwrap();

    let (status, _) = h
        .patch("web", r#"{"spec": {"command": ["sh", "-c", "exit 3"]}}"#)
        .await;
    assert_eq!(status, 200);
    let doc = h.wait_reason("web", "RolledBack").await;
    let message = doc["status"]["conditions"][0]["message"].as_str().unwrap();
    assert!(message.contains("code 3"), "{message}");
    // The old container runs again under the app's name, and is not replaced again for this
    // generation.
    let c = h.wait_state("web", "running").await;
    assert_eq!(c.id.as_deref(), Some(old.as_str()));
    h.settle(3).await;
    assert_eq!(h.container_id("web").await.as_deref(), Some(old.as_str()));
    let replaced = h
        .containers()
        .await
        .iter()
        .filter(|c| c.names.iter().flatten().any(|n| n.contains(".replaced-")))
        .count();
    assert_eq!(replaced, 0, "no container left aside");
    let attempts = Harness::reasons(&h.events("web").await)
        .iter()
        .filter(|r| *r == "RolledBack")
        .count();
    assert_eq!(attempts, 1, "one attempt per generation");

    // A good spec rolls forward.
    let (status, body) = h
        .patch(
            "web",
            r#"{"spec": {"command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"], "env": {"V": "2"}}}"#,
        )
        .await;
    assert_eq!(status, 200);
    let generation = body["metadata"]["generation"].as_i64();
    h.wait_ready_at("web", generation).await;
    assert_ne!(h.container_id("web").await.unwrap(), old);
    h.finish().await;
}

/// A registry answering 429 is asked once, then left alone for the back-off (no Docker).
#[tokio::test]
async fn a_rate_limited_registry_is_backed_off_not_hammered() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        let counter = Arc::clone(&counter);
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            (
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let runtime = Arc::new(wharf::runtime::fake::FakeRuntime::default());
    let service = wharf::reconcile::images::ImageService::new(
        runtime,
        wharf::images::registry::RegistryClient::new(Vec::new(), Duration::from_secs(5)),
        Default::default(),
    );
    let reference = format!("127.0.0.1:{}/team/app:1", addr.port());
    let first = service.check(&reference, None).await.unwrap_err();
    assert_eq!(first.reason(), "RegistryRateLimited", "{first}");
    let asked = hits.load(Ordering::SeqCst);
    // One check is at most the auth probe (/v2/), the HEAD, and oci-client's GET fallback for
    // a HEAD without a digest header.
    assert!((1..=4).contains(&asked), "{asked} requests for one check");
    for _ in 0..5 {
        let again = service.check(&reference, None).await.unwrap_err();
        assert_eq!(again.reason(), "RegistryRateLimited");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        asked,
        "no request during the back-off"
    );
    assert!(service.memory(&reference).check_hold_until.is_some());
    server.abort();
}

#[tokio::test(flavor = "multi_thread")]
async fn images_declared_in_the_watched_directory_follow_their_file() {
    let h = Harness::start("t-img-files").await;
    let docker = docker().await;
    let registry = Registry::start(None).await;
    let reference = registry.push(&docker, IMAGE_V2, "team/files:1").await;
    h.write_spec("images/files.yaml", &image_yaml("files", &reference, ""));
    let doc = h.wait_image("files", "Present").await;
    assert_eq!(doc["metadata"]["source"], "file:images/files.yaml");
    assert!(
        doc["metadata"].get("namespace").is_none(),
        "cluster-scoped: {doc:#}"
    );

    // The API cannot change it; deleting the file deletes it and the engine's tag.
    let (status, body) = h.delete_image("files", "").await;
    assert_eq!(status, 409, "{body:#}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("images/files.yaml")
    );
    std::fs::remove_file(h.specs.path().join("images/files.yaml")).unwrap();
    wait_for("the Image to go", Duration::from_secs(20), || async {
        (h.get("/api/v1/images/files").await.0 == 404).then_some(())
    })
    .await;
    let tags: Vec<String> = docker
        .list_images(None::<bollard::query_parameters::ListImagesOptions>)
        .await
        .unwrap()
        .into_iter()
        .flat_map(|i| i.repo_tags)
        .collect();
    assert!(
        !tags.contains(&reference),
        "{reference} removed from the engine"
    );
    assert!(
        tags.iter().any(|t| t == IMAGE_V2),
        "other tags of the image are kept"
    );
    h.finish().await;
    registry.finish(&docker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rollout_replaces_its_width_at_once_and_a_rollback_stops_it() {
    let h = Harness::start("t-img-rollout").await;
    let docker = docker().await;
    // Versions of this test's own (other tests' containers must not use them).
    let (v1, v2) = ("wharf-test/rollout:1", "wharf-test/rollout:2");
    for (reference, version) in [(v1, "rollout-1"), (v2, "rollout-2")] {
        import_busybox(&docker, reference, version)
            .await
            .expect("import");
    }
    let wide = "wharf-test/rollout-wide:1";
    let fragile = "wharf-test/rollout-fragile:1";
    crate::support::testkit::retag(&docker, v1, wide)
        .await
        .expect("tag");
    crate::support::testkit::retag(&docker, v1, fragile)
        .await
        .expect("tag");
    let settle = "  update: {minReadySeconds: 2}\n";
    // The fragile apps' process exits 3 on version 2 of the image.
    let exits_on_v2 = format!(
        "  image: {fragile}\n  command: [sh, -c, \"test \\\"$(cat /VERSION)\\\" = rollout-2 && exit 3; trap 'exit 0' TERM; while true; do sleep 1; done\"]\n  stopGracePeriod: 2s\n  restartPolicy: {{name: \"no\"}}\n{settle}"
    );
    let mut bundle = vec![
        image_yaml(
            "wide",
            wide,
            "  pullPolicy: Never\n  rollout: {maxUnavailable: 2}\n",
        ),
        image_yaml("fragile", fragile, "  pullPolicy: Never\n"),
    ];
    let wide_apps = ["w0", "w1", "w2", "w3"];
    let fragile_apps = ["f0", "f1", "f2"];
    for app in wide_apps {
        bundle.push(h.app_yaml(app, &(Harness::sleeper_spec(wide) + settle)));
    }
    for app in fragile_apps {
        bundle.push(h.app_yaml(app, &exits_on_v2));
    }
    let (status, body) = h.apply(&bundle.join("---\n")).await;
    assert_eq!(status, 200, "{body:#}");
    for app in wide_apps.iter().chain(&fragile_apps) {
        h.wait_ready(app).await;
    }
    let old_image = h.image_id_of("w0").await;
    let fragile_before: Vec<String> = {
        let mut ids = Vec::new();
        for app in fragile_apps {
            ids.push(h.container_id(app).await.expect("container"));
        }
        ids
    };

    // Width 2: while the four apps roll, never more than two are set aside at once, and two are.
    crate::support::testkit::retag(&docker, v2, wide)
        .await
        .expect("tag");
    let mut most_aside = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let aside = h
            .containers()
            .await
            .iter()
            .filter(|c| {
                crate::support::testkit::set_aside(c)
                    && c.names.iter().flatten().any(|n| n.contains(".w"))
            })
            .count();
        most_aside = most_aside.max(aside);
        let mut done = 0;
        for app in wide_apps {
            let on_new = h
                .inspect(app)
                .await
                .and_then(|c| c.image)
                .is_some_and(|i| i != old_image);
            done += usize::from(on_new);
        }
        if done == wide_apps.len() && aside == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the four apps did not all roll within 60 s ({done} did)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        most_aside, 2,
        "width 2: two apps replaced at once, never more"
    );
    for app in wide_apps {
        h.wait_ready(app).await;
    }

    // Width 1 by default: the first fragile app rolls back, and the rollout stops there.
    crate::support::testkit::retag(&docker, v2, fragile)
        .await
        .expect("tag");
    let failed = wait_for(
        "a fragile app rolled back",
        Duration::from_secs(30),
        || async {
            for app in fragile_apps {
                let doc = h.get_app(app).await?;
                if doc.pointer("/status/phase")? == "Degraded" {
                    return Some((app, doc));
                }
            }
            None
        },
    )
    .await;
    let (failed, doc) = failed;
    let ready = &doc["status"]["conditions"][0];
    assert_eq!(ready["reason"], "RolledBack", "{doc:#}");
    assert!(
        ready["message"]
            .as_str()
            .unwrap_or_default()
            .contains("code 3"),
        "{doc:#}"
    );
    // The others keep serving the old version (Ready) and say why they are not replaced.
    for app in fragile_apps.iter().filter(|a| **a != failed) {
        let doc = wait_for(
            &format!("{app} told the rollout stopped"),
            Duration::from_secs(10),
            || async {
                let doc = h.get_app(app).await?;
                doc.pointer("/status/message")?
                    .as_str()?
                    .contains("rollout stopped")
                    .then_some(doc)
            },
        )
        .await;
        let message = doc["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("{}/{failed} rolled back", h.namespace))
                && message.contains("code 3"),
            "{app}: {message}"
        );
        assert_eq!(doc["status"]["phase"], "Running", "{doc:#}");
        assert_eq!(doc["status"]["conditions"][0]["status"], "True", "{doc:#}");
    }
    // Nothing else is tried: every fragile app keeps its container, running the old version.
    h.settle(3).await;
    for (app, before) in fragile_apps.iter().zip(&fragile_before) {
        let c = h.wait_state(app, "running").await;
        assert_eq!(c.id.as_ref(), Some(before), "{app} kept its container");
        assert_eq!(c.image.as_ref(), Some(&old_image), "{app} on the old image");
    }
    let replacements: usize = {
        let mut n = 0;
        for app in fragile_apps {
            n += Harness::reasons(&h.events(app).await)
                .iter()
                .filter(|r| *r == "RolledBack" || *r == "Replaced")
                .count();
        }
        n
    };
    assert_eq!(replacements, 1, "one attempt, then the rollout stopped");

    // The image changes again (back to the version they run): the rollback no longer holds
    // anything back, and the failed attempt is over (Synced again, no message).
    crate::support::testkit::retag(&docker, v1, fragile)
        .await
        .expect("tag");
    for app in fragile_apps {
        wait_for(
            &format!("{app} Ready and Synced with no message"),
            Duration::from_secs(30),
            || async {
                let doc = h.get_app(app).await?;
                let condition = |kind: &str| {
                    doc["status"]["conditions"]
                        .as_array()
                        .and_then(|c| c.iter().find(|c| c["type"] == kind))
                        .is_some_and(|c| c["status"] == "True")
                };
                let quiet = doc["status"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty();
                (doc["status"]["phase"] == "Running"
                    && condition("Ready")
                    && condition("Synced")
                    && quiet)
                    .then_some(())
            },
        )
        .await;
    }

    h.finish().await;
    for reference in [wide, fragile, v1, v2] {
        let _ = docker
            .remove_image(
                reference,
                None::<bollard::query_parameters::RemoveImageOptions>,
                None,
            )
            .await;
    }
}
