use super::*;
use crate::domain::lifecycle::{Action, EventStatus};
use proptest::prelude::*;

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

const KNOWN: [&str; 4] = [
    "walk_forward_stability",
    "overfitting_score",
    "consecutive_losses",
    "max_drawdown",
];

#[test]
fn verdicts_round_trip_and_an_unknown_one_lists_the_allowed() {
    for v in Verdict::ALL {
        assert_eq!(Verdict::parse(v.as_str()), Some(v));
        assert_eq!(
            serde_json::to_value(v).unwrap(),
            serde_json::json!(v.as_str())
        );
    }
    let e = ReviewDraft::new("maybe", Some("x"), None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "verdict \"maybe\" is not allowed; expected one of true_positive, false_positive, drill"
    );
}

#[test]
fn a_false_positive_needs_a_note_the_others_do_not() {
    for note in [None, Some(""), Some("  \n ")] {
        let e = ReviewDraft::new("false_positive", note, None).unwrap_err();
        assert_eq!(e, InputError::NoteRequiredForFalsePositive);
        assert!(e.to_string().starts_with("note is required"), "{e}");
    }
    let r = ReviewDraft::new("false_positive", Some("  spike from a bad tick  "), None).unwrap();
    assert_eq!(r.note.as_deref(), Some("spike from a bad tick"));
    for v in ["true_positive", "drill"] {
        let r = ReviewDraft::new(v, Some("   "), None).unwrap();
        assert_eq!(r.note, None, "a blank note is no note");
    }
}

#[test]
fn notes_and_ticket_urls_have_limits_named_by_field() {
    let long = "x".repeat(MAX_NOTE + 1);
    let e = ReviewDraft::new("true_positive", Some(&long), None).unwrap_err();
    assert_eq!(e.to_string(), "note is 2001 characters; at most 2000");
    let max = "é".repeat(MAX_NOTE);
    assert!(
        ReviewDraft::new("true_positive", Some(&max), None).is_ok(),
        "characters, not bytes"
    );
    for good in ["https://tickets.example.org/INC-42", "http://jira/x?y=1#z"] {
        let r = ReviewDraft::new("drill", None, Some(good)).unwrap();
        assert_eq!(r.ticket_url.as_deref(), Some(good));
    }
    for bad in [
        "ftp://x/y",
        "https://",
        "https:///path",
        "tickets/INC-42",
        "https://a b",
    ] {
        let e = ReviewDraft::new("drill", None, Some(bad)).unwrap_err();
        assert!(e.to_string().starts_with("ticket_url "), "{bad}: {e}");
    }
    let long_url = format!("https://x/{}", "a".repeat(MAX_TICKET_URL));
    let e = ReviewDraft::new("drill", None, Some(&long_url)).unwrap_err();
    assert!(matches!(e, InputError::TicketUrlTooLong(_)), "{e}");
    assert_eq!(
        ReviewDraft::new("drill", None, Some(" "))
            .unwrap()
            .ticket_url,
        None
    );
}

#[test]
fn only_finished_rollbacks_are_episodes() {
    use EventStatus::*;
    let cases = [
        (Completed, Ok(EpisodeKind::Executed)),
        (Failed, Ok(EpisodeKind::Executed)),
        (Suppressed, Ok(EpisodeKind::Suppressed)),
        (DryRun, Ok(EpisodeKind::DryRun)),
        (Pending, Err(NotReviewable::InFlight(Pending))),
        (Executing, Err(NotReviewable::InFlight(Executing))),
        (Validating, Err(NotReviewable::InFlight(Validating))),
    ];
    for (status, want) in cases {
        assert_eq!(EpisodeKind::of(Action::Rollback, status), want, "{status}");
        assert_eq!(
            EpisodeKind::of(Action::Restore, status),
            Err(NotReviewable::Restore)
        );
    }
    for s in EventStatus::ALL {
        assert_eq!(
            EpisodeKind::STATUSES.contains(&s),
            EpisodeKind::of(Action::Rollback, s).is_ok(),
            "STATUSES agrees with `of` on {s}"
        );
    }
    assert_eq!(
        NotReviewable::InFlight(Pending).to_string(),
        "the rollback is still pending; review it once it has finished"
    );
}

