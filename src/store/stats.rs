//! Stats history in the store: raw samples, per-minute and per-hour rollups, and retention.
//!
//! Everything here is SQL over two tables keyed `(uid, …, time)`: an app's range is one index
//! range scan. Rollups are recomputed for recent buckets (idempotent upserts), so a
//! late sample or a restart never leaves a bucket half counted. This module never talks to
//! Docker.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Store, StoreResult};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UpState {
    Up,
    Down,
    Unknown,
}

impl UpState {
    pub fn as_str(self) -> &'static str {
        match self {
            UpState::Up => "up",
            UpState::Down => "down",
            UpState::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "up" => UpState::Up,
            "down" => UpState::Down,
            _ => UpState::Unknown,
        }
    }
}

/// One recorded transition of one app.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    #[serde(skip)]
    pub uid: String,
    /// Unix milliseconds.
    pub t: i64,
    pub state: UpState,
    /// started, died, oom, paused, unpaused, stopped, removed, healthy, unhealthy, observed,
    /// unwatched.
    pub event: String,
    pub detail: String,
}

/// One stored sample of one app.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    #[serde(skip)]
    pub uid: String,
    /// Empty for the app's own series; a Swarm task id for one task's series.
    #[serde(skip)]
    pub task: String,
    /// Unix milliseconds.
    pub t: i64,
    /// Percent of one core.
    pub cpu: f64,
    pub mem: i64,
    pub mem_limit: i64,
    pub mem_max: i64,
    pub net_rx: i64,
    pub net_tx: i64,
    pub blk_read: i64,
    pub blk_write: i64,
    pub pids: i64,
}

/// Which table a query reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Resolution {
    Raw,
    #[serde(rename = "1m")]
    Minute,
    #[serde(rename = "1h")]
    Hour,
}

impl Resolution {
    /// Bucket length in seconds (0 for raw samples).
    pub fn step(self) -> i64 {
        match self {
            Resolution::Raw => 0,
            Resolution::Minute => 60,
            Resolution::Hour => 3600,
        }
    }
}

/// One point of a stats series: a raw sample (avg = max) or a rollup bucket.
#[derive(Clone, Debug, Default, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    /// Unix milliseconds (bucket start for rollups).
    pub t: i64,
    /// Samples behind the point.
    pub n: i64,
    pub cpu_percent: f64,
    pub cpu_percent_max: f64,
    pub mem_usage: i64,
    pub mem_usage_max: i64,
    pub mem_limit: i64,
    pub net_rx: i64,
    pub net_tx: i64,
    pub blk_read: i64,
    pub blk_write: i64,
    pub pids: i64,
}

/// How long each resolution is kept (milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub raw_ms: i64,
    pub minute_ms: i64,
    pub hour_ms: i64,
}

