//! Tuning replay: a condition's recorded values replayed with the daemon's own decision rules at
//! its current critical threshold and at steps around it, each candidate's would-be triggers
//! matched against the reviewed trigger episodes and the recorded missed degradations, and the
//! candidate to move to chosen from the result.
//!
//! The rules replayed, per condition and per candidate:
//! - a sample is judged by [`ConditionSpec::evaluate`]; a trigger is a move into critical from
//!   anything else (ok, warning, unknown), as the watchdog acts once per critical episode;
//!   a missing sample (a gap longer than the caller's `gap_ms`) is unknown and ends an episode;
//! - each trigger goes to a [`Guard`] with the configured cooldown. The replay does not know
//!   when an operator restored the system, so it assumes the restore comes when the cooldown
//!   ends: a trigger within the cooldown after a would-be rollback is suppressed (in the daemon,
//!   `already_rolled_back` or `cooldown`), one after it rolls back again;
//! - each condition is replayed on its own, as if it were the only one: the guard is not shared
//!   between conditions.
//!
//! Matching, per candidate, every trigger (rolled back or suppressed: the daemon records and
//! reviews both) within `tolerance_ms` of a reviewed episode of the same condition reproduces
//! that episode (counted once however many triggers fall near it); a trigger inside a missed
//! degradation's `[from, to]` catches it. The rates follow the domain's formulas
//! ([`super::review`]):
//! - true positive rate = (true positives reproduced + missed caught) / (true positives +
//!   missed degradations);
//! - false positive rate = false positives reproduced / (false positives reproduced + true
//!   positives reproduced + missed caught).
//!
//! A trigger near no reviewed episode and inside no missed degradation is `unmatched`: its
//! verdict is unknown and it is in neither rate. Nothing here does I/O or reads a clock.

use super::condition::{ConditionSpec, Operator, Status};
use super::lifecycle::{Arming, Decision, Guard, TriggerType};
use super::review::{Ratio, Verdict};
use serde::Serialize;

/// The candidates replayed: the critical threshold scaled by these percentages.
pub const STEPS: [i32; 7] = [-30, -20, -10, 0, 10, 20, 30];
/// A recommendation moves at most this many percent from the current threshold at a time.
pub const MAX_MOVE: i32 = 10;
/// The true positive rate a recommendation must keep (the seed's limit).
pub const TP_FLOOR: f64 = 0.95;

/// `x` rounded to 6 significant digits: `5.0 * 1.1` is 5.5, not 5.500000000000001.
pub fn tidy(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    let factor = 10f64.powi(5 - magnitude);
    if !factor.is_finite() || factor == 0.0 {
        return x;
    }
    (x * factor).round() / factor
}

/// `spec` with its critical threshold scaled by `step_percent`. The warning threshold stays
/// where it is unless the new critical one reaches it; then it moves by as much as the critical
/// one did, keeping the configured gap on the safe side.
pub fn scaled(spec: &ConditionSpec, step_percent: i32) -> ConditionSpec {
    let critical = tidy(spec.critical * (1.0 + f64::from(step_percent) / 100.0));
    let mut out = ConditionSpec {
        critical,
        ..spec.clone()
    };
    if !out.thresholds_ordered() {
        out.warning = tidy(spec.warning + (critical - spec.critical));
    }
    out
}

/// A reviewed trigger episode of one condition: when it was recorded and its latest verdict.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reviewed {
    pub at_ms: u64,
    pub verdict: Verdict,
}

/// A degradation of one condition that nothing caught.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Missed {
    pub from_ms: u64,
    pub to_ms: u64,
}

/// What the reviews say about one condition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reference {
    pub reviewed: Vec<Reviewed>,
    pub missed: Vec<Missed>,
}

impl Reference {
    /// Whether there is anything to match triggers against.
    pub fn is_empty(&self) -> bool {
        self.reviewed.is_empty() && self.missed.is_empty()
    }

