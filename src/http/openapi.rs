//! The OpenAPI 3.1 document (`GET /api/v1/openapi.json`, `schemas/openapi.json`), generated from
//! the route table: each route's [`Op`] names the Rust types its handler reads and answers with,
//! and their JSON Schemas come from the same `schemars` derives as `schemas/*.json`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use axum::http::Method;
use schemars::generate::{Contract, SchemaSettings};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::{Map, Value, json};

use super::error::ErrorBody;
use crate::auth::Need;
use crate::spec::{AppDocument, ImageDocument, NodeDocument};

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// A query string's type, whose properties become the operation's query parameters.
fn inline_schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// One answer of an operation.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    description: &'static str,
    /// Media type and the body's schema (none: an empty body).
    content: Option<(&'static str, Option<SchemaFn>)>,
}

/// A request body: its media types (every one takes the same schema) and an example.
#[derive(Clone, Debug)]
struct RequestBody {
    media: &'static [&'static str],
    schema: Option<SchemaFn>,
    required: bool,
    example: Option<&'static str>,
}

/// What the document says of one route: set next to the route in the route table.
#[derive(Clone, Debug)]
pub struct Op {
    id: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    tag: &'static str,
    query: Option<SchemaFn>,
    body: Option<RequestBody>,
    answers: Vec<Answer>,
    errors: Vec<u16>,
}

impl Op {
    /// `id` is the operationId (camelCase); `tag` groups operations (Apps, Images, …).
    pub fn new(id: &'static str, tag: &'static str, summary: &'static str) -> Self {
        Self {
            id,
            summary,
            description: None,
            tag,
            query: None,
            body: None,
            answers: Vec::new(),
            errors: Vec::new(),
        }
    }

    pub fn describe(mut self, description: &'static str) -> Self {
        self.description = Some(description);
        self
    }

    /// The query string, read into `Q`.
    pub fn query<Q: JsonSchema>(mut self) -> Self {
        self.query = Some(inline_schema_of::<Q>);
        self
    }

    /// A JSON body read into `T`.
    pub fn json_body<T: JsonSchema>(mut self, required: bool) -> Self {
        self.body = Some(RequestBody {
            media: &["application/json"],
            schema: Some(schema_of::<T>),
            required,
            example: None,
        });
        self
    }

    /// A body of `T`, as YAML or JSON (the Content-Type says which; YAML by default).
    pub fn documents<T: JsonSchema>(mut self, example: &'static str) -> Self {
        self.body = Some(RequestBody {
            media: &["application/yaml", "application/json"],
            schema: Some(schema_of::<T>),
            required: true,
            example: Some(example),
        });
        self
    }

    /// A JSON merge patch (RFC 7396) of `T`.
    pub fn merge_patch<T: JsonSchema>(mut self, example: &'static str) -> Self {
        self.body = Some(RequestBody {
            media: &["application/merge-patch+json", "application/json"],
            schema: Some(schema_of::<T>),
            required: true,
            example: Some(example),
        });
        self
    }

    /// Answers `status` with a JSON `T`.
    pub fn answers<T: JsonSchema>(mut self, status: u16, description: &'static str) -> Self {
        self.answers.push(Answer {
            status,
            description,
            content: Some(("application/json", Some(schema_of::<T>))),
        });
        self
    }

    /// 200 with a JSON `T`.
    pub fn ok<T: JsonSchema>(self, description: &'static str) -> Self {
        self.answers::<T>(200, description)
    }

    /// 200 with a stream of server-sent events, each event's `data:` a JSON `T`.
    pub fn streams<T: JsonSchema>(mut self, description: &'static str) -> Self {
        self.answers.push(Answer {
            status: 200,
            description,
            content: Some(("text/event-stream", Some(schema_of::<T>))),
        });
        self
    }

