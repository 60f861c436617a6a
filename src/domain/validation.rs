//! Recovery validation: five weighted checks scored 0-100.
//!
//! The weights make each essential check (mode, parameters, agents) fail the run on its own at
//! the default pass score of 85, while a condition still critical right after the switch (a
//! drawdown does not heal at once) or a logging doubt alone costs 15 and passes at exactly 85.

use super::condition::{ConditionSpec, Status};
use super::target_status::TargetStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const WEIGHT_MODE: f64 = 25.0;
pub const WEIGHT_PARAMETERS: f64 = 25.0;
pub const WEIGHT_AGENTS: f64 = 20.0;
pub const WEIGHT_LOGGED: f64 = 15.0;
pub const WEIGHT_NO_CRITICAL: f64 = 15.0;

/// Parameters are floats; anything closer than this counts as applied.
const PARAMETER_TOLERANCE: f64 = 1e-9;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub weight: f64,
    pub passed: bool,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub score: f64,
    pub passed: bool,
    pub pass_score: f64,
    pub checks: Vec<Check>,
}

impl Outcome {
    /// One line naming every failed check, for a failure reason.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.detail.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What the validation looks at.
pub struct Input<'a> {
    pub expected_mode: &'a str,
    pub expected_parameters: &'a BTreeMap<String, f64>,
    pub expected_agents: u32,
    /// The status read back from the target; `None` when it could not be read.
    pub observed: Option<&'a TargetStatus>,
    pub event_logged: bool,
    pub conditions: &'a [ConditionSpec],
}

/// Scores a switch: the weights of the checks that passed, out of 100.
pub fn score(input: &Input<'_>, pass_score: f64) -> Outcome {
    let checks = vec![
        read_back(input, "mode", WEIGHT_MODE, mode),
        read_back(input, "parameters", WEIGHT_PARAMETERS, parameters),
        read_back(input, "agents", WEIGHT_AGENTS, agents),
        logged(input.event_logged),
        read_back(
            input,
            "no_critical_condition",
            WEIGHT_NO_CRITICAL,
            no_critical,
        ),
    ];
    let score: f64 = checks.iter().filter(|c| c.passed).map(|c| c.weight).sum();
    Outcome {
        score,
        passed: score >= pass_score,
        pass_score,
        checks,
    }
}

