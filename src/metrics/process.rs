//! Process metrics read from /proc at scrape time (RSS, CPU, open fds), as the Prometheus
//! client libraries name them.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Process metrics read from /proc at scrape time.
#[derive(Debug)]
pub(super) struct ProcessCollector {
    pub(super) start_time: f64,
}

pub(super) fn process_start_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

struct ProcStat {
    cpu_seconds: f64,
    rss_bytes: f64,
    vsize_bytes: f64,
}

fn read_proc_stat() -> Option<ProcStat> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let page = 4096.0;
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    let vsize: f64 = f.get(20)?.parse().ok()?;
    let rss: f64 = f.get(21)?.parse().ok()?;
    Some(ProcStat {
        cpu_seconds: (utime + stime) / ticks,
        rss_bytes: rss * page,
        vsize_bytes: vsize,
    })
}

fn open_fds() -> Option<i64> {
    Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
}

fn max_fds() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// One constant gauge sample under its own descriptor.
pub(super) fn gauge<N>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    v: N,
) -> Result<(), std::fmt::Error>
where
    ConstGauge<N>: EncodeMetric + prometheus_client::metrics::TypedMetric,
{
    use prometheus_client::metrics::TypedMetric;
    let g = ConstGauge::new(v);
    g.encode(encoder.encode_descriptor(name, help, None, ConstGauge::<N>::TYPE)?)
}

impl prometheus_client::collector::Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use prometheus_client::metrics::TypedMetric;
        if let Some(s) = read_proc_stat() {
            let c = ConstCounter::new(s.cpu_seconds);
            c.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time spent in seconds",
                None,
                ConstCounter::<f64>::TYPE,
            )?)?;
            gauge(
                &mut encoder,
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                s.rss_bytes,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                s.vsize_bytes,
            )?;
        }
        if let Some(n) = open_fds() {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Open file descriptors",
                n as f64,
            )?;
        }
        if let Some(n) = max_fds() {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum open file descriptors",
                n as f64,
            )?;
        }
        gauge(
            &mut encoder,
            "rollbackd_sqlite_memory_bytes",
            "Bytes SQLite holds: the page block taken at start (2 MiB for each of two connections and a margin), schemas and prepared statements",
            crate::store::sqlite_memory_used(),
        )?;
        gauge(
            &mut encoder,
            "process_start_time_seconds",
            "Start time of the process since the unix epoch in seconds",
            self.start_time,
        )
    }
}
