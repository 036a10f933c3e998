//! Specs: the documents users declare — wire types, parsing, validation, normalisation and
//! hashing. Pure: no I/O besides what callers hand in as text, no clock, no Docker.
//!
//! - `wire`: serde/schemars types as written (`AppDocument`).
//! - `parse`: YAML (multi-document) and JSON into wire documents, with locations.
//! - `validate`: wire → domain (`AppSpec`), split into recreate-class and update-class parts.
//! - `quantity`: byte quantities and durations.

pub mod parse;
pub mod quantity;
pub mod validate;
pub mod wire;

use std::fmt;

use serde::Serialize;

pub use parse::{Format, Parsed, parse_documents, parse_values};
pub use validate::{AppKey, AppSpec, validate_app};
pub use wire::AppDocument;

/// A document of any kind wharf knows.
#[derive(Clone, Debug, PartialEq)]
pub enum Document {
    App(AppDocument),
}

/// One problem with an input, as precise as wharf can make it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
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
    pub wire: AppDocument,
    pub app: AppSpec,
    /// 1-based line where the document starts in its input.
    pub line: u64,
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
        let Document::App(doc) = p.document;
        match validate_app(&doc) {
            Ok(app) => {
                if let Some(first) = out.iter().find(|v| v.app.key == app.key) {
                    errors.push(SpecError {
                        file: file.map(str::to_string),
                        document: Some(p.index),
                        object: Some(format!("App {}", app.key)),
                        line: Some(p.line),
                        message: format!("declared twice (first at line {})", first.line),
                        ..SpecError::default()
                    });
                    continue;
                }
                out.push(Validated {
                    wire: doc,
                    app,
                    line: p.line,
                })
            }
            Err(errs) => {
                let object = format!(
                    "App {}/{}",
                    doc.metadata
                        .namespace
                        .as_deref()
                        .unwrap_or(validate::DEFAULT_NAMESPACE),
                    doc.metadata.name
                );
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

/// The JSON Schemas wharf publishes, by file name under `schemas/`.
pub fn schemas() -> Vec<(&'static str, String)> {
    let app = schemars::schema_for!(AppDocument);
    let text = serde_json::to_string_pretty(&app).unwrap_or_default() + "\n";
    vec![("app.json", text)]
}
