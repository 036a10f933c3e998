//! The one API error type: every failure answers `{code, reason, message, details}` with a
//! matching status. Internal detail is logged, never returned.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::json;

use crate::policy::ViolationKind;
use crate::runtime::RuntimeError;
use crate::spec::SpecError;
use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn unauthorized(why: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            format!(
                "{}; a valid bearer token is required (the admin token is in DATA/admin.token; `wharf token create` makes others)",
                why.into()
            ),
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn internal(context: &str, error: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {error}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            format!("{context} failed; the server log has the details"),
        )
    }

    /// An engine failure while doing `context`.
    pub fn runtime(context: &str, e: RuntimeError) -> Self {
        match e {
            RuntimeError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
            RuntimeError::NotFound(m) => ApiError::not_found(format!("{context}: {m}")),
            RuntimeError::Pull { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "ImagePullFailed", e.to_string())
            }
            RuntimeError::NotLeader(m) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "NotLeader",
                format!("{context}: {m}"),
            ),
            RuntimeError::Unavailable(_) | RuntimeError::Timeout { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DockerUnavailable",
                format!("{context}: {e}"),
            ),
            other => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "DockerError",
                format!("{context}: {other}"),
            ),
        }
    }

    /// 422 with every validation error, each naming its document, line and field.
    pub fn invalid(errors: Vec<SpecError>) -> Self {
        let summary = match errors.as_slice() {
            [one] => one.to_string(),
            many => format!("{} errors; the first: {}", many.len(), many[0]),
        };
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            reason: "Invalid",
            message: summary,
            details: Some(json!({ "causes": errors })),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
            StoreError::NotFound(m) => ApiError::not_found(format!("{m} not found")),
            StoreError::Invalid(errors) => ApiError::invalid(errors),
            StoreError::Policy { what, violation } => {
                let (status, reason) = match violation.kind {
                    ViolationKind::Forbidden => (StatusCode::FORBIDDEN, "PolicyViolation"),
                    ViolationKind::OverLimit => (StatusCode::UNPROCESSABLE_ENTITY, "QuotaExceeded"),
                };
                ApiError {
                    status,
                    reason,
                    message: format!("{what}: {violation}"),
                    details: Some(json!({
                        "rule": violation.rule,
                        "field": violation.field,
                        "object": what,
                    })),
                }
            }
            full if full.is_disk_full() => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "InsufficientStorage",
                "the data directory's file system is full: nothing was written (the request is rolled back whole); free space and send it again",
            ),
            down if down.is_unavailable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "DatabaseUnavailable",
                format!(
                    "the database does not answer ({down}): nothing was written; send the request again when it is back"
                ),
            ),
            other => ApiError::internal("the store", other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let note = format!("{}: {}", self.reason, self.message);
        let body = ErrorBody {
            code: self.status.as_u16(),
            reason: self.reason,
            message: self.message,
            details: self.details,
        };
        let mut response = (self.status, Json(body)).into_response();
        response
            .extensions_mut()
            .insert(super::audit::AuditNote(note));
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The one error shape every route answers with.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBody {
    /// The HTTP status.
    pub code: u16,
    /// A stable machine-readable reason (`NotFound`, `Invalid`, `Conflict`, …).
    pub reason: &'static str,
    pub message: String,
    /// Field causes of a 422, the rule of a policy refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}
