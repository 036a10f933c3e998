//! `GET /api/v1/sources`: the problems of the spec files in the watched directory.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::error::ApiResult;
use super::state::ApiState;

pub async fn sources(State(state): State<ApiState>) -> ApiResult<Json<Value>> {
    let errors = state.store.source_errors().await?;
    Ok(Json(json!({ "errors": errors })))
}