    fn count(&self, verdict: Verdict) -> u64 {
        self.reviewed
            .iter()
            .filter(|r| r.verdict == verdict)
            .count() as u64
    }
}

/// How the replay judges time.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// The configured cooldown after a rollback.
    pub cooldown_ms: u64,
    /// How far a trigger may be from a reviewed episode and still be that episode.
    pub tolerance_ms: u64,
    /// Two samples further apart than this have an unknown between them.
    pub gap_ms: u64,
    /// The rollback profile's mode, as the guard is built with.
    pub rollback_mode: String,
}

/// One candidate's outcome.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CandidateResult {
    pub step_percent: i32,
    pub critical_threshold: f64,
    pub warning_threshold: f64,
    /// Moves into critical.
    pub triggers: u64,
    /// Of them, the ones the guard would have executed.
    pub rollbacks: u64,
    /// Of them, the ones it would have suppressed (within the cooldown of a rollback).
    pub suppressed: u64,
    /// Reviewed true positives reproduced, of all of them.
    pub true_positives: Ratio,
    /// Reviewed false positives reproduced, of all of them.
    pub false_positives: Ratio,
    /// Reviewed drills reproduced, of all of them (in neither rate).
    pub drills: Ratio,
    /// Missed degradations with a trigger inside, of all of them.
    pub missed_caught: Ratio,
    /// Triggers near no reviewed episode and inside no missed degradation: verdict unknown.
    pub unmatched: u64,
}

impl CandidateResult {
    /// (true positives reproduced + missed caught) / (true positives + missed); `None` when
    /// neither is known.
    pub fn true_positive_rate(&self) -> Option<f64> {
        let hits = self.true_positives.hits + self.missed_caught.hits;
        let total = self.true_positives.total + self.missed_caught.total;
        (total > 0).then(|| hits as f64 / total as f64)
    }

    /// False positives reproduced / every reviewed verdict reproduced (drills left out); `None`
    /// when none is reproduced.
    pub fn false_positive_rate(&self) -> Option<f64> {
        let fp = self.false_positives.hits;
        let all = fp + self.true_positives.hits + self.missed_caught.hits;
        (all > 0).then(|| fp as f64 / all as f64)
    }
}

/// One candidate being replayed.
struct Lane {
    step_percent: i32,
    spec: ConditionSpec,
    guard: Guard,
    critical: bool,
    triggers: u64,
    rollbacks: u64,
    suppressed: u64,
    unmatched: u64,
    reviewed_hit: Vec<bool>,
    missed_hit: Vec<bool>,
}

/// One condition replayed at every candidate, one sample at a time: memory does not grow with
/// the samples, only with the reviews.
pub struct ConditionReplay {
    lanes: Vec<Lane>,
    /// Sorted by time.
    reviewed: Vec<Reviewed>,
    missed: Vec<Missed>,
    settings: Settings,
    last_ms: Option<u64>,
    samples: u64,
}

impl ConditionReplay {
    /// A replay of `spec` at each of `steps` (percent; 0 is the current threshold).
    pub fn new(
        spec: &ConditionSpec,
        steps: &[i32],
        reference: Reference,
        settings: Settings,
    ) -> ConditionReplay {
        let mut reviewed = reference.reviewed;
        reviewed.sort_by_key(|r| r.at_ms);
        let lanes = steps
            .iter()
            .map(|&step| Lane {
                step_percent: step,
                spec: scaled(spec, step),
                guard: Guard::new(&settings.rollback_mode, Arming::ALL_ARMED),
                critical: false,
                triggers: 0,
                rollbacks: 0,
                suppressed: 0,
                unmatched: 0,
                reviewed_hit: vec![false; reviewed.len()],
                missed_hit: vec![false; reference.missed.len()],
            })
            .collect();
        ConditionReplay {
            lanes,
            reviewed,
            missed: reference.missed,
            settings,
            last_ms: None,
            samples: 0,
        }
    }

