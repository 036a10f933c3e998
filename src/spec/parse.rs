//! Reading documents: multi-document YAML (`---`) or JSON (an object or an array of objects)
//! into wire documents, every failure located by file, document, line, column and field path.
//!
//! A bundle is all-or-nothing: callers get every document or the list of every error.

// Errors are the cold path and carry everything a user needs to find the problem.
#![allow(clippy::result_large_err)]

use serde::Deserialize;

use super::image::ImageDocument;
use super::node::NodeDocument;
use super::wire::AppDocument;
use super::{Document, Kind, SpecError};

/// Which syntax to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// Picks JSON for `.json` files, YAML otherwise.
    pub fn for_path(path: &std::path::Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Yaml,
        }
    }
}

/// One document read from an input, with where it started.
#[derive(Clone, Debug)]
pub struct Parsed {
    /// 1-based position of the document in its input.
    pub index: usize,
    /// 1-based line of the document's first line (YAML); 1 for JSON.
    pub line: u64,
    pub document: Document,
}

/// Largest document wharf reads; larger ones are refused before parsing.
pub const MAX_INPUT_BYTES: usize = 4 << 20;

/// Reads every document of `text`. `file` only labels errors.
pub fn parse_documents(
    text: &str,
    format: Format,
    file: Option<&str>,
) -> Result<Vec<Parsed>, Vec<SpecError>> {
    let located = |mut e: SpecError| {
        e.file = file.map(str::to_string);
        e
    };
    if text.len() > MAX_INPUT_BYTES {
        return Err(vec![located(SpecError::message(format!(
            "input is {} bytes; the limit is {MAX_INPUT_BYTES}",
            text.len()
        )))]);
    }
    let result = match format {
        Format::Yaml => parse_yaml(text),
        Format::Json => parse_json(text),
    };
    result.map_err(|errors| errors.into_iter().map(located).collect())
}

