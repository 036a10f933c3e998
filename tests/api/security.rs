//! Tokens, roles, policy, image requests and the audit log through the router (fake engine).
//!
//! The role matrix walks `api_routes()`, the table the router is built from, so a route cannot
//! be added without being covered here.

use axum::http::StatusCode;
use serde_json::{Value, json};
use wharf::auth::{Need, Principal, Role, new_token, token_digest};
use wharf::http::api_routes;

use super::{Api, TOKEN, api, app, assert_error_shape};

pub(super) async fn token(
    api: &Api,
    grants: &[(&str, Role)],
    expires_at: Option<&str>,
) -> (String, String) {
    let (id, secret) = new_token();
    let grants = principal(grants).grants;
    api.store
        .create_token(
            &id,
            &token_digest(&secret),
            "test",
            &grants,
            "admin",
            expires_at,
        )
        .await
        .unwrap();
    (id, secret)
}

/// Applies `app(name, extra)` with the admin token.
async fn apply(api: &Api, name: &str, extra: &str) -> (StatusCode, Value) {
    api.send("POST", "/api/v1/apply", &app(name, extra)).await
}

fn principal(grants: &[(&str, Role)]) -> Principal {
    Principal::with_grants("t", grants)
}

/// A JSON request with `token`.
async fn call_as(
    api: &Api,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, Value) {
    api.call(method, path, "application/json", body, Some(token))
        .await
}

/// A concrete request for a route template in namespace `ns`.
fn request_for(method: &str, path: &str, ns: &str) -> (String, String) {
    let path = format!("/api/v1{path}")
        .replace("{ns}", ns)
        .replace("{name}", "web")
        .replace("{op}", "head")
        .replace("{id}", "1");
    let body = match (method, path.as_str()) {
        ("POST", "/api/v1/apply") => {
            app("web", "").replace("namespace: demo", &format!("namespace: {ns}"))
        }
        ("PUT", p) if p.ends_with("/policy") => "{}".to_string(),
        ("PUT", _) => app("web", "").replace("namespace: demo", &format!("namespace: {ns}")),
        ("PATCH", _) => "{\"spec\": {\"state\": \"stopped\"}}".to_string(),
        ("POST", "/api/v1/image-requests") => "{\"ref\": \"busybox:1.36\"}".to_string(),
        ("POST", "/api/v1/tokens") => {
            "{\"grants\": [{\"namespace\": \"demo\", \"role\": \"viewer\"}]}".to_string()
        }
        _ => String::new(),
    };
    (path, body)
}

fn content_type(path: &str) -> &'static str {
    if path.ends_with("/apply") || path.contains("/apps/web") && !path.contains("/git/") {
        "application/yaml"
    } else {
        "application/json"
    }
}

