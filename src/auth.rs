//! Who may do what: roles per namespace, the principal a bearer token stands for, and what each
//! route needs.
//!
//! A token carries grants `(namespace, role)`; namespace `*` means every namespace. Roles are
//! ordered: a viewer reads apps, their stats and uptime, and images; an editor also applies,
//! deletes and acts on apps of its namespaces; an admin also manages what is not in one
//! namespace (images, tokens, policy, host statistics, the audit log) when it holds `*`.
//! The admin token of the data directory is an admin of `*`. The `agent` role stands apart: it
//! grants nothing but connecting as a node agent (`wharf agent`), and no other role grants
//! that. Nothing here touches the network or the store.

use std::fmt;

use rand::Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The token id of the admin token in the data directory.
pub const ADMIN_TOKEN_ID: &str = "admin";
/// The namespace of a grant that covers every namespace.
pub const ALL_NAMESPACES: &str = "*";
/// Prefix of every token secret wharf issues (so a leaked one is easy to recognise).
pub const TOKEN_PREFIX: &str = "wharf_";

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A node agent: may connect under `/api/v1/agents/connect` and nothing else. Lowest in the
    /// order, so it never satisfies a viewer's, editor's or admin's need.
    Agent,
    Viewer,
    Editor,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "agent" => Some(Role::Agent),
            "viewer" => Some(Role::Viewer),
            "editor" => Some(Role::Editor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Agent => "agent",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        })
    }
}

/// One role in one namespace (`*`: every namespace).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Grant {
    pub namespace: String,
    pub role: Role,
}

/// The caller of a request, once its token is known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub token_id: String,
    pub grants: Vec<Grant>,
}

impl Principal {
    /// A principal holding `role` in each listed namespace.
    pub fn with_grants(token_id: &str, grants: &[(&str, Role)]) -> Self {
        Self {
            token_id: token_id.to_string(),
            grants: grants
                .iter()
                .map(|(namespace, role)| Grant {
                    namespace: namespace.to_string(),
                    role: *role,
                })
                .collect(),
        }
    }

    pub fn admin() -> Self {
        Self::with_grants(ADMIN_TOKEN_ID, &[(ALL_NAMESPACES, Role::Admin)])
    }

    /// The grants that let a caller use the API (all but `agent`).
    fn api_grants(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter().filter(|g| g.role != Role::Agent)
    }

    /// Whether this principal may connect as a node agent.
    pub fn is_agent(&self) -> bool {
        self.grants.iter().any(|g| g.role == Role::Agent)
    }

    /// The highest role this principal has in `namespace`.
    pub fn role_in(&self, namespace: &str) -> Option<Role> {
        self.api_grants()
            .filter(|g| g.namespace == ALL_NAMESPACES || g.namespace == namespace)
            .map(|g| g.role)
            .max()
    }

    /// The highest role this principal has in every namespace at once.
    pub fn role_everywhere(&self) -> Option<Role> {
        self.api_grants()
            .filter(|g| g.namespace == ALL_NAMESPACES)
            .map(|g| g.role)
            .max()
    }

    /// The highest role this principal has anywhere.
    pub fn best_role(&self) -> Option<Role> {
        self.api_grants().map(|g| g.role).max()
    }

    pub fn may(&self, need: Need, namespace: Option<&str>) -> bool {
        match need {
            Need::Token => self.api_grants().next().is_some(),
            Need::Agent => self.is_agent(),
            Need::Somewhere(role) => self.best_role().is_some_and(|r| r >= role),
            Need::Namespace(role) => namespace
                .and_then(|ns| self.role_in(ns))
                .is_some_and(|r| r >= role),
            Need::Everywhere(role) => self.role_everywhere().is_some_and(|r| r >= role),
        }
    }
}

