//! `wharf store copy --from URL --to URL`: moves an installation between databases (SQLite to
//! PostgreSQL, or back): objects with their status, events, tokens, image requests, namespace
//! policies, the audit log, settings, stats history and uptime. The target must be empty; the
//! copy is one transaction on it, so a failed copy leaves it empty.

use serde::Serialize;
use sqlx::{Any, Row, Transaction};

use super::{Database, Store, StoreError, StoreResult};

#[derive(Clone, Copy)]
enum Col {
    Text,
    Int,
    Float,
    Bytes,
}

use Col::{Bytes, Float, Int, Text};

/// A table, its columns, and its identity column (ids kept as they are; PostgreSQL's sequence
/// is moved past them).
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Col)],
    identity: Option<&'static str>,
}

/// Every table an installation keeps. Not copied: the leader's lease and the instances'
/// heartbeats, which belong to running instances.
const TABLES: &[Table] = &[
    Table {
        name: "objects",
        columns: &[
            ("kind", Text),
            ("namespace", Text),
            ("name", Text),
            ("uid", Text),
            ("generation", Int),
            ("resource_version", Int),
            ("source", Text),
            ("labels", Text),
            ("annotations", Text),
            ("spec", Text),
            ("status", Text),
            ("created_at", Text),
            ("deletion_timestamp", Text),
            ("host_port_root", Int),
            ("applied_container_id", Text),
            ("applied_update_hash", Text),
            ("source_commit", Text),
        ],
        identity: None,
    },
    Table {
        name: "events",
        columns: &[
            ("id", Int),
            ("uid", Text),
            ("kind", Text),
            ("namespace", Text),
            ("name", Text),
            ("time", Text),
            ("type", Text),
            ("reason", Text),
            ("message", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "source_errors",
        columns: &[("source", Text), ("time", Text), ("message", Text)],
        identity: None,
    },
    Table {
        name: "port_claims",
        columns: &[
            ("uid", Text),
            ("namespace", Text),
            ("name", Text),
            ("first", Int),
            ("last", Int),
            ("protocol", Text),
        ],
        identity: None,
    },
    Table {
        name: "stats_samples",
        columns: &[
            ("uid", Text),
            ("task", Text),
            ("t", Int),
            ("cpu", Float),
            ("mem", Int),
            ("mem_limit", Int),
            ("mem_max", Int),
            ("net_rx", Int),
            ("net_tx", Int),
            ("blk_read", Int),
            ("blk_write", Int),
            ("pids", Int),
        ],
        identity: None,
    },
    Table {
        name: "stats_rollups",
        columns: &[
            ("uid", Text),
            ("task", Text),
            ("step", Int),
            ("t", Int),
            ("n", Int),
            ("cpu_avg", Float),
            ("cpu_max", Float),
            ("mem_avg", Int),
            ("mem_max", Int),
            ("mem_limit", Int),
            ("net_rx", Int),
            ("net_tx", Int),
            ("blk_read", Int),
            ("blk_write", Int),
            ("pids_max", Int),
        ],
        identity: None,
    },
    Table {
        name: "host_samples",
        columns: &[("node", Text), ("t", Int), ("doc", Text)],
        identity: None,
    },
    Table {
        name: "uptime_transitions",
        columns: &[
            ("id", Int),
            ("uid", Text),
            ("t", Int),
            ("state", Text),
            ("event", Text),
            ("detail", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "uptime_heartbeat",
        columns: &[("instance", Text), ("t", Int)],
        identity: None,
    },
    Table {
        name: "tokens",
        columns: &[
            ("id", Text),
            ("sha256", Bytes),
            ("description", Text),
            ("grants", Text),
            ("created_at", Text),
            ("created_by", Text),
            ("expires_at", Text),
            ("revoked_at", Text),
        ],
        identity: None,
    },
    Table {
        name: "audit",
        columns: &[
            ("id", Int),
            ("time", Text),
            ("token_id", Text),
            ("method", Text),
            ("route", Text),
            ("path", Text),
            ("namespace", Text),
            ("status", Int),
            ("result", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "image_requests",
        columns: &[
            ("id", Int),
            ("reference", Text),
            ("reason", Text),
            ("requested_by", Text),
            ("requested_at", Text),
            ("state", Text),
            ("decided_by", Text),
            ("decided_at", Text),
            ("message", Text),
        ],
        identity: Some("id"),
    },
    Table {
        name: "namespace_policies",
        columns: &[
            ("namespace", Text),
            ("policy", Text),
            ("updated_at", Text),
            ("updated_by", Text),
        ],
        identity: None,
    },
    Table {
        name: "settings",
        columns: &[("name", Text), ("value", Text)],
        identity: None,
    },
];

/// Parameters per insert statement, well under SQLite's and PostgreSQL's limits.
const PARAMETERS: usize = 2_000;

/// What was copied: rows per table, in copy order.
#[derive(Debug, Serialize)]
pub struct CopyReport {
    pub tables: Vec<(String, u64)>,
    pub resource_version: i64,
}

/// One value read from a row, as the column's type.
enum Value {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bytes(Option<Vec<u8>>),
}

/// Copies every table of `from` into `to` (created and migrated if needed), which must hold
/// nothing yet.
pub async fn copy(from: &Database, to: &Database) -> StoreResult<CopyReport> {
    if from == to {
        return Err(StoreError::Conflict(format!(
            "--from and --to are the same database ({from})"
        )));
    }
    let source = Store::connect(from).await?;
    let target = Store::connect(to).await?;
    let held = target.contents().await?;
    if !held.is_empty() {
        return Err(StoreError::Conflict(format!(
            "the target database {to} is not empty ({}); wharf store copy only fills an empty one",
            held.join(", ")
        )));
    }
    let mut tx = target.write_tx().await?;
    let mut report = CopyReport {
        tables: Vec::new(),
        resource_version: 0,
    };
    for table in TABLES {
        let rows = copy_table(&source, &mut tx, table).await?;
        report.tables.push((table.name.to_string(), rows));
    }
    let rv: i64 = sqlx::query_scalar("SELECT value FROM counters WHERE name = 'resource_version'")
        .fetch_one(&source.pool)
        .await?;
    sqlx::query("UPDATE counters SET value = $1 WHERE name = 'resource_version'")
        .bind(rv)
        .execute(&mut *tx)
        .await?;
    report.resource_version = rv;
    if target.backend.is_postgres() {
        for table in TABLES {
            if let Some(id) = table.identity {
                let sql = format!(
                    "SELECT setval(pg_get_serial_sequence('{0}', '{id}'), (SELECT COALESCE(MAX({id}), 0) + 1 FROM {0}), false)",
                    table.name
                );
                sqlx::query(&sql).execute(&mut *tx).await?;
            }
        }
    }
    tx.commit().await?;
    source.close().await;
    target.close().await;
    Ok(report)
}

impl Store {
    /// What the database holds that a copy would collide with, e.g. `3 objects`; empty when
    /// nothing.
    async fn contents(&self) -> StoreResult<Vec<String>> {
        let mut held = Vec::new();
        for table in TABLES {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", table.name))
                .fetch_one(&self.pool)
                .await?;
            if n > 0 {
                held.push(format!("{n} rows in {}", table.name));
            }
        }
        Ok(held)
    }
}

async fn copy_table(
    source: &Store,
    tx: &mut Transaction<'static, Any>,
    table: &Table,
) -> StoreResult<u64> {
    let names: Vec<&str> = table.columns.iter().map(|(n, _)| *n).collect();
    let select = format!("SELECT {} FROM {}", names.join(", "), table.name);
    let rows = sqlx::query(&select).fetch_all(&source.pool).await?;
    let per_statement = (PARAMETERS / names.len()).max(1);
    let mut copied = 0u64;
    for chunk in rows.chunks(per_statement) {
        let sql = format!(
            "INSERT INTO {} ({}) VALUES {}",
            table.name,
            names.join(", "),
            super::placeholders(chunk.len(), names.len())
        );
        let mut values = Vec::with_capacity(chunk.len() * names.len());
        for row in chunk {
            for (name, col) in table.columns {
                values.push(match col {
                    Text => Value::Text(row.try_get(*name)?),
                    Int => Value::Int(row.try_get(*name)?),
                    Float => Value::Float(row.try_get(*name)?),
                    Bytes => Value::Bytes(row.try_get(*name)?),
                });
            }
        }
        let mut query = sqlx::query(&sql);
        for value in values {
            query = match value {
                Value::Text(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::Float(v) => query.bind(v),
                Value::Bytes(v) => query.bind(v),
            };
        }
        copied += query.execute(&mut **tx).await?.rows_affected();
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{EventType, ObjectSource, Sample, TestDb, WriteItem};

    fn key() -> crate::spec::AppKey {
        crate::spec::AppKey {
            namespace: "demo".into(),
            name: "web".into(),
        }
    }

    /// A SQLite installation with a bit of everything is copied to PostgreSQL whole, the copy
    /// serves it, and a second copy into it is refused.
    #[tokio::test]
    async fn an_installation_moves_from_sqlite_to_postgres_whole() {
        let sqlite = TestDb::sqlite();
        let (store, uid) = crate::store::store_with_one_app(&sqlite).await;
        store
            .create_token("tok_copied", &[7; 32], "copied", &[], "tok_admin", None)
            .await
            .expect("token");
        let record = store
            .get(crate::spec::Kind::App, &key())
            .await
            .expect("read")
            .expect("the app");
        store
            .record_event(&record, EventType::Normal, "Created", "made")
            .await
            .expect("event");
        store
            .insert_samples(&[Sample {
                uid: uid.clone(),
                task: String::new(),
                t: 1_000,
                cpu: 12.5,
                mem: 1 << 20,
                mem_limit: 1 << 30,
                mem_max: 2 << 20,
                net_rx: 1,
                net_tx: 2,
                blk_read: 3,
                blk_write: 4,
                pids: 5,
            }])
            .await
            .expect("samples");
        store
            .put_setting("copy-test", &"kept")
            .await
            .expect("setting");
        let before = store.change_counter().await.expect("counter");
        store.close().await;

        let postgres = TestDb::postgres().await;
        let report = copy(&sqlite.database, &postgres.database)
            .await
            .expect("copied");
        let count = |name: &str| {
            report
                .tables
                .iter()
                .find(|(t, _)| t == name)
                .map(|(_, n)| *n)
        };
        assert_eq!(count("objects"), Some(1));
        assert_eq!(count("tokens"), Some(1));
        assert_eq!(count("stats_samples"), Some(1));
        assert!(count("events").is_some());

        let moved = postgres.open().await;
        let record = moved
            .get(crate::spec::Kind::App, &key())
            .await
            .expect("read")
            .expect("the app");
        assert_eq!(record.uid, uid);
        assert_eq!(moved.change_counter().await.expect("counter"), before);
        let tokens = moved.tokens().await.expect("tokens");
        assert_eq!(tokens.len(), 1);
        assert!(
            moved
                .principal_for(&[7; 32], &crate::store::now_rfc3339())
                .await
                .expect("read")
                .is_ok(),
            "the token's digest was copied"
        );
        assert_eq!(moved.events(&uid).await.expect("events").len(), 1);
        let sample = moved
            .latest_sample(&uid)
            .await
            .expect("read")
            .expect("a sample");
        assert_eq!((sample.cpu, sample.pids), (12.5, 5));
        assert_eq!(
            moved
                .setting::<String>("copy-test")
                .await
                .expect("read")
                .as_deref(),
            Some("kept")
        );
        // New rows after the copied ids: the sequences moved past them.
        moved
            .apply(
                &[WriteItem::new(
                    &crate::spec::read_bundle(
                        "apiVersion: wharf/v1\nkind: App\nmetadata: {name: api, namespace: demo}\nspec: {image: 'busybox:1'}\n",
                        crate::spec::Format::Yaml,
                        None,
                    )
                    .expect("valid")[0],
                )],
                &ObjectSource::Api,
            )
            .await
            .expect("a write after the copy");
        moved.close().await;

        let refused = copy(&sqlite.database, &postgres.database)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("not empty") && refused.contains("objects"),
            "{refused}"
        );
    }
}