#[test]
fn a_missed_degradation_must_be_a_past_forward_range_of_known_conditions_with_a_note() {
    let now = t("2026-11-23T12:00:00Z");
    let (from, to) = (t("2026-11-23T10:00:00Z"), t("2026-11-23T10:30:00Z"));
    let c = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let ok =
        MissedDraft::new(from, to, &c(&["max_drawdown"]), " slow bleed ", &KNOWN, now).unwrap();
    assert_eq!(ok.note, "slow bleed");
    assert_eq!(ok.conditions, ["max_drawdown"]);
    let err = |from, to, conds: &[&str], note: &str| {
        MissedDraft::new(from, to, &c(conds), note, &KNOWN, now)
            .unwrap_err()
            .to_string()
    };
    let e = err(to, from, &["max_drawdown"], "n");
    assert!(
        e.starts_with("from 2026-11-23T10:30:00+00:00 is not before to"),
        "{e}"
    );
    assert!(err(from, from, &["max_drawdown"], "n").contains("reversed or empty"));
    let e = err(from, t("2026-11-23T12:00:01Z"), &["max_drawdown"], "n");
    assert!(
        e.starts_with("to 2026-11-23T12:00:01+00:00 is in the future"),
        "{e}"
    );
    assert!(MissedDraft::new(from, now, &c(&["max_drawdown"]), "n", &KNOWN, now).is_ok());
    let e = err(from, to, &[], "n");
    assert!(e.starts_with("conditions must name at least one"), "{e}");
    let e = err(from, to, &["drawdown"], "n");
    assert!(e.starts_with("conditions: \"drawdown\" is not a configured condition; expected one of walk_forward_stability"), "{e}");
    let e = err(from, to, &["max_drawdown", "max_drawdown"], "n");
    assert_eq!(e, "conditions: \"max_drawdown\" is listed twice");
    assert!(err(from, to, &["max_drawdown"], "  ").starts_with("note is required"));
    let long = "n".repeat(MAX_NOTE + 1);
    assert!(err(from, to, &["max_drawdown"], &long).starts_with("note is 2001 characters"));
}

/// An episode recorded at `at` with a verdict; executed ones acted 30 s after detection and
/// validated 10 s later.
fn ep(at: &str, kind: EpisodeKind, verdict: Option<Verdict>, validated: Option<bool>) -> Episode {
    let at = t(at);
    let executed = kind == EpisodeKind::Executed;
    Episode {
        at,
        kind,
        verdict,
        detected_at: at - Duration::seconds(30),
        acted_at: executed.then_some(at),
        validated_at: (validated == Some(true)).then(|| at + Duration::seconds(10)),
        validated,
        execution_ms: executed.then_some(10_000),
    }
}

const FROM: &str = "2026-11-01T00:00:00Z";
const TO: &str = "2026-12-01T00:00:00Z";

#[test]
fn no_reviews_yet_is_no_data_never_zero_or_one_hundred_percent() {
    let r = rates(&[], &[], t(FROM), t(TO));
    for j in judge_all(&r) {
        assert_eq!(j.value, None, "{:?}", j.criterion.measure);
        assert_eq!((j.limit_met, j.target_met), (None, None));
    }
    // Unreviewed episodes are counted, but the rates read from reviews stay empty.
    let eps = [
        ep(
            "2026-11-02T00:00:00Z",
            EpisodeKind::Executed,
            None,
            Some(true),
        ),
        ep("2026-11-03T00:00:00Z", EpisodeKind::Suppressed, None, None),
    ];
    let r = rates(&eps, &[], t(FROM), t(TO));
    assert_eq!(r.false_positive.value(), None);
    assert_eq!(r.true_positive.value(), None);
    assert_eq!(r.documentation, Ratio { hits: 0, total: 1 });
    assert_eq!(r.documentation.value(), Some(0.0));
    assert_eq!(r.unreviewed_executed, 1);
    assert_eq!(r.verdicts.unreviewed, 2);
    assert_eq!(r.validation_success.value(), Some(1.0));
    // Only drills reviewed: still no data for the positive rates.
    let drills = [ep(
        "2026-11-02T00:00:00Z",
        EpisodeKind::Executed,
        Some(Verdict::Drill),
        Some(true),
    )];
    let r = rates(&drills, &[], t(FROM), t(TO));
    assert_eq!(
        (r.false_positive.value(), r.true_positive.value()),
        (None, None)
    );
    assert_eq!(r.response, Durations::default());
}

