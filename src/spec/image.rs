//! The `Image` kind: wire types as written, and their validation into `ImageSpec`.
//!
//! Images are cluster-scoped (Docker's images are host-wide), so an Image has no namespace.
//! Registry credentials are only ever named here (a file or an environment variable on the
//! wharf host); their values are read when a pull or a registry check needs them and are never
//! stored or echoed. Nothing here talks to Docker, a registry or the store.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SpecError;
use super::quantity::DurationText;
pub use super::reference::canonical_reference;
use super::validate::{AppKey, check_label_key, check_name};
use super::wire::{ApiVersion, ObjectMeta};

/// `kind: Image`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ImageKind {
    Image,
}

/// An Image: a reference wharf keeps pulled, checks for updates and reports on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "Image")]
pub struct ImageDocument {
    pub api_version: ApiVersion,
    pub kind: ImageKind,
    /// `namespace` must be absent: images are cluster-scoped.
    pub metadata: ObjectMeta,
    pub spec: ImageSpecWire,
    /// Server-owned; ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

/// The desired state of one image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpecWire {
    /// The image reference, e.g. `nginx:1.27` or `registry.example:5000/team/app:2`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// `IfNotPresent` (default), `Always` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Check the registry digest this often; on a change, pull and roll the apps using it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_interval: Option<DurationText>,
    /// Registry credentials, by reference to a secret on the wharf host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<CredentialsRef>,
    /// How the apps using this image move to a new version of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutWire>,
}

/// How a new version of an image reaches the apps using it.
///
/// An app is one container, and its replacement stops the old container before the new one
/// starts (same name, host ports and volumes), so every app being replaced is unavailable for
/// a moment: the width of a rollout is the number of apps unavailable at once. A replacement
/// that rolls back stops the rollout: the remaining apps keep their containers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutWire {
    /// Apps of this image replaced at once (default: `wharf serve --rollout-width`, 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_unavailable: Option<u32>,
}

/// The widest rollout an Image may ask for.
pub const MAX_ROLLOUT_WIDTH: u32 = 1000;

/// When wharf pulls an image.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum PullPolicy {
    /// Pull when the image is not in the engine.
    #[default]
    IfNotPresent,
    /// Pull when the Image is declared or changed, and before every container created from it.
    Always,
    /// Never pull: the image must be loaded into the engine by other means.
    Never,
}

impl fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Always => "Always",
            PullPolicy::Never => "Never",
        })
    }
}

/// Where an image request stands: waiting for an admin, approved (an Image declares the
/// reference), or rejected.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema, Deserialize,
)]
pub enum RequestState {
    Pending,
    Approved,
    Rejected,
}

impl RequestState {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Pending => "Pending",
            RequestState::Approved => "Approved",
            RequestState::Rejected => "Rejected",
        }
    }
}

impl fmt::Display for RequestState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RequestState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "Pending" => Ok(RequestState::Pending),
            "Approved" => Ok(RequestState::Approved),
            "Rejected" => Ok(RequestState::Rejected),
            other => Err(format!(
                "{other:?} is not a request state (Pending, Approved or Rejected)"
            )),
        }
    }
}

impl TryFrom<String> for RequestState {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

/// Where the registry credentials live: exactly one of a file or an environment variable on
/// the wharf host, holding `USERNAME:PASSWORD`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CredentialsRef {
    /// Absolute path of a file holding `USERNAME:PASSWORD` (one line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_file: Option<String>,
    /// Name of an environment variable of the wharf process holding `USERNAME:PASSWORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

/// A validated Image.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSpec {
    /// `namespace` is empty: images are cluster-scoped.
    pub key: AppKey,
    /// The reference as written.
    pub reference: String,
    /// The fully qualified form (`docker.io/library/nginx:1.27`), used to match apps and the
    /// engine's tags.
    pub canonical: String,
    pub pull_policy: PullPolicy,
    pub update_interval: Option<Duration>,
    pub credentials: Option<CredentialsRef>,
    /// `spec.rollout.maxUnavailable`: apps of this image replaced at once (`None`: the serve
    /// default).
    pub max_unavailable: Option<u32>,
}

/// The shortest update interval: registries rate-limit, and a check more often than this helps
/// no one.
pub const MIN_UPDATE_INTERVAL: Duration = Duration::from_secs(60);

