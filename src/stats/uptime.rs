//! Uptime: every state transition of every app, recorded from Docker's event stream as it
//! happens (not polled), plus wharf's own view when it starts watching — at start-up and after
//! losing the engine — with the time it was not watching recorded as `unknown`, never as up.
//!
//! `summarize` is pure: from the transitions of a window it computes the up/down series,
//! availability, downtime intervals, restarts and OOM kills. The recorder is a task of its own.

use schemars::JsonSchema;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::runtime::{ContainerState, Runtime, RuntimeEvent, labels};
use crate::spec::Kind;
use crate::store::Store;
pub use crate::store::stats::{Transition, UpState};

/// The transition a container event means, if it changes availability. (A restart shows as
/// `die` then `start`; `kill` is followed by `die`.)
pub fn transition_for(event: &RuntimeEvent) -> Option<(UpState, &'static str, String)> {
    let exit = || {
        event
            .attributes
            .get("exitCode")
            .map(|c| format!("exit code {c}"))
            .unwrap_or_default()
    };
    Some(match event.action.as_str() {
        "start" => (UpState::Up, "started", String::new()),
        "unpause" => (UpState::Up, "unpaused", String::new()),
        "die" => (UpState::Down, "died", exit()),
        "oom" => (UpState::Down, "oom", "killed for lack of memory".into()),
        "pause" => (UpState::Down, "paused", String::new()),
        "stop" => (UpState::Down, "stopped", String::new()),
        "destroy" => (UpState::Down, "removed", String::new()),
        "health_status: healthy" => (UpState::Up, "healthy", String::new()),
        "health_status: unhealthy" => (UpState::Down, "unhealthy", String::new()),
        _ => return None,
    })
}

/// A time the app was down.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Downtime {
    pub from: i64,
    pub to: i64,
    pub seconds: f64,
    /// What took it down: `died (exit code 137)`, `paused`, …
    pub reason: String,
}

/// An app's availability over a window.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub since: i64,
    pub until: i64,
    /// Up time over known time (up + down), in percent; none when nothing is known.
    pub availability_percent: Option<f64>,
    pub up_seconds: f64,
    pub down_seconds: f64,
    pub unknown_seconds: f64,
    pub restarts: u32,
    pub ooms: u32,
    pub downtime: Vec<Downtime>,
    /// The state at `since`, then every transition in the window.
    pub series: Vec<Transition>,
}

/// Adds the down interval `[from, to)`, if any, to `list`.
fn close_down(from: Option<i64>, to: i64, why: &Option<String>, list: &mut Vec<Downtime>) {
    if let Some(from) = from
        && to > from
    {
        list.push(Downtime {
            from,
            to,
            seconds: (to - from) as f64 / 1000.0,
            reason: why.clone().unwrap_or_default(),
        });
    }
}

fn reason(t: &Transition) -> String {
    if t.detail.is_empty() {
        t.event.clone()
    } else {
        format!("{} ({})", t.event, t.detail)
    }
}

/// Summarizes `[since, until)`: `before` is the last transition before `since` (its state
/// holds at `since`; without one the state is unknown), `within` the transitions inside,
/// oldest first. A start after a down state counts as a restart.
pub fn summarize(
    before: Option<&Transition>,
    within: &[Transition],
    since: i64,
    until: i64,
) -> Summary {
    let mut state = before.map_or(UpState::Unknown, |t| t.state);
    let mut down_reason = before.filter(|t| t.state == UpState::Down).map(reason);
    let mut at = since;
    let mut totals = [0i64; 3];
    let mut downtime: Vec<Downtime> = Vec::new();
    let mut down_since = (state == UpState::Down).then_some(since);
    let mut down_event = before
        .filter(|t| t.state == UpState::Down)
        .map(|t| t.event.clone());
    let mut restarts = 0;
    let mut ooms = 0;
    let mut series = vec![Transition {
        uid: String::new(),
        t: since,
        state,
        event: before.map_or("unwatched".into(), |t| t.event.clone()),
        detail: before.map_or(String::new(), |t| t.detail.clone()),
    }];
    let index = |s: UpState| match s {
        UpState::Up => 0,
        UpState::Down => 1,
        UpState::Unknown => 2,
    };
    for t in within.iter().filter(|t| t.t >= since && t.t < until) {
        totals[index(state)] += t.t - at;
        at = t.t;
        if t.event == "oom" {
            ooms += 1;
        }
        // A restart is a start after the container ran and ended, not its first start.
        let ended = matches!(down_event.as_deref(), Some("died" | "oom" | "stopped"));
        if t.event == "started" && state == UpState::Down && ended {
            restarts += 1;
        }
        if t.state != state {
            if state == UpState::Down {
                close_down(down_since.take(), t.t, &down_reason, &mut downtime);
            }
            if t.state == UpState::Down {
                down_since = Some(t.t);
                down_reason = Some(reason(t));
                down_event = Some(t.event.clone());
            }
            state = t.state;
        }
        series.push(t.clone());
    }
    totals[index(state)] += until - at;
    if state == UpState::Down {
        close_down(down_since, until, &down_reason, &mut downtime);
    }
    let known = totals[0] + totals[1];
    Summary {
        since,
        until,
        availability_percent: (known > 0).then(|| totals[0] as f64 / known as f64 * 100.0),
        up_seconds: totals[0] as f64 / 1000.0,
        down_seconds: totals[1] as f64 / 1000.0,
        unknown_seconds: totals[2] as f64 / 1000.0,
        restarts,
        ooms,
        downtime,
        series,
    }
}

