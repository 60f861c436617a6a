//! Trigger conditions: how a value is judged against its warning and critical thresholds,
//! and which way it is heading.

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fmt;

/// The four conditions the seed defines. Other names may be configured too; these are the
/// ones with known operators and defaults.
pub const WALK_FORWARD_STABILITY: &str = "walk_forward_stability";
pub const OVERFITTING_SCORE: &str = "overfitting_score";
pub const CONSECUTIVE_LOSSES: &str = "consecutive_losses";
pub const MAX_DRAWDOWN: &str = "max_drawdown";
pub const KNOWN_CONDITIONS: [&str; 4] = [
    WALK_FORWARD_STABILITY,
    OVERFITTING_SCORE,
    CONSECUTIVE_LOSSES,
    MAX_DRAWDOWN,
];

/// How a value breaches a threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
}

impl Operator {
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            Operator::Lt => value < threshold,
            Operator::Le => value <= threshold,
            Operator::Gt => value > threshold,
            Operator::Ge => value >= threshold,
        }
    }

    /// True when lower values are worse (the warning threshold sits above the critical one).
    pub fn lower_is_worse(self) -> bool {
        matches!(self, Operator::Lt | Operator::Le)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
        }
    }

    pub fn parse(s: &str) -> Option<Operator> {
        Some(match s {
            "<" => Operator::Lt,
            "<=" => Operator::Le,
            ">" => Operator::Gt,
            ">=" => Operator::Ge,
            _ => return None,
        })
    }

    /// The SPEC's operator for a known condition; `None` for others.
    pub fn for_known(condition: &str) -> Option<Operator> {
        match condition {
            WALK_FORWARD_STABILITY => Some(Operator::Lt),
            OVERFITTING_SCORE => Some(Operator::Gt),
            CONSECUTIVE_LOSSES | MAX_DRAWDOWN => Some(Operator::Ge),
            _ => None,
        }
    }

    /// For a condition the SPEC does not name: the order of the thresholds says which way is
    /// worse, and the threshold itself counts as a breach (as for losses and drawdown).
    pub fn inferred(warning: f64, critical: f64) -> Option<Operator> {
        if critical > warning {
            Some(Operator::Ge)
        } else if critical < warning {
            Some(Operator::Le)
        } else {
            None
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One condition with its effective thresholds (after environment overrides).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConditionSpec {
    pub name: String,
    pub operator: Operator,
    pub warning: f64,
    pub critical: f64,
    pub description: String,
}

impl ConditionSpec {
    /// Judges one sample. Missing and non-finite values are `Unknown`: no data never rolls back.
    pub fn evaluate(&self, value: Option<f64>) -> Status {
        match value {
            Some(v) if v.is_finite() => {
                if self.operator.breaches(v, self.critical) {
                    Status::Critical
                } else if self.operator.breaches(v, self.warning) {
                    Status::Warning
                } else {
                    Status::Ok
                }
            }
            _ => Status::Unknown,
        }
    }

    /// Warning must sit on the safe side of critical, or warnings could never come first.
    pub fn thresholds_ordered(&self) -> bool {
        if self.operator.lower_is_worse() {
            self.warning > self.critical
        } else {
            self.warning < self.critical
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    /// The number exported as `trigger_condition_status`.
    pub fn as_gauge(self) -> i64 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => -1,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trend {
    Rising,
    Falling,
    Steady,
}

/// How many recent samples a trend is read from.
pub const TREND_WINDOW: usize = 10;

/// The recent known values of one condition.
#[derive(Clone, Debug, Default)]
pub struct Samples {
    values: VecDeque<f64>,
}

impl Samples {
    pub fn push(&mut self, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            if self.values.len() == TREND_WINDOW {
                self.values.pop_front();
            }
            self.values.push_back(v);
        }
    }

    /// Least-squares slope over the window, projected across it, compared with a tolerance of
    /// 2% of the gap between the thresholds: small wobbles read as steady.
    pub fn trend(&self, spec: &ConditionSpec) -> Trend {
        let n = self.values.len();
        if n < 2 {
            return Trend::Steady;
        }
        let nf = n as f64;
        let mean_x = (nf - 1.0) / 2.0;
        let mean_y = self.values.iter().sum::<f64>() / nf;
        let (mut num, mut den) = (0.0, 0.0);
        for (i, y) in self.values.iter().enumerate() {
            let dx = i as f64 - mean_x;
            num += dx * (y - mean_y);
            den += dx * dx;
        }
        let change = num / den * (nf - 1.0);
        let tolerance = 0.02 * (spec.warning - spec.critical).abs().max(f64::EPSILON);
        if change > tolerance {
            Trend::Rising
        } else if change < -tolerance {
            Trend::Falling
        } else {
            Trend::Steady
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn spec(name: &str, warning: f64, critical: f64) -> ConditionSpec {
        ConditionSpec {
            name: name.into(),
            operator: Operator::for_known(name).unwrap(),
            warning,
            critical,
            description: String::new(),
        }
    }

    #[test]
    fn exact_thresholds_behave_as_the_operator_says() {
        let wfs = spec(WALK_FORWARD_STABILITY, 50.0, 40.0);
        assert_eq!(
            wfs.evaluate(Some(40.0)),
            Status::Warning,
            "40.0 is not < 40"
        );
        assert_eq!(wfs.evaluate(Some(39.999)), Status::Critical);
        assert_eq!(wfs.evaluate(Some(50.0)), Status::Ok, "50.0 is not < 50");
        assert_eq!(wfs.evaluate(Some(49.9)), Status::Warning);

        let ovf = spec(OVERFITTING_SCORE, 0.4, 0.5);
        assert_eq!(ovf.evaluate(Some(0.5)), Status::Warning, "0.5 is not > 0.5");
        assert_eq!(ovf.evaluate(Some(0.5001)), Status::Critical);
        assert_eq!(ovf.evaluate(Some(0.4)), Status::Ok);

        let losses = spec(CONSECUTIVE_LOSSES, 4.0, 5.0);
        assert_eq!(losses.evaluate(Some(5.0)), Status::Critical, "5 >= 5");
        assert_eq!(losses.evaluate(Some(4.0)), Status::Warning);
        assert_eq!(losses.evaluate(Some(3.0)), Status::Ok);

        let dd = spec(MAX_DRAWDOWN, 3.5, 5.0);
        assert_eq!(dd.evaluate(Some(5.0)), Status::Critical, "5.0 >= 5.0");
        assert_eq!(dd.evaluate(Some(3.5)), Status::Warning);
        assert_eq!(dd.evaluate(Some(3.49)), Status::Ok);
    }

    #[test]
    fn missing_and_non_finite_values_are_unknown() {
        let wfs = spec(WALK_FORWARD_STABILITY, 50.0, 40.0);
        assert_eq!(wfs.evaluate(None), Status::Unknown);
        assert_eq!(wfs.evaluate(Some(f64::NAN)), Status::Unknown);
        assert_eq!(wfs.evaluate(Some(f64::NEG_INFINITY)), Status::Unknown);
    }

    #[test]
    fn operators_are_inferred_from_threshold_order() {
        assert_eq!(Operator::inferred(0.4, 0.5), Some(Operator::Ge));
        assert_eq!(Operator::inferred(50.0, 40.0), Some(Operator::Le));
        assert_eq!(Operator::inferred(1.0, 1.0), None);
        assert_eq!(Operator::for_known("latency"), None);
    }

    #[test]
    fn threshold_order_is_checked_per_direction() {
        assert!(spec(WALK_FORWARD_STABILITY, 50.0, 40.0).thresholds_ordered());
        assert!(!spec(WALK_FORWARD_STABILITY, 30.0, 40.0).thresholds_ordered());
        assert!(spec(MAX_DRAWDOWN, 3.5, 5.0).thresholds_ordered());
        assert!(!spec(MAX_DRAWDOWN, 6.0, 5.0).thresholds_ordered());
    }

    #[test]
    fn trend_reads_direction_and_ignores_wobble() {
        let wfs = spec(WALK_FORWARD_STABILITY, 50.0, 40.0);
        let mut s = Samples::default();
        assert_eq!(s.trend(&wfs), Trend::Steady);
        for v in [72.0, 68.0, 60.0, 51.0, 44.0] {
            s.push(Some(v));
        }
        assert_eq!(s.trend(&wfs), Trend::Falling);
        let mut s = Samples::default();
        for v in [60.0, 60.05, 59.98, 60.01] {
            s.push(Some(v));
        }
        assert_eq!(s.trend(&wfs), Trend::Steady);
        let mut s = Samples::default();
        for v in [0.2, 0.3, 0.45, 0.6] {
            s.push(Some(v));
        }
        s.push(None);
        assert_eq!(s.trend(&spec(OVERFITTING_SCORE, 0.4, 0.5)), Trend::Rising);
    }

    #[test]
    fn samples_keep_only_the_window() {
        let wfs = spec(WALK_FORWARD_STABILITY, 50.0, 40.0);
        let mut s = Samples::default();
        for _ in 0..50 {
            s.push(Some(10.0));
        }
        for _ in 0..TREND_WINDOW {
            s.push(Some(70.0));
        }
        assert_eq!(s.trend(&wfs), Trend::Steady, "old samples fell out");
    }

    proptest! {
        #[test]
        fn status_is_monotonic_in_severity(v in -1000.0f64..1000.0) {
            // Whatever the value, critical implies the warning threshold is breached too.
            for s in [spec(WALK_FORWARD_STABILITY, 50.0, 40.0), spec(MAX_DRAWDOWN, 3.5, 5.0),
                      spec(OVERFITTING_SCORE, 0.4, 0.5), spec(CONSECUTIVE_LOSSES, 4.0, 5.0)] {
                if s.evaluate(Some(v)) == Status::Critical {
                    prop_assert!(s.operator.breaches(v, s.warning));
                }
                prop_assert_ne!(s.evaluate(Some(v)), Status::Unknown);
            }
        }
    }
}
