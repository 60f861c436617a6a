use super::*;
use crate::domain::condition::Status;
use crate::domain::lifecycle::Action;
use crate::domain::review::Verdict;
use crate::domain::validation::Check;
use crate::store::{EventRequest, Transition, TransitionDetail, ValidationRun};
use std::collections::BTreeMap;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn event(id: &str, at: &str, trigger: TriggerType, statuses: &[(EventStatus, &str)]) -> Event {
    let request = EventRequest {
        action: Action::Rollback,
        trigger_type: trigger,
        source: "watchdog".into(),
        reason: "max_drawdown 5.2 >= 5 (critical) | desk 3".into(),
        actor: "watchdog".into(),
        dry_run: false,
        alert_names: vec![],
        fingerprints: vec![],
        conditions: vec![ConditionSnapshot {
            condition: "max_drawdown".into(),
            value: Some(5.2),
            status: Status::Critical,
            warning_threshold: 3.5,
            critical_threshold: 5.0,
        }],
        mode_before: Some("session_targeted".into()),
        parameters_before: None,
        target_mode: "universal_cycle_4".into(),
        target_parameters: BTreeMap::new(),
    };
    let (last, last_at) = *statuses.last().unwrap();
    let mut e = Event::new(id.into(), request, t(at), last).at(
        last,
        t(last_at),
        TransitionDetail::default(),
    );
    e.transitions = Some(
        statuses
            .iter()
            .map(|(s, at)| Transition {
                status: *s,
                at: t(at),
                detail: TransitionDetail::default(),
            })
            .collect(),
    );
    e.validations = Some(vec![]);
    e.reviews = Some(vec![]);
    e
}

fn review(id: i64, event_id: &str, verdict: Verdict, note: Option<&str>) -> Review {
    Review {
        id,
        event_id: event_id.into(),
        verdict,
        note: note.map(str::to_owned),
        ticket_url: Some("https://tickets.example.org/INC-7".into()),
        reviewer: "ops".into(),
        reviewed_at: t("2026-11-20T12:00:00Z"),
        supersedes: None,
        superseded_by: None,
    }
}

fn run(
    id: i64,
    kind: ValidationKind,
    score: f64,
    failed: Option<&str>,
    note: Option<&str>,
) -> ValidationRun {
    ValidationRun {
        id,
        event_id: "a".into(),
        kind,
        at: t("2026-11-20T10:00:03Z"),
        score,
        passed: score >= 85.0,
        pass_score: 85.0,
        checks: failed
            .map(|d| {
                vec![Check {
                    name: "no_critical".into(),
                    weight: 15.0,
                    passed: false,
                    detail: d.into(),
                }]
            })
            .unwrap_or_default(),
        note: note.map(str::to_owned),
    }
}

/// A month: an Alertmanager rollback (true positive, reviewed twice), a suppressed trigger
/// (false positive), a dry run (drill), a rollback still executing and a restore.
fn month() -> (Vec<Event>, Vec<MissedDegradation>, Vec<(String, String)>) {
    use EventStatus::*;
    let mut a = event(
        "a",
        "2026-11-20T10:00:00Z",
        TriggerType::Alertmanager,
        &[
            (Pending, "2026-11-20T10:00:00Z"),
            (Executing, "2026-11-20T10:00:01Z"),
            (Validating, "2026-11-20T10:00:02Z"),
            (Completed, "2026-11-20T10:00:03Z"),
        ],
    );
    a.request.fingerprints = vec!["f1".into()];
    a.request.alert_names = vec!["MaxDrawdownCritical".into()];
    a.duration_ms = Some(3000);
    a.validations = Some(vec![
        run(
            2,
            ValidationKind::Stability,
            100.0,
            None,
            Some("stable through 30m (1800 looks, lowest score 100)"),
        ),
        run(
            1,
            ValidationKind::Initial,
            85.0,
            Some("max_drawdown still critical (5.2)"),
            None,
        ),
    ]);
    let first = review(
        1,
        "a",
        Verdict::FalsePositive,
        Some("thought it was a bad tick"),
    );
    let mut second = review(
        2,
        "a",
        Verdict::TruePositive,
        Some("real drawdown; desk 3 | confirmed"),
    );
    second.supersedes = Some(1);
    a.review = Some(second.clone());
    a.reviews = Some(vec![first, second]);
    let mut b = event(
        "b",
        "2026-11-21T09:00:00Z",
        TriggerType::Watchdog,
        &[(Suppressed, "2026-11-21T09:00:00Z")],
    );
    b.suppressed_reason = Some("already_rolled_back".into());
    b.review = Some(review(
        3,
        "b",
        Verdict::FalsePositive,
        Some("=HYPERLINK(\"x\")"),
    ));
    let mut c = event(
        "c",
        "2026-11-22T09:00:00Z",
        TriggerType::Manual,
        &[(DryRun, "2026-11-22T09:00:00Z")],
    );
    c.review = Some(review(4, "c", Verdict::Drill, None));
    let d = event(
        "d",
        "2026-11-23T09:00:00Z",
        TriggerType::Manual,
        &[
            (Pending, "2026-11-23T09:00:00Z"),
            (Executing, "2026-11-23T09:00:01Z"),
        ],
    );
    let mut r = event(
        "r",
        "2026-11-23T09:30:00Z",
        TriggerType::Manual,
        &[(DryRun, "2026-11-23T09:30:00Z")],
    );
    r.request.action = Action::Restore;
    let missed = vec![MissedDegradation {
        id: 1,
        from: t("2026-11-10T08:00:00Z"),
        to: t("2026-11-10T08:45:00Z"),
        conditions: vec!["walk_forward_stability".into()],
        note: "stability sagged below 40 between polls".into(),
        recorded_by: "ops".into(),
        recorded_at: t("2026-11-11T09:00:00Z"),
    }];
    // The alert began firing 90 s before the rollback was recorded; an older episode of the
    // same fingerprint and a later resend do not count.
    let starts = vec![
        ("f1".into(), "2026-11-20T09:58:30Z".into()),
        ("f1".into(), "2026-11-01T00:00:00Z".into()),
        ("f1".into(), "2026-11-20T10:05:00Z".into()),
    ];
    (vec![a, b, c, d, r], missed, starts)
}