/// How often the recorder notes that it is watching.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// Records transitions from the engine's events.
pub struct Recorder {
    store: Store,
    runtime: Arc<dyn Runtime>,
    instance: String,
}

impl Recorder {
    pub fn new(store: Store, runtime: Arc<dyn Runtime>, instance: String) -> Arc<Self> {
        Arc::new(Self {
            store,
            runtime,
            instance,
        })
    }

    pub fn spawn(self: &Arc<Self>) -> Vec<JoinHandle<()>> {
        let recorder = Arc::clone(self);
        let heartbeat = Arc::clone(self);
        vec![
            tokio::spawn(async move { recorder.run().await }),
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(HEARTBEAT);
                loop {
                    tick.tick().await;
                    let now = chrono::Utc::now().timestamp_millis();
                    if let Err(e) = heartbeat
                        .store
                        .uptime_heartbeat(&heartbeat.instance, now)
                        .await
                    {
                        tracing::debug!("uptime heartbeat: {e}");
                    }
                }
            }),
        ]
    }

    async fn run(&self) {
        // The gap since this instance last watched (a wharf restart) is unknown.
        let mut unwatched_since = match self.store.last_uptime_heartbeat(&self.instance).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("reading the uptime heartbeat: {e}");
                None
            }
        };
        let mut outage = crate::backoff::outage();
        loop {
            // Subscribe first, then look: nothing between the two is missed.
            let mut stream = self.runtime.events(&self.instance);
            match self.observe(unwatched_since.take()).await {
                Ok(()) => outage = crate::backoff::outage(),
                Err(e) => {
                    tracing::debug!("uptime: the engine is not answering: {e}");
                    unwatched_since.get_or_insert(chrono::Utc::now().timestamp_millis());
                    let delay = outage.next().unwrap_or(crate::backoff::OUTAGE_MAX);
                    tokio::time::sleep(delay).await;
                    continue;
                }
            }
            while let Some(event) = stream.next().await {
                let Ok(event) = event else { break };
                self.record(&event).await;
            }
            // Lost the engine: from now on nothing is known until the next observation.
            let lost = chrono::Utc::now().timestamp_millis();
            unwatched_since = Some(lost);
            tokio::time::sleep(outage.next().unwrap_or(crate::backoff::OUTAGE_MAX)).await;
        }
    }

    /// Records what the engine shows now for every app, after marking the time since
    /// `unwatched_since` unknown.
    async fn observe(&self, unwatched_since: Option<i64>) -> Result<(), String> {
        // The apps first, then the containers: an app stored after the container list was
        // taken would otherwise look as if its container were missing. The time of the look is
        // when the container list was asked for: events after it sort after it.
        let apps = self
            .store
            .list(Kind::App, None)
            .await
            .map_err(|e| e.to_string())?;
        let now = chrono::Utc::now().timestamp_millis();
        let containers = self
            .runtime
            .list(&self.instance)
            .await
            .map_err(|e| e.to_string())?;
        let mut transitions = Vec::new();
        for app in &apps {
            let last = self
                .store
                .last_transition_time(&app.uid)
                .await
                .map_err(|e| e.to_string())?;
            let own = containers
                .iter()
                .filter(|c| c.labels.get(labels::UID) == Some(&app.uid))
                .max_by_key(|c| (c.state == ContainerState::Running, c.created));
            if own.is_none() && last.is_none() {
                // A new app whose first container is not made yet has no history to speak
                // of: its uptime starts with its first container.
                continue;
            }
            if let Some(gap) = unwatched_since {
                // Anything recorded after the last heartbeat was seen: the gap starts later.
                let gap = last.map_or(gap, |l| gap.max(l + 1)).min(now);
                transitions.push(Transition {
                    uid: app.uid.clone(),
                    t: gap,
                    state: UpState::Unknown,
                    event: "unwatched".into(),
                    detail: "wharf was not watching the engine".into(),
                });
            }
            let (state, detail) = match own.map(|c| c.state) {
                Some(ContainerState::Running) => (UpState::Up, "running".to_string()),
                Some(s) => (UpState::Down, s.to_string()),
                None => (UpState::Down, "no container".to_string()),
            };
            transitions.push(Transition {
                uid: app.uid.clone(),
                t: now,
                state,
                event: "observed".into(),
                detail,
            });
        }
        self.store
            .insert_transitions(&transitions)
            .await
            .map_err(|e| e.to_string())
    }

    async fn record(&self, event: &RuntimeEvent) {
        if event.image {
            return;
        }
        let Some(uid) = event.attributes.get(labels::UID) else {
            return;
        };
        let Some((state, kind, detail)) = transition_for(event) else {
            return;
        };
        let transition = Transition {
            uid: uid.clone(),
            t: event.time_ms,
            state,
            event: kind.into(),
            detail,
        };
        if let Err(e) = self.store.insert_transitions(&[transition]).await {
            tracing::warn!("recording an uptime transition: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(at_s: i64, state: UpState, event: &str) -> Transition {
        Transition {
            uid: "u".into(),
            t: at_s * 1000,
            state,
            event: event.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn a_scripted_sequence_gives_exact_availability() {
        use UpState::*;
        // start 0, kill 10 (died), start 20, pause 30, unpause 40; window 0-60 s.
        let events = [
            t(0, Up, "started"),
            t(10, Down, "died"),
            t(20, Up, "started"),
            t(30, Down, "paused"),
            t(40, Up, "unpaused"),
        ];
        let s = summarize(None, &events, 0, 60_000);
        assert_eq!(
            (s.up_seconds, s.down_seconds, s.unknown_seconds),
            (40.0, 20.0, 0.0)
        );
        assert!((s.availability_percent.unwrap() - 200.0 / 3.0).abs() < 1e-9);
        assert_eq!(s.restarts, 1, "the start after the death");
        assert_eq!(s.downtime.len(), 2);
        assert_eq!((s.downtime[0].from, s.downtime[0].to), (10_000, 20_000));
        assert_eq!(s.downtime[1].reason, "paused");
        assert_eq!(s.series.len(), 6);

        // Seen created (not yet started) by wharf's own look, then started: a first start.
        let events = [t(0, Down, "observed"), t(1, Up, "started")];
        assert_eq!(summarize(None, &events, 0, 10_000).restarts, 0);
    }

    #[test]
    fn what_was_not_watched_is_unknown_not_up() {
        use UpState::*;
        let before = t(-100, Up, "started");
        let events = [t(10, Unknown, "unwatched"), t(40, Up, "observed")];
        let s = summarize(Some(&before), &events, 0, 60_000);
        assert_eq!(
            (s.up_seconds, s.down_seconds, s.unknown_seconds),
            (30.0, 0.0, 30.0)
        );
        assert_eq!(s.availability_percent, Some(100.0));
        // Nothing known at all.
        let s = summarize(None, &[], 0, 60_000);
        assert_eq!((s.unknown_seconds, s.availability_percent), (60.0, None));
        // Down across the window's end, and an OOM kill.
        let events = [t(50, Down, "oom"), t(50, Down, "died")];
        let s = summarize(Some(&before), &events, 0, 60_000);
        assert_eq!((s.ooms, s.downtime.len(), s.down_seconds), (1, 1, 10.0));
        assert_eq!(s.downtime[0].reason, "oom");
    }

    #[test]
    fn container_events_map_to_transitions() {
        let event = |action: &str| RuntimeEvent {
            id: "c".into(),
            action: action.into(),
            image: false,
            time_ms: 0,
            attributes: [("exitCode".to_string(), "137".to_string())].into(),
        };
        assert_eq!(
            transition_for(&event("die")),
            Some((UpState::Down, "died", "exit code 137".into()))
        );
        assert_eq!(transition_for(&event("start")).unwrap().0, UpState::Up);
        assert_eq!(
            transition_for(&event("health_status: unhealthy"))
                .unwrap()
                .1,
            "unhealthy"
        );
        assert_eq!(transition_for(&event("kill")), None);
        assert_eq!(transition_for(&event("exec_start: git")), None);
    }
}
