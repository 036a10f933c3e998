//! `wharf get images`, `wharf images pull NAME`, `wharf images update-all`, and the per-layer
//! pull progress bars `apply --wait` and `images pull` draw (indicatif, on stderr; hidden when
//! it is not a terminal).

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;

use super::client::{CliError, CliResult, Client, Exit};
use super::output::{Output, age, table, table_items};

/// One progress bar per layer of the pulls being shown.
#[derive(Default)]
pub struct PullBars {
    multi: Option<MultiProgress>,
    bars: BTreeMap<String, ProgressBar>,
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>24} {bar:30} {bytes:>9}/{total_bytes:<9} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl PullBars {
    /// Shows the layers of `pull` (a `status.pull` object) under the label `what`.
    pub fn update(&mut self, what: &str, pull: &Value) {
        let Some(layers) = pull["layers"].as_object() else {
            return;
        };
        let multi = self.multi.get_or_insert_with(MultiProgress::new);
        for (layer, p) in layers {
            let key = format!("{what} {layer}");
            let bar = self.bars.entry(key).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(style());
                bar.set_prefix(format!("{what} {}", &layer[..layer.len().min(12)]));
                bar
            });
            let status = p["status"].as_str().unwrap_or("");
            if let Some(total) = p["total"].as_i64().filter(|t| *t > 0) {
                bar.set_length(total as u64);
            }
            if let Some(current) = p["current"].as_i64() {
                bar.set_position(current as u64);
            }
            if matches!(
                status,
                "Pull complete" | "Already exists" | "Download complete"
            ) && let Some(len) = bar.length()
            {
                bar.set_position(len);
            }
            bar.set_message(status.to_string());
        }
    }

    pub fn finish(&mut self) {
        for bar in self.bars.values() {
            bar.finish();
        }
    }
}

/// `1.9MiB`, as `docker images` shows sizes (binary units here).
fn human_size(bytes: i64) -> String {
    let mut value = bytes.max(0) as f64;
    for unit in ["B", "KiB", "MiB", "GiB"] {
        if value < 1024.0 {
            return format!("{value:.1}{unit}").replace(".0B", "B");
        }
        value /= 1024.0;
    }
    format!("{value:.1}TiB")
}

/// `wharf get images [NAME]`.
pub async fn get(client: &Client, name: Option<&str>, output: Output) -> CliResult {
    let path = match name {
        Some(n) => format!("/images/{n}"),
        None => "/images".to_string(),
    };
    let Some(items) = table_items(client.get(&path).await?, output, name.is_some()) else {
        return Ok(Exit::Ok);
    };
    let mut rows = vec![
        [
            "NAME", "MANAGED", "REF", "PHASE", "ID", "SIZE", "USED BY", "PULLED",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for item in &items {
        let s = |p: &str| {
            item.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let reference = item
            .pointer("/spec/ref")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                item.pointer("/status/tags")
                    .and_then(Value::as_array)
                    .map(|t| {
                        t.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default()
            });
        let id = s("/status/id");
        rows.push(vec![
            s("/metadata/name"),
            if item["managed"] == true { "yes" } else { "no" }.into(),
            reference,
            item.pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending")
                .to_string(),
            id.trim_start_matches("sha256:").chars().take(12).collect(),
            item.pointer("/status/size")
                .and_then(Value::as_i64)
                .map(human_size)
                .unwrap_or_default(),
            item.pointer("/status/usedBy")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                .to_string(),
            item.pointer("/status/pulledAt")
                .and_then(Value::as_str)
                .map(age)
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    table(&rows);
    Ok(Exit::Ok)
}

/// `wharf images pull NAME`: pulls now, drawing the layers while it runs.
pub async fn pull(client: &Client, name: &str) -> CliResult {
    let path = format!("/images/{name}/pull");
    let request = client.send(reqwest::Method::POST, &path, None);
    tokio::pin!(request);
    let mut bars = PullBars::default();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let result = loop {
        tokio::select! {
            result = &mut request => break result,
            _ = tick.tick() => {
                if let Ok(doc) = client.get(&format!("/images/{name}")).await {
                    bars.update(name, &doc["status"]["pull"]);
                }
            }
        }
    };
    let doc = result?;
    bars.update(name, &doc["status"]["pull"]);
    bars.finish();
    println!(
        "image/{name} pulled: {} ({})",
        doc.pointer("/spec/ref")
            .and_then(Value::as_str)
            .unwrap_or(""),
        doc.pointer("/status/pull/state")
            .and_then(Value::as_str)
            .unwrap_or("Pulled")
    );
    Ok(Exit::Ok)
}

/// `wharf images update-all`: checks every declared image's registry digest, pulls the changed
/// ones; exit 6 when a check or pull failed.
pub async fn update_all(client: &Client) -> CliResult {
    let body = client
        .send(reqwest::Method::POST, "/images:update-all", None)
        .await?;
    let mut failed = false;
    for item in body["items"].as_array().into_iter().flatten() {
        let result = item["result"].as_str().unwrap_or("");
        failed |= result == "error";
        let detail = item["message"]
            .as_str()
            .map(|m| format!(": {m}"))
            .or_else(|| item["remoteDigest"].as_str().map(|d| format!(" ({d})")))
            .unwrap_or_default();
        println!(
            "image/{} {} {result}{detail}",
            item["name"].as_str().unwrap_or(""),
            item["ref"].as_str().unwrap_or("")
        );
    }
    println!(
        "{} image(s) pulled; apps using them are replaced in turn (the Image's spec.rollout.maxUnavailable at a time)",
        body["pulled"]
    );
    if failed {
        return Err(CliError::new(
            Exit::Failure,
            "some images could not be checked or pulled",
        ));
    }
    Ok(Exit::Ok)
}