    /// How many samples were taken in.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// Takes one sample in; samples come in time order (an older one is ignored).
    pub fn push(&mut self, at_ms: u64, value: Option<f64>) {
        if let Some(last) = self.last_ms {
            if at_ms <= last {
                return;
            }
            if at_ms - last > self.settings.gap_ms {
                // The daemon saw nothing in between: unknown, the episode is over.
                for lane in &mut self.lanes {
                    lane.critical = false;
                }
            }
        }
        self.last_ms = Some(at_ms);
        self.samples += 1;
        for lane in &mut self.lanes {
            let critical = lane.spec.evaluate(value) == Status::Critical;
            if critical && !lane.critical {
                lane.trigger(at_ms, &self.reviewed, &self.missed, &self.settings);
            }
            lane.critical = critical;
        }
    }

    /// Every candidate's outcome, in the order of the steps.
    pub fn finish(self) -> Vec<CandidateResult> {
        let count = |v: Verdict| self.reviewed.iter().filter(|r| r.verdict == v).count() as u64;
        let (tp, fp, drill) = (
            count(Verdict::TruePositive),
            count(Verdict::FalsePositive),
            count(Verdict::Drill),
        );
        self.lanes
            .into_iter()
            .map(|lane| {
                let hits = |v: Verdict| {
                    self.reviewed
                        .iter()
                        .zip(&lane.reviewed_hit)
                        .filter(|(r, hit)| **hit && r.verdict == v)
                        .count() as u64
                };
                CandidateResult {
                    step_percent: lane.step_percent,
                    critical_threshold: lane.spec.critical,
                    warning_threshold: lane.spec.warning,
                    triggers: lane.triggers,
                    rollbacks: lane.rollbacks,
                    suppressed: lane.suppressed,
                    true_positives: Ratio {
                        hits: hits(Verdict::TruePositive),
                        total: tp,
                    },
                    false_positives: Ratio {
                        hits: hits(Verdict::FalsePositive),
                        total: fp,
                    },
                    drills: Ratio {
                        hits: hits(Verdict::Drill),
                        total: drill,
                    },
                    missed_caught: Ratio {
                        hits: lane.missed_hit.iter().filter(|h| **h).count() as u64,
                        total: self.missed.len() as u64,
                    },
                    unmatched: lane.unmatched,
                }
            })
            .collect()
    }
}

impl Lane {
    fn trigger(&mut self, at_ms: u64, reviewed: &[Reviewed], missed: &[Missed], s: &Settings) {
        self.triggers += 1;
        let decision = self.guard.decide_rollback(
            "replay",
            TriggerType::Watchdog,
            false,
            None,
            at_ms,
            s.cooldown_ms,
        );
        if decision == Decision::Execute {
            self.guard.finish("replay");
            self.rollbacks += 1;
        } else {
            self.suppressed += 1;
        }
        let from = at_ms.saturating_sub(s.tolerance_ms);
        let to = at_ms.saturating_add(s.tolerance_ms);
        let first = reviewed.partition_point(|r| r.at_ms < from);
        let mut matched = false;
        for (i, r) in reviewed.iter().enumerate().skip(first) {
            if r.at_ms > to {
                break;
            }
            self.reviewed_hit[i] = true;
            matched = true;
        }
        for (i, m) in missed.iter().enumerate() {
            if m.from_ms <= at_ms && at_ms <= m.to_ms {
                self.missed_hit[i] = true;
                matched = true;
            }
        }
        if !matched {
            self.unmatched += 1;
        }
    }
}

/// Why a candidate was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// It keeps the true positive rate at or above the floor with the lowest false positive
    /// rate within one step.
    KeepsTruePositives,
    /// No candidate within one step keeps the floor: the one that catches the most.
    BestTruePositives,
    /// No real degradation is known for this condition: nothing to keep, so no move.
    NoTruePositivesKnown,
}

