//! The store on PostgreSQL against SQLite, side by side, on this machine: the same queries
//! through the same `Store` (no engine involved: these are the database's own figures).
//!
//! - apply of 100 App documents in one request (created, then updated), median of 5;
//! - list of 1000 apps, median of 20;
//! - a 24 h stats query of one app (raw samples every 10 s, and by the minute after rollups)
//!   among 20 apps with a full day each, median of 20.
//!
//! SQLite runs as `wharf serve` runs it (WAL, `synchronous=FULL`); PostgreSQL is Debian's, started
//! here with `fsync` on (initdb into a temp directory, loopback TCP), so both make each commit
//! durable.
//!
//! Run: `cargo run --release --example bench_store`.

use std::time::Instant;

use wharf::spec::{Format, Kind, read_bundle};
use wharf::store::testdb::PgServer;
use wharf::store::{Database, ObjectSource, Resolution, Sample, Store, WriteItem};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn documents(namespace: &str, n: usize, round: usize) -> Vec<wharf::spec::Validated> {
    let mut yaml = String::new();
    for i in 0..n {
        yaml.push_str(&format!(
            "---\napiVersion: wharf/v1\nkind: App\nmetadata: {{name: app{i}, namespace: {namespace}}}\nspec:\n  image: busybox:1\n  env: {{ROUND: \"{round}\"}}\n  resources: {{memory: 64Mi}}\n"
        ));
    }
    read_bundle(&yaml, Format::Yaml, None).expect("valid documents")
}

async fn apply(store: &Store, docs: &[wharf::spec::Validated]) -> f64 {
    let items: Vec<WriteItem> = docs.iter().map(WriteItem::new).collect();
    let t = Instant::now();
    store
        .apply(&items, &ObjectSource::Api)
        .await
        .expect("applied");
    t.elapsed().as_secs_f64() * 1000.0
}

struct Figures {
    create_100: f64,
    update_100: f64,
    list_1000: f64,
    day_raw: f64,
    day_minute: f64,
}

async fn measure(database: &Database) -> Figures {
    let store = Store::connect(database).await.expect("store");
    let mut creates = Vec::new();
    let mut updates = Vec::new();
    for round in 0..5 {
        let namespace = format!("apply{round}");
        creates.push(apply(&store, &documents(&namespace, 100, 0)).await);
        updates.push(apply(&store, &documents(&namespace, 100, 1)).await);
    }
    // 1000 apps in all: the 500 above and 500 more.
    for chunk in 0..5 {
        apply(&store, &documents(&format!("list{chunk}"), 100, 0)).await;
    }
    let mut lists = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let n = store.list(Kind::App, None).await.expect("list").len();
        lists.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(n, 1000);
    }
    let records = store.list(Kind::App, Some("list0")).await.expect("list");
    let now = chrono::Utc::now().timestamp_millis();
    let day: Vec<i64> = (0..8640).map(|i| now - 86_400_000 + i * 10_000).collect();
    for record in records.iter().take(20) {
        let samples: Vec<Sample> = day
            .iter()
            .map(|&t| Sample {
                uid: record.uid.clone(),
                task: String::new(),
                t,
                cpu: (t % 100) as f64,
                mem: 50 << 20,
                mem_limit: 64 << 20,
                mem_max: 60 << 20,
                net_rx: t,
                net_tx: t,
                blk_read: 0,
                blk_write: 0,
                pids: 3,
            })
            .collect();
        store.insert_samples(&samples).await.expect("samples");
    }
    store.roll_up(now - 86_400_000, now).await.expect("rollups");
    let uid = &records[0].uid;
    let series = |resolution: Resolution| {
        let store = store.clone();
        let uid = uid.clone();
        async move {
            let mut times = Vec::new();
            for _ in 0..20 {
                let t = Instant::now();
                let points = store
                    .stats_series(&uid, "", now - 86_400_000, now + 1, resolution)
                    .await
                    .expect("series")
                    .len();
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                assert!(points > 0);
            }
            median(times)
        }
    };
    let day_raw = series(Resolution::Raw).await;
    let day_minute = series(Resolution::Minute).await;
    store.close().await;
    Figures {
        create_100: median(creates),
        update_100: median(updates),
        list_1000: median(lists),
        day_raw,
        day_minute,
    }
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sqlite = measure(&Database::Sqlite(dir.path().join("wharf.db"))).await;
    let server = PgServer::start_new(true).expect("postgres");
    let postgres = measure(&server.fresh_database().await).await;
    println!(
        "{:<46} {:>10} {:>12} {:>7}",
        "median ms", "SQLite", "PostgreSQL", "ratio"
    );
    for (what, s, p) in [
        (
            "apply of 100 App documents (created)",
            sqlite.create_100,
            postgres.create_100,
        ),
        (
            "apply of 100 App documents (updated)",
            sqlite.update_100,
            postgres.update_100,
        ),
        ("list of 1000 apps", sqlite.list_1000, postgres.list_1000),
        (
            "24 h stats of one app, raw (8640 points)",
            sqlite.day_raw,
            postgres.day_raw,
        ),
        (
            "24 h stats of one app, by the minute",
            sqlite.day_minute,
            postgres.day_minute,
        ),
    ] {
        println!("{what:<46} {s:>10.2} {p:>12.2} {:>6.2}x", p / s);
    }
}