/// Splits a YAML stream at document markers, keeping each document's first line number so
/// errors point into the whole input. A `---` at column 0 always starts a document in YAML,
/// even inside a block scalar, so a line split is exact for what wharf reads.
fn split_yaml(text: &str) -> Vec<(u64, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1u64;
    for (i, line) in text.lines().enumerate() {
        let number = i as u64 + 1;
        let marker = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        let end = line == "..." || line.starts_with("... ");
        if marker || end {
            docs.push((start, std::mem::take(&mut current)));
            start = number;
            if marker {
                // Keep the line (blanked) so columns and line numbers stay true.
                let rest = &line[3..];
                current.push_str("   ");
                current.push_str(rest);
            }
            current.push('\n');
            if end {
                start = number + 1;
                current.clear();
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    docs.push((start, current));
    docs.retain(|(_, d)| !is_blank_yaml(d));
    docs
}

fn is_blank_yaml(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

#[derive(Deserialize)]
struct KindProbe {
    kind: Option<serde_json::Value>,
}

/// Deepest nesting of maps and lists wharf reads; specs need far fewer levels.
pub const MAX_DEPTH: usize = 32;
/// Longest single string wharf reads (an env value holding a certificate fits easily).
pub const MAX_STRING_BYTES: usize = 64 << 10;

/// YAML limits: alias expansion (billion-laughs documents), nesting, node count and scalar
/// bytes are capped, so hostile input fails fast with an error instead of eating the server.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_nodes = 100_000;
    budget.max_documents = 1_000;
    budget.max_total_scalar_bytes = MAX_INPUT_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 100_000;
    options
}

/// Refuses strings longer than `MAX_STRING_BYTES`, naming the field.
fn check_sizes(value: &serde_json::Value, path: &mut String) -> Result<(), SpecError> {
    match value {
        serde_json::Value::String(s) if s.len() > MAX_STRING_BYTES => Err(SpecError::field(
            path.trim_start_matches('.').to_string(),
            format!(
                "a string of {} bytes; the limit is {MAX_STRING_BYTES}",
                s.len()
            ),
        )),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                check_sizes(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if k.len() > MAX_STRING_BYTES {
                    return Err(SpecError::field(
                        path.trim_start_matches('.').to_string(),
                        format!(
                            "a key of {} bytes; the limit is {MAX_STRING_BYTES}",
                            k.len()
                        ),
                    ));
                }
                let len = path.len();
                path.push('.');
                path.push_str(k);
                check_sizes(v, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// JSON into a value, refusing duplicate keys (serde_json keeps the last one silently) and
/// nesting deeper than `MAX_DEPTH`.
pub fn json_value(text: &str) -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_str::<Strict>(text).map(|s| s.0)
}

struct Strict(serde_json::Value);

thread_local! {
    static DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts nesting while a container is read.
struct Nested;

impl Nested {
    fn enter<E: serde::de::Error>() -> Result<Nested, E> {
        let depth = DEPTH.with(|d| {
            d.set(d.get() + 1);
            d.get()
        });
        if depth > MAX_DEPTH {
            DEPTH.with(|d| d.set(d.get() - 1));
            return Err(E::custom(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(Nested)
    }
}

impl Drop for Nested {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let _depth = Nested::enter()?;
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(serde_json::Value::Array(out))
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let _depth = Nested::enter()?;
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(serde_json::Value::Object(out))
    }
}

/// Reads one YAML document of any type with the same limits as specs (alias expansion,
/// nesting depth, duplicate keys).
pub fn from_yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(format!(
            "input is {} bytes; the limit is {MAX_INPUT_BYTES}",
            text.len()
        ));
    }
    serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| saphyr_error(&e, None).to_string())
}

fn parse_yaml(text: &str) -> Result<Vec<Parsed>, Vec<SpecError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, (first_line, doc)) in split_yaml(text).into_iter().enumerate() {
        let index = i + 1;
        // Line numbers inside `doc` count from the document's first line.
        let offset = first_line - 1;
        match parse_yaml_document(&doc) {
            Ok(document) => out.push(Parsed {
                index,
                line: first_line,
                document,
            }),
            Err(mut e) => {
                e.document = Some(index);
                e.line = e.line.map(|l| l + offset).or(Some(first_line));
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn parse_yaml_document(doc: &str) -> Result<Document, SpecError> {
    let probe: KindProbe = serde_saphyr::from_str_with_options(doc, yaml_options())
        .map_err(|e| saphyr_error(&e, None))?;
    let document = match kind_of(&probe)? {
        Kind::App => yaml_as::<AppDocument>(doc).map(Document::App),
        Kind::Image => yaml_as::<ImageDocument>(doc).map(Document::Image),
        Kind::Node => yaml_as::<NodeDocument>(doc).map(Document::Node),
    }?;
    check_sizes(&document.to_value(), &mut String::new())?;
    Ok(document)
}

fn yaml_as<T: serde::de::DeserializeOwned>(doc: &str) -> Result<T, SpecError> {
    let mut path = None;
    serde_saphyr::with_deserializer_from_str_with_options(doc, yaml_options(), |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            path = Some(e.path().to_string());
            e.into_inner()
        })
    })
    .map_err(|e| saphyr_error(&e, path))
}

const KNOWN_KINDS: &str = "this wharf knows: App, Image, Node";

fn kind_of(probe: &KindProbe) -> Result<Kind, SpecError> {
    match probe.kind.as_ref().and_then(|k| k.as_str()) {
        Some(kind) => Kind::parse(kind).ok_or_else(|| {
            SpecError::field("kind", format!("unknown kind {kind:?} ({KNOWN_KINDS})"))
        }),
        None => Err(SpecError::field(
            "kind",
            format!("missing field `kind` ({KNOWN_KINDS})"),
        )),
    }
}

fn saphyr_error(e: &serde_saphyr::Error, path: Option<String>) -> SpecError {
    let location = e.location();
    let mut message = e.without_snippet().to_string();
    // The rendered message ends with " at line L, column C"; the location is kept separately.
    if let Some(at) = message.rfind(" at line ") {
        message.truncate(at);
    }
    if let Some(rest) = message.strip_prefix("error: ") {
        message = rest.to_string();
    }
    SpecError {
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        field: path.filter(|p| !p.is_empty() && p != "."),
        message,
        ..SpecError::default()
    }
}

fn parse_json(text: &str) -> Result<Vec<Parsed>, Vec<SpecError>> {
    let value: serde_json::Value = json_value(text).map_err(|e| {
        vec![SpecError {
            line: Some(e.line() as u64),
            column: Some(e.column() as u64),
            message: e.to_string(),
            ..SpecError::default()
        }]
    })?;
    let values = match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    parse_values(values)
}

/// Reads documents that are already JSON values (the API's JSON bodies).
pub fn parse_values(values: Vec<serde_json::Value>) -> Result<Vec<Parsed>, Vec<SpecError>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let index = i + 1;
        match parse_json_document(value) {
            Ok(document) => out.push(Parsed {
                index,
                line: 1,
                document,
            }),
            Err(mut e) => {
                e.document = Some(index);
                errors.push(e);
            }
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn parse_json_document(value: serde_json::Value) -> Result<Document, SpecError> {
    if !value.is_object() {
        return Err(SpecError::message("a document must be a JSON object"));
    }
    check_sizes(&value, &mut String::new())?;
    let probe = KindProbe {
        kind: value.get("kind").cloned(),
    };
    match kind_of(&probe)? {
        Kind::App => json_as::<AppDocument>(value).map(Document::App),
        Kind::Image => json_as::<ImageDocument>(value).map(Document::Image),
        Kind::Node => json_as::<NodeDocument>(value).map(Document::Node),
    }
}

fn json_as<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, SpecError> {
    serde_path_to_error::deserialize::<_, T>(value).map_err(|e| SpecError {
        field: Some(e.path().to_string()).filter(|p| p != "."),
        message: e.inner().to_string(),
        ..SpecError::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str =
        "apiVersion: wharf/v1\nkind: App\nmetadata:\n  name: web\nspec:\n  image: busybox\n";

    #[test]
    fn multi_document_yaml_keeps_line_numbers() {
        let text =
            format!("# leading comment\n---\n{APP}---\n{APP}  resources:\n    memory: lots\n");
        let errors = parse_documents(&text, Format::Yaml, Some("specs/a.yaml")).unwrap_err();
        assert_eq!(errors.len(), 1);
        let e = &errors[0];
        assert_eq!(e.file.as_deref(), Some("specs/a.yaml"));
        assert_eq!(e.document, Some(2));
        assert_eq!(e.line, Some(17));
        assert_eq!(e.field.as_deref(), Some("spec.resources.memory"));
        assert!(
            e.message.contains("invalid quantity \"lots\""),
            "{}",
            e.message
        );
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let text = format!("{APP}  imagePullPolicy: Always\n");
        let errors = parse_documents(&text, Format::Yaml, None).unwrap_err();
        assert_eq!(errors[0].field.as_deref(), Some("spec.imagePullPolicy"));
        assert_eq!(errors[0].line, Some(7));
        assert!(errors[0].message.contains("unknown field"));
    }

    #[test]
    fn unknown_kind_is_refused() {
        let errors =
            parse_documents("apiVersion: wharf/v1\nkind: Pod\n", Format::Yaml, None).unwrap_err();
        assert!(errors[0].message.contains("unknown kind \"Pod\""));
    }

    #[test]
    fn broken_yaml_reports_a_position() {
        let errors = parse_documents("kind: App\nmetadata: [a\n", Format::Yaml, None).unwrap_err();
        assert!(errors[0].line.is_some());
    }

    #[test]
    fn json_arrays_and_objects_are_read() {
        let one = r#"{"apiVersion":"wharf/v1","kind":"App","metadata":{"name":"a"},"spec":{"image":"x"}}"#;
        assert_eq!(parse_documents(one, Format::Json, None).unwrap().len(), 1);
        let two = format!("[{one},{one}]");
        assert_eq!(parse_documents(&two, Format::Json, None).unwrap().len(), 2);
        let bad = r#"[{"apiVersion":"wharf/v1","kind":"App","metadata":{"name":"a"},"spec":{"image":"x","ports":["x"]}}]"#;
        let errors = parse_documents(bad, Format::Json, None).unwrap_err();
        assert_eq!(errors[0].field.as_deref(), Some("spec.ports[0]"));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let text = format!("{APP}  image: other\n");
        assert!(parse_documents(&text, Format::Yaml, None).is_err());
    }

    #[test]
    fn empty_documents_are_skipped() {
        let text = format!("---\n# nothing\n---\n{APP}---\n");
        assert_eq!(parse_documents(&text, Format::Yaml, None).unwrap().len(), 1);
    }
}