/// The candidate to move to, at most one step from the current threshold.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Recommendation {
    pub step_percent: i32,
    pub critical_threshold: f64,
    pub warning_threshold: f64,
    pub basis: Basis,
}

/// The recommendation read from `results` (which must hold step 0); `None` when nothing was
/// reviewed for this condition, so there is nothing to judge by.
pub fn recommend(results: &[CandidateResult]) -> Option<Recommendation> {
    let current = results.iter().find(|r| r.step_percent == 0)?;
    let reviewed =
        current.true_positives.total + current.false_positives.total + current.missed_caught.total;
    if reviewed == 0 {
        return None;
    }
    let pick = |r: &CandidateResult, basis| Recommendation {
        step_percent: r.step_percent,
        critical_threshold: r.critical_threshold,
        warning_threshold: r.warning_threshold,
        basis,
    };
    if current.true_positive_rate().is_none() {
        return Some(pick(current, Basis::NoTruePositivesKnown));
    }
    let near: Vec<&CandidateResult> = results
        .iter()
        .filter(|r| r.step_percent.abs() <= MAX_MOVE)
        .collect();
    let fp = |r: &CandidateResult| r.false_positive_rate().unwrap_or(0.0);
    let tp = |r: &CandidateResult| r.true_positive_rate().unwrap_or(0.0);
    // Ties go to the current threshold (no move without a gain), then to fewer triggers.
    let stay = |r: &CandidateResult| u8::from(r.step_percent != 0);
    let keeping = near.iter().filter(|r| tp(r) >= TP_FLOOR).min_by(|a, b| {
        fp(a)
            .total_cmp(&fp(b))
            .then(stay(a).cmp(&stay(b)))
            .then(a.triggers.cmp(&b.triggers))
    });
    if let Some(r) = keeping {
        return Some(pick(r, Basis::KeepsTruePositives));
    }
    let best = near.iter().min_by(|a, b| {
        tp(b)
            .total_cmp(&tp(a))
            .then(fp(a).total_cmp(&fp(b)))
            .then(stay(a).cmp(&stay(b)))
    })?;
    Some(pick(best, Basis::BestTruePositives))
}

/// One condition's replay, finished: its candidates and what to do.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConditionOutcome {
    pub condition: String,
    pub operator: Operator,
    pub samples: u64,
    pub reviewed_true_positives: u64,
    pub reviewed_false_positives: u64,
    pub reviewed_drills: u64,
    pub missed_degradations: u64,
    pub candidates: Vec<CandidateResult>,
    pub recommendation: Option<Recommendation>,
}

impl ConditionOutcome {
    /// Finishes `replay` of `spec` against `reference` (the same one it was built with).
    pub fn of(spec: &ConditionSpec, reference: &Reference, replay: ConditionReplay) -> Self {
        let samples = replay.samples();
        let candidates = replay.finish();
        let recommendation = recommend(&candidates);
        ConditionOutcome {
            condition: spec.name.clone(),
            operator: spec.operator,
            samples,
            reviewed_true_positives: reference.count(Verdict::TruePositive),
            reviewed_false_positives: reference.count(Verdict::FalsePositive),
            reviewed_drills: reference.count(Verdict::Drill),
            missed_degradations: reference.missed.len() as u64,
            candidates,
            recommendation,
        }
    }

    /// The config lines that apply the recommendation (dotted keys, as `environments` and
    /// `regimes` take them); empty when it keeps the current thresholds.
    pub fn overrides(&self, current: &ConditionSpec) -> Vec<(String, f64)> {
        let Some(r) = self.recommendation.as_ref().filter(|r| r.step_percent != 0) else {
            return vec![];
        };
        let mut out = vec![(
            format!("{}.critical_threshold", self.condition),
            r.critical_threshold,
        )];
        if r.warning_threshold != current.warning {
            out.push((
                format!("{}.warning_threshold", self.condition),
                r.warning_threshold,
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests;