    /// Answers `status` with a body of `media` that is not JSON (text, a stream, an upgrade).
    pub fn answers_raw(
        mut self,
        status: u16,
        media: Option<&'static str>,
        description: &'static str,
    ) -> Self {
        self.answers.push(Answer {
            status,
            description,
            content: media.map(|m| (m, None)),
        });
        self
    }

    /// The errors (beyond those of authentication and authorisation) the route may answer.
    pub fn errors(mut self, statuses: &[u16]) -> Self {
        self.errors.extend_from_slice(statuses);
        self
    }
}

/// Every error status the API uses: its reason and what it means (the components' responses).
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "The request is malformed: a query parameter, a path segment or the body.",
    ),
    (
        401,
        "Unauthorized",
        "No bearer token, or one that is unknown, revoked or expired.",
    ),
    (
        403,
        "Forbidden",
        "The token's role does not allow this. Also PolicyViolation: the namespace's policy forbids a field.",
    ),
    (404, "NotFound", "No such object (or no such route)."),
    (
        405,
        "MethodNotAllowed",
        "The route does not take this method.",
    ),
    (
        409,
        "Conflict",
        "The request conflicts with the object's state: resourceVersion changed, or reasons InvalidTransition, Busy, ImageInUse, SoloMode.",
    ),
    (
        412,
        "PreconditionFailed",
        "If-Match names a version that is not the current one.",
    ),
    (
        413,
        "RequestEntityTooLarge",
        "The body is larger than the server's limit (--max-body).",
    ),
    (
        422,
        "Invalid",
        "A document is invalid: details.causes names each document, line and field. Also QuotaExceeded (a namespace's quota), GitNotAvailable (no git in the container).",
    ),
    (
        502,
        "DockerError",
        "The engine refused or failed the operation. Also ImagePullFailed, ActionFailed.",
    ),
    (
        503,
        "DockerUnavailable",
        "The engine does not answer. Also DatabaseUnavailable (the database does not answer; nothing was written), EngineUnavailable (a dry run cannot observe it), AgentUnavailable (swarm mode: a node without its agent), NotLeader (an action on an instance that has not been able to reach the leader).",
    ),
    (
        507,
        "InsufficientStorage",
        "The data directory's file system is full; nothing was written.",
    ),
];

fn error_name(status: u16) -> &'static str {
    ERRORS
        .iter()
        .find(|(s, _, _)| *s == status)
        .map_or("Error", |(_, reason, _)| reason)
}

/// The statuses a route's need adds: 401 without a valid token, 403 for a token that may not
/// (an agent's token may only connect; the others' roles and namespaces), and 503 when the
/// database that holds the tokens does not answer.
fn need_errors(_: Need) -> &'static [u16] {
    &[401, 403, 503]
}

/// `x-wharf-need`: what the caller's token needs, as machine-readable fields.
fn need_value(need: Need) -> Value {
    match need {
        Need::Token => json!({ "token": true }),
        Need::Agent => json!({ "role": "agent" }),
        Need::Somewhere(role) => json!({ "role": role, "scope": "someNamespace" }),
        Need::Namespace(role) => json!({ "role": role, "scope": "pathNamespace" }),
        Need::Everywhere(role) => json!({ "role": role, "scope": "everyNamespace" }),
    }
}

fn path_parameter(name: &str) -> Value {
    let description = match name {
        "ns" => "The namespace.",
        "name" => "The object's name (an image's name is its reference, URL-encoded).",
        "node" => "The node's id or hostname.",
        "id" => "The identifier.",
        "op" => "The git operation: pull, checkout or status.",
        _ => "A path segment.",
    };
    json!({
        "name": name,
        "in": "path",
        "required": true,
        "description": description,
        "schema": { "type": "string" },
    })
}

fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.split('}').next())
        .map(path_parameter)
        .collect()
}

