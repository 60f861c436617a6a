use super::*;
use crate::domain::condition::{MAX_DRAWDOWN, WALK_FORWARD_STABILITY};
use proptest::prelude::*;

const MIN: u64 = 60_000;

fn spec(name: &str, warning: f64, critical: f64) -> ConditionSpec {
    ConditionSpec {
        name: name.into(),
        operator: Operator::for_known(name).unwrap(),
        warning,
        critical,
        description: String::new(),
    }
}

fn drawdown() -> ConditionSpec {
    spec(MAX_DRAWDOWN, 3.5, 5.0)
}

fn settings(cooldown_ms: u64) -> Settings {
    Settings {
        cooldown_ms,
        tolerance_ms: 5 * MIN,
        gap_ms: 2 * MIN,
        rollback_mode: "universal_cycle_4".into(),
    }
}

/// Replays `values`, one a minute from t = 0.
fn replay(
    spec: &ConditionSpec,
    values: &[f64],
    reference: Reference,
    cooldown_ms: u64,
) -> Vec<CandidateResult> {
    let mut r = ConditionReplay::new(spec, &STEPS, reference, settings(cooldown_ms));
    for (i, v) in values.iter().enumerate() {
        r.push(i as u64 * MIN, Some(*v));
    }
    r.finish()
}

fn at(results: &[CandidateResult], step: i32) -> &CandidateResult {
    results.iter().find(|r| r.step_percent == step).unwrap()
}

#[test]
fn candidates_scale_the_critical_threshold_and_keep_warning_on_its_safe_side() {
    let dd = drawdown();
    let c: Vec<(f64, f64)> = STEPS
        .iter()
        .map(|s| scaled(&dd, *s))
        .map(|s| (s.critical, s.warning))
        .collect();
    assert_eq!(
        c,
        vec![
            (3.5, 2.0),
            (4.0, 3.5),
            (4.5, 3.5),
            (5.0, 3.5),
            (5.5, 3.5),
            (6.0, 3.5),
            (6.5, 3.5)
        ],
        "at -30 % the critical threshold reaches the warning one, which moves down with it"
    );
    let wfs = spec(WALK_FORWARD_STABILITY, 50.0, 40.0);
    let up = scaled(&wfs, 30);
    assert_eq!((up.critical, up.warning), (52.0, 62.0));
    assert!(up.thresholds_ordered());
    assert_eq!(scaled(&wfs, -10).warning, 50.0);
    assert_eq!(tidy(0.5 * 1.1), 0.55);
    assert_eq!(tidy(0.0), 0.0);
}

#[test]
fn a_trigger_is_a_move_into_critical_once_per_episode() {
    // ok, critical x3, warning, critical, unknown gap, critical.
    let mut r = ConditionReplay::new(&drawdown(), &[0], Reference::default(), settings(0));
    for (t, v) in [
        (0, 1.0),
        (1, 5.0),
        (2, 6.0),
        (3, 5.5),
        (4, 4.0),
        (5, 5.0),
        (9, 5.0),
    ] {
        r.push(t * MIN, Some(v));
    }
    r.push(10 * MIN, None);
    r.push(11 * MIN, Some(7.0));
    let out = r.finish();
    assert_eq!(
        out[0].triggers, 4,
        "t=1, t=5, after the gap at t=9, after the unknown at t=11"
    );
    assert_eq!(out[0].rollbacks, 4, "no cooldown");
}

#[test]
fn triggers_within_the_cooldown_of_a_rollback_are_suppressed() {
    // Critical every other minute for 40 minutes: 20 triggers, cooldown 15 minutes.
    let values: Vec<f64> = (0..40)
        .map(|i| if i % 2 == 1 { 6.0 } else { 1.0 })
        .collect();
    let out = replay(&drawdown(), &values, Reference::default(), 15 * MIN);
    let cur = at(&out, 0);
    assert_eq!(cur.triggers, 20);
    // Rollbacks at t=1, t=17 (16 >= 15), t=33.
    assert_eq!((cur.rollbacks, cur.suppressed), (3, 17));
}

#[test]
fn a_trigger_at_exactly_the_end_of_the_cooldown_rolls_back() {
    let mut r = ConditionReplay::new(&drawdown(), &[0], Reference::default(), settings(2 * MIN));
    for (t, v) in [(0, 6.0), (1, 1.0), (2, 6.0)] {
        r.push(t * MIN, Some(v));
    }
    assert_eq!(
        r.finish()[0].rollbacks,
        2,
        "the guard's cooldown is [t, t + cooldown)"
    );
}

