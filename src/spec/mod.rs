//! Specs: the documents users declare — wire types, parsing, validation, normalisation and
//! hashing. Pure: no I/O besides what callers hand in as text, no clock, no Docker.
//!
//! - `wire`: serde/schemars types as written (`AppDocument`).
//! - `image`: the `Image` kind, wire and validation (`ImageDocument` → `ImageSpec`).
//! - `parse`: YAML (multi-document) and JSON into wire documents, with locations.
//! - `validate`: wire → domain (`AppSpec`), with every error located.
//! - `domain`: the validated types, split into recreate-class and update-class parts, hashed.
//! - `names`: the rules for names, label keys, host paths and capabilities.
//! - `quantity`: byte quantities and durations.
//! - `reference`: image references and ids as Docker reads them.
//! - `status`: the server-owned status of each kind (what the store keeps, the API shows).

pub mod domain;
pub mod image;
pub mod mode;
pub mod names;
pub mod node;
pub mod parse;
pub mod quantity;
pub mod reference;
pub mod status;
pub mod validate;
pub mod wire;

use schemars::JsonSchema;
use std::fmt;

use serde::Serialize;

pub use image::{ImageDocument, ImageSpec, validate_image};
pub use node::{NodeDocument, NodeSpec, validate_node};
pub use parse::{Format, Parsed, parse_documents, parse_values};
pub use validate::{AppKey, AppSpec, validate_app};
pub use wire::{AppDocument, ObjectMeta};

/// The kinds of object wharf stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
pub enum Kind {
    App,
    Image,
    /// Swarm mode: a node's declared availability and labels.
    Node,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::App => "App",
            Kind::Image => "Image",
            Kind::Node => "Node",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "App" => Some(Kind::App),
            "Image" => Some(Kind::Image),
            "Node" => Some(Kind::Node),
            _ => None,
        }
    }

    /// `App demo/web`, `Image nginx`.
    pub fn describe(self, key: &AppKey) -> String {
        format!("{} {key}", self.as_str())
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A document of any kind wharf knows.
// A bundle holds a handful of documents for the length of one request; boxing would only add
// indirection to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Document {
    App(AppDocument),
    Image(ImageDocument),
    Node(NodeDocument),
}

impl Document {
    pub fn kind(&self) -> Kind {
        match self {
            Document::App(_) => Kind::App,
            Document::Image(_) => Kind::Image,
            Document::Node(_) => Kind::Node,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Document::App(d) => &d.metadata,
            Document::Image(d) => &d.metadata,
            Document::Node(d) => &d.metadata,
        }
    }

    /// The spec as written, as JSON (what the store keeps).
    pub fn spec_value(&self) -> serde_json::Value {
        let spec = match self {
            Document::App(d) => serde_json::to_value(&d.spec),
            Document::Image(d) => serde_json::to_value(&d.spec),
            Document::Node(d) => serde_json::to_value(&d.spec),
        };
        spec.unwrap_or(serde_json::Value::Null)
    }

    /// The whole document as JSON.
    pub fn to_value(&self) -> serde_json::Value {
        let doc = match self {
            Document::App(d) => serde_json::to_value(d),
            Document::Image(d) => serde_json::to_value(d),
            Document::Node(d) => serde_json::to_value(d),
        };
        doc.unwrap_or(serde_json::Value::Null)
    }
}

/// The spec of a stored object, as written (its wire form).
#[allow(clippy::large_enum_variant)] // as for `Document`
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ObjectSpec {
    App(wire::AppSpec),
    Image(image::ImageSpecWire),
    Node(node::NodeSpecWire),
    /// Stored, but no longer readable as its kind's spec (another version of wharf wrote it):
    /// kept as it is; the loop leaves its object's containers alone until it is rewritten.
    Unreadable(serde_json::Value),
}

impl ObjectSpec {
    /// The spec a document declares.
    pub fn of(document: &Document) -> Self {
        match document {
            Document::App(d) => ObjectSpec::App(d.spec.clone()),
            Document::Image(d) => ObjectSpec::Image(d.spec.clone()),
            Document::Node(d) => ObjectSpec::Node(d.spec.clone()),
        }
    }

    /// Reads a stored spec of `kind`.
    pub fn read(kind: Kind, value: serde_json::Value) -> Self {
        let read = match kind {
            Kind::App => serde_json::from_value(value.clone()).map(ObjectSpec::App),
            Kind::Image => serde_json::from_value(value.clone()).map(ObjectSpec::Image),
            Kind::Node => serde_json::from_value(value.clone()).map(ObjectSpec::Node),
        };
        read.unwrap_or(ObjectSpec::Unreadable(value))
    }

