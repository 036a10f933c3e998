//! Stats routes: an app's series (`…/apps/{name}/stats?since=&until=&step=`), and the latest
//! sample in the app's status (`memUsage`, `memLimit`, `memMaxUsage`, `cpuPercent` — the Flask
//! API's container listing fields).

use axum::Json;
use axum::extract::State;
use schemars::JsonSchema;

use super::extract::{Path, Query};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::{ApiError, ApiResult};
use super::extract::key_from_path;
use super::state::ApiState;
use super::time::parse_time;
use crate::reconcile::status::unix_rfc3339;
use crate::spec::Kind;
use crate::spec::status::TaskStatus;
use crate::stats::host::HostStats;
use crate::stats::is_current;
use crate::stats::uptime::{Downtime, Transition, summarize};
use crate::store::{ObjectRecord, Point, Resolution, Retention};

#[derive(Deserialize, Default, JsonSchema)]
pub struct StatsQuery {
    since: Option<String>,
    until: Option<String>,
    step: Option<String>,
    /// Swarm mode: one task's series (its id, an id prefix, or its slot).
    task: Option<String>,
}

/// The resolution a query of `[since, until)` reads when none is asked for: raw samples for up
/// to 6 hours within their retention, minutes for up to 7 days within theirs, else hours.
pub fn pick_resolution(since: i64, until: i64, now: i64, retention: &Retention) -> Resolution {
    const HOUR: i64 = 3_600_000;
    let span = until - since;
    if span <= 6 * HOUR && since >= now - retention.raw_ms {
        Resolution::Raw
    } else if span <= 7 * 24 * HOUR && since >= now - retention.minute_ms {
        Resolution::Minute
    } else {
        Resolution::Hour
    }
}

fn parse_ms(field: &str, text: &str) -> ApiResult<i64> {
    parse_time(text)
        .map(|s| s.saturating_mul(1000))
        .map_err(|e| ApiError::bad_request(format!("{field}: {e}")))
}

/// `[since, until)` in unix ms from the query (RFC 3339 or unix seconds); the last hour by
/// default.
pub fn window(since: Option<&str>, until: Option<&str>, now: i64) -> ApiResult<(i64, i64)> {
    let until = until.map_or(Ok(now), |t| parse_ms("until", t))?;
    let since = since.map_or(Ok(until - 3_600_000), |t| parse_ms("since", t))?;
    if since >= until {
        return Err(ApiError::bad_request("since must be before until"));
    }
    Ok((since, until))
}

pub async fn app_stats(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<StatsQuery>,
) -> ApiResult<Json<StatsSeries>> {
    let key = key_from_path(ns, name)?;
    let now = chrono::Utc::now().timestamp_millis();
    let (since, until) = window(query.since.as_deref(), query.until.as_deref(), now)?;
    let resolution = match query.step.as_deref() {
        None | Some("auto") => pick_resolution(since, until, now, &state.stats.retention),
        Some("raw") => Resolution::Raw,
        Some("1m" | "60" | "60s") => Resolution::Minute,
        Some("1h" | "3600" | "3600s") => Resolution::Hour,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "step: {other:?} is not raw, 1m, 1h or auto"
            )));
        }
    };
    let record = state.record(Kind::App, &key).await?;
    let status = record.app_status();
    let tasks = status.map(|s| s.tasks.as_slice()).unwrap_or_default();
    let series = |task: String| {
        let store = &state.store;
        let uid = &record.uid;
        async move {
            let points = store
                .stats_series(uid, &task, since, until, resolution)
                .await?;
            Ok::<_, ApiError>(
                points
                    .into_iter()
                    .map(|p| Timed::at(p.t, p))
                    .collect::<Vec<_>>(),
            )
        }
    };
    let about = |id: &str| {
        let known = tasks.iter().find(|t| t.id == id);
        TaskSeriesOf {
            task: id.to_string(),
            slot: known.and_then(|t| t.slot),
            node: known.and_then(|t| t.node.as_ref()).map(|n| {
                if n.hostname.is_empty() {
                    n.id.clone()
                } else {
                    n.hostname.clone()
                }
            }),
        }
    };
    let (task, items, task_series) = match query.task.as_deref() {
        Some(wanted) => {
            let stored = state.store.stats_tasks(&record.uid, since, until).await?;
            let id = find_task(wanted, tasks, &stored).ok_or_else(|| {
                ApiError::not_found(format!(
                    "app {key} has no task {wanted:?} with stats in the window (give a task id, an id prefix or a slot)"
                ))
            })?;
            (Some(about(&id)), series(id).await?, Vec::new())
        }
        None => {
            let mut per_task = Vec::new();
            if state.agents.is_some() {
                for id in state.store.stats_tasks(&record.uid, since, until).await? {
                    per_task.push(TaskSeries {
                        of: about(&id),
                        items: series(id).await?,
                    });
                }
            }
            (None, series(String::new()).await?, per_task)
        }
    };
    Ok(Json(StatsSeries {
        kind: "StatsSeries",
        namespace: key.namespace,
        name: key.name,
        task,
        resolution,
        since: time_of(since),
        until: time_of(until),
        interval_seconds: state.stats.interval.as_secs_f64(),
        items,
        tasks: task_series,
    }))
}