#[test]
fn the_rates_of_a_seeded_month_are_exact() {
    use EpisodeKind::*;
    use Verdict::*;
    let mut eps = Vec::new();
    // 19 executed true positives (one failed its validation), one suppressed false positive.
    for day in 1..=19 {
        let validated = Some(day != 7);
        eps.push(ep(
            &format!("2026-11-{day:02}T10:00:00Z"),
            Executed,
            Some(TruePositive),
            validated,
        ));
    }
    eps.push(ep(
        "2026-11-20T10:00:00Z",
        Suppressed,
        Some(FalsePositive),
        None,
    ));
    // A drill and an unreviewed executed rollback; a dry run unreviewed.
    eps.push(ep(
        "2026-11-21T10:00:00Z",
        Executed,
        Some(Drill),
        Some(false),
    ));
    eps.push(ep("2026-11-22T10:00:00Z", Executed, None, Some(true)));
    eps.push(ep("2026-11-23T10:00:00Z", DryRun, None, None));
    let missed = [t("2026-11-05T00:00:00Z")];
    let r = rates(&eps, &missed, t(FROM), t(TO));
    assert_eq!(r.false_positive, Ratio { hits: 1, total: 20 });
    assert_eq!(
        r.false_positive.value(),
        Some(0.05),
        "1 false trigger per 20"
    );
    assert_eq!(
        r.true_positive,
        Ratio {
            hits: 19,
            total: 20
        }
    );
    // 21 executed: 19 + drill + unreviewed; the drill and day 7 failed.
    assert_eq!(
        r.validation_success,
        Ratio {
            hits: 19,
            total: 21
        }
    );
    assert_eq!(
        r.documentation,
        Ratio {
            hits: 20,
            total: 21
        }
    );
    assert_eq!(r.unreviewed_executed, 1);
    assert_eq!(
        r.verdicts,
        VerdictCounts {
            true_positive: 19,
            false_positive: 1,
            drill: 1,
            unreviewed: 2
        }
    );
    assert_eq!(r.missed, 1);
    // Incidents: 19 true positives and the unreviewed one (the drill is not an incident).
    assert_eq!(r.response.count, 20);
    assert_eq!(
        (r.response.median, r.response.max),
        (Some(30.0), Some(30.0))
    );
    assert_eq!(r.recovery.count, 19, "day 7 failed: no recovery");
    assert_eq!(r.execution.count, 21, "every executed rollback, drills too");

    let judged = judge_all(&r);
    let by = |m: Measure| judged.iter().find(|j| j.criterion.measure == m).unwrap();
    let fp = by(Measure::FalsePositiveRate);
    assert_eq!(
        (fp.limit_met, fp.target_met),
        (Some(false), Some(false)),
        "5 % is not < 5 %"
    );
    let tp = by(Measure::TruePositiveRate);
    assert_eq!(
        (tp.limit_met, tp.target_met),
        (Some(false), None),
        "95 % is not > 95 %"
    );
    let v = by(Measure::RecoveryValidationSuccess);
    assert_eq!(v.value, Some(19.0 / 21.0));
    assert_eq!((v.limit_met, v.target_met), (Some(true), Some(false)));
    let d = by(Measure::DocumentationCompliance);
    assert_eq!(d.limit_met, Some(false));
    let resp = by(Measure::IncidentResponseTime);
    assert_eq!((resp.value, resp.limit_met), (Some(30.0), Some(true)));
    let exec = by(Measure::RollbackExecutionTime);
    assert_eq!(
        (exec.limit_met, exec.target_met),
        (Some(true), Some(false)),
        "10 s is not < 10 s"
    );
}

#[test]
fn windows_include_their_start_and_exclude_their_end() {
    let eps = [
        ep(
            FROM,
            EpisodeKind::Suppressed,
            Some(Verdict::FalsePositive),
            None,
        ),
        ep(
            TO,
            EpisodeKind::Suppressed,
            Some(Verdict::FalsePositive),
            None,
        ),
        ep(
            "2026-10-31T23:59:59.999Z",
            EpisodeKind::Suppressed,
            Some(Verdict::TruePositive),
            None,
        ),
    ];
    let missed = [t(FROM), t(TO)];
    let r = rates(&eps, &missed, t(FROM), t(TO));
    assert_eq!(r.false_positive, Ratio { hits: 1, total: 1 });
    assert_eq!(r.missed, 1);
    assert_eq!(
        r.true_positive,
        Ratio { hits: 0, total: 1 },
        "only the missed one"
    );
    assert_eq!(Window::Week.length(), Duration::days(7));
    assert_eq!(Window::ALL.map(Window::as_str), ["7d", "30d"]);
}

