//! Request bodies: the size limit's answer, the format a body is in, and the documents it
//! holds, validated.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};

use super::error::{ApiError, ApiResult};
use crate::spec::{Format, SpecError, Validated, parse_documents, validate_bundle};
use crate::store::WriteItem;

/// The body, or 413 / 400 in the API's error shape.
pub fn body(bytes: Result<Bytes, BytesRejection>) -> ApiResult<Bytes> {
    bytes.map_err(|rejection| {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "RequestEntityTooLarge",
                "request body is larger than the server's limit (--max-body)",
            )
        } else {
            ApiError::bad_request(rejection.body_text())
        }
    })
}

/// The body as text, or 400.
pub fn text(bytes: &[u8]) -> ApiResult<&str> {
    std::str::from_utf8(bytes).map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))
}

pub fn body_format(headers: &HeaderMap) -> Format {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if json { Format::Json } else { Format::Yaml }
}

pub fn read_documents(headers: &HeaderMap, bytes: &[u8]) -> ApiResult<Vec<Validated>> {
    let parsed =
        parse_documents(text(bytes)?, body_format(headers), None).map_err(ApiError::invalid)?;
    if parsed.is_empty() {
        return Err(ApiError::invalid(vec![SpecError::message(
            "the body holds no document",
        )]));
    }
    validate_bundle(parsed, None).map_err(ApiError::invalid)
}

pub fn items(docs: &[Validated]) -> Vec<WriteItem> {
    docs.iter().map(WriteItem::new).collect()
}
