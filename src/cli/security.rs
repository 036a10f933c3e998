//! `wharf token create|list|revoke`, `wharf whoami`, `wharf policy get|set|delete`,
//! `wharf audit`, and the image request workflow (`wharf images request|requests|approve|reject`).

use std::path::Path;

use serde_json::{Value, json};

use super::client::{CliError, CliResult, Client, Exit};
use super::output::{Output, print_value, table};

fn s(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn grants_text(v: &Value) -> String {
    v["grants"]
        .as_array()
        .map(|g| {
            g.iter()
                .map(|g| format!("{}@{}", s(g, "/role"), s(g, "/namespace")))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// `wharf token create --namespace NS… --role ROLE [--expires 30d]`: prints the secret once, on
/// stdout alone (so `TOKEN=$(wharf token create …)` works); details go to stderr.
pub async fn create_token(
    client: &Client,
    namespaces: &[String],
    role: &str,
    expires: Option<&str>,
    description: &str,
) -> CliResult {
    let every = [crate::auth::ALL_NAMESPACES.to_string()];
    let namespaces = match (namespaces, role) {
        ([], "agent") => &every[..],
        ([], _) => {
            return Err(CliError::new(
                Exit::Usage,
                format!("--namespace: required for role {role} (`*` for every namespace)"),
            ));
        }
        (given, _) => given,
    };
    let grants: Vec<Value> = namespaces
        .iter()
        .map(|ns| json!({ "namespace": ns, "role": role }))
        .collect();
    let mut body = json!({ "grants": grants, "description": description });
    if let Some(e) = expires {
        body["expiresIn"] = json!(e);
    }
    let created = client.post("/tokens", Some(body)).await?;
    let expires = match s(&created, "/expiresAt") {
        e if e.is_empty() => "never".to_string(),
        e => e,
    };
    eprintln!(
        "created token {} ({}), expires {expires}; it is shown only now",
        s(&created, "/id"),
        grants_text(&created)
    );
    println!("{}", s(&created, "/token"));
    Ok(Exit::Ok)
}

pub async fn list_tokens(client: &Client, output: Output) -> CliResult {
    let list = client.get("/tokens").await?;
    if output != Output::Table {
        print_value(&list, output);
        return Ok(Exit::Ok);
    }
    let mut rows = vec![
        [
            "ID",
            "GRANTS",
            "DESCRIPTION",
            "CREATED",
            "BY",
            "EXPIRES",
            "STATE",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let now = chrono::Utc::now();
    for t in list["items"].as_array().into_iter().flatten() {
        let expired =
            chrono::DateTime::parse_from_rfc3339(&s(t, "/expiresAt")).is_ok_and(|e| e <= now);
        let state = if !s(t, "/revokedAt").is_empty() {
            "revoked"
        } else if expired {
            "expired"
        } else {
            "active"
        };
        rows.push(vec![
            s(t, "/id"),
            grants_text(t),
            s(t, "/description"),
            s(t, "/createdAt"),
            s(t, "/createdBy"),
            s(t, "/expiresAt"),
            state.to_string(),
        ]);
    }
    table(&rows);
    Ok(Exit::Ok)
}

pub async fn revoke_token(client: &Client, id: &str) -> CliResult {
    let revoked = client
        .send(reqwest::Method::DELETE, &format!("/tokens/{id}"), None)
        .await?;
    println!(
        "token {} revoked at {}",
        s(&revoked, "/id"),
        s(&revoked, "/revokedAt")
    );
    Ok(Exit::Ok)
}

pub async fn whoami(client: &Client, output: Output) -> CliResult {
    let me = client.get("/whoami").await?;
    if output == Output::Table {
        println!("{} {}", s(&me, "/tokenId"), grants_text(&me));
    } else {
        print_value(&me, output);
    }
    Ok(Exit::Ok)
}

pub async fn get_policy(client: &Client, namespace: &str, output: Output) -> CliResult {
    let policy = client
        .get(&format!("/namespaces/{namespace}/policy"))
        .await?;
    print_value(
        &policy,
        if output == Output::Json {
            output
        } else {
            Output::Yaml
        },
    );
    Ok(Exit::Ok)
}

/// `wharf policy set -n NS -f FILE`: replaces the namespace's override (YAML or JSON).
pub async fn set_policy(client: &Client, namespace: &str, file: &Path) -> CliResult {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CliError::new(
            Exit::Failure,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let policy: crate::policy::Policy = crate::spec::parse::from_yaml(&text)
        .map_err(|e| CliError::new(Exit::Invalid, format!("{}: {e}", file.display())))?;
    policy
        .validate()
        .map_err(|e| CliError::new(Exit::Invalid, format!("{}: {e}", file.display())))?;
    let body =
        serde_json::to_value(&policy).map_err(|e| CliError::new(Exit::Failure, e.to_string()))?;
    client
        .send(
            reqwest::Method::PUT,
            &format!("/namespaces/{namespace}/policy"),
            Some(body),
        )
        .await?;
    println!("policy of namespace {namespace} set");
    Ok(Exit::Ok)
}

pub async fn delete_policy(client: &Client, namespace: &str) -> CliResult {
    client
        .send(
            reqwest::Method::DELETE,
            &format!("/namespaces/{namespace}/policy"),
            None,
        )
        .await?;
    println!("policy override of namespace {namespace} removed; the server's flags hold");
    Ok(Exit::Ok)
}

pub async fn audit(
    client: &Client,
    token: Option<&str>,
    namespace: Option<&str>,
    since: Option<&str>,
    limit: u32,
    output: Output,
) -> CliResult {
    let mut query = vec![format!("limit={limit}")];
    for (k, v) in [("token", token), ("namespace", namespace), ("since", since)] {
        if let Some(v) = v {
            query.push(format!("{k}={}", urlencode(v)));
        }
    }
    let list = client.get(&format!("/audit?{}", query.join("&"))).await?;
    if output != Output::Table {
        print_value(&list, output);
        return Ok(Exit::Ok);
    }
    let mut rows = vec![
        ["TIME", "TOKEN", "METHOD", "PATH", "STATUS", "RESULT"]
            .map(String::from)
            .to_vec(),
    ];
    for e in list["items"].as_array().into_iter().flatten() {
        rows.push(vec![
            s(e, "/time"),
            s(e, "/tokenId"),
            s(e, "/method"),
            s(e, "/path"),
            s(e, "/status"),
            s(e, "/result"),
        ]);
    }
    table(&rows);
    Ok(Exit::Ok)
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `wharf images request REF [--reason TEXT]`.
pub async fn request_image(client: &Client, reference: &str, reason: &str) -> CliResult {
    let r = client
        .post(
            "/image-requests",
            Some(json!({ "ref": reference, "reason": reason })),
        )
        .await?;
    match s(&r, "/state").as_str() {
        "Approved" if r.get("id").is_none() => {
            println!(
                "{} is already approved (Image {})",
                s(&r, "/ref"),
                s(&r, "/image")
            )
        }
        state => println!(
            "image request {} for {}: {state}",
            s(&r, "/id"),
            s(&r, "/ref")
        ),
    }
    Ok(Exit::Ok)
}

pub async fn list_requests(client: &Client, state: Option<&str>, output: Output) -> CliResult {
    let path = match state {
        Some(st) => format!("/image-requests?state={}", urlencode(st)),
        None => "/image-requests".to_string(),
    };
    let list = client.get(&path).await?;
    if output != Output::Table {
        print_value(&list, output);
        return Ok(Exit::Ok);
    }
    let mut rows = vec![
        [
            "ID",
            "REF",
            "STATE",
            "BY",
            "REQUESTED",
            "DECIDED BY",
            "REASON",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for r in list["items"].as_array().into_iter().flatten() {
        let reason = match s(r, "/message") {
            m if m.is_empty() => s(r, "/reason"),
            m => format!("{} — {m}", s(r, "/reason")),
        };
        rows.push(vec![
            s(r, "/id"),
            s(r, "/ref"),
            s(r, "/state"),
            s(r, "/requestedBy"),
            s(r, "/requestedAt"),
            s(r, "/decidedBy"),
            reason,
        ]);
    }
    table(&rows);
    Ok(Exit::Ok)
}

pub async fn decide(client: &Client, id: &str, approve: bool, message: &str) -> CliResult {
    let (verb, body) = if approve {
        ("approve", None)
    } else {
        ("reject", Some(json!({ "message": message })))
    };
    let r = client
        .post(&format!("/image-requests/{id}/{verb}"), body)
        .await?;
    if approve {
        println!(
            "approved {} (Image {}); apps waiting for it proceed",
            s(&r, "/ref"),
            s(&r, "/image")
        );
    } else {
        println!("rejected {}", s(&r, "/ref"));
    }
    Ok(Exit::Ok)
}