/// The task `wanted` names: a task id, a prefix of one (at least 4 characters), or a slot
/// number — among the app's current tasks and those with stored samples.
pub fn find_task(wanted: &str, current: &[TaskStatus], stored: &[String]) -> Option<String> {
    // A slot's running task first.
    let mut current: Vec<&TaskStatus> = current.iter().collect();
    current
        .sort_by_key(|t| std::cmp::Reverse((t.desired_state == "running", t.state == "running")));
    let candidates: Vec<(&str, Option<u64>)> = current
        .iter()
        .map(|t| (t.id.as_str(), t.slot))
        .chain(stored.iter().map(|id| (id.as_str(), None)))
        .collect();
    super::tasks::choose(wanted, &candidates).map(|i| candidates[i].0.to_string())
}

/// Which task a series is of.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSeriesOf {
    pub task: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// One task's series (swarm mode).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSeries {
    #[serde(flatten)]
    pub of: TaskSeriesOf,
    pub items: Vec<Timed<Point>>,
}

/// Unix milliseconds as RFC 3339 (seconds).
pub fn time_of(ms: i64) -> Option<String> {
    unix_rfc3339(ms.div_euclid(1000))
}

/// A reading with its time (`t`, unix ms) also as RFC 3339 (`time`).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "Timed{T}")]
pub struct Timed<T> {
    #[serde(flatten)]
    pub reading: T,
    pub time: Option<String>,
}

impl<T> Timed<T> {
    fn at(t: i64, reading: T) -> Self {
        Self {
            reading,
            time: time_of(t),
        }
    }
}

/// An app's stats over a window, at one resolution.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatsSeries {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// With `?task=`: the task whose series `items` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskSeriesOf>,
    pub resolution: Resolution,
    pub since: Option<String>,
    pub until: Option<String>,
    pub interval_seconds: f64,
    /// The app's series (swarm mode: the sum of its tasks), or the task's with `?task=`.
    pub items: Vec<Timed<Point>>,
    /// Swarm mode: each task's series in the window.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskSeries>,
}

/// An app's availability over a window (the SRC API's uptime summary).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Uptime {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    pub duration: String,
    pub since_time: Option<String>,
    pub until_time: Option<String>,
    /// Unix milliseconds.
    pub since: i64,
    pub until: i64,
    pub availability_percent: Option<f64>,
    pub up_seconds: f64,
    pub down_seconds: f64,
    pub unknown_seconds: f64,
    pub restarts: u32,
    pub ooms: u32,
    pub downtime: Vec<TimedDowntime>,
    pub series: Vec<Timed<Transition>>,
}

/// A down interval with its ends also as RFC 3339.
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimedDowntime {
    #[serde(flatten)]
    pub downtime: Downtime,
    pub from_time: Option<String>,
    pub to_time: Option<String>,
}

/// Stored host readings over a window.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HostHistory {
    pub kind: &'static str,
    pub since: Option<String>,
    pub until: Option<String>,
    pub items: Vec<Value>,
}

#[derive(Deserialize, Default, JsonSchema)]
pub struct UptimeQuery {
    duration: Option<String>,
}

/// `GET …/apps/{name}/uptime?duration=hour|day|week|month` (default day): the up/down series,
/// availability, downtime intervals, restarts and OOM kills of the window (from the app's
/// creation, when that is later).
pub async fn app_uptime(
    State(state): State<ApiState>,
    Path((ns, name)): Path<(String, String)>,
    Query(query): Query<UptimeQuery>,
) -> ApiResult<Json<Uptime>> {
    let key = key_from_path(ns, name)?;
    let duration = query.duration.as_deref().unwrap_or("day");
    let span_ms: i64 = match duration {
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 7 * 86_400_000,
        "month" => 30 * 86_400_000,
        other => {
            return Err(ApiError::bad_request(format!(
                "duration: {other:?} is not hour, day, week or month"
            )));
        }
    };
    let record = state.record(Kind::App, &key).await?;
    let until = chrono::Utc::now().timestamp_millis();
    let created = chrono::DateTime::parse_from_rfc3339(&record.created_at)
        .map(|t| t.timestamp_millis())
        .unwrap_or(0);
    let since = (until - span_ms).max(created).min(until - 1);
    let (before, within) = state.store.transitions(&record.uid, since, until).await?;
    let summary = summarize(before.as_ref(), &within, since, until);
    Ok(Json(Uptime {
        kind: "Uptime",
        namespace: key.namespace,
        name: key.name,
        duration: duration.to_string(),
        since_time: time_of(since),
        until_time: time_of(until),
        since: summary.since,
        until: summary.until,
        availability_percent: summary.availability_percent,
        up_seconds: summary.up_seconds,
        down_seconds: summary.down_seconds,
        unknown_seconds: summary.unknown_seconds,
        restarts: summary.restarts,
        ooms: summary.ooms,
        downtime: summary
            .downtime
            .into_iter()
            .map(|d| TimedDowntime {
                from_time: time_of(d.from),
                to_time: time_of(d.to),
                downtime: d,
            })
            .collect(),
        series: summary
            .series
            .into_iter()
            .map(|t| Timed::at(t.t, t))
            .collect(),
    }))
}

