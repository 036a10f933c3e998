//! Registry digest checks: one manifest `HEAD` per image (no pull, and no rate-limit cost on
//! registries that count manifest `GET`s), through `oci-client`, which handles the token and
//! basic-auth challenges.
//!
//! Loopback registries (and those named with `--insecure-registry`) are spoken to over plain
//! HTTP, as the Docker Engine does; every other registry over HTTPS.

use std::sync::OnceLock;
use std::time::Duration;

use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, client::ClientConfig, client::ClientProtocol};

use crate::runtime::RegistryCredentials;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum RegistryError {
    /// The registry answered 429: back off, do not hammer it.
    #[error("the registry is rate-limiting requests (429): {0}")]
    RateLimited(String),
    #[error("the registry refused the credentials: {0}")]
    Unauthorized(String),
    #[error("{0}")]
    Other(String),
}

impl RegistryError {
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::RateLimited(_) => "RegistryRateLimited",
            RegistryError::Unauthorized(_) => "RegistryUnauthorized",
            RegistryError::Other(_) => "RegistryError",
        }
    }
}

pub struct RegistryClient {
    // Built on first use: a TLS client loads the root certificates, which a wharf that never
    // checks a digest does not need in memory.
    https: OnceLock<Client>,
    http: OnceLock<Client>,
    insecure: Vec<String>,
    timeout: Duration,
}

/// Is `registry` (`host[:port]`) on the loopback interface?
fn is_loopback(registry: &str) -> bool {
    let host = match registry.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => registry.split(':').next().unwrap_or(registry),
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn classify(e: OciDistributionError) -> RegistryError {
    let text = e.to_string();
    let rate_limited = match &e {
        OciDistributionError::ServerError { code, .. } => *code == 429,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, oci_client::errors::OciErrorCode::Toomanyrequests)),
        _ => false,
    } || text.contains("429")
        || text.contains("TOOMANYREQUESTS");
    if rate_limited {
        return RegistryError::RateLimited(text);
    }
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => RegistryError::Unauthorized(text),
        _ => RegistryError::Other(text),
    }
}

impl RegistryClient {
    /// `insecure`: registries (`host:port`) to reach over plain HTTP besides loopback ones.
    pub fn new(insecure: Vec<String>, timeout: Duration) -> Self {
        Self {
            https: OnceLock::new(),
            http: OnceLock::new(),
            insecure,
            timeout,
        }
    }

    fn client(&self, plain_http: bool) -> &Client {
        let (cell, protocol) = if plain_http {
            (&self.http, ClientProtocol::Http)
        } else {
            (&self.https, ClientProtocol::Https)
        };
        cell.get_or_init(|| {
            Client::new(ClientConfig {
                protocol,
                read_timeout: Some(self.timeout),
                connect_timeout: Some(self.timeout),
                ..ClientConfig::default()
            })
        })
    }

    /// The digest the registry serves for `reference` now (`sha256:…`): the manifest list's
    /// digest for multi-platform images, which is what Docker records in `RepoDigests`.
    pub async fn digest(
        &self,
        reference: &str,
        credentials: Option<&RegistryCredentials>,
    ) -> Result<String, RegistryError> {
        let reference = Reference::try_from(reference)
            .map_err(|e| RegistryError::Other(format!("invalid reference {reference:?}: {e}")))?;
        let auth = match credentials {
            Some(c) => RegistryAuth::Basic(c.username.clone(), c.password.clone()),
            None => RegistryAuth::Anonymous,
        };
        let registry = reference.registry();
        let client =
            self.client(is_loopback(registry) || self.insecure.iter().any(|r| r == registry));
        let check = client.fetch_manifest_digest(&reference, &auth);
        match tokio::time::timeout(self.timeout * 2, check).await {
            Ok(result) => result.map_err(classify),
            Err(_) => Err(RegistryError::Other(format!(
                "the registry {registry} did not answer within {}s",
                (self.timeout * 2).as_secs()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognised() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("docker.io"));
        assert!(!is_loopback("registry.example:5000"));
    }
}
