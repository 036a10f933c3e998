//! Every answer the API tests get is checked against wharf's OpenAPI document: its status is
//! one the operation declares, and a JSON body validates against the declared schema (an error
//! against the error shape). A route the document does not know answers 404 or 405 in the error
//! shape.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde_json::{Value, json};

struct Checker {
    document: Value,
    /// By `(method, path template, status)`.
    validators: Mutex<HashMap<(String, String, String), std::sync::Arc<jsonschema::Validator>>>,
}

fn checker() -> &'static Checker {
    static CHECKER: OnceLock<Checker> = OnceLock::new();
    CHECKER.get_or_init(|| Checker {
        document: wharf::http::routes::openapi_document(),
        validators: Mutex::new(HashMap::new()),
    })
}

/// The template of `path` (without its query string) among the document's paths: the one
/// that matches with the most literal segments.
fn template<'a>(paths: &'a serde_json::Map<String, Value>, path: &str) -> Option<&'a str> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    paths
        .keys()
        .filter_map(|t| {
            let parts: Vec<&str> = t.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (p, s) in parts.iter().zip(&segments) {
                if p.starts_with('{') {
                    if s.is_empty() {
                        return None;
                    }
                } else if p == s {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, t.as_str()))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, t)| t)
}

/// A schema that validates on its own: `schema` with the document's components at its root.
fn standalone(document: &Value, schema: &Value) -> Value {
    let mut root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [schema],
    });
    root["components"] = json!({ "schemas": document["components"]["schemas"] });
    root
}

fn error_schema(document: &Value) -> Value {
    document["components"]["responses"]["NotFound"]["content"]["application/json"]["schema"].clone()
}

fn validate(key: (String, String, String), schema: &Value, body: &Value, what: &str) {
    let c = checker();
    let validator = {
        let mut validators = c.validators.lock().expect("validators");
        validators
            .entry(key)
            .or_insert_with(|| {
                let root = standalone(&c.document, schema);
                std::sync::Arc::new(
                    jsonschema::validator_for(&root)
                        .unwrap_or_else(|e| panic!("{what}: the document's schema: {e}")),
                )
            })
            .clone()
    };
    let problems: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        problems.is_empty(),
        "{what}: the answer does not match the OpenAPI document:\n  {}\nbody: {body}",
        problems.join("\n  ")
    );
}

/// Checks one answer: `path` is what was asked (with `/api/v1`, maybe a query string).
pub fn check(method: &str, path: &str, status: u16, content_type: Option<&str>, body: &[u8]) {
    let c = checker();
    let what = format!("{method} {path} → {status}");
    let json_body = || -> Value {
        serde_json::from_slice(body).unwrap_or_else(|e| {
            panic!(
                "{what}: body is not JSON ({e}): {}",
                String::from_utf8_lossy(body)
            )
        })
    };
    let is_json = content_type.is_some_and(|t| t.starts_with("application/json"));
    let paths = c.document["paths"].as_object().expect("paths");
    let operation = template(paths, path).and_then(|t| {
        paths[t]
            .get(method.to_ascii_lowercase())
            .map(|op| (t.to_string(), op))
    });
    let Some((template, operation)) = operation else {
        assert!(
            status == 404 || status == 405,
            "{what}: the document has no such operation, yet the answer is not 404 or 405"
        );
        assert!(
            is_json,
            "{what}: an error answers JSON, not {content_type:?}"
        );
        let schema = error_schema(&c.document);
        validate(
            ("*".into(), "*".into(), "error".into()),
            &schema,
            &json_body(),
            &what,
        );
        return;
    };
    let Some(response) = operation["responses"].get(status.to_string()) else {
        panic!(
            "{what}: status {status} is not among the operation's responses ({:?})",
            operation["responses"]
                .as_object()
                .map(|r| r.keys().cloned().collect::<Vec<_>>())
        );
    };
    let response = match response.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap_or_default();
            &c.document["components"]["responses"][name]
        }
        None => response,
    };
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return;
    };
    let Some(schema) = content
        .get("application/json")
        .map(|media| &media["schema"])
    else {
        let declared: Vec<&String> = content.keys().collect();
        assert!(
            content_type.is_some_and(|t| declared
                .iter()
                .any(|d| t.starts_with(d.split(';').next().unwrap_or(d)))),
            "{what}: content type {content_type:?}, the document declares {declared:?}"
        );
        return;
    };
    assert!(
        is_json,
        "{what}: the document declares JSON, the answer is {content_type:?}"
    );
    validate(
        (method.into(), template, status.to_string()),
        schema,
        &json_body(),
        &what,
    );
}