fn report() -> Report {
    let (events, missed, starts) = month();
    build(
        &events,
        missed,
        &starts,
        t("2026-11-01T00:00:00Z"),
        t("2026-12-01T00:00:00Z"),
        t("2026-12-01T00:00:00Z"),
    )
}

#[test]
fn the_report_lists_finished_rollbacks_with_their_timeline_and_outcome() {
    let r = report();
    assert_eq!(r.format_version, 1);
    assert_eq!(
        r.incidents
            .iter()
            .map(|i| i.event_id.as_str())
            .collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(
        (r.summary.executed, r.summary.suppressed, r.summary.dry_runs),
        (1, 1, 1)
    );
    let a = &r.incidents[0];
    assert_eq!(
        a.detected_at,
        t("2026-11-20T09:58:30Z"),
        "the alert's startsAt"
    );
    assert_eq!(a.response_seconds, Some(91.0));
    assert_eq!(a.recovery_seconds, Some(2.0));
    assert_eq!(a.execution_seconds, Some(3.0));
    assert_eq!(a.timeline.len(), 4);
    let v = a.validation.as_ref().unwrap();
    assert_eq!((v.score, v.passed), (85.0, true));
    assert_eq!(v.failed_checks, ["max_drawdown still critical (5.2)"]);
    let s = a.stability.as_ref().unwrap();
    assert_eq!(
        (s.outcome, s.score),
        (StabilityOutcome::Passed, Some(100.0))
    );
    assert_eq!(a.review.as_ref().unwrap().verdict, Verdict::TruePositive);
    assert_eq!(a.superseded_reviews, 1);
    assert_eq!(
        r.incidents[1].stability, None,
        "no stability watch after a suppression"
    );
    assert_eq!(r.incidents[1].response_seconds, None);
}

#[test]
fn the_success_metrics_are_judged_against_the_seed() {
    let r = report();
    let by = |m: Measure| r.success_metrics.iter().find(|l| l.metric == m).unwrap();
    let fp = by(Measure::FalsePositiveRate);
    assert_eq!(fp.value, Some(0.5));
    assert_eq!((fp.limit_met, fp.target_met), (Some(false), Some(false)));
    assert_eq!(
        fp.basis,
        "1 of 2 reviewed triggers were false (drills left out)"
    );
    let tp = by(Measure::TruePositiveRate);
    assert_eq!(tp.value, Some(0.5), "one caught, one missed");
    let resp = by(Measure::IncidentResponseTime);
    assert_eq!((resp.value, resp.limit_met), (Some(91.0), Some(true)));
    let doc = by(Measure::DocumentationCompliance);
    assert_eq!((doc.value, doc.limit_met), (Some(1.0), Some(true)));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["success_metrics"][2]["metric"], "false_positive_rate");
    assert_eq!(json["success_metrics"][2]["comparison"], "below");
    assert_eq!(json["incidents"][0]["kind"], "executed");
    assert_eq!(json["incidents"][0]["stability"]["outcome"], "passed");

    let empty = build(
        &[],
        vec![],
        &[],
        t("2026-11-01T00:00:00Z"),
        t("2026-12-01T00:00:00Z"),
        t("2026-12-01T00:00:00Z"),
    );
    for m in &empty.success_metrics {
        assert_eq!(
            (m.value, m.limit_met, m.target_met),
            (None, None, None),
            "{:?}",
            m.metric
        );
    }
    assert!(render::markdown(&empty).contains("No trigger episodes in the period."));
}

#[test]
fn the_markdown_reads_well_in_a_ticket() {
    let md = render::markdown(&report());
    insta::assert_snapshot!(md);
}

#[test]
fn the_csv_quotes_and_neutralises_what_people_typed() {
    let csv = render::csv(&report());
    let mut lines = csv.split("\r\n");
    assert!(lines
        .next()
        .unwrap()
        .starts_with("event_id,created_at,kind,status,trigger_type,actor,reason"));
    assert!(csv.contains("\"'=HYPERLINK(\"\"x\"\")\""), "{csv}");
    assert!(
        csv.contains("\r\n\r\nmetric,value,comparison,limit,target,limit_met,target_met,basis\r\n")
    );
    assert!(csv.contains("false_positive_rate,0.5,<,0.05,0.02,false,false,1 of 2 reviewed triggers were false (drills left out)\r\n"), "{csv}");
    assert_eq!(csv.matches("\r\n").count(), 1 + 3 + 1 + 1 + 7);
}
