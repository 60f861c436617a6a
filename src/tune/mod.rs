//! `rollbackd tune`: the quarterly threshold review. Reads each condition's
//! `trigger_condition_value` history from Prometheus chunk by chunk, replays it with the
//! daemon's own rules at the current critical threshold and at steps around it
//! ([`crate::domain::tuning`]), matches the would-be triggers to the daemon's reviewed episodes
//! and missed degradations, and prints the table, the recommendation and the config block.

pub mod prometheus;
mod render;
pub mod reviews;

use crate::cli::ClientArgs;
use crate::config::Config;
use crate::domain::tuning::{ConditionOutcome, ConditionReplay, Reference, Settings, STEPS};
use crate::domain::ConditionSpec;
use crate::exit::Exit;
use crate::output;
use chrono::{DateTime, Utc};
use prometheus::{chunks, quoted, PromError, Prometheus};
use std::path::PathBuf;
use std::time::Duration;

/// What `rollbackd tune` was asked.
#[derive(Debug, Clone)]
pub struct TuneArgs {
    pub prometheus: String,
    pub since: String,
    pub until: Option<String>,
    pub step: Option<String>,
    pub tolerance: String,
    pub selector: Option<String>,
    pub config: Option<PathBuf>,
    pub environment: Option<String>,
    pub no_reviews: bool,
    pub client: ClientArgs,
}

/// The period and rhythm of a replay, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub step: Duration,
    pub tolerance: Duration,
}

/// Where the reviews came from, or why there are none.
#[derive(Debug, Clone, PartialEq)]
pub enum ReviewSource {
    Daemon {
        url: String,
        reviews: reviews::Reviews,
    },
    Skipped,
}

fn duration(flag: &str, v: &str) -> Result<Duration, String> {
    humantime::parse_duration(v.trim())
        .map_err(|e| format!("--{flag} {v:?}: expected a duration such as 15s, 5m or 14d ({e})"))
}

fn time(flag: &str, v: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(v.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            format!("--{flag} {v:?}: expected an RFC 3339 time such as 2026-11-23T10:00:00Z")
        })
}

/// Checks the period and rhythm; `now` ends the period when `--until` is left out.
pub fn plan(args: &TuneArgs, cfg: &Config, now: DateTime<Utc>) -> Result<Plan, String> {
    let until = args
        .until
        .as_deref()
        .map(|u| time("until", u))
        .transpose()?
        .unwrap_or(now);
    let since = match time("since", &args.since) {
        Ok(t) => t,
        Err(_) => {
            let d = duration("since", &args.since)?;
            until
                - chrono::Duration::from_std(d)
                    .map_err(|_| format!("--since {:?} is too long", args.since))?
        }
    };
    if since >= until {
        return Err(format!(
            "--since {} is not before --until {}",
            since.to_rfc3339(),
            until.to_rfc3339()
        ));
    }
    let step = match &args.step {
        Some(s) => duration("step", s)?,
        None => cfg.monitoring.poll_interval.max(Duration::from_secs(1)),
    };
    if step < Duration::from_millis(1) {
        return Err("--step must be at least 1ms".into());
    }
    Ok(Plan {
        since,
        until,
        step,
        tolerance: duration("tolerance", &args.tolerance)?,
    })
}

/// The PromQL for one condition: its worst value over the matching series (the highest where
/// higher is worse), so several scraped instances read as one.
pub fn query(spec: &ConditionSpec, selector: Option<&str>) -> String {
    let agg = if spec.operator.lower_is_worse() {
        "min"
    } else {
        "max"
    };
    let extra = selector
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| format!(",{s}"))
        .unwrap_or_default();
    format!(
        "{agg}(trigger_condition_value{{condition_type={}{extra}}})",
        quoted(&spec.name)
    )
}

fn ms(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp_millis()).unwrap_or(0)
}

/// Replays one condition over the whole period, one chunk in memory at a time.
async fn replay_condition(
    prom: Prometheus,
    spec: ConditionSpec,
    reference: Reference,
    settings: Settings,
    plan: Plan,
    selector: Option<String>,
) -> Result<ConditionOutcome, PromError> {
    let q = query(&spec, selector.as_deref());
    let step_ms = u64::try_from(plan.step.as_millis()).unwrap_or(u64::MAX);
    let mut replay = ConditionReplay::new(&spec, &STEPS, reference.clone(), settings);
    for chunk in chunks(ms(plan.since), ms(plan.until), step_ms) {
        prom.range(&q, chunk, step_ms, |t, v| replay.push(t, v))
            .await?;
    }
    Ok(ConditionOutcome::of(&spec, &reference, replay))
}