    /// The App spec, when this is one.
    pub fn app(&self) -> Option<&wire::AppSpec> {
        match self {
            ObjectSpec::App(s) => Some(s),
            _ => None,
        }
    }
}

/// A validated object of any kind.
#[allow(clippy::large_enum_variant)] // as for `Document`
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    App(AppSpec),
    Image(ImageSpec),
    Node(NodeSpec),
}

impl Object {
    pub fn key(&self) -> &AppKey {
        match self {
            Object::App(a) => &a.key,
            Object::Image(i) => &i.key,
            Object::Node(n) => &n.key,
        }
    }
}

/// Validates one parsed document of any kind.
pub fn validate_document(document: &Document) -> Result<Object, Vec<SpecError>> {
    match document {
        Document::App(d) => validate_app(d).map(Object::App),
        Document::Image(d) => validate_image(d).map(Object::Image),
        Document::Node(d) => validate_node(d).map(Object::Node),
    }
}

/// One problem with an input, as precise as wharf can make it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SpecError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// 1-based index of the document in its input.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// `App demo/web`, once the document's identity is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u64>,
    /// Field path, e.g. `spec.resources.memory`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl SpecError {
    pub fn message(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
            ..Self::default()
        }
    }
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            wrote = true;
        }
        if let Some(line) = self.line {
            write!(f, "{}{line}", if wrote { ":" } else { "line " })?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
            wrote = true;
        }
        if wrote {
            f.write_str(": ")?;
        }
        match (&self.object, self.document) {
            (Some(o), _) => write!(f, "{o}: ")?,
            (None, Some(d)) => write!(f, "document {d}: ")?,
            _ => {}
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// A validated document with the wire form it came from.
#[derive(Clone, Debug)]
pub struct Validated {
    pub document: Document,
    pub object: Object,
    /// 1-based line where the document starts in its input.
    pub line: u64,
}

impl Validated {
    pub fn kind(&self) -> Kind {
        self.document.kind()
    }

    pub fn key(&self) -> &AppKey {
        self.object.key()
    }

    /// `App demo/web`, `Image nginx`.
    pub fn describe(&self) -> String {
        self.kind().describe(self.key())
    }

    pub fn app(&self) -> Option<&AppSpec> {
        match &self.object {
            Object::App(a) => Some(a),
            Object::Image(_) | Object::Node(_) => None,
        }
    }
}

/// Parses and validates a whole input: every document, or every error.
pub fn read_bundle(
    text: &str,
    format: Format,
    file: Option<&str>,
) -> Result<Vec<Validated>, Vec<SpecError>> {
    let parsed = parse_documents(text, format, file)?;
    validate_bundle(parsed, file)
}

/// Validates parsed documents; also refuses the same object declared twice in one input.
pub fn validate_bundle(
    parsed: Vec<Parsed>,
    file: Option<&str>,
) -> Result<Vec<Validated>, Vec<SpecError>> {
    let mut out: Vec<Validated> = Vec::new();
    let mut errors = Vec::new();
    for p in parsed {
        match validate_document(&p.document) {
            Ok(object) => {
                let kind = p.document.kind();
                if let Some(first) = out
                    .iter()
                    .find(|v| v.kind() == kind && v.key() == object.key())
                {
                    errors.push(SpecError {
                        file: file.map(str::to_string),
                        document: Some(p.index),
                        object: Some(kind.describe(object.key())),
                        line: Some(p.line),
                        message: format!("declared twice (first at line {})", first.line),
                        ..SpecError::default()
                    });
                    continue;
                }
                out.push(Validated {
                    document: p.document,
                    object,
                    line: p.line,
                })
            }
            Err(errs) => {
                let meta = p.document.metadata();
                let key = AppKey {
                    namespace: match p.document.kind() {
                        Kind::App => meta
                            .namespace
                            .as_deref()
                            .unwrap_or(validate::DEFAULT_NAMESPACE)
                            .to_string(),
                        Kind::Image | Kind::Node => String::new(),
                    },
                    name: meta.name.clone(),
                };
                let object = p.document.kind().describe(&key);
                errors.extend(errs.into_iter().map(|mut e| {
                    e.file = file.map(str::to_string);
                    e.document = Some(p.index);
                    e.object = Some(object.clone());
                    e.line = Some(p.line);
                    e
                }))
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}