#[tokio::test]
async fn every_route_refuses_a_missing_wrong_expired_revoked_or_out_of_namespace_token() {
    let api = api().await;
    let (_, expired) = token(&api, &[("*", Role::Admin)], Some("2020-01-01T00:00:00Z")).await;
    let (revoked_id, revoked) = token(&api, &[("*", Role::Admin)], None).await;
    api.store.revoke_token(&revoked_id).await.unwrap();
    let cases: Vec<(&str, Vec<(&str, Role)>)> = vec![
        ("viewer@demo", vec![("demo", Role::Viewer)]),
        ("editor@demo", vec![("demo", Role::Editor)]),
        ("admin@demo", vec![("demo", Role::Admin)]),
        ("viewer@*", vec![("*", Role::Viewer)]),
        ("admin@*", vec![("*", Role::Admin)]),
        // May connect as a node agent and nothing else.
        ("agent", vec![("*", Role::Agent)]),
    ];
    let mut tokens = Vec::new();
    for (label, grants) in &cases {
        let (_, secret) = token(&api, grants, Some("2999-01-01T00:00:00Z")).await;
        tokens.push((*label, secret, principal(grants)));
    }
    let mut routes: Vec<(String, &'static str, Need)> = api_routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path, r.need))
        .collect();
    assert!(
        routes.len() >= 38,
        "the table lists every route: {}",
        routes.len()
    );
    routes.push(("GET".into(), "/../../metrics", wharf::http::METRICS_NEED));
    let mut checked = 0;
    for (method, template, need) in &routes {
        for ns in ["demo", "other"] {
            let (mut path, body) = request_for(method, template, ns);
            if template.ends_with("/metrics") {
                path = "/metrics".into();
            }
            let ct = content_type(&path);
            // 401 for every token that is not valid, before anything else happens.
            for bad in [
                None,
                Some("wharf_not-a-token"),
                Some(expired.as_str()),
                Some(revoked.as_str()),
            ] {
                let (status, answer) = api.call(method, &path, ct, &body, bad).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} with {bad:?}: {answer}"
                );
                assert_error_shape(&answer, 401, "Unauthorized");
            }
            for (label, secret, p) in &tokens {
                // What the route's declared need says, plus the per-document check of apply.
                let allowed = match *template {
                    "/apply" => p.may(Need::Namespace(Role::Editor), Some(ns)),
                    _ => p.may(*need, Some(ns)),
                };
                let (status, answer) = api.call(method, &path, ct, &body, Some(secret)).await;
                if allowed {
                    assert!(
                        status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                        "{label} may {method} {path}: {status} {answer}"
                    );
                    assert_ne!(
                        answer["message"], "no such route",
                        "{method} {path} is routed"
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{label} may not {method} {path}: {answer}"
                    );
                    assert_error_shape(&answer, 403, "Forbidden");
                }
                checked += 1;
            }
            // The data directory's admin token may do everything but be a node agent.
            let (status, answer) = api.call(method, &path, ct, &body, Some(TOKEN)).await;
            if *need == Need::Agent {
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "admin {method} {path}: {answer}"
                );
            } else {
                assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "admin {method} {path}: {status} {answer}"
                );
            }
        }
    }
    assert!(checked > 300, "{checked}");
    // Spot checks of the matrix, written out.
    let p = |grants: &[(&str, Role)]| principal(grants);
    let need = |m: &str, path: &str| {
        api_routes()
            .into_iter()
            .find(|r| r.method.as_str() == m && r.path == path)
            .map(|r| r.need)
            .expect("route")
    };
    let viewer = p(&[("demo", Role::Viewer)]);
    let editor = p(&[("demo", Role::Editor)]);
    assert!(viewer.may(
        need("GET", "/namespaces/{ns}/apps/{name}/stats"),
        Some("demo")
    ));
    assert!(viewer.may(
        need("GET", "/namespaces/{ns}/apps/{name}/uptime"),
        Some("demo")
    ));
    assert!(viewer.may(need("GET", "/images"), None));
    assert!(!viewer.may(need("DELETE", "/namespaces/{ns}/apps/{name}"), Some("demo")));
    assert!(editor.may(
        need("POST", "/namespaces/{ns}/apps/{name}/kill"),
        Some("demo")
    ));
    assert!(!editor.may(
        need("POST", "/namespaces/{ns}/apps/{name}/kill"),
        Some("other")
    ));
    assert!(!editor.may(need("POST", "/images/{name}/pull"), None));
    assert!(!editor.may(need("POST", "/tokens"), None));
    assert!(!p(&[("demo", Role::Admin)]).may(need("GET", "/host/stats"), None));
}

#[tokio::test]
async fn an_image_in_a_bundle_needs_an_admin_of_every_namespace() {
    let api = api().await;
    let (_, editor) = token(&api, &[("demo", Role::Editor)], None).await;
    let bundle = format!(
        "{}---\napiVersion: wharf/v1\nkind: Image\nmetadata:\n  name: bb\nspec:\n  ref: busybox:1.36\n",
        app("web", "")
    );
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/apply",
            "application/yaml",
            &bundle,
            Some(&editor),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("Image bb"),
        "{body}"
    );
    assert!(
        api.store
            .list(wharf::spec::Kind::App, None)
            .await
            .unwrap()
            .is_empty(),
        "nothing written"
    );
    // The list of all apps shows only the namespaces a token may read.
    let (status, _) = apply(&api, "web", "").await;
    assert_eq!(status, StatusCode::OK);
    let other = app("x", "").replace("namespace: demo", "namespace: other");
    api.send("POST", "/api/v1/apply", &other).await;
    let (_, viewer) = token(&api, &[("other", Role::Viewer)], None).await;
    let (_, list) = call_as(&api, &viewer, "GET", "/api/v1/apps", "").await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["x"]);
}

