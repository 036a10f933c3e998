//! Events about objects: what was done and what went wrong, newest 200 kept per object.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use super::record::ObjectRecord;
use super::{Store, StoreResult, now_rfc3339};

/// Whether an event reports something done or something that went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

impl TryFrom<String> for EventType {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "Normal" => Ok(EventType::Normal),
            "Warning" => Ok(EventType::Warning),
            other => Err(format!("{other:?} is not an event type")),
        }
    }
}

/// An event about an object.
#[derive(Clone, Debug, PartialEq, Serialize, sqlx::FromRow, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub time: String,
    #[serde(rename = "type")]
    #[sqlx(rename = "type", try_from = "String")]
    pub kind: EventType,
    pub reason: String,
    pub message: String,
}

impl Store {
    /// Records an event about an object; keeps the newest 200 per object.
    pub async fn record_event(
        &self,
        record: &ObjectRecord,
        kind: EventType,
        reason: &str,
        message: &str,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO events (uid, kind, namespace, name, time, type, reason, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&record.uid)
        .bind(record.kind.as_str())
        .bind(&record.key.namespace)
        .bind(&record.key.name)
        .bind(now_rfc3339())
        .bind(kind.as_str())
        .bind(reason)
        .bind(message)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM events WHERE uid = $1 AND id NOT IN (SELECT id FROM events WHERE uid = $2 ORDER BY id DESC LIMIT 200)",
        )
        .bind(&record.uid)
        .bind(&record.uid)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Events of an object, oldest first.
    pub async fn events(&self, uid: &str) -> StoreResult<Vec<Event>> {
        let rows = sqlx::query(
            "SELECT time, type, reason, message FROM events WHERE uid = $1 ORDER BY id",
        )
        .bind(uid)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(Event::from_row(r)?)).collect()
    }
}
