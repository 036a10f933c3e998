//! Registries: the digest a reference has now (one manifest HEAD, `registry`), and the
//! credentials for a registry, read from their file or variable at the moment of use and never
//! kept. The loop's image operations, which record what they find in the loop's memory, are
//! `reconcile::images`.

pub mod registry;

use oci_client::Reference;

use crate::runtime::RegistryCredentials;
use crate::spec::image::CredentialsRef;
pub use crate::spec::status::{LayerProgress, PullPhase, PullState};

/// Reads registry credentials (`USERNAME:PASSWORD`) from where `credentials` points.
pub fn resolve_credentials(
    credentials: &CredentialsRef,
    reference: &str,
) -> Result<RegistryCredentials, String> {
    let (text, source) = match (&credentials.secret_file, &credentials.secret_env) {
        (Some(path), _) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the credentials file {path}: {e}"))?,
            format!("the credentials file {path}"),
        ),
        (None, Some(name)) => (
            std::env::var(name)
                .map_err(|_| format!("the environment variable {name} is not set for wharf"))?,
            format!("the environment variable {name}"),
        ),
        (None, None) => return Err("credentials name neither a file nor a variable".into()),
    };
    let (username, password) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("{source} must hold USERNAME:PASSWORD"))?;
    let registry = Reference::try_from(reference)
        .map(|r| r.registry().to_string())
        .unwrap_or_default();
    Ok(RegistryCredentials {
        username: username.to_string(),
        password: password.to_string(),
        server: if registry == "docker.io" {
            "https://index.docker.io/v1/".into()
        } else {
            registry
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_a_file_or_a_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth");
        std::fs::write(&path, "ci:s3cret\n").unwrap();
        let file = CredentialsRef {
            secret_file: Some(path.display().to_string()),
            secret_env: None,
        };
        let c = resolve_credentials(&file, "127.0.0.1:5001/team/app:1").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str(), c.server.as_str()),
            ("ci", "s3cret", "127.0.0.1:5001")
        );
        let env = CredentialsRef {
            secret_file: None,
            secret_env: Some("WHARF_TEST_SURELY_UNSET".into()),
        };
        let e = resolve_credentials(&env, "x").unwrap_err();
        assert!(e.contains("WHARF_TEST_SURELY_UNSET is not set"), "{e}");
    }
}