#[tokio::test]
async fn tokens_are_created_shown_once_used_and_revoked_through_the_api() {
    let api = api().await;
    let (status, created) = api
        .call(
            "POST",
            "/api/v1/tokens",
            "application/json",
            r#"{"description": "ci", "grants": [{"namespace": "demo", "role": "editor"}], "expiresIn": "30d"}"#,
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(
        created["expiresAt"].as_str().unwrap().starts_with("20"),
        "{created}"
    );
    let (_, me) = call_as(&api, &secret, "GET", "/api/v1/whoami", "").await;
    assert_eq!(me["tokenId"], id.as_str());
    // The list never shows a secret, and the database holds only its digest.
    let (_, list) = api.send("GET", "/api/v1/tokens", "").await;
    assert!(!list.to_string().contains(&secret));
    assert_eq!(list["items"][0]["id"], id.as_str());
    let (status, _) = api
        .call(
            "POST",
            "/api/v1/apply",
            "application/yaml",
            &app("web", ""),
            Some(&secret),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .send("DELETE", &format!("/api/v1/tokens/{id}"), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call_as(&api, &secret, "GET", "/api/v1/whoami", "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    for bad in [
        r#"{"grants": []}"#,
        r#"{"grants": [{"namespace": "Bad_NS", "role": "viewer"}]}"#,
        r#"{"grants": [{"namespace": "demo", "role": "root"}]}"#,
        r#"{"grants": [{"namespace": "demo", "role": "viewer"}], "expiresIn": "soon"}"#,
    ] {
        let (status, body) = call_as(&api, TOKEN, "POST", "/api/v1/tokens", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn policy_and_quota_refusals_name_their_rule() {
    let api = api().await;
    let refused = |body: &Value, code: u16, rule: &str, field: &str| {
        assert_eq!(body["code"], code, "{body}");
        assert_eq!(body["details"]["rule"], rule, "{body}");
        assert_eq!(body["details"]["field"], field, "{body}");
    };
    for (extra, rule, field) in [
        (
            "  privileged: true\n",
            "policy.allowPrivileged",
            "spec.privileged",
        ),
        (
            "  hostNetwork: true\n",
            "policy.allowHostNetwork",
            "spec.hostNetwork",
        ),
        ("  hostPID: true\n", "policy.allowHostPID", "spec.hostPID"),
        ("  hostIPC: true\n", "policy.allowHostIPC", "spec.hostIPC"),
        (
            "  volumes:\n    - {hostPath: /etc, mountPath: /host-etc}\n",
            "policy.allowedHostPaths",
            "spec.volumes[0].hostPath",
        ),
        (
            "  devices:\n    - {hostPath: /dev/kmsg}\n",
            "policy.allowedDevices",
            "spec.devices[0].hostPath",
        ),
        (
            "  capabilities: {add: [CHOWN, SYS_ADMIN]}\n",
            "policy.allowedCapabilities",
            "spec.capabilities.add[1]",
        ),
    ] {
        let (status, body) = apply(&api, "p", extra).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{extra}: {body}");
        assert_eq!(body["reason"], "PolicyViolation");
        refused(&body, 403, rule, field);
    }
    // A dry run answers the same refusal, and still writes nothing.
    let (status, body) = api
        .send(
            "POST",
            "/api/v1/apply?dryRun=true",
            &app("p", "  privileged: true\n"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    refused(&body, 403, "policy.allowPrivileged", "spec.privileged");
    let (status, body) = api
        .send("POST", "/api/v1/apply?dryRun=true", &app("p", ""))
        .await;
    assert_eq!(
        (status, &body["items"][0]["result"]),
        (StatusCode::OK, &json!("created"))
    );
    assert!(
        api.store
            .list(wharf::spec::Kind::App, None)
            .await
            .unwrap()
            .is_empty()
    );
    // Docker's default capabilities may be added; dropping is always allowed.
    let (status, body) = apply(
        &api,
        "caps",
        "  capabilities: {add: [cap_chown], drop: [ALL]}\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // 90 % of the (fake) 8 GiB host: 7.2 GiB across all apps.
    let (status, _) = apply(&api, "big", "  resources: {memory: 6Gi}\n").await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = apply(&api, "more", "  resources: {memory: 2Gi}\n").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["reason"], "QuotaExceeded");
    refused(&body, 422, "admission.hostMemory", "spec.resources.memory");
    assert!(body["message"].as_str().unwrap().contains("90%"), "{body}");
    // A stopped app holds no memory; starting it is checked again.
    let (status, _) = apply(
        &api,
        "more",
        "  state: stopped\n  resources: {memory: 2Gi}\n",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call_as(
        &api,
        TOKEN,
        "PATCH",
        "/api/v1/namespaces/demo/apps/more",
        r#"{"spec": {"state": "running"}}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Shrinking is never refused.
    let (status, _) = apply(&api, "big", "  resources: {memory: 5Gi}\n").await;
    assert_eq!(status, StatusCode::OK);

    // A namespace override: allow privileged and one host path in `demo`; cap its memory.
    let (status, body) = api
        .call(
            "PUT",
            "/api/v1/namespaces/demo/policy",
            "application/yaml",
            "allowPrivileged: true\nallowedHostPaths: [/srv/demo]\nmaxAppMemory: 1Gi\nquota: {memory: 5760Mi, apps: 5}\n",
            Some(TOKEN),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = apply(&api, "p", "  privileged: true\n  volumes:\n    - {hostPath: /srv/demo/www, mountPath: /www}\n  resources: {memory: 512Mi}\n").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = apply(
        &api,
        "q",
        "  volumes:\n    - {hostPath: /srv/demox, mountPath: /x}\n",
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a sibling directory is not inside: {body}"
    );
    let (status, body) = apply(&api, "q", "  resources: {memory: 2Gi}\n").await;
    refused(&body, 422, "policy.maxAppMemory", "spec.resources.memory");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // big (5Gi) + p (512Mi) leave room for 128Mi of the 5760Mi quota (stopped apps count 0).
    let (_, body) = apply(&api, "q", "  resources: {memory: 256Mi}\n").await;
    refused(&body, 422, "quota.memory", "spec.resources.memory");
    let (status, _) = apply(&api, "q", "  resources: {memory: 128Mi}\n").await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = apply(&api, "r", "  resources: {memory: 64Mi}\n").await;
    refused(&body, 422, "quota.apps", "metadata.name");
    // Another namespace keeps the server's policy.
    let other = app("p", "  privileged: true\n").replace("namespace: demo", "namespace: other");
    let (status, _) = api.send("POST", "/api/v1/apply", &other).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, shown) = api.send("GET", "/api/v1/namespaces/demo/policy", "").await;
    assert_eq!(shown["effective"]["allowPrivileged"], true, "{shown}");
    assert_eq!(shown["hostMemoryAdmission"]["percent"], 90);
    let (status, body) = call_as(
        &api,
        TOKEN,
        "PUT",
        "/api/v1/namespaces/demo/policy",
        r#"{"allowPrivilegd": true}"#,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {body}"
    );
}

#[tokio::test]
async fn image_requests_are_made_by_editors_and_decided_by_admins() {
    let api = api().await;
    let (editor_id, editor) = token(&api, &[("demo", Role::Editor)], None).await;
    let (_, viewer) = token(&api, &[("demo", Role::Viewer)], None).await;
    let body = r#"{"ref": "busybox:1.36", "reason": "shell tools"}"#;
    let (status, _) = call_as(&api, &viewer, "POST", "/api/v1/image-requests", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer cannot request");
    let (status, request) = call_as(&api, &editor, "POST", "/api/v1/image-requests", body).await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    assert_eq!(request["ref"], "docker.io/library/busybox:1.36");
    assert_eq!(request["requestedBy"], editor_id.as_str());
    let id = request["id"].as_i64().unwrap();
    let (status, again) = call_as(&api, &editor, "POST", "/api/v1/image-requests", body).await;
    assert_eq!(
        (status, again["id"].as_i64()),
        (StatusCode::OK, Some(id)),
        "pending one reused"
    );
    let (status, _) = call_as(
        &api,
        &editor,
        "POST",
        &format!("/api/v1/image-requests/{id}/approve"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, approved) = api
        .send("POST", &format!("/api/v1/image-requests/{id}/approve"), "")
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "Approved");
    assert_eq!(approved["image"], "busybox-1-36");
    let (status, image) = api.send("GET", "/api/v1/images/busybox-1-36", "").await;
    assert_eq!(status, StatusCode::OK, "{image}");
    assert_eq!(image["spec"]["ref"], "docker.io/library/busybox:1.36");
    let (status, _) = api
        .send("POST", &format!("/api/v1/image-requests/{id}/reject"), "")
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "decided once");
    let (_, already) = call_as(&api, &editor, "POST", "/api/v1/image-requests", body).await;
    assert_eq!(already["state"], "Approved");
    // Rejections carry their message; editors see their own requests.
    let (_, second) = call_as(
        &api,
        &editor,
        "POST",
        "/api/v1/image-requests",
        r#"{"ref": "nginx"}"#,
    )
    .await;
    let id2 = second["id"].as_i64().unwrap();
    let (_, rejected) = api
        .send(
            "POST",
            &format!("/api/v1/image-requests/{id2}/reject"),
            r#"{"message": "use the approved proxy"}"#,
        )
        .await;
    assert_eq!(rejected["state"], "Rejected");
    let (_, mine) = call_as(&api, &editor, "GET", "/api/v1/image-requests", "").await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let (status, _) = api
        .send("POST", "/api/v1/image-requests/abc/approve", "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn every_write_is_audited_with_who_what_and_the_result() {
    let api = api().await;
    let (editor_id, editor) = token(&api, &[("demo", Role::Editor)], None).await;
    let call = |m: &'static str, p: &'static str, b: String| {
        let editor = editor.clone();
        let api = &api;
        async move { api.call(m, p, "application/yaml", &b, Some(&editor)).await }
    };
    call("POST", "/api/v1/apply", app("web", "")).await;
    call(
        "PATCH",
        "/api/v1/namespaces/demo/apps/web",
        "{spec: {state: stopped}}".into(),
    )
    .await;
    call(
        "POST",
        "/api/v1/namespaces/other/apps/web/restart",
        String::new(),
    )
    .await;
    call("POST", "/api/v1/apply", app("bad", "  privileged: true\n")).await;
    call("DELETE", "/api/v1/namespaces/demo/apps/web", String::new()).await;
    call("GET", "/api/v1/namespaces/demo/apps", String::new()).await;
    // A write without a valid token only reaches the log.
    api.call(
        "POST",
        "/api/v1/apply",
        "application/yaml",
        &app("x", ""),
        None,
    )
    .await;
    api.call(
        "POST",
        "/api/v1/apply",
        "application/yaml",
        &app("x", ""),
        Some("wharf_nope"),
    )
    .await;
    let (_, everything) = api.send("GET", "/api/v1/audit", "").await;
    assert_eq!(
        everything["items"].as_array().unwrap().len(),
        5,
        "{everything}"
    );
    let (status, audit) = api
        .send("GET", &format!("/api/v1/audit?token={editor_id}"), "")
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    let items = audit["items"].as_array().unwrap();
    let seen: Vec<(String, String, i64, String)> = items
        .iter()
        .rev()
        .map(|e| {
            (
                e["method"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["status"].as_i64().unwrap(),
                e["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 5, "reads are not audited: {seen:?}");
    assert_eq!(seen[0].2, 200);
    assert!(seen[0].3.contains("App demo/web created"), "{seen:?}");
    assert!(seen[1].3.contains("App demo/web configured"), "{seen:?}");
    assert_eq!(
        (seen[2].2, seen[2].1.as_str()),
        (403, "/api/v1/namespaces/other/apps/web/restart")
    );
    assert!(seen[2].3.starts_with("Forbidden"), "{seen:?}");
    assert_eq!(seen[3].2, 403);
    assert!(seen[3].3.contains("policy.allowPrivileged"), "{seen:?}");
    assert!(seen[4].3.contains("marked for deletion"), "{seen:?}");
    for e in items {
        assert_eq!(e["tokenId"], editor_id.as_str());
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(items[0]["route"], "/api/v1/namespaces/{ns}/apps/{name}");
    assert_eq!(items[0]["namespace"], "demo");
    let (status, _) = call_as(&api, &editor, "GET", "/api/v1/audit", "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the audit log is for admins");
    let (status, filtered) = api
        .send("GET", "/api/v1/audit?namespace=other&limit=1", "")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn query_and_path_rejections_answer_in_the_error_shape() {
    let api = api().await;
    for path in [
        "/api/v1/apply?dryRun=perhaps",
        "/api/v1/audit?limit=lots",
        "/api/v1/namespaces/demo/apps/web/logs?follow=maybe",
    ] {
        let method = if path.contains("apply") {
            "POST"
        } else {
            "GET"
        };
        let (status, body) = api.send(method, path, &app("web", "")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_error_shape(&body, 400, "BadRequest");
    }
    let (status, body) = api
        .call(
            "POST",
            "/api/v1/apply",
            "application/yaml",
            "\u{0}\u{ff}",
            Some(TOKEN),
        )
        .await;
    assert!(status.is_client_error(), "{body}");
    let (status, body) = api
        .send("GET", "/api/v1/namespaces/..%2Fetc/apps", "")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(json!(body["reason"]), json!("BadRequest"));
}
