//! `GET /api/v1/audit`: the audit log, newest first, filtered and paged.

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ApiResult};
use super::extract::Query;
use super::state::ApiState;
use super::time::parse_time;
use crate::store::security::{AuditEntry, AuditQuery};

#[derive(Deserialize, Default, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuditParams {
    token: Option<String>,
    namespace: Option<String>,
    since: Option<String>,
    before: Option<i64>,
    limit: Option<i64>,
}

pub async fn audit(
    State(state): State<ApiState>,
    Query(params): Query<AuditParams>,
) -> ApiResult<Json<AuditPage>> {
    let since = match params.since.as_deref() {
        None => None,
        Some(text) => Some(
            parse_time(text)
                .map(|secs| {
                    chrono::DateTime::from_timestamp(secs, 0)
                        .unwrap_or_default()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                })
                .map_err(|e| ApiError::bad_request(format!("since: {e}")))?,
        ),
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit: 1 to 1000"));
    }
    let items = state
        .store
        .audit(&AuditQuery {
            token_id: params.token,
            namespace: params.namespace,
            since,
            before: params.before,
            limit,
        })
        .await?;
    let next = (items.len() as i64 == limit)
        .then(|| items.last().map(|e| e.id))
        .flatten();
    Ok(Json(AuditPage {
        items,
        next_before: next,
    }))
}

/// A page of the audit log, newest first; `nextBefore` asks for the page after it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next_before: Option<i64>,
}
