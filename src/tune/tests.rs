use super::*;
use crate::domain::condition::{Operator, MAX_DRAWDOWN, WALK_FORWARD_STABILITY};
use crate::domain::review::Ratio;
use crate::domain::tuning::{Basis, CandidateResult, Recommendation};

fn args(since: &str, until: Option<&str>, step: Option<&str>) -> TuneArgs {
    TuneArgs {
        prometheus: "http://127.0.0.1:9090".into(),
        since: since.into(),
        until: until.map(str::to_owned),
        step: step.map(str::to_owned),
        tolerance: "5m".into(),
        selector: None,
        config: None,
        environment: None,
        no_reviews: true,
        client: ClientArgs {
            url: "http://127.0.0.1:9100".into(),
            token: None,
            token_file: None,
            ca_file: None,
            json: false,
        },
    }
}

#[test]
fn the_period_is_a_duration_back_from_until_or_two_times() {
    let cfg = crate::config::defaults(None).unwrap();
    let now = DateTime::parse_from_rfc3339("2026-11-23T10:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    let p = plan(&args("14d", None, None), &cfg, now).unwrap();
    assert_eq!(p.until, now);
    assert_eq!(p.until - p.since, chrono::Duration::days(14));
    assert_eq!(p.step, Duration::from_secs(1), "the poll interval");
    assert_eq!(p.tolerance, Duration::from_secs(300));
    let p = plan(
        &args(
            "2026-11-20T00:00:00Z",
            Some("2026-11-21T00:00:00Z"),
            Some("15s"),
        ),
        &cfg,
        now,
    )
    .unwrap();
    assert_eq!(p.until - p.since, chrono::Duration::days(1));
    assert_eq!(p.step, Duration::from_secs(15));
    for (a, want) in [
        (args("soon", None, None), "--since \"soon\""),
        (args("1d", Some("yesterday"), None), "--until \"yesterday\""),
        (args("2026-11-24T00:00:00Z", None, None), "is not before"),
        (args("1d", None, Some("fast")), "--step \"fast\""),
    ] {
        let e = plan(&a, &cfg, now).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
}

#[test]
fn the_query_reads_the_worst_series_of_one_condition() {
    let cfg = crate::config::defaults(None).unwrap();
    let spec = |n: &str| cfg.conditions.iter().find(|c| c.name == n).unwrap();
    assert_eq!(
        query(spec(MAX_DRAWDOWN), None),
        r#"max(trigger_condition_value{condition_type="max_drawdown"})"#
    );
    assert_eq!(
        query(spec(WALK_FORWARD_STABILITY), Some(r#" job="rollbackd" "#)),
        r#"min(trigger_condition_value{condition_type="walk_forward_stability",job="rollbackd"})"#
    );
}

fn outcome(step: i32) -> ConditionOutcome {
    let c = |s: i32| CandidateResult {
        step_percent: s,
        critical_threshold: 5.0 + f64::from(s) / 20.0,
        warning_threshold: 3.5,
        triggers: 3,
        rollbacks: 2,
        suppressed: 1,
        true_positives: Ratio { hits: 2, total: 2 },
        false_positives: Ratio { hits: 1, total: 1 },
        drills: Ratio::default(),
        missed_caught: Ratio::default(),
        unmatched: 0,
    };
    ConditionOutcome {
        condition: MAX_DRAWDOWN.into(),
        operator: Operator::Ge,
        samples: 100,
        reviewed_true_positives: 2,
        reviewed_false_positives: 1,
        reviewed_drills: 0,
        missed_degradations: 0,
        candidates: vec![c(-10), c(0), c(10)],
        recommendation: Some(Recommendation {
            step_percent: step,
            critical_threshold: 5.0 + f64::from(step) / 20.0,
            warning_threshold: 3.5,
            basis: Basis::KeepsTruePositives,
        }),
    }
}

#[test]
fn the_text_shows_the_table_the_recommendation_and_the_block_to_paste() {
    let cfg = crate::config::defaults(None).unwrap();
    let now = Utc::now();
    let p = plan(&args("1d", None, None), &cfg, now).unwrap();
    let summary = reviews::Summary {
        reviewed_episodes: 3,
        ..Default::default()
    };
    let source = ReviewSource::Daemon {
        url: "http://127.0.0.1:9100".into(),
        reviews: reviews::Reviews {
            summary,
            ..Default::default()
        },
    };
    let outcomes = [outcome(10)];
    let r = render::Report {
        prometheus: "http://p:9090",
        plan: &p,
        cooldown: cfg.cooldown,
        source: &source,
        conditions: &cfg.conditions,
        outcomes: &outcomes,
    };
    let text = r.text();
    assert!(
        text.contains("max_drawdown.critical_threshold: 5.5\n"),
        "{text}"
    );
    assert!(
        text.contains("current") && text.contains("recommended"),
        "{text}"
    );
    assert!(text.contains("100.0 %"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
    assert_eq!(v["overrides"]["max_drawdown.critical_threshold"], 5.5);
    assert_eq!(
        v["conditions"][0]["candidates"][1]["true_positive_rate"],
        1.0
    );

    let outcomes = [outcome(0)];
    let r = render::Report {
        outcomes: &outcomes,
        source: &ReviewSource::Skipped,
        ..r
    };
    let text = r.text();
    assert!(text.contains("not read (--no-reviews)"), "{text}");
    assert!(text.contains("No recommendation without reviews"), "{text}");
    assert!(!text.contains("TP rate"), "{text}");
}