#[test]
fn triggers_are_matched_to_reviews_and_missed_degradations() {
    // Drawdown peaks: 5.2 at t=10 (a false positive), 6.2 at t=60 (a true positive), 4.7 at
    // t=120 (missed between t=115 and t=130).
    let mut values = vec![1.0; 180];
    values[10] = 5.2;
    values[60] = 6.2;
    values[120] = 4.7;
    let reference = Reference {
        reviewed: vec![
            Reviewed {
                at_ms: 62 * MIN,
                verdict: Verdict::TruePositive,
            },
            Reviewed {
                at_ms: 11 * MIN,
                verdict: Verdict::FalsePositive,
            },
        ],
        missed: vec![Missed {
            from_ms: 115 * MIN,
            to_ms: 130 * MIN,
        }],
    };
    let out = replay(&drawdown(), &values, reference, 0);
    let cur = at(&out, 0);
    assert_eq!(cur.triggers, 2);
    assert_eq!(cur.true_positives, Ratio { hits: 1, total: 1 });
    assert_eq!(cur.false_positives, Ratio { hits: 1, total: 1 });
    assert_eq!(cur.missed_caught, Ratio { hits: 0, total: 1 });
    assert_eq!(cur.true_positive_rate(), Some(0.5));
    assert_eq!(cur.false_positive_rate(), Some(0.5));
    // -10 %: critical at 4.5 catches the missed one too.
    let down = at(&out, -10);
    assert_eq!((down.triggers, down.missed_caught.hits), (3, 1));
    assert_eq!(
        down.unmatched, 0,
        "the trigger inside the missed degradation is known"
    );
    assert_eq!(down.true_positive_rate(), Some(1.0));
    // +10 %: 5.5 leaves the false positive out and keeps the true one.
    let up = at(&out, 10);
    assert_eq!(
        (up.triggers, up.false_positives.hits, up.true_positives.hits),
        (1, 0, 1)
    );
    assert_eq!(up.false_positive_rate(), Some(0.0));
    assert_eq!(up.true_positive_rate(), Some(0.5));
    // +30 %: 6.5 catches nothing.
    assert_eq!(at(&out, 30).triggers, 0);
    assert_eq!(at(&out, 30).false_positive_rate(), None);
}

#[test]
fn a_trigger_near_no_review_is_unmatched_and_one_review_counts_once() {
    let mut values = vec![1.0; 60];
    for t in [10, 12, 14, 40] {
        values[t] = 6.0;
    }
    let reference = Reference {
        reviewed: vec![Reviewed {
            at_ms: 12 * MIN,
            verdict: Verdict::FalsePositive,
        }],
        missed: vec![],
    };
    let cur = at(&replay(&drawdown(), &values, reference, 0), 0).clone();
    assert_eq!(cur.triggers, 4);
    assert_eq!(cur.false_positives, Ratio { hits: 1, total: 1 });
    assert_eq!(cur.unmatched, 1, "t=40 is 28 minutes from the review");
}

fn result(step: i32, tp: (u64, u64), fp: (u64, u64), triggers: u64) -> CandidateResult {
    CandidateResult {
        step_percent: step,
        critical_threshold: 5.0 * (1.0 + f64::from(step) / 100.0),
        warning_threshold: 3.5,
        triggers,
        rollbacks: triggers,
        suppressed: 0,
        true_positives: Ratio {
            hits: tp.0,
            total: tp.1,
        },
        false_positives: Ratio {
            hits: fp.0,
            total: fp.1,
        },
        drills: Ratio::default(),
        missed_caught: Ratio::default(),
        unmatched: 0,
    }
}

#[test]
fn the_recommendation_keeps_true_positives_with_the_fewest_false_ones_one_step_at_a_time() {
    let results = vec![
        result(-10, (20, 20), (6, 6), 30),
        result(0, (20, 20), (4, 6), 25),
        result(10, (19, 20), (1, 6), 21),
        result(20, (15, 20), (0, 6), 15),
    ];
    let r = recommend(&results).unwrap();
    assert_eq!(r.step_percent, 10, "95 % kept, the fewest false positives");
    assert_eq!(r.basis, Basis::KeepsTruePositives);
    assert_eq!(r.critical_threshold, 5.5);

    let results = vec![
        result(-10, (20, 20), (2, 6), 30),
        result(0, (20, 20), (2, 6), 25),
        result(10, (18, 20), (0, 6), 21),
    ];
    assert_eq!(recommend(&results).unwrap().step_percent, 0, "a tie stays");

    let results = vec![
        result(-20, (20, 20), (2, 6), 40),
        result(-10, (18, 20), (2, 6), 30),
        result(0, (16, 20), (1, 6), 25),
        result(10, (12, 20), (0, 6), 21),
    ];
    let r = recommend(&results).unwrap();
    assert_eq!(
        (r.step_percent, r.basis),
        (-10, Basis::BestTruePositives),
        "-20 would keep 95 % but is two steps away"
    );
}