fn load_config(args: &TuneArgs) -> Result<Config, String> {
    let env = args.environment.as_deref();
    match &args.config {
        Some(p) => crate::config::load(p, env),
        None => crate::config::defaults(env),
    }
    .map_err(|e| format!("config error: {e}"))
}

fn refuse(exit: Exit, message: &str) -> anyhow::Result<Exit> {
    output::eprint_line(&format!("rollbackd: {message}"));
    Ok(exit)
}

/// Runs `rollbackd tune`.
pub async fn run(args: TuneArgs) -> anyhow::Result<Exit> {
    let cfg = match load_config(&args) {
        Ok(c) => c,
        Err(e) => return refuse(Exit::Usage, &e),
    };
    let plan = match plan(&args, &cfg, Utc::now()) {
        Ok(p) => p,
        Err(e) => return refuse(Exit::Usage, &e),
    };
    let prom = match Prometheus::new(&args.prometheus) {
        Ok(p) => p,
        Err(e) => return refuse(Exit::Usage, &format!("--prometheus: {e}")),
    };
    let known: Vec<String> = cfg.conditions.iter().map(|c| c.name.clone()).collect();
    let source = if args.no_reviews {
        ReviewSource::Skipped
    } else {
        match read_reviews(&args.client, &plan, &known).await {
            Ok(r) => r,
            Err((exit, msg)) => return refuse(exit, &msg),
        }
    };
    let settings = Settings {
        cooldown_ms: u64::try_from(cfg.cooldown.as_millis()).unwrap_or(u64::MAX),
        tolerance_ms: u64::try_from(plan.tolerance.as_millis()).unwrap_or(u64::MAX),
        // A missing step is a sample the daemon did not have.
        gap_ms: u64::try_from(plan.step.as_millis() * 3 / 2).unwrap_or(u64::MAX),
        rollback_mode: cfg.profile.mode.clone(),
    };
    let tasks: Vec<_> = cfg
        .conditions
        .iter()
        .map(|spec| {
            let reference = match &source {
                ReviewSource::Daemon { reviews, .. } => reviews
                    .by_condition
                    .get(&spec.name)
                    .cloned()
                    .unwrap_or_default(),
                ReviewSource::Skipped => Reference::default(),
            };
            tokio::spawn(replay_condition(
                prom.clone(),
                spec.clone(),
                reference,
                settings.clone(),
                plan.clone(),
                args.selector.clone(),
            ))
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await? {
            Ok(o) => outcomes.push(o),
            Err(e) => return refuse(e.exit, &e.message),
        }
    }
    if outcomes.iter().all(|o| o.samples == 0) {
        let names = known.join(", ");
        return refuse(
            Exit::Failed,
            &format!(
                "no data: Prometheus at {} has no trigger_condition_value samples for {names} between {} and {} (is it scraping rollbackd? see docs/metrics.md; --selector narrows the series, check it matches)",
                prom.url(),
                plan.since.to_rfc3339(),
                plan.until.to_rfc3339()
            ),
        );
    }
    let report = render::Report {
        prometheus: prom.url(),
        plan: &plan,
        cooldown: cfg.cooldown,
        source: &source,
        conditions: &cfg.conditions,
        outcomes: &outcomes,
    };
    let text = if args.client.json {
        report.json()
    } else {
        report.text()
    };
    output::print(&text)?;
    Ok(Exit::Ok)
}

/// The reviews from the daemon, or why they could not be read (with the exit code).
async fn read_reviews(
    args: &ClientArgs,
    plan: &Plan,
    known: &[String],
) -> Result<ReviewSource, (Exit, String)> {
    let token = crate::client::token(args).map_err(|e| (Exit::Usage, e))?;
    let client = crate::client::http::Client::new(&args.url, token, args.ca_file.as_deref())
        .map_err(|e| (Exit::Usage, e))?;
    let slack = chrono::Duration::from_std(plan.tolerance).unwrap_or_default();
    let window = (plan.since - slack, plan.until + slack);
    match reviews::fetch(&client, window, known).await {
        Ok(reviews) => Ok(ReviewSource::Daemon {
            url: args.url.trim_end_matches('/').to_owned(),
            reviews,
        }),
        Err(r) => Err((
            r.exit,
            format!(
                "cannot read the reviews from the daemon at {}: {} (pass --no-reviews to replay without them)",
                args.url, r.message
            ),
        )),
    }
}

#[cfg(test)]
mod tests;