/// The query parameters of `schema` (an object schema of the query string's type).
fn query_parameters(schema: &Schema) -> Vec<Value> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut property = property.clone();
            // A parameter left out is absent, never null.
            if let Some(types) = property.get_mut("type").and_then(Value::as_array_mut) {
                types.retain(|t| t != "null");
                if let [one] = types.as_slice() {
                    property["type"] = one.clone();
                }
            }
            let description = property
                .as_object_mut()
                .and_then(|p| p.remove("description"));
            let mut parameter = json!({
                "name": name,
                "in": "query",
                "required": required.contains(&name.as_str()),
                "schema": property,
            });
            if let Some(d) = description {
                parameter["description"] = d;
            }
            parameter
        })
        .collect()
}

/// A route outside the table (health, metrics, the webhook, this document) or in it.
pub struct Documented {
    pub method: Method,
    /// The whole path (`/api/v1/...`, `/metrics`, `/healthz`).
    pub path: String,
    /// None: no token at all.
    pub need: Option<Need>,
    pub op: Op,
}

/// A document of any kind `POST /api/v1/apply` takes. A YAML stream holds several, separated
/// by `---`; JSON holds one, an array of them, or a `List` with `items`. (Only its schema is
/// used: the handler parses and validates the documents itself, to report lines.)
pub struct AnyDocument;

impl JsonSchema for AnyDocument {
    fn schema_name() -> Cow<'static, str> {
        "AnyDocument".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An App, Image or Node document.",
            "anyOf": [
                generator.subschema_for::<AppDocument>(),
                generator.subschema_for::<ImageDocument>(),
                generator.subschema_for::<NodeDocument>(),
            ],
        })
    }
}

/// Any JSON value (a merge patch, a forge's webhook payload, this document).
pub struct AnyJson;

impl JsonSchema for AnyJson {
    fn schema_name() -> Cow<'static, str> {
        "AnyJson".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "description": "Any JSON value." })
    }
}

/// An object as Docker's Engine API answers it (inspect), passed on as it is.
pub struct EngineObject;

impl JsonSchema for EngineObject {
    fn schema_name() -> Cow<'static, str> {
        "EngineObject".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An object as Docker's Engine API answers it, passed on as it is.",
            "type": "object",
        })
    }
}

struct Generators {
    /// Answers: fields skipped when empty are optional.
    answers: SchemaGenerator,
    /// Requests: fields with defaults are optional.
    requests: SchemaGenerator,
}

fn settings(contract: Contract) -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
        s.contract = contract;
    })
}

fn operation(documented: &Documented, generators: &mut Generators) -> Value {
    let op = &documented.op;
    let mut parameters = path_parameters(&documented.path);
    if let Some(query) = op.query {
        parameters.extend(query_parameters(&query(&mut generators.requests)));
    }
    let mut responses = Map::new();
    for answer in &op.answers {
        let mut response = json!({ "description": answer.description });
        if let Some((media, schema)) = answer.content {
            let schema = schema.map_or(json!({}), |s| s(&mut generators.answers).to_value());
            response["content"] = json!({ media: { "schema": schema } });
        }
        responses.insert(answer.status.to_string(), response);
    }
    let auth = documented.need.map_or(&[][..], need_errors);
    let mut errors: Vec<u16> = auth.iter().chain(&op.errors).copied().collect();
    errors.sort_unstable();
    errors.dedup();
    for status in errors {
        responses.insert(
            status.to_string(),
            json!({ "$ref": format!("#/components/responses/{}", error_name(status)) }),
        );
    }
    let mut operation = json!({
        "operationId": op.id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    });
    let mut description = op.description.unwrap_or_default().to_string();
    match documented.need {
        Some(need) => {
            if !description.is_empty() {
                description.push_str("\n\n");
            }
            description.push_str(&format!("Needs: {need}."));
            operation["security"] = json!([{ "bearer": [] }]);
            operation["x-wharf-need"] = need_value(need);
        }
        None => operation["security"] = json!([]),
    }
    if !description.is_empty() {
        operation["description"] = json!(description);
    }
    if !parameters.is_empty() {
        operation["parameters"] = json!(parameters);
    }
    if let Some(body) = &op.body {
        let schema = body
            .schema
            .map_or(json!({}), |s| s(&mut generators.requests).to_value());
        let mut content = Map::new();
        for media in body.media {
            let mut entry = json!({ "schema": schema });
            if let Some(example) = body.example {
                // The JSON media types show the YAML example as JSON.
                entry["example"] = if media.contains("json") {
                    serde_saphyr::from_str::<Value>(example).unwrap_or_else(|_| json!(example))
                } else {
                    json!(example)
                };
            }
            content.insert(media.to_string(), entry);
        }
        operation["requestBody"] = json!({ "required": body.required, "content": content });
    }
    operation
}