/// `GET /api/v1/host/stats`: the host's figures now.
pub async fn host_now() -> ApiResult<Json<Timed<HostStats>>> {
    let reading = tokio::task::spawn_blocking(crate::stats::host::read)
        .await
        .map_err(|e| ApiError::internal("reading host stats", e))?
        .map_err(|e| ApiError::internal("reading host stats", e))?;
    Ok(Json(Timed::at(reading.t, reading)))
}

#[derive(Deserialize, Default, JsonSchema)]
pub struct HistoryQuery {
    since: Option<String>,
    until: Option<String>,
}

/// At most this many host readings per answer (a day at the default interval).
pub const HOST_HISTORY_LIMIT: i64 = 8640;

/// `GET /api/v1/host/stats/history?since=&until=`: the stored host readings.
pub async fn host_history(
    State(state): State<ApiState>,
    Query(query): Query<HistoryQuery>,
) -> ApiResult<Json<HostHistory>> {
    let now = chrono::Utc::now().timestamp_millis();
    let (since, until) = window(query.since.as_deref(), query.until.as_deref(), now)?;
    let items = state
        .store
        .host_samples("", since, until, HOST_HISTORY_LIMIT)
        .await?;
    Ok(Json(HostHistory {
        kind: "HostStatsHistory",
        since: time_of(since),
        until: time_of(until),
        items,
    }))
}

/// The latest usage of an app, as its status shows it (the Flask API's container listing
/// fields).
#[derive(Debug, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub mem_usage: i64,
    pub mem_limit: i64,
    pub mem_max_usage: i64,
    pub cpu_percent: f64,
    pub stats_at: Option<String>,
}

/// The latest sample while it is current (at most three intervals old): a stopped app shows no
/// stale usage.
pub async fn usage(state: &ApiState, record: &ObjectRecord) -> Option<Usage> {
    let sample = state.store.latest_sample(&record.uid).await.ok()??;
    let now = chrono::Utc::now().timestamp_millis();
    is_current(state.stats.interval, sample.t, now).then(|| Usage::of(&sample))
}

/// The current usage of every app that has some, by uid (one query for a listing).
pub async fn usages(state: &ApiState) -> std::collections::HashMap<String, Usage> {
    let now = chrono::Utc::now().timestamp_millis();
    let since = now - i64::try_from((state.stats.interval * 3).as_millis()).unwrap_or(i64::MAX);
    match state.store.latest_samples_since(since).await {
        Ok(samples) => samples
            .into_iter()
            .filter(|(_, s)| is_current(state.stats.interval, s.t, now))
            .map(|(uid, s)| (uid, Usage::of(&s)))
            .collect(),
        Err(e) => {
            tracing::warn!("reading the apps' latest samples: {e}");
            Default::default()
        }
    }
}

impl Usage {
    fn of(sample: &crate::store::Sample) -> Self {
        Usage {
            mem_usage: sample.mem,
            mem_limit: sample.mem_limit,
            mem_max_usage: sample.mem_max,
            cpu_percent: (sample.cpu * 100.0).round() / 100.0,
            stats_at: time_of(sample.t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resolution_follows_the_span_and_the_retention() {
        let r = Retention::default();
        let now = 1_000 * 24 * 3_600_000;
        let hour = 3_600_000;
        assert_eq!(pick_resolution(now - hour, now, now, &r), Resolution::Raw);
        assert_eq!(
            pick_resolution(now - 24 * hour, now, now, &r),
            Resolution::Minute
        );
        // Two hours, but two days ago: raw samples are gone.
        assert_eq!(
            pick_resolution(now - 50 * hour, now - 48 * hour, now, &r),
            Resolution::Minute
        );
        assert_eq!(
            pick_resolution(now - 30 * 24 * hour, now, now, &r),
            Resolution::Hour
        );
    }
}
