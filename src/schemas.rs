//! The JSON Schemas wharf publishes (`schemas/*.json`, `wharf schema`) and the API's OpenAPI
//! document: generated from the wire types, committed, and checked for staleness by the tests.

use crate::policy::Policy;
use crate::spec::{AppDocument, ImageDocument, NodeDocument};

/// Every published schema, by file name under `schemas/`, as pretty JSON with a final newline.
pub fn published() -> Result<Vec<(&'static str, String)>, serde_json::Error> {
    let text = |schema: schemars::Schema| -> Result<String, serde_json::Error> {
        Ok(serde_json::to_string_pretty(&schema)? + "\n")
    };
    Ok(vec![
        ("app.json", text(schemars::schema_for!(AppDocument))?),
        ("image.json", text(schemars::schema_for!(ImageDocument))?),
        ("node.json", text(schemars::schema_for!(NodeDocument))?),
        ("policy.json", text(schemars::schema_for!(Policy))?),
        (
            "openapi.json",
            serde_json::to_string_pretty(&crate::http::routes::openapi_document())? + "\n",
        ),
    ])
}
