//! The history at scale: a SQLite history of `HISTORY_EVENTS` rollback events (10 million by
//! default), then the release binary started on it: its start-up time, the latency of
//! `GET /api/v1/rollbacks` pages (the newest page, cursors deep into the history, filters) and
//! the file's size.
//!
//! The history is written the daemon's way, then multiplied: a real daemon (against the
//! simulator) records one completed rollback (four transitions) and one suppressed request
//! (one transition) and stops; those rows are copied `HISTORY_EVENTS` times with new ids
//! (time-ordered, as the daemon's UUIDv7s are) and times, one in ten a completed rollback, in
//! one transaction, straight into the daemon's schema. Then the daemon opens it as it would
//! any history.
//!
//! cargo bench --bench history_scale                       # 10 M events (several GB, minutes)
//! HISTORY_EVENTS=1000000 cargo bench --bench history_scale # a quicker run
//!
//! Knobs (env): HISTORY_EVENTS (10000000), HISTORY_DB (a path: the history is kept there and
//! reused by the next run with the same HISTORY_EVENTS; default a temporary directory),
//! HISTORY_REQUESTS (requests per page kind, 50), ROLLBACKD_BENCH_BIN (another build).

mod common;

use common::{env_or, pct, OPERATOR_TOKEN};
use rusqlite::{params, Connection};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

struct Template {
    action: String,
    trigger_type: String,
    body: serde_json::Value,
    transitions: Vec<(String, String, String)>,
}

fn template(c: &Connection, status: &str) -> Template {
    let (id, action, trigger_type, body): (String, String, String, String) = c
        .query_row(
            "SELECT e.id, e.action, e.trigger_type, e.body FROM rollback_events e \
             WHERE (SELECT status FROM rollback_transitions WHERE event_id = e.id ORDER BY seq DESC LIMIT 1) = ?1 \
             ORDER BY e.seq LIMIT 1",
            [status],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap_or_else(|e| panic!("no {status} event to copy: {e}"));
    let mut stmt = c
        .prepare(
            "SELECT status, at, detail FROM rollback_transitions WHERE event_id = ?1 ORDER BY seq",
        )
        .unwrap();
    let transitions = stmt
        .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    Template {
        body: serde_json::from_str(&body).unwrap(),
        action,
        trigger_type,
        transitions,
    }
}

/// Stops a daemon the way systemd does (SIGTERM), so it drains and closes the history.
fn terminate(p: &mut common::Proc) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &p.pid().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(_)) = p.child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A history with one completed rollback and one suppressed request, recorded by the daemon.
fn seed(dir: &Path, sim_url: &str) -> PathBuf {
    let config = common::write_config(dir, sim_url, "monitoring: { automatic_rollback: false }\n");
    let mut daemon = common::daemon(&config, Duration::from_secs(10));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        common::wait_ready(&client, &daemon.url, Duration::from_secs(10)).await;
        for expect in [200, 409] {
            let r = client
                .post(format!("{}/api/v1/rollback", daemon.url))
                .bearer_auth(OPERATOR_TOKEN)
                .json(&serde_json::json!({"reason": "history at scale"}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), expect, "{}", r.text().await.unwrap());
        }
    });
    terminate(&mut daemon);
    dir.join("h.db")
}

