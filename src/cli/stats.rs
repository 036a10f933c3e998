//! `wharf stats app NAME`: an app's stats history as a compact table, with sparklines of CPU
//! and memory.

use std::time::Duration;

use serde_json::Value;

use super::client::{CliError, CliResult, Client, Exit};
use super::output::{Output, print_value, table, urlencode};

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One character per value, scaled from 0 to the largest.
pub fn sparkline(values: &[f64]) -> String {
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    values
        .iter()
        .map(|v| {
            if max <= 0.0 {
                BARS[0]
            } else {
                BARS[((v / max) * 7.0).round().clamp(0.0, 7.0) as usize]
            }
        })
        .collect()
}

/// `63.2Mi`, `1.5Gi`, `512B`.
pub fn human_bytes(bytes: f64) -> String {
    for (unit, size) in [
        ("Ti", 1u64 << 40),
        ("Gi", 1 << 30),
        ("Mi", 1 << 20),
        ("Ki", 1 << 10),
    ] {
        if bytes >= size as f64 {
            return format!("{:.1}{unit}", bytes / size as f64);
        }
    }
    format!("{bytes:.0}B")
}

/// At most `width` values: the maximum of each of `width` equal slices (peaks stay visible).
fn squeeze(values: &[f64], width: usize) -> Vec<f64> {
    if values.len() <= width || width == 0 {
        return values.to_vec();
    }
    (0..width)
        .map(|i| {
            let from = i * values.len() / width;
            let to = ((i + 1) * values.len() / width).max(from + 1);
            values[from..to].iter().copied().fold(f64::MIN, f64::max)
        })
        .collect()
}

/// `1h` → now minus an hour (RFC 3339), or an RFC 3339 time / unix seconds as given.
fn since_param(text: &str) -> Result<String, String> {
    if let Ok(d) = humantime::parse_duration(text) {
        let t = chrono::Utc::now() - chrono::Duration::from_std(d).map_err(|e| e.to_string())?;
        return Ok(t.timestamp().to_string());
    }
    Ok(text.to_string())
}

pub async fn app(
    client: &Client,
    namespace: &str,
    name: &str,
    since: &str,
    step: Option<&str>,
    task: Option<&str>,
    output: Output,
) -> CliResult {
    let since =
        since_param(since).map_err(|e| CliError::new(Exit::Usage, format!("--since: {e}")))?;
    let mut path = format!(
        "/namespaces/{namespace}/apps/{name}/stats?since={}",
        urlencode(&since)
    );
    if let Some(s) = step {
        path.push_str(&format!("&step={}", urlencode(s)));
    }
    if let Some(t) = task {
        path.push_str(&format!("&task={}", urlencode(t)));
    }
    let series = client.get(&path).await?;
    if output != Output::Table {
        print_value(&series, output);
        return Ok(Exit::Ok);
    }
    let items = series["items"].as_array().cloned().unwrap_or_default();
    if items.is_empty() {
        eprintln!(
            "no samples for app {namespace}/{name} in that time (the first appears two intervals after it starts)"
        );
        return Ok(Exit::Ok);
    }
    let f = |item: &Value, key: &str| item[key].as_f64().unwrap_or(0.0);
    let cpu: Vec<f64> = items.iter().map(|i| f(i, "cpuPercent")).collect();
    let mem: Vec<f64> = items.iter().map(|i| f(i, "memUsage")).collect();
    let peak = |v: &[f64]| v.iter().copied().fold(0.0_f64, f64::max);
    println!(
        "app/{namespace}/{name}: {} points ({} resolution) since {}",
        items.len(),
        series["resolution"].as_str().unwrap_or("?"),
        series["since"].as_str().unwrap_or("?")
    );
    println!(
        "cpu  {}  max {:.1}%",
        sparkline(&squeeze(&cpu, 60)),
        peak(
            &items
                .iter()
                .map(|i| f(i, "cpuPercentMax"))
                .collect::<Vec<_>>()
        )
    );
    println!(
        "mem  {}  max {}",
        sparkline(&squeeze(&mem, 60)),
        human_bytes(peak(
            &items
                .iter()
                .map(|i| f(i, "memUsageMax"))
                .collect::<Vec<_>>()
        ))
    );
    let mut rows = vec![
        [
            "TIME",
            "CPU%",
            "MEM",
            "LIMIT",
            "NET RX/TX",
            "BLOCK R/W",
            "PIDS",
        ]
        .map(String::from)
        .to_vec(),
    ];
    // The newest rows; the sparklines above cover the whole range.
    for item in items.iter().rev().take(15).rev() {
        rows.push(vec![
            item["time"].as_str().unwrap_or("").to_string(),
            format!("{:.1}", f(item, "cpuPercent")),
            human_bytes(f(item, "memUsage")),
            match f(item, "memLimit") {
                l if l > 0.0 => human_bytes(l),
                _ => "-".into(),
            },
            format!(
                "{}/{}",
                human_bytes(f(item, "netRx")),
                human_bytes(f(item, "netTx"))
            ),
            format!(
                "{}/{}",
                human_bytes(f(item, "blkRead")),
                human_bytes(f(item, "blkWrite"))
            ),
            format!("{}", f(item, "pids")),
        ]);
    }
    table(&rows);
    Ok(Exit::Ok)
}

