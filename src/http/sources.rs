//! `GET /api/v1/sources`: the problems of the spec files in the watched directory.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::error::ApiResult;
use super::state::ApiState;
use crate::store::SourceError;

/// Every spec file that currently fails to load or to take its objects, with why.
#[derive(Debug, Serialize)]
pub struct SourceProblems {
    pub errors: Vec<SourceError>,
}

pub async fn sources(State(state): State<ApiState>) -> ApiResult<Json<SourceProblems>> {
    let errors = state.store.source_errors().await?;
    Ok(Json(SourceProblems { errors }))
}