#[test]
fn response_and_recovery_are_measured_from_detection_action_and_validation() {
    let mut e = ep(
        "2026-11-10T10:00:00Z",
        EpisodeKind::Executed,
        None,
        Some(true),
    );
    e.detected_at = t("2026-11-10T09:58:30Z");
    e.validated_at = Some(t("2026-11-10T10:00:02.5Z"));
    assert_eq!(e.response_seconds(), Some(90.0));
    assert_eq!(e.recovery_seconds(), Some(2.5));
    e.verdict = Some(Verdict::Drill);
    assert_eq!(
        (e.response_seconds(), e.recovery_seconds()),
        (None, None),
        "a drill is no incident"
    );
    let s = ep(
        "2026-11-10T10:00:00Z",
        EpisodeKind::Suppressed,
        Some(Verdict::TruePositive),
        None,
    );
    assert_eq!((s.response_seconds(), s.recovery_seconds()), (None, None));
    let mut clock_skew = ep(
        "2026-11-10T10:00:00Z",
        EpisodeKind::Executed,
        None,
        Some(true),
    );
    clock_skew.detected_at = t("2026-11-10T10:00:05Z");
    assert_eq!(clock_skew.response_seconds(), Some(0.0), "never negative");
}

#[test]
fn durations_use_the_nearest_rank_median() {
    assert_eq!(Durations::of(vec![]), Durations::default());
    let d = Durations::of(vec![5.0, 1.0, 3.0]);
    assert_eq!((d.count, d.median, d.max), (3, Some(3.0), Some(5.0)));
    let d = Durations::of(vec![4.0, 1.0, 3.0, 2.0]);
    assert_eq!((d.median, d.max), (Some(2.0), Some(4.0)));
    assert_eq!(Durations::of(vec![f64::NAN, 7.0]).count, 1);
}

