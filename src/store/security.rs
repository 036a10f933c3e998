//! Tokens, the audit log, image requests and namespace policies in the store.
//!
//! Token secrets never reach this module: only their SHA-256 digests. This module never talks
//! to Docker.

use schemars::JsonSchema;
use serde::Serialize;
use sqlx::{FromRow, Row};

use crate::spec::image::RequestState;

use super::{Store, StoreError, StoreResult, now_rfc3339};
use crate::auth::{Grant, Principal};

/// A token as listed (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub id: String,
    pub description: String,
    pub grants: Vec<Grant>,
    pub created_at: String,
    pub created_by: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// Why a presented token was not accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired(String),
    Revoked(String),
}

/// One audit entry.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub id: i64,
    pub time: String,
    pub token_id: String,
    pub method: String,
    pub route: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub status: i64,
    pub result: String,
}

/// An audit entry to record (its time is the store's clock).
#[derive(Clone, Debug)]
pub struct NewAudit<'a> {
    pub token_id: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub path: &'a str,
    pub namespace: Option<&'a str>,
    pub status: u16,
    pub result: &'a str,
}

/// Which audit entries to read, newest first.
#[derive(Clone, Debug, Default)]
pub struct AuditQuery {
    pub token_id: Option<String>,
    pub namespace: Option<String>,
    /// RFC 3339; entries at or after.
    pub since: Option<String>,
    /// Entries with an id below this (paging backwards).
    pub before: Option<i64>,
    pub limit: i64,
}

/// A request to approve an image.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImageRequest {
    pub id: i64,
    #[serde(rename = "ref")]
    pub reference: String,
    pub reason: String,
    pub requested_by: String,
    pub requested_at: String,
    #[sqlx(try_from = "String")]
    pub state: RequestState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decided_at: Option<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

