//! The leader's lease and the instances' heartbeats (several wharf instances on one
//! PostgreSQL database). Each acquisition or renewal is one statement, so two instances can
//! never both hold the lease; times are the database's own clock.

use serde::Serialize;
use sqlx::Row;

use super::{Backend, Store, StoreResult};

/// The lease row's name.
const LEADER: &str = "leader";

/// The lease as the database holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    /// +1 on every acquisition: a write made under an older generation is a stale leader's.
    pub generation: i64,
    pub since_ms: i64,
    pub expires_ms: i64,
    /// The database's clock when it was read.
    pub now_ms: i64,
}

impl Lease {
    pub fn expired(&self) -> bool {
        self.expires_ms <= self.now_ms
    }
}

/// One instance's last heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstanceRow {
    pub id: String,
    pub address: String,
    pub version: String,
    pub started_ms: i64,
    pub last_seen_ms: i64,
}

impl Store {
    /// The database's clock, in unix milliseconds, as SQL.
    fn now_sql(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => {
                "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
            }
            Backend::Postgres { .. } => {
                "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
            }
        }
    }

    /// Takes the lease for `holder` (when it is free or expired) or renews it (when `holder`
    /// has it), for `ttl_ms` from the database's now. `None`: another instance holds it.
    pub async fn acquire_lease(&self, holder: &str, ttl_ms: i64) -> StoreResult<Option<Lease>> {
        let now = self.now_sql();
        let sql = format!(
            "INSERT INTO leases (name, holder, generation, since_ms, expires_ms) \
             VALUES ($1, $2, 1, {now}, {now} + $3) \
             ON CONFLICT (name) DO UPDATE SET \
               generation = CASE WHEN leases.holder = excluded.holder AND leases.expires_ms > {now} \
                            THEN leases.generation ELSE leases.generation + 1 END, \
               since_ms = CASE WHEN leases.holder = excluded.holder AND leases.expires_ms > {now} \
                          THEN leases.since_ms ELSE excluded.since_ms END, \
               holder = excluded.holder, \
               expires_ms = excluded.expires_ms \
             WHERE leases.holder = excluded.holder OR leases.expires_ms <= {now} \
             RETURNING holder, generation, since_ms, expires_ms, {now} AS now_ms"
        );
        let row = sqlx::query(&sql)
            .bind(LEADER)
            .bind(holder)
            .bind(ttl_ms)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| lease_of(&r)).transpose()
    }

    /// The lease as it stands, whoever holds it.
    pub async fn lease(&self) -> StoreResult<Option<Lease>> {
        let sql = format!(
            "SELECT holder, generation, since_ms, expires_ms, {} AS now_ms FROM leases WHERE name = $1",
            self.now_sql()
        );
        let row = sqlx::query(&sql)
            .bind(LEADER)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| lease_of(&r)).transpose()
    }

    /// Ends `holder`'s lease now (a graceful stop), so another instance takes over at once.
    pub async fn release_lease(&self, holder: &str) -> StoreResult<bool> {
        let sql = format!(
            "UPDATE leases SET expires_ms = {} WHERE name = $1 AND holder = $2",
            self.now_sql()
        );
        let done = sqlx::query(&sql)
            .bind(LEADER)
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records that instance `id` is alive now.
    pub async fn heartbeat_instance(
        &self,
        id: &str,
        address: &str,
        version: &str,
        started_ms: i64,
    ) -> StoreResult<()> {
        let sql = format!(
            "INSERT INTO instances (id, address, version, started_ms, last_seen_ms) VALUES ($1, $2, $3, $4, {now}) \
             ON CONFLICT (id) DO UPDATE SET address = excluded.address, version = excluded.version, \
             started_ms = excluded.started_ms, last_seen_ms = excluded.last_seen_ms",
            now = self.now_sql()
        );
        sqlx::query(&sql)
            .bind(id)
            .bind(address)
            .bind(version)
            .bind(started_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every instance seen within `within_ms`, by id; and the database's now.
    pub async fn instances(&self, within_ms: i64) -> StoreResult<(Vec<InstanceRow>, i64)> {
        let now = self.now_sql();
        let now_ms: i64 = sqlx::query_scalar(&format!("SELECT {now}"))
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(
            "SELECT id, address, version, started_ms, last_seen_ms FROM instances WHERE last_seen_ms >= $1 ORDER BY id",
        )
        .bind(now_ms - within_ms)
        .fetch_all(&self.pool)
        .await?;
        let instances = rows
            .iter()
            .map(|r| {
                Ok(InstanceRow {
                    id: r.try_get(0)?,
                    address: r.try_get(1)?,
                    version: r.try_get(2)?,
                    started_ms: r.try_get(3)?,
                    last_seen_ms: r.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok((instances, now_ms))
    }
}

fn lease_of(row: &sqlx::any::AnyRow) -> StoreResult<Lease> {
    Ok(Lease {
        holder: row.try_get(0)?,
        generation: row.try_get(1)?,
        since_ms: row.try_get(2)?,
        expires_ms: row.try_get(3)?,
        now_ms: row.try_get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::store::TestDb;

    /// Two instances on one database: one holds the lease, the other gets it only once it
    /// expired or was released, and each acquisition bumps the generation.
    async fn one_holder_at_a_time_and_each_takeover_bumps_the_generation(db: TestDb) {
        let a = db.open().await;
        let b = db.open().await;
        let first = a
            .acquire_lease("a", 60_000)
            .await
            .expect("a")
            .expect("a holds it");
        assert_eq!((first.holder.as_str(), first.generation), ("a", 1));
        assert!(b.acquire_lease("b", 60_000).await.expect("b").is_none());
        let renewed = a
            .acquire_lease("a", 60_000)
            .await
            .expect("renew")
            .expect("a still");
        assert_eq!(renewed.generation, 1, "a renewal keeps the generation");
        assert_eq!(renewed.since_ms, first.since_ms);
        assert!(renewed.expires_ms >= first.expires_ms);

        assert!(a.release_lease("a").await.expect("release"));
        let taken = b
            .acquire_lease("b", 300)
            .await
            .expect("b")
            .expect("b takes over");
        assert_eq!((taken.holder.as_str(), taken.generation), ("b", 2));
        assert!(a.acquire_lease("a", 60_000).await.expect("a").is_none());
        assert!(!a.release_lease("a").await.expect("not a's to release"));

        // b stops renewing: once its lease expired, a gets it back.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        let back = a
            .acquire_lease("a", 60_000)
            .await
            .expect("a")
            .expect("expired");
        assert_eq!((back.holder.as_str(), back.generation), ("a", 3));
        let seen = b.lease().await.expect("read").expect("a lease");
        assert_eq!(seen.holder, "a");
        assert!(!seen.expired());

        a.heartbeat_instance("a", "http://127.0.0.1:1", "0.1.0", 5)
            .await
            .expect("heartbeat");
        b.heartbeat_instance("b", "http://127.0.0.1:2", "0.1.0", 6)
            .await
            .expect("heartbeat");
        let (instances, now) = a.instances(60_000).await.expect("instances");
        assert_eq!(
            instances.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(
            instances
                .iter()
                .all(|i| i.last_seen_ms <= now && now - i.last_seen_ms < 60_000)
        );
    }

    crate::store::on_both_databases!(one_holder_at_a_time_and_each_takeover_bumps_the_generation);
}