/// A check judged on the status read back from the target; failed when it could not be read.
fn read_back(
    input: &Input<'_>,
    name: &str,
    weight: f64,
    judge: fn(&Input<'_>, &TargetStatus) -> (bool, String),
) -> Check {
    match input.observed {
        Some(s) => {
            let (passed, detail) = judge(input, s);
            check(name, weight, passed, detail)
        }
        None => check(
            name,
            weight,
            false,
            "status could not be read back from the target".into(),
        ),
    }
}

fn mode(input: &Input<'_>, s: &TargetStatus) -> (bool, String) {
    if s.mode == input.expected_mode {
        (true, format!("mode is {}", s.mode))
    } else {
        (
            false,
            format!("mode is {}, expected {}", s.mode, input.expected_mode),
        )
    }
}

fn parameters(input: &Input<'_>, s: &TargetStatus) -> (bool, String) {
    let wrong: Vec<String> = input
        .expected_parameters
        .iter()
        .filter_map(|(name, want)| match s.parameter(name) {
            Some(got) if (got - want).abs() <= PARAMETER_TOLERANCE => None,
            Some(got) => Some(format!("{name} is {got}, expected {want}")),
            None => Some(format!("{name} is missing, expected {want}")),
        })
        .collect();
    if wrong.is_empty() {
        (
            true,
            format!(
                "all {} profile parameters applied",
                input.expected_parameters.len()
            ),
        )
    } else {
        (false, wrong.join(", "))
    }
}

fn agents(input: &Input<'_>, s: &TargetStatus) -> (bool, String) {
    let healthy = s.healthy_agents();
    (
        healthy >= input.expected_agents,
        format!(
            "{healthy} of {} expected agents healthy",
            input.expected_agents
        ),
    )
}

fn logged(event_logged: bool) -> Check {
    let detail = if event_logged {
        "event durably logged"
    } else {
        "event not found in history"
    };
    check("event_logged", WEIGHT_LOGGED, event_logged, detail.into())
}

fn no_critical(input: &Input<'_>, s: &TargetStatus) -> (bool, String) {
    let critical: Vec<&str> = input
        .conditions
        .iter()
        .filter(|c| c.evaluate(s.metric(&c.name)) == Status::Critical)
        .map(|c| c.name.as_str())
        .collect();
    if critical.is_empty() {
        (true, "no condition critical".into())
    } else {
        (false, format!("still critical: {}", critical.join(", ")))
    }
}

fn check(name: &str, weight: f64, passed: bool, detail: String) -> Check {
    Check {
        name: name.into(),
        weight,
        passed,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::condition::{Operator, MAX_DRAWDOWN, WALK_FORWARD_STABILITY};
    use crate::domain::target_status::Agent;
    use proptest::prelude::*;
    use serde_json::json;

    fn profile() -> BTreeMap<String, f64> {
        BTreeMap::from([
            ("confidence_threshold".into(), 0.55),
            ("risk_reward_ratio".into(), 1.8),
        ])
    }

    fn conditions() -> Vec<ConditionSpec> {
        vec![
            ConditionSpec {
                name: WALK_FORWARD_STABILITY.into(),
                operator: Operator::Lt,
                warning: 50.0,
                critical: 40.0,
                description: String::new(),
            },
            ConditionSpec {
                name: MAX_DRAWDOWN.into(),
                operator: Operator::Ge,
                warning: 3.5,
                critical: 5.0,
                description: String::new(),
            },
        ]
    }

    fn healthy_status() -> TargetStatus {
        TargetStatus {
            mode: "universal_cycle_4".into(),
            parameters: [
                ("confidence_threshold".to_string(), json!(0.55)),
                ("risk_reward_ratio".to_string(), json!(1.8)),
            ]
            .into(),
            agents: (1..=8)
                .map(|i| Agent {
                    id: format!("agent-{i}"),
                    healthy: true,
                })
                .collect(),
            metrics: [
                ("walk_forward_stability".to_string(), json!(70.0)),
                ("max_drawdown".to_string(), json!(1.0)),
            ]
            .into(),
            capabilities: vec![],
        }
    }

    fn run(status: Option<&TargetStatus>, logged: bool) -> Outcome {
        let profile = profile();
        let conditions = conditions();
        score(
            &Input {
                expected_mode: "universal_cycle_4",
                expected_parameters: &profile,
                expected_agents: 8,
                observed: status,
                event_logged: logged,
                conditions: &conditions,
            },
            85.0,
        )
    }

    #[test]
    fn weights_add_up_to_one_hundred() {
        assert_eq!(
            WEIGHT_MODE + WEIGHT_PARAMETERS + WEIGHT_AGENTS + WEIGHT_LOGGED + WEIGHT_NO_CRITICAL,
            100.0
        );
    }

    #[test]
    fn a_clean_switch_scores_100() {
        let o = run(Some(&healthy_status()), true);
        assert_eq!(o.score, 100.0);
        assert!(o.passed);
        assert_eq!(o.failures(), "");
    }

    #[test]
    fn each_essential_check_fails_the_run_alone() {
        let mut s = healthy_status();
        s.mode = "session_targeted".into();
        let o = run(Some(&s), true);
        assert_eq!(o.score, 75.0);
        assert!(!o.passed);
        assert_eq!(
            o.failures(),
            "mode is session_targeted, expected universal_cycle_4"
        );

        let mut s = healthy_status();
        s.parameters.insert("risk_reward_ratio".into(), json!(2.1));
        let o = run(Some(&s), true);
        assert!(!o.passed);
        assert_eq!(o.failures(), "risk_reward_ratio is 2.1, expected 1.8");

        let mut s = healthy_status();
        s.parameters.remove("confidence_threshold");
        assert_eq!(
            run(Some(&s), true).failures(),
            "confidence_threshold is missing, expected 0.55"
        );

        let mut s = healthy_status();
        s.agents[3].healthy = false;
        let o = run(Some(&s), true);
        assert_eq!(o.score, 80.0);
        assert!(!o.passed);
        assert_eq!(o.failures(), "7 of 8 expected agents healthy");
    }

    #[test]
    fn a_lingering_critical_condition_alone_passes_at_exactly_85() {
        let mut s = healthy_status();
        s.metrics.insert("max_drawdown".into(), json!(5.0));
        let o = run(Some(&s), true);
        assert_eq!(o.score, 85.0);
        assert!(o.passed);
        assert_eq!(o.failures(), "still critical: max_drawdown");
    }

    #[test]
    fn an_unreadable_target_scores_only_the_log() {
        let o = run(None, true);
        assert_eq!(o.score, 15.0);
        assert!(!o.passed);
        assert!(o.failures().contains("could not be read back"));
    }

    proptest! {
        #[test]
        fn score_stays_within_0_and_100(
            mode_ok in any::<bool>(), conf in -10.0f64..10.0, rr in -10.0f64..10.0,
            healthy in 0usize..12, logged in any::<bool>(), wfs in proptest::option::of(-50.0f64..150.0),
            pass in 0.0f64..100.0,
        ) {
            let mut s = healthy_status();
            if !mode_ok { s.mode = "session_targeted".into(); }
            s.parameters.insert("confidence_threshold".into(), json!(conf));
            s.parameters.insert("risk_reward_ratio".into(), json!(rr));
            s.agents = (0..healthy).map(|i| Agent { id: i.to_string(), healthy: i % 3 != 0 }).collect();
            match wfs { Some(v) => { s.metrics.insert("walk_forward_stability".into(), json!(v)); }
                        None => { s.metrics.remove("walk_forward_stability"); } }
            let profile = profile();
            let conditions = conditions();
            let o = score(&Input { expected_mode: "universal_cycle_4", expected_parameters: &profile, expected_agents: 8, observed: Some(&s), event_logged: logged, conditions: &conditions }, pass);
            prop_assert!((0.0..=100.0).contains(&o.score));
            prop_assert_eq!(o.passed, o.score >= pass);
            prop_assert_eq!(o.checks.len(), 5);
        }
    }
}