/// Validates a wire Image into its domain form.
pub fn validate_image(doc: &ImageDocument) -> Result<ImageSpec, Vec<SpecError>> {
    let mut errors = Vec::new();
    let mut add = |field: &str, message: String| errors.push(SpecError::field(field, message));
    let meta = &doc.metadata;
    if meta.namespace.is_some() {
        add(
            "metadata.namespace",
            "an Image is cluster-scoped (Docker's images are host-wide); remove the namespace"
                .into(),
        );
    }
    if let Err(e) = check_name(&meta.name) {
        add("metadata.name", e);
    }
    for (field, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
        for k in map.keys() {
            if !check_label_key(k) {
                add(
                    &format!("metadata.{field}.{k}"),
                    "invalid key: use letters, digits, '-', '_', '.', '/'".into(),
                );
            }
        }
    }
    let spec = &doc.spec;
    let canonical = match canonical_reference(&spec.reference) {
        Ok(c) => c,
        Err(e) => {
            add("spec.ref", e);
            String::new()
        }
    };
    let update_interval = spec.update_interval.as_ref().map(|d| d.duration());
    if let Some(d) = update_interval
        && d < MIN_UPDATE_INTERVAL
    {
        add(
            "spec.updateInterval",
            format!(
                "must be at least {}s (registries rate-limit digest checks)",
                MIN_UPDATE_INTERVAL.as_secs()
            ),
        );
    }
    if let Some(c) = &spec.credentials {
        match (&c.secret_file, &c.secret_env) {
            (Some(_), Some(_)) | (None, None) => add(
                "spec.credentials",
                "give exactly one of secretFile or secretEnv".into(),
            ),
            (Some(path), None) => {
                if !path.starts_with('/') || path.contains('\0') {
                    add(
                        "spec.credentials.secretFile",
                        format!("{path:?} must be an absolute path"),
                    );
                }
            }
            (None, Some(name)) => {
                let ok = !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    && !name.as_bytes()[0].is_ascii_digit();
                if !ok {
                    add(
                        "spec.credentials.secretEnv",
                        format!("{name:?} is not an environment variable name"),
                    );
                }
            }
        }
    }
    let max_unavailable = spec.rollout.as_ref().and_then(|r| r.max_unavailable);
    if let Some(n) = max_unavailable
        && !(1..=MAX_ROLLOUT_WIDTH).contains(&n)
    {
        add(
            "spec.rollout.maxUnavailable",
            format!("must be between 1 and {MAX_ROLLOUT_WIDTH}, got {n}"),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(ImageSpec {
        key: AppKey {
            namespace: String::new(),
            name: meta.name.clone(),
        },
        reference: spec.reference.clone(),
        canonical,
        pull_policy: spec.pull_policy.unwrap_or_default(),
        update_interval,
        credentials: spec.credentials.clone(),
        max_unavailable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Document, Format, parse_documents};

    fn image(text: &str) -> Result<ImageSpec, Vec<SpecError>> {
        let docs = parse_documents(text, Format::Yaml, None).map_err(|e| e.to_vec())?;
        let Document::Image(doc) = &docs[0].document else {
            panic!("not an Image");
        };
        validate_image(doc)
    }

    const BASE: &str = "apiVersion: wharf/v1\nkind: Image\nmetadata: {name: web}\nspec:\n";

    #[test]
    fn references_are_qualified_the_way_docker_does() {
        assert_eq!(
            canonical_reference("busybox").unwrap(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            canonical_reference("127.0.0.1:5000/team/app:2").unwrap(),
            "127.0.0.1:5000/team/app:2"
        );
        assert!(canonical_reference("Busy Box").is_err());
        assert!(canonical_reference("busybox@sha256:abc").is_err());
    }

    #[test]
    fn defaults_and_fields() {
        let i = image(&format!(
            "{BASE}  ref: nginx:1.27\n  updateInterval: 1h\n  credentials: {{secretEnv: REG_AUTH}}\n"
        ))
        .unwrap();
        assert_eq!(i.key.namespace, "");
        assert_eq!(i.canonical, "docker.io/library/nginx:1.27");
        assert_eq!(i.pull_policy, PullPolicy::IfNotPresent);
        assert_eq!(i.update_interval, Some(Duration::from_secs(3600)));
        assert_eq!(i.max_unavailable, None);
        let wide = image(&format!(
            "{BASE}  ref: x\n  rollout: {{maxUnavailable: 10}}\n"
        ))
        .unwrap();
        assert_eq!(wide.max_unavailable, Some(10));
    }

    #[test]
    fn invalid_fields_are_named() {
        let errors = image(
            "apiVersion: wharf/v1\nkind: Image\nmetadata: {name: web, namespace: demo}\nspec:\n  ref: 'a b'\n  updateInterval: 5s\n  credentials: {secretFile: relative, secretEnv: X}\n",
        )
        .unwrap_err();
        let fields: Vec<_> = errors.iter().filter_map(|e| e.field.as_deref()).collect();
        assert_eq!(
            fields,
            [
                "metadata.namespace",
                "spec.ref",
                "spec.updateInterval",
                "spec.credentials"
            ]
        );
        let errors = image(&format!("{BASE}  ref: x\n  pullPolicy: Sometimes\n")).unwrap_err();
        assert_eq!(errors[0].field.as_deref(), Some("spec.pullPolicy"));
        for width in [0, 1001] {
            let errors = image(&format!(
                "{BASE}  ref: x\n  rollout: {{maxUnavailable: {width}}}\n"
            ))
            .unwrap_err();
            assert_eq!(
                errors[0].field.as_deref(),
                Some("spec.rollout.maxUnavailable")
            );
        }
        let errors = image(&format!("{BASE}  ref: x\n  rollout: {{maxSurge: 1}}\n")).unwrap_err();
        assert!(errors[0].to_string().contains("maxSurge"), "{}", errors[0]);
    }
}
