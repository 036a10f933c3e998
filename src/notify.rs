//! Notifications (`wharf serve --notify-webhook URL`): a JSON POST to each configured webhook
//! when an app becomes Degraded, is rolled back, Fails or recovers, an Image is updated, a
//! declared node goes down, or a spec file is rejected.
//!
//! What counts as notable is a pure function of an object's stored and newly computed status
//! (`transitions`). Sending never blocks the caller: notices go into a bounded queue per
//! webhook (a full queue drops the notice and counts it), and each webhook's task delivers its
//! notices in order, retrying with backoff. Bodies are signed with HMAC-SHA256 of
//! `--notify-secret-file` in `X-Wharf-Signature-256` (GitHub's format). Every delivery, failure
//! and drop is counted in `wharf_notifications_total{target, event, result}`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use hmac::{Hmac, Mac};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::Serialize;
use sha2::Sha256;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::spec::Kind;
use crate::spec::status::{ObjectStatus, Phase};
use crate::store::{ObjectRecord, now_rfc3339};

/// Notices waiting for one webhook; more are dropped (and counted).
const QUEUE: usize = 1024;
/// One POST's deadline.
const POST_TIMEOUT: Duration = Duration::from_secs(10);
/// Attempts per notice: the first and this many retries, 1 s doubling to 1 min.
const RETRIES: usize = 6;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Event {
    #[serde(rename = "app.degraded")]
    AppDegraded,
    #[serde(rename = "app.rolledBack")]
    AppRolledBack,
    #[serde(rename = "app.failed")]
    AppFailed,
    #[serde(rename = "app.recovered")]
    AppRecovered,
    #[serde(rename = "image.updated")]
    ImageUpdated,
    #[serde(rename = "node.down")]
    NodeDown,
    #[serde(rename = "source.rejected")]
    SourceRejected,
}

impl Event {
    pub const ALL: [Event; 7] = [
        Event::AppDegraded,
        Event::AppRolledBack,
        Event::AppFailed,
        Event::AppRecovered,
        Event::ImageUpdated,
        Event::NodeDown,
        Event::SourceRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::AppDegraded => "app.degraded",
            Event::AppRolledBack => "app.rolledBack",
            Event::AppFailed => "app.failed",
            Event::AppRecovered => "app.recovered",
            Event::ImageUpdated => "image.updated",
            Event::NodeDown => "node.down",
            Event::SourceRejected => "source.rejected",
        }
    }

    fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// The object a notice is about.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub kind: Kind,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// One notification, as it is posted.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub event: Event,
    pub time: String,
    /// The wharf instance (`--instance`) that saw it.
    pub instance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<ObjectRef>,
    /// `file:PATH` for a rejected spec file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub message: String,
}

impl Notice {
    pub fn about(event: Event, record: &ObjectRecord, message: String) -> Self {
        Self {
            event,
            time: now_rfc3339(),
            instance: String::new(),
            object: Some(ObjectRef {
                kind: record.kind,
                namespace: record.key.namespace.clone(),
                name: record.key.name.clone(),
                uid: record.uid.clone(),
            }),
            source: None,
            message,
        }
    }
}

/// The notable changes from `record`'s stored status to `new`.
pub fn transitions(record: &ObjectRecord, new: &ObjectStatus) -> Vec<Notice> {
    let mut out = Vec::new();
    let mut notice = |event, message: String| out.push(Notice::about(event, record, message));
    let what = record.describe();
    match (record.status.as_ref(), new) {
        (old, ObjectStatus::App(new)) => {
            let old = match old {
                Some(ObjectStatus::App(s)) => Some(s),
                _ => None,
            };
            let old_phase = old.map(|s| s.phase);
            let detail = new.message.clone().unwrap_or_default();
            if new.phase == Phase::Degraded && old_phase != Some(Phase::Degraded) {
                notice(Event::AppDegraded, format!("{what} is Degraded: {detail}"));
            }
            if let Some(rb) = &new.rolled_back
                && old.and_then(|s| s.rolled_back.as_ref()) != Some(rb)
            {
                notice(
                    Event::AppRolledBack,
                    format!(
                        "{what}: generation {} was rolled back: {}",
                        rb.generation, rb.message
                    ),
                );
            }
            if new.phase == Phase::Failed && old_phase != Some(Phase::Failed) {
                notice(Event::AppFailed, format!("{what} Failed: {detail}"));
            }
            if new.phase == Phase::Running
                && matches!(old_phase, Some(Phase::Degraded | Phase::Failed))
            {
                let was = old_phase.map(|p| format!("{p:?}")).unwrap_or_default();
                notice(
                    Event::AppRecovered,
                    format!("{what} is Running again (was {was})"),
                );
            }
        }
        (Some(ObjectStatus::Image(old)), ObjectStatus::Image(new)) => {
            if let (Some(before), Some(after)) = (&old.id, &new.id)
                && before != after
            {
                let digest = new.digest.as_deref().unwrap_or(after);
                notice(
                    Event::ImageUpdated,
                    format!("{what} was updated: now {digest} (was {before})"),
                );
            }
        }
        (old, ObjectStatus::Node(new)) => {
            let old_state = match old {
                Some(ObjectStatus::Node(n)) => n.state.as_deref(),
                _ => None,
            };
            if new.state.as_deref() == Some("down") && old_state != Some("down") {
                let host = new.hostname.as_deref().unwrap_or(&record.key.name);
                notice(
                    Event::NodeDown,
                    format!(
                        "node {host} is down: {}",
                        new.message
                            .as_deref()
                            .unwrap_or("the swarm reports it down")
                    ),
                );
            }
        }
        _ => {}
    }
    out
}

