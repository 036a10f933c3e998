//! Notifications (`--notify-webhook`) against the real engine: an app that fails and recovers
//! and a rejected spec file are posted to a webhook on loopback, signed, filtered by event,
//! retried when the webhook fails, and counted in the metrics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use crate::support::{Harness, metric_value, parse_metrics, wait_for};

/// One delivery as the webhook saw it.
#[derive(Clone, Debug)]
struct Delivery {
    event: String,
    signature: String,
    body: Vec<u8>,
    json: Value,
}

/// A webhook on loopback that answers its first request 503 and records the others.
async fn webhook() -> (String, Arc<Mutex<Vec<Delivery>>>, Arc<Mutex<u32>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(0u32));
    let (record, count) = (Arc::clone(&seen), Arc::clone(&attempts));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let (record, count) = (Arc::clone(&record), Arc::clone(&count));
            async move {
                let first = {
                    let mut n = count.lock().unwrap();
                    *n += 1;
                    *n == 1
                };
                if first {
                    return StatusCode::SERVICE_UNAVAILABLE;
                }
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                record.lock().unwrap().push(Delivery {
                    event: header("x-wharf-event"),
                    signature: header("x-wharf-signature-256"),
                    json: serde_json::from_slice(&body).unwrap_or(Value::Null),
                    body: body.to_vec(),
                });
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), seen, attempts)
}

fn deliveries(seen: &Arc<Mutex<Vec<Delivery>>>) -> Vec<Delivery> {
    seen.lock().unwrap().clone()
}

async fn wait_event(seen: &Arc<Mutex<Vec<Delivery>>>, event: &str, what: &str) -> Delivery {
    wait_for(
        &format!("{event} for {what}"),
        Duration::from_secs(60),
        || async {
            deliveries(seen).into_iter().find(|d| {
                d.event == event && d.body.windows(what.len()).any(|w| w == what.as_bytes())
            })
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_recoveries_and_rejected_files_are_posted_signed_and_counted() {
    let (url, seen, attempts) = webhook().await;
    let secrets = tempfile::tempdir().unwrap();
    let secret_file = secrets.path().join("notify-secret");
    std::fs::write(&secret_file, "n0tify\n").unwrap();
    let filtered = format!("{url}#events=app.failed,app.recovered,source.rejected");
    let h = Harness::start_with("t-notify", |c| {
        c.notify = vec![filtered.parse().expect("a webhook")];
        c.notify_secret_file = Some(secret_file);
    })
    .await;

    // An app whose process exits 3, and that Docker does not restart: Failed.
    let crashing = h.app_yaml(
        "web",
        "  image: wharf-test/busybox:1\n  command: [\"sh\", \"-c\", \"sleep 1; exit 3\"]\n  restartPolicy: {name: \"no\"}\n  stopGracePeriod: 2s\n",
    );
    let (status, body) = h.apply(&crashing).await;
    assert_eq!(status, 200, "{body}");
    let failed = wait_event(&seen, "app.failed", "web").await;
    assert_eq!(failed.json["object"]["kind"], "App", "{}", failed.json);
    assert_eq!(failed.json["object"]["namespace"], "t-notify");
    assert_eq!(failed.json["object"]["name"], "web");
    assert_eq!(failed.json["instance"], h.instance.as_str());
    assert_eq!(
        failed.signature,
        wharf::notify::signature(b"n0tify", &failed.body),
        "signed with the secret"
    );
    assert!(
        *attempts.lock().unwrap() >= 2,
        "the first, refused attempt was retried"
    );

    // Fixed: Running again.
    let (status, body) = h.apply(&h.sleeper_app("web", "")).await;
    assert_eq!(status, 200, "{body}");
    let recovered = wait_event(&seen, "app.recovered", "web").await;
    assert!(
        recovered.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("Running again")),
        "{}",
        recovered.json
    );

    // A bad spec file.
    h.write_spec("broken.yaml", "apiVersion: wharf/v1\nkind: App\nmetadata: {name: x}\nspec:\n  image: busybox\n  resources: {memory: lots}\n");
    let rejected = wait_event(&seen, "source.rejected", "broken.yaml").await;
    assert_eq!(
        rejected.json["source"], "file:broken.yaml",
        "{}",
        rejected.json
    );
    assert!(
        rejected.json["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.resources.memory")),
        "{}",
        rejected.json
    );

    // Only the events asked for.
    for d in deliveries(&seen) {
        assert!(
            ["app.failed", "app.recovered", "source.rejected"].contains(&d.event.as_str()),
            "{d:?}"
        );
    }
    let (_, text) = {
        let r = reqwest::Client::new()
            .get(h.url("/metrics"))
            .bearer_auth(h.token())
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    let scrape = parse_metrics(&text);
    let delivered = metric_value(
        &scrape,
        "wharf_notifications_total",
        &[("event", "app.failed"), ("result", "delivered")],
    );
    assert!(delivered.is_some_and(|v| v >= 1.0), "{text}");
    h.finish().await;
}
