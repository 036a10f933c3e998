//! Apply sets: `POST /api/v1/apply?set=NAME&prune=true` labels the bundle with its set and
//! deletes only the API-owned objects of that set that the bundle no longer contains.

use axum::http::StatusCode;
use serde_json::Value;
use wharf::auth::Role;

use super::security::token;
use super::{Api, TOKEN, api, app, assert_error_shape};

fn in_ns(name: &str, ns: &str) -> String {
    app(name, "").replace("namespace: demo", &format!("namespace: {ns}"))
}

/// `(name, result)` of each item of an apply's answer.
fn results(body: &Value) -> Vec<(String, String)> {
    body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or("").to_string(),
                i["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn terminating(api: &Api, ns: &str, name: &str) -> bool {
    let (status, body) = api
        .send("GET", &format!("/api/v1/namespaces/{ns}/apps/{name}"), "")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["metadata"]["deletionTimestamp"].is_string()
}

#[tokio::test]
async fn a_prune_deletes_what_left_its_set_and_nothing_else() {
    let api = api().await;
    let bundle = [in_ns("a", "demo"), in_ns("b", "demo")].join("---\n");
    let (status, body) = api.send("POST", "/api/v1/apply?set=ci", &bundle).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, a) = api.send("GET", "/api/v1/namespaces/demo/apps/a", "").await;
    assert_eq!(a["metadata"]["labels"]["wharf.set"], "ci", "{a}");
    assert_eq!(
        a["metadata"]["labels"]["team"], "astro",
        "own labels are kept"
    );
    // Outside the set: another set, and no set at all.
    let (status, _) = api
        .send("POST", "/api/v1/apply?set=other", &in_ns("o", "demo"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .send("POST", "/api/v1/apply", &in_ns("plain", "demo"))
        .await;
    assert_eq!(status, StatusCode::OK);

    // The dry run lists the prune and changes nothing.
    let (status, body) = api
        .send(
            "POST",
            "/api/v1/apply?set=ci&prune=true&dryRun=true",
            &in_ns("a", "demo"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        results(&body),
        [
            ("a".into(), "unchanged".into()),
            ("b".into(), "pruned".into())
        ]
    );
    let plan = body["items"][1]["plan"].to_string();
    assert!(plan.contains("Deleted"), "the loop would delete it: {plan}");
    assert!(
        !terminating(&api, "demo", "b").await,
        "a dry run deletes nothing"
    );

    let (status, body) = api
        .send(
            "POST",
            "/api/v1/apply?set=ci&prune=true",
            &in_ns("a", "demo"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        results(&body),
        [
            ("a".into(), "unchanged".into()),
            ("b".into(), "pruned".into())
        ]
    );
    assert!(terminating(&api, "demo", "b").await);
    for kept in ["a", "o", "plain"] {
        assert!(!terminating(&api, "demo", kept).await, "{kept} is kept");
    }
    // Applying the same again prunes nothing more.
    let (_, body) = api
        .send(
            "POST",
            "/api/v1/apply?set=ci&prune=true",
            &in_ns("a", "demo"),
        )
        .await;
    assert_eq!(results(&body), [("a".into(), "unchanged".into())]);
}

#[tokio::test]
async fn a_prune_needs_a_set_a_valid_name_and_the_right_to_delete_what_it_prunes() {
    let api = api().await;
    let (status, body) = api
        .send("POST", "/api/v1/apply?prune=true", &in_ns("a", "demo"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_error_shape(&body, 400, "BadRequest");
    assert!(body["message"].as_str().unwrap().contains("set="), "{body}");

    let (status, body) = api
        .send("POST", "/api/v1/apply?set=-ci", &in_ns("a", "demo"))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A document that names another set is refused, naming the field.
    let labelled = app("a", "").replace("labels: {team: astro}", "labels: {wharf.set: other}");
    let (status, body) = api.send("POST", "/api/v1/apply?set=ci", &labelled).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body["details"]["causes"][0]["field"], "metadata.labels.wharf.set",
        "{body}"
    );

    // The set spans two namespaces; an editor of one may not prune the other's app.
    let bundle = [in_ns("a", "demo"), in_ns("b", "prod")].join("---\n");
    let (status, _) = api.send("POST", "/api/v1/apply?set=ci", &bundle).await;
    assert_eq!(status, StatusCode::OK);
    let (_, editor) = token(&api, &[("demo", Role::Editor)], None).await;
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/apply?set=ci&prune=true",
            "application/yaml",
            &in_ns("a", "demo"),
            Some(&editor),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("prod/b"),
        "{body}"
    );
    assert!(
        !terminating(&api, "prod", "b").await,
        "a refused prune deletes nothing"
    );
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/apply?set=ci&prune=true",
            "application/yaml",
            &in_ns("a", "demo"),
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(terminating(&api, "prod", "b").await);
}