impl Store {
    pub async fn create_token(
        &self,
        id: &str,
        digest: &[u8; 32],
        description: &str,
        grants: &[Grant],
        created_by: &str,
        expires_at: Option<&str>,
    ) -> StoreResult<TokenInfo> {
        let created_at = now_rfc3339();
        let grants_json = serde_json::to_string(grants).map_err(|e| corrupt("grants", e))?;
        sqlx::query(
            "INSERT INTO tokens (id, sha256, description, grants, created_at, created_by, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id)
        .bind(&digest[..])
        .bind(description)
        .bind(grants_json)
        .bind(&created_at)
        .bind(created_by)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(TokenInfo {
            id: id.to_string(),
            description: description.to_string(),
            grants: grants.to_vec(),
            created_at,
            created_by: created_by.to_string(),
            expires_at: expires_at.map(str::to_string),
            revoked_at: None,
        })
    }

    fn row_to_token(row: &sqlx::any::AnyRow) -> StoreResult<TokenInfo> {
        let grants: String = row.try_get("grants")?;
        Ok(TokenInfo {
            id: row.try_get("id")?,
            description: row.try_get("description")?,
            grants: serde_json::from_str(&grants).map_err(|e| corrupt("token grants", e))?,
            created_at: row.try_get("created_at")?,
            created_by: row.try_get("created_by")?,
            expires_at: row.try_get("expires_at")?,
            revoked_at: row.try_get("revoked_at")?,
        })
    }

    pub async fn tokens(&self) -> StoreResult<Vec<TokenInfo>> {
        let rows = sqlx::query("SELECT * FROM tokens ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::row_to_token).collect()
    }

    /// Marks a token revoked; `NotFound` when there is no such token.
    pub async fn revoke_token(&self, id: &str) -> StoreResult<TokenInfo> {
        sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_rfc3339())
            .bind(id)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT * FROM tokens WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("token {id}")))?;
        Self::row_to_token(&row)
    }

    /// The principal behind a token digest, if the token exists, is not revoked and has not
    /// expired at `now` (RFC 3339).
    pub async fn principal_for(
        &self,
        digest: &[u8; 32],
        now: &str,
    ) -> StoreResult<Result<Principal, TokenRefusal>> {
        let row = sqlx::query("SELECT * FROM tokens WHERE sha256 = $1")
            .bind(&digest[..])
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Err(TokenRefusal::Unknown));
        };
        let token = Self::row_to_token(&row)?;
        if token.revoked_at.is_some() {
            return Ok(Err(TokenRefusal::Revoked(token.id)));
        }
        if token.expires_at.as_deref().is_some_and(|e| expired(e, now)) {
            return Ok(Err(TokenRefusal::Expired(token.id)));
        }
        Ok(Ok(Principal {
            token_id: token.id,
            grants: token.grants,
        }))
    }

    pub async fn record_audit(&self, entry: &NewAudit<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO audit (time, token_id, method, route, path, namespace, status, result) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(now_rfc3339())
        .bind(entry.token_id)
        .bind(entry.method)
        .bind(entry.route)
        .bind(entry.path)
        .bind(entry.namespace)
        .bind(i64::from(entry.status))
        .bind(entry.result)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes audit entries older than `before` (RFC 3339); returns how many.
    pub async fn prune_audit(&self, before: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM audit WHERE time < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit WHERE ($1 IS NULL OR token_id = $1) AND ($2 IS NULL OR namespace = $2) AND ($3 IS NULL OR time >= $3) AND ($4 IS NULL OR id < $4) ORDER BY id DESC LIMIT $5",
        )
        .bind(&query.token_id)
        .bind(&query.namespace)
        .bind(&query.since)
        .bind(query.before)
        .bind(query.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get("id")?,
                    time: row.try_get("time")?,
                    token_id: row.try_get("token_id")?,
                    method: row.try_get("method")?,
                    route: row.try_get("route")?,
                    path: row.try_get("path")?,
                    namespace: row.try_get("namespace")?,
                    status: row.try_get("status")?,
                    result: row.try_get("result")?,
                })
            })
            .collect()
    }

    fn row_to_request(row: &sqlx::any::AnyRow) -> StoreResult<ImageRequest> {
        Ok(ImageRequest::from_row(row)?)
    }

    /// Records a request for `reference`, or returns the pending one there already is.
    pub async fn request_image(
        &self,
        reference: &str,
        reason: &str,
        requested_by: &str,
    ) -> StoreResult<(bool, ImageRequest)> {
        let mut tx = self.write_tx().await?;
        let pending =
            sqlx::query("SELECT * FROM image_requests WHERE reference = $1 AND state = $2")
                .bind(reference)
                .bind(RequestState::Pending.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = pending {
            return Ok((false, Self::row_to_request(&row)?));
        }
        let row = sqlx::query(
            "INSERT INTO image_requests (reference, reason, requested_by, requested_at, state) VALUES ($1, $2, $3, $4, $5) RETURNING *",
        )
        .bind(reference)
        .bind(reason)
        .bind(requested_by)
        .bind(now_rfc3339())
        .bind(RequestState::Pending.as_str())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((true, Self::row_to_request(&row)?))
    }

    pub async fn image_request(&self, id: i64) -> StoreResult<Option<ImageRequest>> {
        let row = sqlx::query("SELECT * FROM image_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::row_to_request).transpose()
    }

    /// Requests, newest first; only `requested_by`'s when given.
    pub async fn image_requests(
        &self,
        requested_by: Option<&str>,
        state: Option<RequestState>,
    ) -> StoreResult<Vec<ImageRequest>> {
        let rows = sqlx::query(
            "SELECT * FROM image_requests WHERE ($1 IS NULL OR requested_by = $1) AND ($2 IS NULL OR state = $2) ORDER BY id DESC",
        )
        .bind(requested_by)
        .bind(state.map(RequestState::as_str))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::row_to_request).collect()
    }

    /// Decides a pending request; 409 when it was already decided.
    pub async fn decide_image_request(
        &self,
        id: i64,
        state: RequestState,
        decided_by: &str,
        message: &str,
    ) -> StoreResult<ImageRequest> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT * FROM image_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("image request {id}")))?;
        let current = Self::row_to_request(&row)?;
        if current.state != RequestState::Pending {
            return Err(StoreError::Conflict(format!(
                "image request {id} for {} was already {} by {}",
                current.reference,
                current.state.as_str().to_lowercase(),
                current.decided_by.as_deref().unwrap_or("?")
            )));
        }
        let row = sqlx::query(
            "UPDATE image_requests SET state = $1, decided_by = $2, decided_at = $3, message = $4 WHERE id = $5 RETURNING *",
        )
        .bind(state.as_str())
        .bind(decided_by)
        .bind(now_rfc3339())
        .bind(message)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Self::row_to_request(&row)
    }

    pub async fn namespace_policy(
        &self,
        namespace: &str,
    ) -> StoreResult<Option<serde_json::Value>> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT policy FROM namespace_policies WHERE namespace = $1")
                .bind(namespace)
                .fetch_optional(&self.pool)
                .await?;
        text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt("namespace policy", e)))
            .transpose()
    }

    pub async fn set_namespace_policy(
        &self,
        namespace: &str,
        policy: Option<&serde_json::Value>,
        updated_by: &str,
    ) -> StoreResult<()> {
        match policy {
            Some(p) => {
                sqlx::query(
                    "INSERT INTO namespace_policies (namespace, policy, updated_at, updated_by) VALUES ($1, $2, $3, $4) ON CONFLICT (namespace) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                )
                .bind(namespace)
                .bind(p.to_string())
                .bind(now_rfc3339())
                .bind(updated_by)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM namespace_policies WHERE namespace = $1")
                    .bind(namespace)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }
}

/// Whether an RFC 3339 expiry lies at or before `now`. An unreadable expiry counts as expired.
fn expired(expires_at: &str, now: &str) -> bool {
    match (
        chrono::DateTime::parse_from_rfc3339(expires_at),
        chrono::DateTime::parse_from_rfc3339(now),
    ) {
        (Ok(e), Ok(n)) => e <= n,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Role, new_token, token_digest};

    async fn tokens_are_found_by_digest_until_revoked_or_expired(db: crate::store::TestDb) {
        let store = db.open().await;
        let grants = vec![Grant {
            namespace: "demo".into(),
            role: Role::Editor,
        }];
        let (id, secret) = new_token();
        store
            .create_token(&id, &token_digest(&secret), "ci", &grants, "admin", None)
            .await
            .expect("create");
        let now = now_rfc3339();
        let p = store
            .principal_for(&token_digest(&secret), &now)
            .await
            .expect("lookup")
            .expect("valid");
        assert_eq!(
            (p.token_id.as_str(), p.grants),
            (id.as_str(), grants.clone())
        );
        let unknown = store
            .principal_for(&token_digest("wharf_nope"), &now)
            .await
            .expect("lookup");
        assert_eq!(unknown, Err(TokenRefusal::Unknown));

        let (old_id, old) = new_token();
        store
            .create_token(
                &old_id,
                &token_digest(&old),
                "old",
                &grants,
                "admin",
                Some("2020-01-01T00:00:00Z"),
            )
            .await
            .expect("create");
        let refused = store
            .principal_for(&token_digest(&old), &now)
            .await
            .expect("lookup");
        assert_eq!(refused, Err(TokenRefusal::Expired(old_id)));

        let revoked = store.revoke_token(&id).await.expect("revoke");
        assert!(revoked.revoked_at.is_some());
        let refused = store
            .principal_for(&token_digest(&secret), &now)
            .await
            .expect("lookup");
        assert_eq!(refused, Err(TokenRefusal::Revoked(id)));
        assert!(matches!(
            store.revoke_token("tok_missing").await,
            Err(StoreError::NotFound(_))
        ));
        let listed = store.tokens().await.expect("list");
        assert_eq!(listed.len(), 2);
    }

    async fn image_requests_are_decided_once(db: crate::store::TestDb) {
        let store = db.open().await;
        let (created, first) = store
            .request_image("docker.io/library/busybox:1.36", "tools", "tok_a")
            .await
            .expect("request");
        assert!(created);
        let (created, again) = store
            .request_image("docker.io/library/busybox:1.36", "again", "tok_b")
            .await
            .expect("request");
        assert!(!created, "a pending request is reused");
        assert_eq!(again.id, first.id);
        let approved = store
            .decide_image_request(first.id, RequestState::Approved, "admin", "")
            .await
            .expect("approve");
        assert_eq!(approved.state, RequestState::Approved);
        assert!(matches!(
            store
                .decide_image_request(first.id, RequestState::Rejected, "admin", "no")
                .await,
            Err(StoreError::Conflict(_))
        ));
        assert_eq!(
            store
                .image_requests(Some("tok_a"), None)
                .await
                .expect("list")
                .len(),
            1
        );
        assert!(
            store
                .image_requests(Some("tok_b"), None)
                .await
                .expect("list")
                .is_empty()
        );
    }

    async fn audit_entries_are_filtered_and_pruned_by_age(db: crate::store::TestDb) {
        let store = db.open().await;
        let entry = |token_id| NewAudit {
            token_id,
            method: "POST",
            route: "/api/v1/apply",
            path: "/api/v1/apply",
            namespace: Some("demo"),
            status: 200,
            result: "applied",
        };
        store.record_audit(&entry("tok_a")).await.expect("record");
        store.record_audit(&entry("tok_b")).await.expect("record");
        let query = |token_id: Option<&str>| AuditQuery {
            token_id: token_id.map(str::to_string),
            limit: 10,
            ..AuditQuery::default()
        };
        assert_eq!(
            store
                .audit(&query(Some("tok_a")))
                .await
                .expect("read")
                .len(),
            1
        );
        assert_eq!(
            store
                .prune_audit("2000-01-01T00:00:00Z")
                .await
                .expect("prune"),
            0
        );
        assert_eq!(
            store
                .prune_audit("2999-01-01T00:00:00Z")
                .await
                .expect("prune"),
            2
        );
        assert!(store.audit(&query(None)).await.expect("read").is_empty());
    }

    crate::store::on_both_databases!(
        tokens_are_found_by_digest_until_revoked_or_expired,
        image_requests_are_decided_once,
        audit_entries_are_filtered_and_pruned_by_age
    );
}