impl Retention {
    /// A retention period in milliseconds (saturating).
    pub fn millis(d: std::time::Duration) -> i64 {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Default for Retention {
    fn default() -> Self {
        use crate::defaults::{STATS_HOUR_RETENTION, STATS_MINUTE_RETENTION, STATS_RAW_RETENTION};
        Self {
            raw_ms: Retention::millis(STATS_RAW_RETENTION),
            minute_ms: Retention::millis(STATS_MINUTE_RETENTION),
            hour_ms: Retention::millis(STATS_HOUR_RETENTION),
        }
    }
}

type PointRow = (i64, i64, f64, f64, i64, i64, i64, i64, i64, i64, i64, i64);

/// The app's own sample (task empty) from a raw-sample `PointRow`.
fn sample_of(uid: &str, row: PointRow) -> Sample {
    let p = point(row);
    Sample {
        uid: uid.to_string(),
        task: String::new(),
        t: p.t,
        cpu: p.cpu_percent,
        mem: p.mem_usage,
        mem_limit: p.mem_limit,
        mem_max: p.mem_usage_max,
        net_rx: p.net_rx,
        net_tx: p.net_tx,
        blk_read: p.blk_read,
        blk_write: p.blk_write,
        pids: p.pids,
    }
}

fn point(row: PointRow) -> Point {
    let (t, n, cpu, cpu_max, mem, mem_max, mem_limit, net_rx, net_tx, blk_read, blk_write, pids) =
        row;
    Point {
        t,
        n,
        cpu_percent: cpu,
        cpu_percent_max: cpu_max,
        mem_usage: mem,
        mem_usage_max: mem_max,
        mem_limit,
        net_rx,
        net_tx,
        blk_read,
        blk_write,
        pids,
    }
}

impl Store {
    /// Stores a batch of samples in one transaction.
    pub async fn insert_samples(&self, samples: &[Sample]) -> StoreResult<()> {
        if samples.is_empty() {
            return Ok(());
        }
        // A few hundred rows per statement (12 parameters each, well under SQLite's 32766):
        // one statement per sample cost a round trip to the connection's thread each.
        let mut tx = self.pool.begin().await?;
        for chunk in samples.chunks(500) {
            let mut sql = String::from(
                "INSERT INTO stats_samples (uid, task, t, cpu, mem, mem_limit, mem_max, net_rx, net_tx, blk_read, blk_write, pids) SELECT * FROM (VALUES ",
            );
            sql.push_str(&super::placeholders(chunk.len(), 12));
            // Only for objects that still exist: a reading taken just before its app was
            // forgotten must not outlive it.
            sql.push_str(
                ") AS v WHERE EXISTS (SELECT 1 FROM objects WHERE uid = v.column1) \
                 ON CONFLICT (uid, task, t) DO UPDATE SET cpu = excluded.cpu, mem = excluded.mem, mem_limit = excluded.mem_limit, mem_max = excluded.mem_max, net_rx = excluded.net_rx, net_tx = excluded.net_tx, blk_read = excluded.blk_read, blk_write = excluded.blk_write, pids = excluded.pids",
            );
            let mut query = sqlx::query(&sql);
            for s in chunk {
                query = query
                    .bind(&s.uid)
                    .bind(&s.task)
                    .bind(s.t)
                    .bind(s.cpu)
                    .bind(s.mem)
                    .bind(s.mem_limit)
                    .bind(s.mem_max)
                    .bind(s.net_rx)
                    .bind(s.net_tx)
                    .bind(s.blk_read)
                    .bind(s.blk_write)
                    .bind(s.pids);
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The newest sample of an app.
    pub async fn latest_sample(&self, uid: &str) -> StoreResult<Option<Sample>> {
        let row: Option<PointRow> = sqlx::query_as(
            "SELECT t, 1, cpu, cpu, mem, mem_max, mem_limit, net_rx, net_tx, blk_read, blk_write, pids FROM stats_samples WHERE uid = $1 AND task = '' ORDER BY t DESC LIMIT 1",
        )
        .bind(uid)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| sample_of(uid, row)))
    }

    /// The newest sample of every app that has one at or after `since` (unix ms): one query
    /// for a whole listing.
    pub async fn latest_samples_since(
        &self,
        since: i64,
    ) -> StoreResult<std::collections::HashMap<String, Sample>> {
        use sqlx::Row;
        // The columns of a `PointRow`, then the uid.
        let rows = sqlx::query(
            "SELECT s.t, 1, s.cpu, s.cpu, s.mem, s.mem_max, s.mem_limit, s.net_rx, s.net_tx, s.blk_read, s.blk_write, s.pids, s.uid
             FROM stats_samples s
             JOIN (SELECT uid, max(t) AS t FROM stats_samples WHERE task = '' AND t >= $1 GROUP BY uid) newest
               ON s.uid = newest.uid AND s.task = '' AND s.t = newest.t",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut samples = std::collections::HashMap::with_capacity(rows.len());
        for row in rows {
            let point: PointRow = sqlx::FromRow::from_row(&row)?;
            let uid: String = row.try_get(12)?;
            samples.insert(uid.clone(), sample_of(&uid, point));
        }
        Ok(samples)
    }

    /// An app's series (`task` empty) or one of its tasks' in `[since, until)` (unix ms) at
    /// `resolution`, oldest first.
    pub async fn stats_series(
        &self,
        uid: &str,
        task: &str,
        since: i64,
        until: i64,
        resolution: Resolution,
    ) -> StoreResult<Vec<Point>> {
        let rows: Vec<PointRow> = match resolution {
            Resolution::Raw => {
                sqlx::query_as(
                    "SELECT t, 1, cpu, cpu, mem, mem, mem_limit, net_rx, net_tx, blk_read, blk_write, pids FROM stats_samples WHERE uid = $1 AND task = $2 AND t >= $3 AND t < $4 ORDER BY t",
                )
                .bind(uid)
                .bind(task)
                .bind(since)
                .bind(until)
                .fetch_all(&self.pool)
                .await?
            }
            rollup => {
                sqlx::query_as(
                    "SELECT t, n, cpu_avg, cpu_max, mem_avg, mem_max, mem_limit, net_rx, net_tx, blk_read, blk_write, pids_max FROM stats_rollups WHERE uid = $1 AND task = $2 AND step = $3 AND t >= $4 AND t < $5 ORDER BY t",
                )
                .bind(uid)
                .bind(task)
                .bind(rollup.step())
                .bind(since)
                .bind(until)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows.into_iter().map(point).collect())
    }

    /// Computes the rollups of every bucket that ends in `(from, now]` (unix ms): minutes from
    /// raw samples, hours from minutes. Buckets still open at `now` are left for later.
    pub async fn roll_up(&self, from: i64, now: i64) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        let minute = 60_000;
        let (lo, hi) = (
            from.div_euclid(minute) * minute,
            now.div_euclid(minute) * minute,
        );
        sqlx::query(
            "INSERT INTO stats_rollups (uid, task, step, t, n, cpu_avg, cpu_max, mem_avg, mem_max, mem_limit, net_rx, net_tx, blk_read, blk_write, pids_max)
             SELECT uid, task, 60, (t / 60000) * 60000 AS b, count(*), avg(cpu), max(cpu), CAST(sum(mem) AS BIGINT) / count(*), max(mem), max(mem_limit), max(net_rx), max(net_tx), max(blk_read), max(blk_write), max(pids)
             FROM stats_samples WHERE t >= $1 AND t < $2 GROUP BY uid, task, b
             ON CONFLICT (uid, task, step, t) DO UPDATE SET n = excluded.n, cpu_avg = excluded.cpu_avg, cpu_max = excluded.cpu_max, mem_avg = excluded.mem_avg, mem_max = excluded.mem_max, mem_limit = excluded.mem_limit, net_rx = excluded.net_rx, net_tx = excluded.net_tx, blk_read = excluded.blk_read, blk_write = excluded.blk_write, pids_max = excluded.pids_max",
        )
        .bind(lo)
        .bind(hi)
        .execute(&mut *tx)
        .await?;
        let hour = 3_600_000;
        let (lo, hi) = (from.div_euclid(hour) * hour, now.div_euclid(hour) * hour);
        sqlx::query(
            "INSERT INTO stats_rollups (uid, task, step, t, n, cpu_avg, cpu_max, mem_avg, mem_max, mem_limit, net_rx, net_tx, blk_read, blk_write, pids_max)
             SELECT uid, task, 3600, (t / 3600000) * 3600000 AS b, CAST(sum(n) AS BIGINT), CAST(sum(cpu_avg * n) / sum(n) AS DOUBLE PRECISION), max(cpu_max), CAST(sum(mem_avg * n) AS BIGINT) / CAST(sum(n) AS BIGINT), max(mem_max), max(mem_limit), max(net_rx), max(net_tx), max(blk_read), max(blk_write), max(pids_max)
             FROM stats_rollups WHERE step = 60 AND t >= $1 AND t < $2 GROUP BY uid, task, b
             ON CONFLICT (uid, task, step, t) DO UPDATE SET n = excluded.n, cpu_avg = excluded.cpu_avg, cpu_max = excluded.cpu_max, mem_avg = excluded.mem_avg, mem_max = excluded.mem_max, mem_limit = excluded.mem_limit, net_rx = excluded.net_rx, net_tx = excluded.net_tx, blk_read = excluded.blk_read, blk_write = excluded.blk_write, pids_max = excluded.pids_max",
        )
        .bind(lo)
        .bind(hi)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Rewrites the database file compactly (benchmarks measure its size). PostgreSQL:
    /// `VACUUM`, which its autovacuum also does.
    pub async fn vacuum(&self) -> StoreResult<()> {
        if self.backend.is_postgres() {
            sqlx::query("VACUUM").execute(&self.pool).await?;
            return Ok(());
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        sqlx::query("VACUUM").execute(&self.pool).await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tasks of an app that have samples in `[since, until)`, in the order they first
    /// reported.
    pub async fn stats_tasks(&self, uid: &str, since: i64, until: i64) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT task FROM stats_samples WHERE uid = $1 AND task != '' AND t >= $2 AND t < $3 GROUP BY task ORDER BY min(t), task",
        )
        .bind(uid)
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|(t,)| t).collect())
    }

    /// Stores one host reading (JSON) of `node` (empty: the host wharf runs on).
    pub async fn insert_host_sample(
        &self,
        node: &str,
        t: i64,
        doc: &serde_json::Value,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO host_samples (node, t, doc) VALUES ($1, $2, $3) ON CONFLICT (node, t) DO UPDATE SET doc = excluded.doc")
            .bind(node)
            .bind(t)
            .bind(doc.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Host readings of `node` (empty: the host wharf runs on) in `[since, until)` (unix ms),
    /// oldest first; at most `limit`.
    pub async fn host_samples(
        &self,
        node: &str,
        since: i64,
        until: i64,
        limit: i64,
    ) -> StoreResult<Vec<serde_json::Value>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT doc FROM host_samples WHERE node = $1 AND t >= $2 AND t < $3 ORDER BY t LIMIT $4",
        )
        .bind(node)
        .bind(since)
        .bind(until)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(doc,)| {
                serde_json::from_str(&doc)
                    .map_err(|e| super::StoreError::Corrupt(format!("host sample: {e}")))
            })
            .collect()
    }

    /// Stores uptime transitions.
    pub async fn insert_transitions(&self, transitions: &[Transition]) -> StoreResult<()> {
        if transitions.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for t in transitions {
            sqlx::query(
                // As for samples: nothing is recorded for an app that is gone.
                "INSERT INTO uptime_transitions (uid, t, state, event, detail) SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM objects WHERE uid = $1)",
            )
            .bind(&t.uid)
            .bind(t.t)
            .bind(t.state.as_str())
            .bind(&t.event)
            .bind(&t.detail)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The last transition of an app before `t`, and its transitions in `[t, until)`, oldest
    /// first (ties in recording order).
    pub async fn transitions(
        &self,
        uid: &str,
        since: i64,
        until: i64,
    ) -> StoreResult<(Option<Transition>, Vec<Transition>)> {
        let to = |(t, state, event, detail): (i64, String, String, String)| Transition {
            uid: uid.to_string(),
            t,
            state: UpState::parse(&state),
            event,
            detail,
        };
        let before: Option<(i64, String, String, String)> = sqlx::query_as(
            "SELECT t, state, event, detail FROM uptime_transitions WHERE uid = $1 AND t < $2 ORDER BY t DESC, id DESC LIMIT 1",
        )
        .bind(uid)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        let within: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT t, state, event, detail FROM uptime_transitions WHERE uid = $1 AND t >= $2 AND t < $3 ORDER BY t, id",
        )
        .bind(uid)
        .bind(since)
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        Ok((before.map(to), within.into_iter().map(to).collect()))
    }

    /// When the last transition of an app was recorded.
    pub async fn last_transition_time(&self, uid: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT max(t) FROM uptime_transitions WHERE uid = $1")
                .bind(uid)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Notes that `instance` watched the engine at `t`.
    pub async fn uptime_heartbeat(&self, instance: &str, t: i64) -> StoreResult<()> {
        sqlx::query("INSERT INTO uptime_heartbeat (instance, t) VALUES ($1, $2) ON CONFLICT (instance) DO UPDATE SET t = excluded.t")
            .bind(instance)
            .bind(t)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn last_uptime_heartbeat(&self, instance: &str) -> StoreResult<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT t FROM uptime_heartbeat WHERE instance = $1")
                .bind(instance)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Deletes what is older than its retention; returns the rows removed.
    pub async fn prune_stats(&self, now: i64, retention: &Retention) -> StoreResult<u64> {
        let mut removed = 0;
        for table in ["stats_samples", "host_samples"] {
            removed += sqlx::query(&format!("DELETE FROM {table} WHERE t < $1"))
                .bind(now - retention.raw_ms)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        // Transitions are kept as long as the longest history.
        removed += sqlx::query("DELETE FROM uptime_transitions WHERE t < $1")
            .bind(now - retention.hour_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        for (step, keep) in [(60, retention.minute_ms), (3600, retention.hour_ms)] {
            removed += sqlx::query("DELETE FROM stats_rollups WHERE step = $1 AND t < $2")
                .bind(step)
                .bind(now - keep)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(uid: &str, t: i64, cpu: f64, mem: i64) -> Sample {
        Sample {
            uid: uid.into(),
            t,
            cpu,
            mem,
            mem_limit: 1000,
            net_rx: t / 1000,
            pids: (t / 10_000) % 7,
            ..Sample::default()
        }
    }

    async fn the_latest_samples_of_all_apps_come_in_one_query(db: crate::store::TestDb) {
        let (store, uid) = crate::store::store_with_one_app(&db).await;
        let mut samples = vec![
            sample(&uid, 1_000, 10.0, 1),
            sample(&uid, 2_000, 20.0, 2),
            // A task's sample is not the app's.
            Sample {
                task: "t1".into(),
                ..sample(&uid, 3_000, 99.0, 3)
            },
        ];
        // An app that no longer exists gets nothing stored.
        samples.push(sample("gone", 2_500, 1.0, 1));
        store.insert_samples(&samples).await.expect("insert");
        let latest = store.latest_samples_since(1_500).await.expect("latest");
        assert_eq!(latest.len(), 1);
        assert_eq!((latest[&uid].t, latest[&uid].cpu), (2_000, 20.0));
        assert!(
            store
                .latest_samples_since(2_001)
                .await
                .expect("none")
                .is_empty()
        );
    }

    async fn a_batch_larger_than_one_statement_is_stored_whole(db: crate::store::TestDb) {
        let (store, uid) = crate::store::store_with_one_app(&db).await;
        let samples: Vec<Sample> = (0..1201)
            .map(|i| sample(&uid, 10_000 * (i + 1), i as f64, i))
            .collect();
        store.insert_samples(&samples).await.expect("insert");
        let stored = store
            .stats_series(&uid, "", 0, i64::MAX, Resolution::Raw)
            .await
            .expect("series");
        assert_eq!(stored.len(), 1201);
        assert_eq!(
            (stored[1200].cpu_percent, stored[1200].mem_usage),
            (1200.0, 1200)
        );
    }

    async fn rollups_are_averages_and_maxima_of_their_buckets(db: crate::store::TestDb) {
        let store = db.open().await;
        // Two hours of 10 s samples for one app, cpu and memory rising with time; a second app
        // with one sample.
        let base = 1_700_000_400_000 - 1_700_000_400_000 % 3_600_000;
        let samples: Vec<Sample> = (0..720)
            .map(|i| sample("a", base + i * 10_000, i as f64, 100 + i))
            .chain([sample("b", base + 5_000, 50.0, 7)])
            .collect();
        for uid in ["a", "b"] {
            sqlx::query("INSERT INTO objects (kind, namespace, name, uid, generation, resource_version, source, labels, annotations, spec, created_at) VALUES ('App', 'demo', $1, $1, 1, 1, 'api', '{}', '{}', '{}', '')")
                .bind(uid)
                .execute(&store.pool)
                .await
                .expect("object");
        }
        store.insert_samples(&samples).await.expect("insert");
        let now = base + 2 * 3_600_000 + 1;
        store.roll_up(base, now).await.expect("roll up");

        let minutes = store
            .stats_series("a", "", base, now, Resolution::Minute)
            .await
            .expect("minutes");
        assert_eq!(minutes.len(), 120);
        // Minute k holds samples 6k..6k+5: cpu avg 6k+2.5, max 6k+5; counters their last.
        for (k, m) in minutes.iter().enumerate() {
            let k = k as i64;
            assert_eq!(m.t, base + k * 60_000);
            assert_eq!(m.n, 6);
            assert!((m.cpu_percent - (6 * k) as f64 - 2.5).abs() < 1e-9, "{m:?}");
            assert_eq!(m.cpu_percent_max, (6 * k + 5) as f64);
            assert_eq!(m.mem_usage_max, 100 + 6 * k + 5);
            assert_eq!(m.net_rx, (base + (6 * k + 5) * 10_000) / 1000);
        }
        let hours = store
            .stats_series("a", "", base, now, Resolution::Hour)
            .await
            .expect("hours");
        assert_eq!(hours.len(), 2);
        assert_eq!(hours[0].n, 360);
        assert!(
            (hours[0].cpu_percent - 179.5).abs() < 1e-9,
            "{:?}",
            hours[0]
        );
        assert_eq!(hours[1].cpu_percent_max, 719.0);
        assert_eq!(hours[0].mem_usage, 100 + 179);
        let b = store
            .stats_series("b", "", base, now, Resolution::Minute)
            .await
            .expect("b");
        assert_eq!((b.len(), b[0].cpu_percent), (1, 50.0));

        // Rolling up again changes nothing; an open bucket is not rolled up.
        store.roll_up(base, now).await.expect("again");
        let again = store
            .stats_series("a", "", base, now, Resolution::Minute)
            .await
            .expect("minutes");
        assert_eq!(again, minutes);
        store
            .insert_samples(&[sample("a", now + 1_000, 1.0, 1)])
            .await
            .expect("insert");
        store
            .roll_up(now - 60_000, now + 2_000)
            .await
            .expect("open");
        let open = store
            .stats_series("a", "", now - 1, now + 60_000, Resolution::Minute)
            .await
            .expect("open bucket");
        assert!(open.is_empty(), "{open:?}");

        // Retention: raw samples older than a day go; rollups stay longer.
        let later = base + 26 * 3_600_000;
        let removed = store
            .prune_stats(later, &Retention::default())
            .await
            .expect("prune");
        assert_eq!(removed, 721);
        assert!(
            store
                .stats_series("a", "", base, now - 1, Resolution::Raw)
                .await
                .expect("raw")
                .is_empty()
        );
        assert_eq!(
            store
                .stats_series("a", "", base, later, Resolution::Hour)
                .await
                .expect("hours")
                .len(),
            2
        );
    }

    crate::store::on_both_databases!(
        the_latest_samples_of_all_apps_come_in_one_query,
        a_batch_larger_than_one_statement_is_stored_whole,
        rollups_are_averages_and_maxima_of_their_buckets
    );
}
