//! `Query` and `Path` extractors whose rejections answer in the API's error shape
//! (axum's own answer with plain text).

use axum::extract::FromRequestParts;
use axum::extract::rejection::{PathRejection, QueryRejection};

use super::error::{ApiError, ApiResult};
use crate::spec::validate::{AppKey, check_name, check_namespace};

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::bad_request(format!("query string: {}", rejection.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::bad_request(format!("path: {}", rejection.body_text()))
    }
}

pub fn key_from_path(ns: String, name: String) -> ApiResult<AppKey> {
    check_namespace(&ns).map_err(ApiError::bad_request)?;
    check_name(&name).map_err(ApiError::bad_request)?;
    Ok(AppKey {
        namespace: ns,
        name,
    })
}