/// The state a series shows at `t`.
fn state_at(series: &[Value], t: i64) -> &str {
    series
        .iter()
        .take_while(|s| s["t"].as_i64().is_some_and(|x| x <= t))
        .last()
        .and_then(|s| s["state"].as_str())
        .unwrap_or("unknown")
}

/// `wharf uptime app NAME [--duration day]`: availability with a bar (█ up, ▁ down, · unknown).
pub async fn uptime(
    client: &Client,
    namespace: &str,
    name: &str,
    duration: &str,
    output: Output,
) -> CliResult {
    let summary = client
        .get(&format!(
            "/namespaces/{namespace}/apps/{name}/uptime?duration={}",
            urlencode(duration)
        ))
        .await?;
    if output != Output::Table {
        print_value(&summary, output);
        return Ok(Exit::Ok);
    }
    let series = summary["series"].as_array().cloned().unwrap_or_default();
    let (since, until) = (
        summary["since"].as_i64().unwrap_or(0),
        summary["until"].as_i64().unwrap_or(0),
    );
    let cells = 60;
    let bar: String = (0..cells)
        .map(|i| {
            let t = since + (until - since) * (2 * i + 1) / (2 * cells);
            match state_at(&series, t) {
                "up" => '█',
                "down" => '▁',
                _ => '·',
            }
        })
        .collect();
    let secs = |k: &str| summary[k].as_f64().unwrap_or(0.0);
    let span = |s: f64| humantime::format_duration(Duration::from_secs(s as u64)).to_string();
    println!(
        "app/{namespace}/{name} over the last {duration} (since {})",
        summary["sinceTime"].as_str().unwrap_or("?")
    );
    println!("{bar}");
    match summary["availabilityPercent"].as_f64() {
        Some(a) => println!("availability {a:.2}%"),
        None => println!("availability unknown (nothing was observed)"),
    }
    println!(
        "up {} · down {} · unknown {} · restarts {} · OOM kills {}",
        span(secs("upSeconds")),
        span(secs("downSeconds")),
        span(secs("unknownSeconds")),
        summary["restarts"].as_u64().unwrap_or(0),
        summary["ooms"].as_u64().unwrap_or(0)
    );
    let downtime = summary["downtime"].as_array().cloned().unwrap_or_default();
    if !downtime.is_empty() {
        let mut rows = vec![["FROM", "TO", "FOR", "REASON"].map(String::from).to_vec()];
        for d in &downtime {
            rows.push(vec![
                d["fromTime"].as_str().unwrap_or("").to_string(),
                d["toTime"].as_str().unwrap_or("").to_string(),
                span(d["seconds"].as_f64().unwrap_or(0.0)),
                d["reason"].as_str().unwrap_or("").to_string(),
            ]);
        }
        table(&rows);
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_scale_to_the_peak() {
        assert_eq!(sparkline(&[0.0, 50.0, 100.0]), "▁▅█");
        assert_eq!(sparkline(&[0.0, 0.0]), "▁▁");
        assert_eq!(squeeze(&[1.0, 9.0, 2.0, 3.0], 2), vec![9.0, 3.0]);
        assert_eq!(human_bytes(1.5 * 1048576.0), "1.5Mi");
        assert_eq!(human_bytes(512.0), "512B");
    }
}