/// `--notify-webhook URL[#events=E1,E2]`: where to post, and which events (all when none
/// are named). The fragment never leaves wharf.
#[derive(Clone, Debug, PartialEq)]
pub struct Webhook {
    pub url: reqwest::Url,
    pub events: Vec<Event>,
}

impl std::str::FromStr for Webhook {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut url = reqwest::Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("{s:?}: a webhook URL is http:// or https://"));
        }
        let events = match url.fragment() {
            None | Some("") => Vec::new(),
            Some(fragment) => {
                let list = fragment.strip_prefix("events=").ok_or_else(|| {
                    format!(
                        "{s:?}: the fragment names the events, e.g. #events=app.degraded,app.failed"
                    )
                })?;
                list.split(',')
                    .map(|name| {
                        Event::parse(name).ok_or_else(|| {
                            let known: Vec<&str> = Event::ALL.iter().map(|e| e.as_str()).collect();
                            format!("{s:?}: unknown event {name:?}; known: {}", known.join(", "))
                        })
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        url.set_fragment(None);
        Ok(Self { url, events })
    }
}

impl Webhook {
    fn wants(&self, event: Event) -> bool {
        self.events.is_empty() || self.events.contains(&event)
    }

    /// The metrics label: scheme, host and port, never the path (it may hold a secret).
    fn target(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{}://{host}:{port}", self.url.scheme()),
            None => format!("{}://{host}", self.url.scheme()),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NotificationLabels {
    pub target: String,
    pub event: String,
    /// delivered, failed (every attempt failed) or dropped (the queue was full).
    pub result: String,
}

/// The sending side: cheap to clone; without webhooks it does nothing.
#[derive(Clone, Default)]
pub struct Notifier {
    queues: Arc<Vec<(Webhook, mpsc::Sender<Notice>)>>,
    instance: String,
    counts: Family<NotificationLabels, Counter>,
}

impl fmt::Debug for Notifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let targets: Vec<String> = self.queues.iter().map(|(w, _)| w.target()).collect();
        f.debug_struct("Notifier")
            .field("targets", &targets)
            .finish()
    }
}

impl Notifier {
    /// A notifier posting to `webhooks`, signing with `secret`; its delivery tasks.
    pub fn start(
        webhooks: Vec<Webhook>,
        secret: Option<Vec<u8>>,
        instance: String,
    ) -> (Self, Vec<JoinHandle<()>>) {
        let counts = Family::<NotificationLabels, Counter>::default();
        let client = reqwest::Client::builder()
            .timeout(POST_TIMEOUT)
            .user_agent(concat!("wharf/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let secret = secret.map(Arc::new);
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        for webhook in webhooks {
            let (tx, rx) = mpsc::channel(QUEUE);
            tasks.push(tokio::spawn(deliver_all(
                webhook.clone(),
                rx,
                client.clone(),
                secret.clone(),
                counts.clone(),
            )));
            queues.push((webhook, tx));
        }
        let notifier = Self {
            queues: Arc::new(queues),
            instance,
            counts,
        };
        (notifier, tasks)
    }

    /// The counts, for `/metrics`.
    pub fn counts(&self) -> Family<NotificationLabels, Counter> {
        self.counts.clone()
    }

    /// Queues `notice` for every webhook that wants its event; never waits.
    pub fn send(&self, mut notice: Notice) {
        notice.instance.clone_from(&self.instance);
        for (webhook, tx) in self.queues.iter() {
            if !webhook.wants(notice.event) {
                continue;
            }
            if tx.try_send(notice.clone()).is_err() {
                tracing::warn!(target = %webhook.target(), event = notice.event.as_str(), "notification dropped: {QUEUE} are already waiting for this webhook");
                count(&self.counts, webhook, notice.event, "dropped");
            }
        }
    }
}

fn count(
    counts: &Family<NotificationLabels, Counter>,
    webhook: &Webhook,
    event: Event,
    result: &str,
) {
    counts
        .get_or_create(&NotificationLabels {
            target: webhook.target(),
            event: event.as_str().into(),
            result: result.into(),
        })
        .inc();
}

/// Delivers one webhook's notices in order, each retried with backoff.
async fn deliver_all(
    webhook: Webhook,
    mut rx: mpsc::Receiver<Notice>,
    client: reqwest::Client,
    secret: Option<Arc<Vec<u8>>>,
    counts: Family<NotificationLabels, Counter>,
) {
    while let Some(notice) = rx.recv().await {
        let body = match serde_json::to_vec(&notice) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!("a notification cannot be encoded: {e}");
                continue;
            }
        };
        let delivery = uuid::Uuid::new_v4().to_string();
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_secs(1))
            .with_max_delay(Duration::from_secs(60))
            .with_max_times(RETRIES)
            .build();
        let result = loop {
            match post(
                &client,
                &webhook,
                &notice,
                &body,
                &delivery,
                secret.as_deref(),
            )
            .await
            {
                Ok(()) => break Ok(()),
                Err(e) => match delays.next() {
                    Some(delay) => {
                        tracing::debug!(target = %webhook.target(), "notification not delivered ({e}); retrying in {delay:?}");
                        tokio::time::sleep(delay).await;
                    }
                    None => break Err(e),
                },
            }
        };
        match result {
            Ok(()) => count(&counts, &webhook, notice.event, "delivered"),
            Err(e) => {
                tracing::warn!(target = %webhook.target(), event = notice.event.as_str(), "notification not delivered after {} attempts: {e}", RETRIES + 1);
                count(&counts, &webhook, notice.event, "failed");
            }
        }
    }
}

async fn post(
    client: &reqwest::Client,
    webhook: &Webhook,
    notice: &Notice,
    body: &[u8],
    delivery: &str,
    secret: Option<&Vec<u8>>,
) -> Result<(), String> {
    let mut request = client
        .post(webhook.url.clone())
        .header("content-type", "application/json")
        .header("x-wharf-event", notice.event.as_str())
        .header("x-wharf-delivery", delivery)
        .body(body.to_vec());
    if let Some(secret) = secret {
        request = request.header("x-wharf-signature-256", signature(secret, body));
    }
    let response = request
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered {status}"))
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", crate::auth::hex(&mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_record(status: Option<&str>) -> ObjectRecord {
        let docs = crate::spec::read_bundle(
            "apiVersion: wharf/v1\nkind: App\nmetadata: {name: web, namespace: demo}\nspec: {image: 'busybox:1'}\n",
            crate::spec::Format::Yaml,
            None,
        )
        .expect("valid");
        let mut record = crate::store::WriteItem::new(&docs[0]).would_store(None);
        record.status = status.map(app_status);
        record
    }

    fn app_status(json: &str) -> ObjectStatus {
        ObjectStatus::App(serde_json::from_str(json).expect("an app status"))
    }

    const RUNNING: &str = r#"{"phase": "Running", "conditions": [], "restartCount": 0}"#;
    const FAILED: &str =
        r#"{"phase": "Failed", "conditions": [], "restartCount": 3, "message": "exited 1"}"#;
    const DEGRADED: &str = r#"{"phase": "Degraded", "conditions": [], "restartCount": 0, "message": "rolled back", "rolledBack": {"generation": 2, "message": "health check failed"}}"#;

    fn events(old: Option<&str>, new: &str) -> Vec<Event> {
        transitions(&app_record(old), &app_status(new))
            .into_iter()
            .map(|n| n.event)
            .collect()
    }

    #[test]
    fn app_transitions_are_notable_once() {
        assert_eq!(events(None, RUNNING), []);
        assert_eq!(events(Some(RUNNING), RUNNING), []);
        assert_eq!(events(Some(RUNNING), FAILED), [Event::AppFailed]);
        assert_eq!(
            events(Some(FAILED), FAILED),
            [],
            "no repeat while it stays Failed"
        );
        assert_eq!(events(Some(FAILED), RUNNING), [Event::AppRecovered]);
        assert_eq!(
            events(Some(RUNNING), DEGRADED),
            [Event::AppDegraded, Event::AppRolledBack]
        );
        assert_eq!(events(Some(DEGRADED), DEGRADED), []);
        assert_eq!(events(Some(DEGRADED), RUNNING), [Event::AppRecovered]);
        let notice = &transitions(&app_record(Some(RUNNING)), &app_status(FAILED))[0];
        assert!(
            notice.message.contains("App demo/web") && notice.message.contains("exited 1"),
            "{}",
            notice.message
        );
    }

    #[test]
    fn webhooks_parse_their_event_filter_from_the_fragment() {
        let all: Webhook = "https://hooks.example.com/wharf".parse().expect("valid");
        assert!(all.events.is_empty() && all.wants(Event::NodeDown));
        let some: Webhook = "https://hooks.example.com/x/T0K3N#events=app.failed,source.rejected"
            .parse()
            .expect("valid");
        assert_eq!(some.events, [Event::AppFailed, Event::SourceRejected]);
        assert_eq!(
            some.url.as_str(),
            "https://hooks.example.com/x/T0K3N",
            "the fragment is not sent"
        );
        assert_eq!(
            some.target(),
            "https://hooks.example.com",
            "no path in metrics"
        );
        assert!(!some.wants(Event::AppDegraded));
        for bad in [
            "hooks.example.com",
            "ftp://hooks.example.com/",
            "https://hooks.example.com/#app.failed",
            "https://hooks.example.com/#events=app.exploded",
        ] {
            assert!(bad.parse::<Webhook>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signature_is_github_s_format() {
        assert_eq!(
            signature(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