/// Copies the two seeded events `n` times (one in ten the completed one), in one transaction.
fn multiply(db: &Path, n: u64) {
    let mut c = Connection::open(db).unwrap();
    let completed = template(&c, "completed");
    let suppressed = template(&c, "suppressed");
    // The fixture is written without a journal, then handed back in WAL mode.
    c.execute_batch("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-262144;")
        .unwrap();
    let start_ms = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis();
    let tx = c.transaction().unwrap();
    {
        let mut ev = tx
            .prepare("INSERT INTO rollback_events (id, created_at, created_ms, action, trigger_type, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .unwrap();
        let mut tr = tx
            .prepare("INSERT INTO rollback_transitions (event_id, status, at, detail) VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        let t0 = Instant::now();
        for i in 0..n {
            let t = if i % 10 == 0 { &completed } else { &suppressed };
            // Two events a minute, oldest first; the id is time-ordered like a UUIDv7.
            let ms = start_ms + i as i64 * 30_000;
            let at = chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let id = format!(
                "{:08x}-{:04x}-7000-8000-{:012x}",
                (ms >> 16) as u32,
                (ms & 0xffff) as u16,
                i
            );
            let mut body = t.body.clone();
            body["id"] = serde_json::json!(id);
            body["created_at"] = serde_json::json!(at);
            body["updated_at"] = serde_json::json!(at);
            let body = body.to_string();
            ev.execute(params![id, at, ms, t.action, t.trigger_type, body])
                .unwrap();
            for (status, _, detail) in &t.transitions {
                tr.execute(params![id, status, at, detail]).unwrap();
            }
            if i > 0 && i % 1_000_000 == 0 {
                eprintln!("  {i} events written ({:.0} s)", t0.elapsed().as_secs_f64());
            }
        }
    }
    tx.commit().unwrap();
    c.execute_batch("PRAGMA journal_mode=WAL;").unwrap();
}

fn file_size(db: &Path) -> u64 {
    ["", "-wal", "-shm"]
        .iter()
        .filter_map(|s| std::fs::metadata(format!("{}{s}", db.display())).ok())
        .map(|m| m.len())
        .sum()
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = env_or("HISTORY_EVENTS", 10_000_000);
    let per_kind: usize = env_or("HISTORY_REQUESTS", 50);
    let tmp = tempfile::tempdir().unwrap();
    let kept = std::env::var("HISTORY_DB").ok().map(PathBuf::from);
    let sim = common::simulator();
    let db = match &kept {
        Some(p)
            if p.exists()
                && std::fs::read_to_string(format!("{}.events", p.display())).ok()
                    == Some(n.to_string()) =>
        {
            println!("reusing {} ({n} events)", p.display());
            p.clone()
        }
        _ => {
            let seeded = seed(tmp.path(), &sim.url);
            let t = Instant::now();
            multiply(&seeded, n);
            println!(
                "wrote {n} events in {:.1} s ({:.0} events/s, one transaction)",
                t.elapsed().as_secs_f64(),
                n as f64 / t.elapsed().as_secs_f64()
            );
            match &kept {
                Some(p) => {
                    for s in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{}{s}", p.display()));
                    }
                    std::fs::rename(&seeded, p).unwrap();
                    std::fs::write(format!("{}.events", p.display()), n.to_string()).unwrap();
                    p.clone()
                }
                None => seeded,
            }
        }
    };
    let size_before = file_size(&db);

    // The daemon on that history: start-up to its log line, and to /-/ready.
    let run_dir = tempfile::tempdir().unwrap();
    let config = run_dir.path().join("c.yaml");
    std::fs::write(
        &config,
        format!(
            "listen: \"127.0.0.1:0\"\nstorage: {{ path: {} }}\ntarget: {{ url: \"{}\" }}\nmonitoring: {{ automatic_rollback: false }}\n",
            db.display(),
            sim.url
        ),
    )
    .unwrap();
    let t = Instant::now();
    let daemon = common::daemon(&config, Duration::from_secs(600));
    let serving = t.elapsed();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap();
        common::wait_ready(&client, &daemon.url, Duration::from_secs(600)).await;
        let ready = t.elapsed();
        let url = daemon.url.clone();
        let get = |q: String| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                let t = Instant::now();
                let r = client
                    .get(format!("{url}/api/v1/rollbacks{q}"))
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{q}: {}", r.status());
                let v: serde_json::Value = r.json().await.unwrap();
                (t.elapsed().as_secs_f64() * 1000.0, v)
            }
        };
        // Ids at a depth (0 = newest), read from the API itself by walking pages of 500.
        let (_, top) = get("?limit=1".into()).await;
        let newest = top["events"][0]["created_at"].as_str().unwrap().to_string();
        let id_at = |i: u64| {
            let ms = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                .unwrap()
                .timestamp_millis()
                + i as i64 * 30_000;
            format!(
                "{:08x}-{:04x}-7000-8000-{:012x}",
                (ms >> 16) as u32,
                (ms & 0xffff) as u16,
                i
            )
        };
        let time_at = |i: u64| {
            let ms = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
                .unwrap()
                .timestamp_millis()
                + i as i64 * 30_000;
            chrono::DateTime::from_timestamp_millis(ms)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let kinds: Vec<(String, String)> = vec![
            ("newest page (limit 50)".into(), "?limit=50".into()),
            ("newest page (limit 500)".into(), "?limit=500".into()),
            (
                "cursor at the middle".into(),
                format!("?limit=50&before={}", id_at(n / 2)),
            ),
            (
                "cursor near the oldest".into(),
                format!("?limit=50&before={}", id_at(60.min(n - 1))),
            ),
            (
                "status=completed".into(),
                "?limit=50&status=completed".into(),
            ),
            (
                "status=completed, cursor at the middle".into(),
                format!("?limit=50&status=completed&before={}", id_at(n / 2)),
            ),
            (
                "until the middle".into(),
                format!("?limit=50&until={}", time_at(n / 2)),
            ),
            (
                "since 1 h before the newest".into(),
                format!("?limit=50&since={}", {
                    let t = chrono::DateTime::parse_from_rfc3339(&newest).unwrap()
                        - chrono::Duration::hours(1);
                    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                }),
            ),
            (
                "status=failed (none in this history)".into(),
                "?limit=50&status=failed".into(),
            ),
        ];
        println!(
            "history of {n} events: {:.2} GB on disk",
            size_before as f64 / 1e9
        );
        println!(
            "start-up: serving after {:.2} s, ready after {:.2} s",
            serving.as_secs_f64(),
            ready.as_secs_f64()
        );
        println!(
            "{:<40} {:>9} {:>9} {:>9} {:>7}",
            "GET /api/v1/rollbacks", "p50 ms", "p99 ms", "max ms", "events"
        );
        for (name, q) in &kinds {
            let mut lat = Vec::new();
            let mut count = 0;
            let budget = Instant::now();
            for _ in 0..per_kind {
                let (ms, v) = get(q.clone()).await;
                count = v["events"].as_array().map(|a| a.len()).unwrap_or(0);
                lat.push(ms);
                if budget.elapsed() > Duration::from_secs(60) {
                    break;
                }
            }
            lat.sort_by(f64::total_cmp);
            println!(
                "{name:<40} {:>9.2} {:>9.2} {:>9.2} {:>7}",
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                lat[lat.len() - 1],
                count
            );
        }
        // A client paging from the newest: 200 pages of 50, each through the last page's cursor.
        let mut lat = Vec::new();
        let mut q = "?limit=50".to_string();
        for _ in 0..200 {
            let (ms, v) = get(q.clone()).await;
            lat.push(ms);
            match v["next_before"].as_str() {
                Some(c) => q = format!("?limit=50&before={c}"),
                None => break,
            }
        }
        lat.sort_by(f64::total_cmp);
        println!(
            "{:<40} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            "walking 200 pages by cursor",
            pct(&lat, 0.5),
            pct(&lat, 0.99),
            lat[lat.len() - 1],
            lat.len()
        );
    });
    println!(
        "history on disk after the run: {:.2} GB",
        file_size(&db) as f64 / 1e9
    );
    drop(daemon);
    drop(sim);
}