/// The component responses of the errors: the error shape with an example each.
fn error_responses(generators: &mut Generators) -> Map<String, Value> {
    let schema = generators.answers.subschema_for::<ErrorBody>().to_value();
    ERRORS
        .iter()
        .map(|(status, reason, description)| {
            let example = json!({ "code": status, "reason": reason, "message": description });
            (
                reason.to_string(),
                json!({
                    "description": description,
                    "content": { "application/json": { "schema": schema, "example": example } },
                }),
            )
        })
        .collect()
}

/// Merges the request generator's definitions into the answers': a type the two contracts
/// describe differently keeps both, the request's under `<Name>Input` (its references follow).
fn merge_definitions(generators: &mut Generators) -> (Map<String, Value>, Vec<String>) {
    let mut schemas = generators.answers.take_definitions(true);
    let requests = generators.requests.take_definitions(true);
    let renamed: Vec<String> = requests
        .iter()
        .filter(|(name, schema)| schemas.get(*name).is_some_and(|s| s != *schema))
        .map(|(name, _)| name.clone())
        .collect();
    for (name, mut schema) in requests {
        rename_refs(&mut schema, &renamed);
        let name = if renamed.contains(&name) {
            format!("{name}Input")
        } else {
            name
        };
        schemas.insert(name, schema);
    }
    (schemas, renamed)
}

fn rename_refs(value: &mut Value, renamed: &[String]) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref"
                    && let Some(target) = v.as_str()
                    && let Some(name) = target.strip_prefix("#/components/schemas/")
                    && renamed.iter().any(|r| r == name)
                {
                    *v = json!(format!("{target}Input"));
                } else {
                    rename_refs(v, renamed);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rename_refs(v, renamed)),
        _ => {}
    }
}

/// Request schemas reference request definitions: after merging, those the answers' contract
/// also has under the same name were renamed, so the operations' request bodies follow.
fn rename_request_refs(paths: &mut Value, renamed: &[String]) {
    if let Some(paths) = paths.as_object_mut() {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut() {
                for key in ["requestBody", "parameters"] {
                    if let Some(part) = op.get_mut(key) {
                        rename_refs(part, renamed);
                    }
                }
            }
        }
    }
}

/// The whole document, of `documented` (every route).
pub fn document(documented: &[Documented]) -> Value {
    let mut generators = Generators {
        answers: settings(Contract::Serialize).into_generator(),
        requests: settings(Contract::Deserialize).into_generator(),
    };
    let mut paths: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    for d in documented {
        let operation = operation(d, &mut generators);
        paths
            .entry(d.path.clone())
            .or_default()
            .insert(d.method.as_str().to_ascii_lowercase(), operation);
    }
    let responses = error_responses(&mut generators);
    let (schemas, renamed) = merge_definitions(&mut generators);
    let mut paths = json!(paths);
    rename_request_refs(&mut paths, &renamed);
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "wharf",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "wharf's REST API: declared apps and images reconciled with a Docker Engine. Every error answers {code, reason, message, details}; every route but the health checks, the git webhook and this document needs a bearer token (`Authorization: Bearer …`).",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "servers": [{ "url": "http://127.0.0.1:7999", "description": "wharf serve's default address" }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A wharf token: the admin token in DATA/admin.token, or one `wharf token create` made.",
                },
            },
        },
    })
}
