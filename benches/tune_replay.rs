//! Tuning replay throughput: 14 days of the four conditions at 1 s (4,838,400 samples), each
//! replayed at the seven candidates with the daemon's rules and matched against 200 reviewed
//! episodes and 20 missed degradations per condition, streamed in 11,000-point chunks as
//! `rollbackd tune` reads them. Measured twice: the replay alone, and parsing each chunk's
//! Prometheus `query_range` JSON then replaying it (everything `tune` does but the network).
//! Also the process's peak RSS, to show memory does not grow with the period.
//!
//! cargo bench --bench tune_replay

use rollbackd::domain::review::Verdict;
use rollbackd::domain::tuning::{ConditionReplay, Missed, Reference, Reviewed, Settings, STEPS};
use rollbackd::domain::{ConditionSpec, Operator};
use rollbackd::tune::prometheus::{parse_matrix, MAX_POINTS};
use std::time::{Duration, Instant};

const DAYS: u64 = 14;
const STEP_MS: u64 = 1000;
const RUNS: usize = 3;
const START_MS: u64 = 1_790_000_000_000;

fn specs() -> Vec<ConditionSpec> {
    let spec = |name: &str, warning, critical| ConditionSpec {
        name: name.into(),
        operator: Operator::for_known(name).unwrap(),
        warning,
        critical,
        description: String::new(),
    };
    vec![
        spec("walk_forward_stability", 50.0, 40.0),
        spec("overfitting_score", 0.4, 0.5),
        spec("consecutive_losses", 4.0, 5.0),
        spec("max_drawdown", 3.5, 5.0),
    ]
}

/// A value that wanders across the thresholds: a slow wave plus noise, scaled to the condition.
fn value(spec: &ConditionSpec, i: u64, noise: &mut u64) -> f64 {
    *noise = noise
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let n = (*noise >> 11) as f64 / (1u64 << 53) as f64;
    let wave = ((i as f64) / 5400.0).sin();
    let mid = (spec.warning + spec.critical) / 2.0;
    let span = (spec.warning - spec.critical).abs() * 2.0;
    mid + span * (0.6 * wave + 0.4 * (n - 0.5))
}

fn reference(total_ms: u64) -> Reference {
    let reviewed = (0..200)
        .map(|k| Reviewed {
            at_ms: START_MS + total_ms / 200 * k,
            verdict: if k % 3 == 0 {
                Verdict::FalsePositive
            } else {
                Verdict::TruePositive
            },
        })
        .collect();
    let missed = (0..20)
        .map(|k| Missed {
            from_ms: START_MS + total_ms / 20 * k,
            to_ms: START_MS + total_ms / 20 * k + 600_000,
        })
        .collect();
    Reference { reviewed, missed }
}

fn settings() -> Settings {
    Settings {
        cooldown_ms: 900_000,
        tolerance_ms: 300_000,
        gap_ms: 1500,
        rollback_mode: "universal_cycle_4".into(),
    }
}

/// One chunk's `query_range` answer, as Prometheus writes it.
fn chunk_json(spec: &ConditionSpec, from: u64, points: u64, noise: &mut u64) -> String {
    let mut s = String::with_capacity(points as usize * 32 + 128);
    s.push_str(
        r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":["#,
    );
    for k in 0..points {
        if k > 0 {
            s.push(',');
        }
        let i = from + k;
        let t = (START_MS + i * STEP_MS) / 1000;
        s.push_str(&format!("[{t},\"{}\"]", value(spec, i, noise)));
    }
    s.push_str("]}]}}");
    s
}

/// Peak resident memory of this process so far, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Replays every condition over the whole period; `json` says whether each chunk is first
/// written and parsed as Prometheus JSON. Returns (samples, triggers at step 0, time spent
/// replaying and parsing).
fn run(json: bool) -> (u64, u64, Duration) {
    let total_points = DAYS * 86_400_000 / STEP_MS;
    let total_ms = total_points * STEP_MS;
    let mut spent = Duration::ZERO;
    let mut samples = 0;
    let mut triggers = 0;
    let mut buf: Vec<(u64, f64)> = Vec::with_capacity(MAX_POINTS as usize);
    for spec in specs() {
        let mut replay = ConditionReplay::new(&spec, &STEPS, reference(total_ms), settings());
        let mut noise = 42u64;
        let mut from = 0;
        while from < total_points {
            let points = MAX_POINTS.min(total_points - from);
            if json {
                // Writing the JSON stands in for the network; only the parse is timed.
                let body = chunk_json(&spec, from, points, &mut noise);
                let t0 = Instant::now();
                parse_matrix(body.as_bytes(), |t, v| replay.push(t, v)).unwrap();
                spent += t0.elapsed();
            } else {
                buf.clear();
                buf.extend(
                    (from..from + points)
                        .map(|i| (START_MS + i * STEP_MS, value(&spec, i, &mut noise))),
                );
                let t0 = Instant::now();
                for &(t, v) in &buf {
                    replay.push(t, Some(v));
                }
                spent += t0.elapsed();
            }
            from += points;
        }
        samples += replay.samples();
        let out = replay.finish();
        triggers += out.iter().find(|c| c.step_percent == 0).unwrap().triggers;
    }
    (samples, triggers, spent)
}

fn report(what: &str, json: bool) {
    let mut times = Vec::new();
    let mut last = (0, 0);
    for _ in 0..RUNS {
        let (samples, triggers, spent) = run(json);
        last = (samples, triggers);
        times.push(spent);
    }
    times.sort();
    let median = times[RUNS / 2];
    println!(
        "{what}: {} samples x {} candidates, {} triggers at the current thresholds; median {:.3} s (min {:.3} s, max {:.3} s) = {:.1} M samples/s",
        last.0,
        STEPS.len(),
        last.1,
        median.as_secs_f64(),
        times[0].as_secs_f64(),
        times[RUNS - 1].as_secs_f64(),
        last.0 as f64 / median.as_secs_f64() / 1e6
    );
}

fn main() {
    println!(
        "tune_replay: {DAYS} days x 4 conditions at {} s, {} runs each",
        STEP_MS / 1000,
        RUNS
    );
    report("replay only", false);
    report("parse Prometheus JSON + replay", true);
    println!("peak RSS of the whole bench: {:.1} MiB", peak_rss_mib());
}