/// What a route asks of its caller before the handler runs. Handlers that touch several
/// namespaces (apply, the list of all apps) check each object themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Any valid token but an agent's.
    Token,
    /// An agent token (role `agent`).
    Agent,
    /// This role in at least one namespace.
    Somewhere(Role),
    /// This role in the namespace the path names (`{ns}`).
    Namespace(Role),
    /// This role in every namespace (a grant on `*`).
    Everywhere(Role),
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Need::Token => f.write_str("any valid token except an agent's"),
            Need::Agent => f.write_str("an agent token (role agent)"),
            Need::Somewhere(role) => write!(f, "role {role} in some namespace"),
            Need::Namespace(role) => write!(f, "role {role} in the namespace"),
            Need::Everywhere(role) => write!(f, "role {role} on every namespace (*)"),
        }
    }
}

/// A new token: `(id, secret)`. The secret embeds 256 random bits.
pub fn new_token() -> (String, String) {
    let id_bytes: [u8; 4] = rand::rng().random();
    let secret_bytes: [u8; 32] = rand::rng().random();
    let id = format!("tok_{}", hex(&id_bytes));
    let secret = format!("{TOKEN_PREFIX}{}", hex(&secret_bytes));
    (id, secret)
}

/// What the store keeps of a token. Secrets carry 256 random bits, so a plain SHA-256 cannot be
/// reversed or guessed; a slow hash would only slow every request.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// Compares two digests in constant time.
pub fn digests_equal(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A shared secret kept in a file (a webhook's HMAC key): its text without the final newline.
/// An unreadable or empty file is an error naming it.
pub fn read_secret_file(file: &std::path::Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.is_empty() {
        return Err(format!("{} is empty", file.display()));
    }
    Ok(secret.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(grants: &[(&str, Role)]) -> Principal {
        Principal::with_grants("tok_test", grants)
    }

    #[test]
    fn roles_apply_to_their_namespaces_only() {
        let p = principal(&[("demo", Role::Editor), ("team", Role::Viewer)]);
        assert!(p.may(Need::Namespace(Role::Editor), Some("demo")));
        assert!(p.may(Need::Namespace(Role::Viewer), Some("demo")));
        assert!(!p.may(Need::Namespace(Role::Admin), Some("demo")));
        assert!(p.may(Need::Namespace(Role::Viewer), Some("team")));
        assert!(!p.may(Need::Namespace(Role::Editor), Some("team")));
        assert!(!p.may(Need::Namespace(Role::Viewer), Some("other")));
        assert!(!p.may(Need::Namespace(Role::Viewer), None));
        assert!(p.may(Need::Somewhere(Role::Editor), None));
        assert!(!p.may(Need::Everywhere(Role::Viewer), None));
        assert!(p.may(Need::Token, None));
    }

    #[test]
    fn a_star_grant_covers_every_namespace() {
        let p = principal(&[("*", Role::Viewer), ("demo", Role::Admin)]);
        assert_eq!(p.role_in("anything"), Some(Role::Viewer));
        assert_eq!(p.role_in("demo"), Some(Role::Admin));
        assert!(p.may(Need::Everywhere(Role::Viewer), None));
        assert!(!p.may(Need::Everywhere(Role::Admin), None));
        assert!(Principal::admin().may(Need::Everywhere(Role::Admin), None));
    }

    #[test]
    fn an_agent_token_may_only_connect_as_an_agent() {
        let agent = principal(&[("*", Role::Agent)]);
        assert!(agent.may(Need::Agent, None));
        for need in [
            Need::Token,
            Need::Somewhere(Role::Viewer),
            Need::Namespace(Role::Viewer),
            Need::Everywhere(Role::Viewer),
        ] {
            assert!(!agent.may(need, Some("demo")), "{need}");
        }
        assert_eq!(agent.best_role(), None);
        assert!(
            !Principal::admin().may(Need::Agent, None),
            "no role implies agent"
        );
    }

    #[test]
    fn tokens_are_random_and_digested() {
        let (id1, s1) = new_token();
        let (id2, s2) = new_token();
        assert_ne!(id1, id2);
        assert_ne!(s1, s2);
        assert!(s1.starts_with(TOKEN_PREFIX) && s1.len() == TOKEN_PREFIX.len() + 64);
        assert!(digests_equal(&token_digest(&s1), &token_digest(&s1)));
        assert!(!digests_equal(&token_digest(&s1), &token_digest(&s2)));
    }
}