#[test]
fn comparisons_are_strict_where_the_seed_says_so() {
    assert!(Comparison::Below.met(0.0499, 0.05) && !Comparison::Below.met(0.05, 0.05));
    assert!(Comparison::Above.met(0.9001, 0.9) && !Comparison::Above.met(0.9, 0.9));
    assert!(Comparison::AtLeast.met(1.0, 1.0) && !Comparison::AtLeast.met(0.99, 1.0));
    let keys: Vec<String> = CRITERIA
        .iter()
        .map(|c| {
            serde_json::to_value(c.measure)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        keys,
        [
            "rollback_execution_time",
            "recovery_validation_success",
            "false_positive_rate",
            "true_positive_rate",
            "incident_response_time",
            "recovery_time",
            "documentation_compliance"
        ]
    );
}

/// Episodes an hour apart from the start of the month: `true_positives` executed and
/// validated true positives, then `false_positives` suppressed false positives, then
/// `failed` executed true positives whose validation failed.
fn month_of(true_positives: u32, false_positives: u32, failed: u32) -> Vec<Episode> {
    let at = |n: u32| (t(FROM) + Duration::hours(n.into())).to_rfc3339();
    let mut eps = Vec::new();
    for n in 0..true_positives + false_positives + failed {
        let (kind, verdict, validated) = if n < true_positives {
            (EpisodeKind::Executed, Verdict::TruePositive, Some(true))
        } else if n < true_positives + false_positives {
            (EpisodeKind::Suppressed, Verdict::FalsePositive, None)
        } else {
            (EpisodeKind::Executed, Verdict::TruePositive, Some(false))
        };
        eps.push(ep(&at(n), kind, Some(verdict), validated));
    }
    eps
}

fn judged(eps: &[Episode], measure: Measure) -> Judged {
    let r = rates(eps, &[], t(FROM), t(TO));
    judge_all(&r)
        .into_iter()
        .find(|j| j.criterion.measure == measure)
        .unwrap()
}

/// The seed's "< 5 %" and "max 1 false trigger per 20 monitoring cycles" are one bound: exactly
/// 1 false trigger in 20 reviewed is 5 % and does not meet it; 1 in 21 does. Its "> 90 %"
/// validation success: exactly 9 of 10 (90 %) does not meet it; 10 of 11 does. The alert
/// rules fire exactly when the limit is not met (`>= 0.05`, `<= 0.90`).
#[test]
fn the_seeds_limits_at_their_exact_boundary() {
    let fp = judged(&month_of(19, 1, 0), Measure::FalsePositiveRate);
    assert_eq!(fp.value, Some(0.05), "1 false trigger in 20 reviewed");
    assert_eq!(
        (fp.limit_met, fp.target_met),
        (Some(false), Some(false)),
        "exactly 5 % is not < 5 %"
    );
    let fp = judged(&month_of(20, 1, 0), Measure::FalsePositiveRate);
    assert_eq!(fp.value, Some(1.0 / 21.0));
    assert_eq!(
        (fp.limit_met, fp.target_met),
        (Some(true), Some(false)),
        "1 in 21 (4.8 %) is within the limit, not the 2 % target"
    );
    let fp = judged(&month_of(50, 1, 0), Measure::FalsePositiveRate);
    assert_eq!(fp.value, Some(1.0 / 51.0));
    assert_eq!((fp.limit_met, fp.target_met), (Some(true), Some(true)));

    let v = judged(&month_of(9, 0, 1), Measure::RecoveryValidationSuccess);
    assert_eq!(v.value, Some(0.9), "9 of 10 validated");
    assert_eq!(
        (v.limit_met, v.target_met),
        (Some(false), Some(false)),
        "exactly 90 % is not > 90 %"
    );
    let v = judged(&month_of(10, 0, 1), Measure::RecoveryValidationSuccess);
    assert_eq!(v.value, Some(10.0 / 11.0));
    assert_eq!((v.limit_met, v.target_met), (Some(true), Some(false)));
    let v = judged(&month_of(19, 0, 1), Measure::RecoveryValidationSuccess);
    assert_eq!(v.value, Some(0.95));
    assert_eq!(
        (v.limit_met, v.target_met),
        (Some(true), Some(false)),
        "exactly 95 % is not > 95 %"
    );

    // The values at the bound are the very numbers Prometheus compares with the rules'
    // literals: 1/20 and 9/10 as f64 are 0.05 and 0.90.
    assert_eq!(1.0_f64 / 20.0, 0.05);
    assert_eq!(9.0_f64 / 10.0, 0.90);
}

fn any_episode() -> impl Strategy<Value = Episode> {
    let kind = prop_oneof![
        Just(EpisodeKind::Executed),
        Just(EpisodeKind::Suppressed),
        Just(EpisodeKind::DryRun)
    ];
    let verdict = prop_oneof![
        Just(None),
        Just(Some(Verdict::TruePositive)),
        Just(Some(Verdict::FalsePositive)),
        Just(Some(Verdict::Drill))
    ];
    (
        0i64..60 * 86_400,
        kind,
        verdict,
        any::<bool>(),
        0i64..600,
        0i64..600,
    )
        .prop_map(|(secs, kind, verdict, ok, resp, rec)| {
            let at = t("2026-10-15T00:00:00Z") + Duration::seconds(secs);
            let executed = kind == EpisodeKind::Executed;
            Episode {
                at,
                kind,
                verdict,
                detected_at: at - Duration::seconds(resp),
                acted_at: executed.then_some(at),
                validated_at: (executed && ok).then(|| at + Duration::seconds(rec)),
                validated: executed.then_some(ok),
                execution_ms: executed.then_some(rec as u64 * 1000),
            }
        })
}

proptest! {
    #[test]
    fn rates_add_up_and_stay_within_bounds(
        eps in proptest::collection::vec(any_episode(), 0..80),
        missed in proptest::collection::vec(0i64..60 * 86_400, 0..10),
    ) {
        let base = t("2026-10-15T00:00:00Z");
        let missed: Vec<_> = missed.into_iter().map(|s| base + Duration::seconds(s)).collect();
        let (from, to) = (t(FROM), t(TO));
        let r = rates(&eps, &missed, from, to);
        let inside: Vec<&Episode> = eps.iter().filter(|e| e.at >= from && e.at < to).collect();
        let v = r.verdicts;
        prop_assert_eq!(v.true_positive + v.false_positive + v.drill + v.unreviewed, inside.len() as u64);
        prop_assert_eq!(r.false_positive.total, v.true_positive + v.false_positive);
        prop_assert_eq!(r.false_positive.hits, v.false_positive);
        prop_assert_eq!(r.true_positive.total, v.true_positive + r.missed);
        let executed = inside.iter().filter(|e| e.kind == EpisodeKind::Executed).count() as u64;
        prop_assert_eq!(r.documentation.total, executed);
        prop_assert_eq!(r.validation_success.total, executed);
        prop_assert_eq!(r.documentation.hits + r.unreviewed_executed, executed);
        for ratio in [r.false_positive, r.true_positive, r.validation_success, r.documentation] {
            prop_assert!(ratio.hits <= ratio.total);
            match ratio.value() {
                None => prop_assert_eq!(ratio.total, 0),
                Some(x) => prop_assert!((0.0..=1.0).contains(&x)),
            }
        }
        for d in [r.response, r.recovery, r.execution] {
            prop_assert_eq!(d.median.is_some(), d.count > 0);
            if let (Some(m), Some(x)) = (d.median, d.max) { prop_assert!(m <= x); }
        }
        // Episodes outside the window change nothing; order changes nothing.
        let only_inside: Vec<Episode> = inside.iter().map(|e| (*e).clone()).collect();
        let mut reversed = eps.clone();
        reversed.reverse();
        prop_assert_eq!(&rates(&only_inside, &missed, from, to), &r);
        prop_assert_eq!(&rates(&reversed, &missed, from, to), &r);
    }
}
