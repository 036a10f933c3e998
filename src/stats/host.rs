//! Host statistics — every figure of the Flask API's `/stats` — read from /proc through the
//! `procfs` crate: CPU times, context switches, disk and network counters, load average.
//!
//! Disk figures are summed over whole devices (those under /sys/block, without loop, ram and
//! zram devices), so partitions are not counted twice; network figures over every interface
//! but loopback.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// CPU time since boot, in seconds, summed over all CPUs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CpuTimes {
    pub total: f64,
    pub user: f64,
    pub nice: f64,
    /// Kernel (system) time.
    pub kernel: f64,
    pub idle: f64,
    pub iowait: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
}

/// Disk counters since boot, over whole devices.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DiskCounters {
    /// 512-byte sectors.
    pub sectors_read: u64,
    pub sectors_written: u64,
    /// Completed operations.
    pub reads: u64,
    pub writes: u64,
    pub reads_merged: u64,
    pub writes_merged: u64,
    /// Milliseconds spent.
    pub read_time_ms: u64,
    pub write_time_ms: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkCounters {
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

/// One reading of the host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostStats {
    /// Unix milliseconds.
    pub t: i64,
    pub cpu: CpuTimes,
    pub context_switches: u64,
    pub disk: DiskCounters,
    pub network: NetworkCounters,
    pub load_average: LoadAverage,
}

/// Whole block devices (not partitions, loop or RAM disks).
fn whole_disks() -> Vec<String> {
    std::fs::read_dir("/sys/block")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the host's figures now (blocking file reads; call from a blocking context).
pub fn read() -> Result<HostStats, String> {
    use procfs::{Current, CurrentSI};
    let kernel = procfs::KernelStats::current().map_err(|e| format!("/proc/stat: {e}"))?;
    let tps = procfs::ticks_per_second() as f64;
    let c = &kernel.total;
    let secs = |ticks: u64| ticks as f64 / tps;
    let optional = |v: Option<u64>| v.map_or(0.0, secs);
    let cpu = CpuTimes {
        user: secs(c.user),
        nice: secs(c.nice),
        kernel: secs(c.system),
        idle: secs(c.idle),
        iowait: optional(c.iowait),
        irq: optional(c.irq),
        softirq: optional(c.softirq),
        steal: optional(c.steal),
        total: 0.0,
    };
    let cpu = CpuTimes {
        total: cpu.user
            + cpu.nice
            + cpu.kernel
            + cpu.idle
            + cpu.iowait
            + cpu.irq
            + cpu.softirq
            + cpu.steal,
        ..cpu
    };
    let disks = whole_disks();
    let mut disk = DiskCounters::default();
    for d in procfs::diskstats()
        .map_err(|e| format!("/proc/diskstats: {e}"))?
        .iter()
        .filter(|d| disks.contains(&d.name))
    {
        disk.sectors_read += d.sectors_read;
        disk.sectors_written += d.sectors_written;
        disk.reads += d.reads;
        disk.writes += d.writes;
        disk.reads_merged += d.merged;
        disk.writes_merged += d.writes_merged;
        disk.read_time_ms += d.time_reading;
        disk.write_time_ms += d.time_writing;
    }
    let mut network = NetworkCounters::default();
    for (name, dev) in procfs::net::dev_status().map_err(|e| format!("/proc/net/dev: {e}"))? {
        if name != "lo" {
            network.bytes_sent += dev.sent_bytes;
            network.bytes_received += dev.recv_bytes;
        }
    }
    let load = procfs::LoadAverage::current().map_err(|e| format!("/proc/loadavg: {e}"))?;
    Ok(HostStats {
        t: chrono::Utc::now().timestamp_millis(),
        cpu,
        context_switches: kernel.ctxt,
        disk,
        network,
        load_average: LoadAverage {
            one: f64::from(load.one),
            five: f64::from(load.five),
            fifteen: f64::from(load.fifteen),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_is_read_and_counters_only_grow() {
        let first = read().expect("host stats");
        // Some work between the readings.
        let _work: u64 = (0..2_000_000u64).map(|i| i % 7).sum();
        std::fs::write(
            std::env::temp_dir().join("wharf-host-stats-test"),
            [0u8; 4096],
        )
        .expect("write");
        let second = read().expect("host stats");
        assert!(first.cpu.total > 0.0 && first.cpu.user > 0.0 && first.cpu.idle > 0.0);
        assert!(first.context_switches > 0);
        assert!(second.t >= first.t);
        let c = |s: &HostStats| {
            [
                s.cpu.total,
                s.cpu.user,
                s.cpu.nice,
                s.cpu.kernel,
                s.cpu.idle,
                s.cpu.iowait,
                s.cpu.irq,
                s.cpu.softirq,
                s.cpu.steal,
            ]
        };
        for (a, b) in c(&first).iter().zip(c(&second)) {
            assert!(b >= *a, "cpu time went back: {a} → {b}");
        }
        assert!(second.context_switches >= first.context_switches);
        let d = |s: &HostStats| {
            let d = &s.disk;
            [
                d.sectors_read,
                d.sectors_written,
                d.reads,
                d.writes,
                d.reads_merged,
                d.writes_merged,
                d.read_time_ms,
                d.write_time_ms,
            ]
        };
        for (a, b) in d(&first).iter().zip(d(&second)) {
            assert!(b >= *a, "disk counter went back: {a} → {b}");
        }
        assert!(second.network.bytes_sent >= first.network.bytes_sent);
        assert!(second.network.bytes_received >= first.network.bytes_received);
        assert!(first.load_average.one >= 0.0);
    }
}
