//! Image requests (the SRC API's "request image"): editors request, admins approve (which
//! declares the Image) or reject.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::Response;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::audit::noted;
use super::body::body;
use super::error::{ApiError, ApiResult};
use super::extract::{Path, Query};
use super::state::ApiState;
use super::views::Items;
use crate::auth::{Need, Principal, Role};
use crate::spec::image::{RequestState, canonical_reference};
use crate::spec::validate::{AppKey, check_name};
use crate::spec::{Kind, parse_values, validate_bundle};
use crate::store::security::ImageRequest;
use crate::store::{ObjectSource, WriteItem};

#[derive(Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageRequestBody {
    #[serde(rename = "ref")]
    reference: String,
    #[serde(default)]
    reason: String,
}

/// The Image object declaring `canonical`, if one does.
pub async fn declaring_image(state: &ApiState, canonical: &str) -> ApiResult<Option<AppKey>> {
    let images = state.store.list(Kind::Image, None).await?;
    Ok(images.into_iter().find_map(|r| {
        r.image_spec()
            .ok()
            .filter(|s| s.canonical == canonical && !r.is_terminating())
            .map(|_| r.key)
    }))
}

pub async fn request_image(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let bytes = body(bytes)?;
    let request: ImageRequestBody = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("image request: {e}")))?;
    if request.reason.len() > 1024
        || request
            .reason
            .contains(|c: char| c.is_control() && c != '\n')
    {
        return Err(ApiError::bad_request(
            "reason: at most 1024 characters, no control characters",
        ));
    }
    let canonical = canonical_reference(&request.reference)
        .map_err(|e| ApiError::bad_request(format!("ref: {e}")))?;
    if let Some(key) = declaring_image(&state, &canonical).await? {
        return Ok(noted(
            Json(RequestAnswer::AlreadyApproved(AlreadyApproved {
                reference: canonical.clone(),
                state: RequestState::Approved,
                image: key.name.clone(),
            })),
            format!("{canonical} is already approved (Image {})", key.name),
            None,
        ));
    }
    let (created, r) = state
        .store
        .request_image(&canonical, &request.reason, &principal.token_id)
        .await?;
    state.wake.notify_one();
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let note = format!("requested image {canonical} (request {})", r.id);
    Ok(noted((status, Json(r)), note, None))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestListParams {
    state: Option<String>,
}

pub async fn list_image_requests(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Query(params): Query<RequestListParams>,
) -> ApiResult<Json<Items<ImageRequest>>> {
    let wanted = params
        .state
        .as_deref()
        .map(str::parse::<RequestState>)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("state: {e}")))?;
    // Admins see every request; anyone else their own.
    let mine = (!principal.may(Need::Everywhere(Role::Admin), None))
        .then_some(principal.token_id.as_str());
    let items = state.store.image_requests(mine, wanted).await?;
    Ok(Json(Items::new(items)))
}

/// A request for a reference an Image already declares.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AlreadyApproved {
    #[serde(rename = "ref")]
    pub reference: String,
    pub state: RequestState,
    /// The Image that declares it.
    pub image: String,
}

/// `POST /image-requests` answering 200: the pending request already made for the reference,
/// or the Image that already declares it.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RequestAnswer {
    Pending(ImageRequest),
    AlreadyApproved(AlreadyApproved),
}

/// An approved request and the Image its approval declared.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Approved {
    #[serde(flatten)]
    pub request: ImageRequest,
    pub image: String,
}

pub fn request_id(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not a request id")))
}

/// An Image name for a reference: its last path part and tag (`busybox-1-36`), made valid.
pub fn image_name_for(canonical: &str) -> String {
    let last = canonical.rsplit('/').next().unwrap_or(canonical);
    let last = last.split('@').next().unwrap_or(last);
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name = name.trim_matches('-').to_string();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    name.truncate(50);
    if name.is_empty() {
        name = "image".into();
    }
    name.trim_end_matches('-').to_string()
}

pub async fn approve_image_request(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = request_id(&id)?;
    let request = state
        .store
        .image_request(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("image request {id} not found")))?;
    if request.state != RequestState::Pending {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "image request {id} was already {}",
                request.state.as_str().to_lowercase()
            ),
        ));
    }
    // Declaring the Image is the approval; one that declares it already is kept.
    let image = match declaring_image(&state, &request.reference).await? {
        Some(key) => key.name,
        None => {
            let base = image_name_for(&request.reference);
            let mut name = base.clone();
            let mut n = 1;
            while state
                .store
                .get(
                    Kind::Image,
                    &AppKey {
                        namespace: String::new(),
                        name: name.clone(),
                    },
                )
                .await?
                .is_some()
            {
                n += 1;
                name = format!("{base}-{n}");
            }
            check_name(&name).map_err(|e| ApiError::internal("naming the Image", e))?;
            let doc = json!({
                "apiVersion": "wharf/v1",
                "kind": "Image",
                "metadata": {
                    "name": name,
                    "annotations": {"wharf.approved-request": id.to_string()},
                },
                "spec": {"ref": request.reference},
            });
            let docs = validate_bundle(parse_values(vec![doc]).map_err(ApiError::invalid)?, None)
                .map_err(ApiError::invalid)?;
            let items: Vec<WriteItem> = docs.iter().map(WriteItem::new).collect();
            state.store.apply(&items, &ObjectSource::Api).await?;
            name
        }
    };
    let decided = state
        .store
        .decide_image_request(id, RequestState::Approved, &principal.token_id, "")
        .await?;
    state.wake.notify_one();
    Ok(noted(
        Json(Approved {
            request: decided,
            image: image.clone(),
        }),
        format!(
            "approved image request {id}: {} (Image {image})",
            request.reference
        ),
        None,
    ))
}

#[derive(Deserialize, Default, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    #[serde(default)]
    message: String,
}

pub async fn reject_image_request(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    bytes: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let id = request_id(&id)?;
    let bytes = body(bytes)?;
    let reject: RejectBody = if bytes.is_empty() {
        RejectBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("rejection: {e}")))?
    };
    if reject.message.len() > 1024 {
        return Err(ApiError::bad_request("message: at most 1024 characters"));
    }
    let decided = state
        .store
        .decide_image_request(
            id,
            RequestState::Rejected,
            &principal.token_id,
            &reject.message,
        )
        .await?;
    state.wake.notify_one();
    let note = format!("rejected image request {id}: {}", decided.reference);
    Ok(noted(Json(decided), note, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_come_from_the_reference() {
        assert_eq!(
            image_name_for("docker.io/library/busybox:1.36"),
            "busybox-1-36"
        );
        assert_eq!(
            image_name_for("127.0.0.1:5000/team/App_x:latest"),
            "app-x-latest"
        );
        assert!(check_name(&image_name_for("r/x@sha256:abc")).is_ok());
    }
}
