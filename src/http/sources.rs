//! `GET /api/v1/sources`: the problems of the spec files (of the watched directory or of the
//! git source), and with `--git` the followed branch and its applied commit.

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::Serialize;

use super::error::ApiResult;
use super::state::ApiState;
use crate::source::git::{GitStatus, STATUS_SETTING};
use crate::store::SourceError;

/// Every spec file that currently fails to load or to take its objects, with why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SourceProblems {
    pub errors: Vec<SourceError>,
    /// `--git`: the repository, branch, applied commit (sha, subject, time), a head refused
    /// whole, the last fetch and its error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub git: Option<GitStatus>,
}

pub async fn sources(State(state): State<ApiState>) -> ApiResult<Json<SourceProblems>> {
    let errors = state.store.source_errors().await?;
    let git = match &state.git {
        Some(_) => Some(
            state
                .store
                .setting::<GitStatus>(STATUS_SETTING)
                .await?
                .unwrap_or_default(),
        ),
        None => None,
    };
    Ok(Json(SourceProblems { errors, git }))
}