#[test]
fn without_reviews_there_is_no_recommendation_and_without_true_positives_no_move() {
    let none = vec![result(0, (0, 0), (0, 0), 3), result(10, (0, 0), (0, 0), 1)];
    assert_eq!(recommend(&none), None);
    let only_fp = vec![result(0, (0, 0), (2, 2), 3), result(10, (0, 0), (0, 2), 1)];
    let r = recommend(&only_fp).unwrap();
    assert_eq!((r.step_percent, r.basis), (0, Basis::NoTruePositivesKnown));
}

#[test]
fn overrides_name_the_dotted_keys_and_a_warning_only_when_it_moved() {
    let dd = drawdown();
    let mut o = ConditionOutcome {
        condition: MAX_DRAWDOWN.into(),
        operator: Operator::Ge,
        samples: 1,
        reviewed_true_positives: 1,
        reviewed_false_positives: 0,
        reviewed_drills: 0,
        missed_degradations: 0,
        candidates: vec![],
        recommendation: Some(Recommendation {
            step_percent: 10,
            critical_threshold: 5.5,
            warning_threshold: 3.5,
            basis: Basis::KeepsTruePositives,
        }),
    };
    assert_eq!(
        o.overrides(&dd),
        vec![("max_drawdown.critical_threshold".to_string(), 5.5)]
    );
    o.recommendation = Some(Recommendation {
        step_percent: -30,
        critical_threshold: 3.5,
        warning_threshold: 2.0,
        basis: Basis::BestTruePositives,
    });
    assert_eq!(o.overrides(&dd).len(), 2);
    o.recommendation.as_mut().unwrap().step_percent = 0;
    assert!(o.overrides(&dd).is_empty());
}

/// The count of moves into critical, written plainly.
fn naive_triggers(values: &[Option<f64>], critical: f64) -> u64 {
    let mut was = false;
    let mut n = 0;
    for v in values {
        let now = v.is_some_and(|v| v >= critical);
        n += u64::from(now && !was);
        was = now;
    }
    n
}

proptest! {
    #[test]
    fn every_candidate_counts_what_a_plain_count_does(
        values in proptest::collection::vec(proptest::option::weighted(0.95, 0.0f64..10.0), 1..400),
        cooldown in 0u64..30,
    ) {
        let dd = drawdown();
        let mut r = ConditionReplay::new(&dd, &STEPS, Reference::default(), settings(cooldown * MIN));
        for (i, v) in values.iter().enumerate() {
            r.push(i as u64 * MIN, *v);
        }
        prop_assert_eq!(r.samples(), values.len() as u64);
        for c in r.finish() {
            prop_assert_eq!(c.triggers, naive_triggers(&values, c.critical_threshold));
            prop_assert_eq!(c.rollbacks + c.suppressed, c.triggers);
            prop_assert!(c.rollbacks <= 1 + values.len() as u64 * MIN / (cooldown * MIN).max(1));
            if cooldown == 0 { prop_assert_eq!(c.suppressed, 0); }
            prop_assert_eq!(c.unmatched, c.triggers, "nothing to match");
        }
    }

    #[test]
    fn scaled_thresholds_stay_ordered(
        warning in 0.01f64..100.0, gap in 0.01f64..50.0, lower in any::<bool>(), step in -30i32..=30,
    ) {
        let s = if lower {
            spec(WALK_FORWARD_STABILITY, warning + gap, warning)
        } else {
            spec(MAX_DRAWDOWN, warning, warning + gap)
        };
        let c = scaled(&s, step);
        prop_assert!(c.thresholds_ordered(), "{:?}", c);
    }

    #[test]
    fn a_recommendation_never_moves_more_than_one_step(
        tps in proptest::collection::vec(0u64..=10, 7), fps in proptest::collection::vec(0u64..=5, 7),
    ) {
        let results: Vec<CandidateResult> = STEPS
            .iter()
            .enumerate()
            .map(|(i, s)| result(*s, (tps[i], 10), (fps[i], 5), tps[i] + fps[i]))
            .collect();
        let r = recommend(&results).unwrap();
        prop_assert!(r.step_percent.abs() <= MAX_MOVE);
        if r.basis == Basis::KeepsTruePositives {
            let chosen = results.iter().find(|c| c.step_percent == r.step_percent).unwrap();
            prop_assert!(chosen.true_positive_rate().unwrap() >= TP_FLOOR);
        }
    }
}
