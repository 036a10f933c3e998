//! `GET /api/v1/cluster`: the instances on this database, which one leads, since when, the
//! lease's generation, and which instance answered.

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;
use serde::Serialize;

use super::error::ApiResult;
use super::state::ApiState;

/// Instances not seen for this long are left out (a stopped one drops off after a minute).
const SEEN_WITHIN_MS: i64 = 60_000;

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterView {
    /// The id of the instance that answered.
    #[serde(rename = "self")]
    pub self_id: String,
    /// The leader's id, when one holds an unexpired lease.
    pub leader: Option<String>,
    /// Since when it leads (RFC 3339).
    pub since: Option<String>,
    /// The lease's fencing generation: +1 on every change of leader.
    pub generation: i64,
    /// `sqlite` (one instance, always the leader) or `postgres` (instances elect one).
    pub database: &'static str,
    /// Instances seen within the last minute.
    pub instances: Vec<InstanceView>,
}

#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InstanceView {
    pub id: String,
    /// Where it is reached (`--advertise`, else its listen address).
    pub address: String,
    pub version: String,
    /// When it started (RFC 3339).
    pub started: String,
    /// Its last heartbeat (RFC 3339).
    pub last_seen: String,
    pub leader: bool,
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

pub async fn cluster(State(state): State<ApiState>) -> ApiResult<Json<ClusterView>> {
    let me = &state.leadership;
    let term = me.view();
    let mut instances: Vec<InstanceView> = Vec::new();
    let (leader, since, generation) = if me.is_elected() {
        // The lease as the database has it, not only as this instance last saw it.
        let lease = state.store.lease().await?.filter(|l| !l.expired());
        let (rows, _) = state.store.instances(SEEN_WITHIN_MS).await?;
        let holder = lease.as_ref().map(|l| l.holder.clone());
        instances = rows
            .into_iter()
            .map(|r| InstanceView {
                leader: holder.as_deref() == Some(r.id.as_str()),
                id: r.id,
                address: r.address,
                version: r.version,
                started: rfc3339(r.started_ms),
                last_seen: rfc3339(r.last_seen_ms),
            })
            .collect();
        match lease {
            Some(l) => (Some(l.holder), Some(rfc3339(l.since_ms)), l.generation),
            None => (None, None, term.generation),
        }
    } else {
        let now = chrono::Utc::now().timestamp_millis();
        instances.push(InstanceView {
            id: me.id().to_string(),
            address: me.config().address.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started: rfc3339(me.started_ms()),
            last_seen: rfc3339(now),
            leader: true,
        });
        (term.leader, term.since, term.generation)
    };
    Ok(Json(ClusterView {
        self_id: me.id().to_string(),
        leader,
        since,
        generation,
        database: state.store.backend().kind(),
        instances,
    }))
}
