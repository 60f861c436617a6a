//! The rollback life cycle and the guard that decides whether a trigger may execute.
//!
//! `pending -> executing -> validating -> completed | failed`; a trigger that may not execute
//! is stored as `suppressed`, and a dry run as `dry_run`. The guard admits at most one
//! execution at a time.

pub use super::holds::AutomationMode;
use serde::{Deserialize, Serialize};
use std::fmt;

pub const MODE_SESSION_TARGETED: &str = "session_targeted";
pub const MODE_UNIVERSAL_CYCLE_4: &str = "universal_cycle_4";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    Pending,
    Executing,
    Validating,
    Completed,
    Failed,
    Suppressed,
    DryRun,
}

impl EventStatus {
    pub const ALL: [EventStatus; 7] = [
        EventStatus::Pending,
        EventStatus::Executing,
        EventStatus::Validating,
        EventStatus::Completed,
        EventStatus::Failed,
        EventStatus::Suppressed,
        EventStatus::DryRun,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Executing => "executing",
            EventStatus::Validating => "validating",
            EventStatus::Completed => "completed",
            EventStatus::Failed => "failed",
            EventStatus::Suppressed => "suppressed",
            EventStatus::DryRun => "dry_run",
        }
    }

    pub fn parse(s: &str) -> Option<EventStatus> {
        EventStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventStatus::Completed
                | EventStatus::Failed
                | EventStatus::Suppressed
                | EventStatus::DryRun
        )
    }

    /// The only moves the life cycle allows. Any state that is not terminal may fail.
    pub fn can_move_to(self, next: EventStatus) -> bool {
        use EventStatus::*;
        matches!(
            (self, next),
            (Pending, Executing) | (Executing, Validating) | (Validating, Completed)
        ) || (!self.is_terminal() && next == Failed)
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerType {
    Watchdog,
    Alertmanager,
    Manual,
}

impl TriggerType {
    pub const ALL: [TriggerType; 3] = [
        TriggerType::Watchdog,
        TriggerType::Alertmanager,
        TriggerType::Manual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerType::Watchdog => "watchdog",
            TriggerType::Alertmanager => "alertmanager",
            TriggerType::Manual => "manual",
        }
    }

    pub fn parse(s: &str) -> Option<TriggerType> {
        TriggerType::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Automatic triggers respect the cooldown; an operator's deliberate request does not.
    pub fn is_automatic(self) -> bool {
        !matches!(self, TriggerType::Manual)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Rollback,
    Restore,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Rollback => "rollback",
            Action::Restore => "restore",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "rollback" => Some(Action::Rollback),
            "restore" => Some(Action::Restore),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SuppressReason {
    AlreadyRolledBack,
    InProgress,
    Cooldown,
    /// The automatic path the trigger came by is disarmed (config or operator).
    Disarmed,
    /// A freeze window holds automatic triggers (news events).
    Freeze,
    /// Confirm mode: an operator rejected the proposal.
    Rejected,
    /// Confirm mode: nobody answered the proposal in time and the config says lapse.
    Lapsed,
}

impl SuppressReason {
    pub const ALL: [SuppressReason; 7] = [
        SuppressReason::AlreadyRolledBack,
        SuppressReason::InProgress,
        SuppressReason::Cooldown,
        SuppressReason::Disarmed,
        SuppressReason::Freeze,
        SuppressReason::Rejected,
        SuppressReason::Lapsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SuppressReason::AlreadyRolledBack => "already_rolled_back",
            SuppressReason::InProgress => "in_progress",
            SuppressReason::Cooldown => "cooldown",
            SuppressReason::Disarmed => "disarmed",
            SuppressReason::Freeze => "freeze",
            SuppressReason::Rejected => "rejected",
            SuppressReason::Lapsed => "lapsed",
        }
    }
}

/// One automatic path (the watchdog, Alertmanager): switched on or off in the config, armed or
/// disarmed at runtime. It acts only when both say yes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PathState {
    pub configured: bool,
    pub armed: bool,
}

impl PathState {
    pub fn acts(self) -> bool {
        self.configured && self.armed
    }
}

/// Which automatic paths may act. A person's (manual) request is never held by arming.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Arming {
    pub watchdog: PathState,
    pub alertmanager: PathState,
}

impl Arming {
    /// Both paths configured and armed.
    pub const ALL_ARMED: Arming = Arming {
        watchdog: PathState {
            configured: true,
            armed: true,
        },
        alertmanager: PathState {
            configured: true,
            armed: true,
        },
    };

    pub fn acts(&self, trigger: TriggerType) -> bool {
        match trigger {
            TriggerType::Watchdog => self.watchdog.acts(),
            TriggerType::Alertmanager => self.alertmanager.acts(),
            TriggerType::Manual => true,
        }
    }

    /// The runtime state of one automatic path.
    pub fn path_mut(&mut self, path: AutomaticPath) -> &mut PathState {
        match path {
            AutomaticPath::Watchdog => &mut self.watchdog,
            AutomaticPath::Alertmanager => &mut self.alertmanager,
        }
    }

    /// True when no automatic path can act.
    pub fn none_acts(&self) -> bool {
        !self.watchdog.acts() && !self.alertmanager.acts()
    }
}

/// The automatic paths by which a trigger can arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutomaticPath {
    Watchdog,
    Alertmanager,
}

impl AutomaticPath {
    pub const ALL: [AutomaticPath; 2] = [AutomaticPath::Watchdog, AutomaticPath::Alertmanager];

    pub fn as_str(self) -> &'static str {
        match self {
            AutomaticPath::Watchdog => "watchdog",
            AutomaticPath::Alertmanager => "alertmanager",
        }
    }

    pub fn parse(s: &str) -> Option<AutomaticPath> {
        AutomaticPath::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// What the guard decided for one trigger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; the guard now holds the execution slot until `finish` is called.
    Execute,
    /// Record it, do not execute.
    Suppress(SuppressReason),
    /// Record what would have happened; never touch the target.
    DryRun {
        would_suppress: Option<SuppressReason>,
    },
    /// Observe mode: record that this automatic trigger would have executed; never act.
    Observe,
    /// Confirm mode: nothing is recorded yet; an operator decides (or the timeout does).
    Propose,
}

/// Who stands behind an automatic trigger's execution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    /// Nobody yet: the automation mode decides.
    #[default]
    None,
    /// An operator approved the proposal: a person decided, as with a manual rollback.
    Person,
    /// The proposal's time ran out and the config says proceed: still automatic.
    Timeout,
}

/// What the holds and the automation mode say about a trigger, besides the guard's own state.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy<'a> {
    pub mode: AutomationMode,
    /// The freeze window holding now, by name.
    pub freeze: Option<&'a str>,
    pub approval: Approval,
}

/// The one place that admits executions. Times are milliseconds on any monotonic clock.
#[derive(Clone, Debug)]
pub struct Guard {
    /// The profile's mode: a target already in it is already rolled back.
    rollback_mode: String,
    /// Which automatic paths may act.
    pub arming: Arming,
    in_progress: Option<String>,
    last_execution_ms: Option<u64>,
    /// The cooldown clock before the running execution was admitted, for `withdraw`.
    previous_execution_ms: Option<u64>,
}

impl Guard {
    /// A guard for the rollback profile whose mode is `rollback_mode`.
    pub fn new(rollback_mode: &str, arming: Arming) -> Guard {
        Guard {
            rollback_mode: rollback_mode.to_owned(),
            arming,
            in_progress: None,
            last_execution_ms: None,
            previous_execution_ms: None,
        }
    }

    pub fn in_progress(&self) -> Option<&str> {
        self.in_progress.as_deref()
    }

    /// Decides a rollback request in `auto` mode with nothing on hold.
    pub fn decide_rollback(
        &mut self,
        event_id: &str,
        trigger: TriggerType,
        dry_run: bool,
        current_mode: Option<&str>,
        now_ms: u64,
        cooldown_ms: u64,
    ) -> Decision {
        let policy = Policy::default();
        self.decide(
            event_id,
            trigger,
            dry_run,
            current_mode,
            now_ms,
            cooldown_ms,
            policy,
        )
    }

    /// Decides a rollback request. `current_mode` is the target's last known mode. A trigger
    /// an operator approved is judged as a person's request: arming, freezes and the cooldown
    /// hold only what runs without one.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        &mut self,
        event_id: &str,
        trigger: TriggerType,
        dry_run: bool,
        current_mode: Option<&str>,
        now_ms: u64,
        cooldown_ms: u64,
        policy: Policy<'_>,
    ) -> Decision {
        let automatic = trigger.is_automatic() && policy.approval != Approval::Person;
        let blocker = if automatic && !self.arming.acts(trigger) {
            Some(SuppressReason::Disarmed)
        } else if automatic && policy.freeze.is_some() {
            Some(SuppressReason::Freeze)
        } else if self.in_progress.is_some() {
            Some(SuppressReason::InProgress)
        } else if current_mode == Some(self.rollback_mode.as_str()) {
            Some(SuppressReason::AlreadyRolledBack)
        } else if automatic && self.cooldown_remaining_ms(now_ms, cooldown_ms) > 0 {
            Some(SuppressReason::Cooldown)
        } else {
            None
        };
        let mode = if automatic && policy.approval == Approval::None {
            policy.mode
        } else {
            AutomationMode::Auto
        };
        match (dry_run, blocker, mode) {
            (true, would_suppress, _) => Decision::DryRun { would_suppress },
            (false, Some(reason), _) => Decision::Suppress(reason),
            (false, None, AutomationMode::Observe) => Decision::Observe,
            (false, None, AutomationMode::Confirm) => Decision::Propose,
            (false, None, AutomationMode::Auto) => {
                self.in_progress = Some(event_id.to_owned());
                self.previous_execution_ms = self.last_execution_ms;
                self.last_execution_ms = Some(now_ms);
                Decision::Execute
            }
        }
    }

    /// Takes the execution slot for a restore; `None` when something already holds it.
    pub fn begin_restore(&mut self, event_id: &str) -> Result<(), SuppressReason> {
        if self.in_progress.is_some() {
            return Err(SuppressReason::InProgress);
        }
        self.in_progress = Some(event_id.to_owned());
        Ok(())
    }

    /// Frees the slot held by `event_id`; a stale id changes nothing.
    pub fn finish(&mut self, event_id: &str) {
        if self.in_progress.as_deref() == Some(event_id) {
            self.in_progress = None;
        }
    }

    /// Takes back an admission that never ran (its record failed): the slot is freed and the
    /// cooldown clock is as before, so the retry is judged as the first try was.
    pub fn withdraw(&mut self, event_id: &str) {
        if self.in_progress.as_deref() == Some(event_id) {
            self.in_progress = None;
            self.last_execution_ms = self.previous_execution_ms;
        }
    }

    pub fn cooldown_remaining_ms(&self, now_ms: u64, cooldown_ms: u64) -> u64 {
        match self.last_execution_ms {
            Some(at) => (at + cooldown_ms).saturating_sub(now_ms),
            None => 0,
        }
    }

    /// Restores the cooldown clock after a restart from the last executed rollback's age.
    pub fn set_last_execution_ms(&mut self, at_ms: u64) {
        self.last_execution_ms = Some(at_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const COOLDOWN: u64 = 900_000;

    #[test]
    fn life_cycle_moves_only_forward() {
        use EventStatus::*;
        assert!(Pending.can_move_to(Executing));
        assert!(Executing.can_move_to(Validating));
        assert!(Validating.can_move_to(Completed));
        for s in [Pending, Executing, Validating] {
            assert!(s.can_move_to(Failed));
        }
        assert!(!Pending.can_move_to(Completed));
        assert!(!Completed.can_move_to(Failed));
        assert!(!Failed.can_move_to(Executing));
        assert!(!Suppressed.can_move_to(Executing));
        assert!(!DryRun.can_move_to(Executing));
        for s in EventStatus::ALL {
            assert_eq!(EventStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn a_second_trigger_while_executing_is_suppressed() {
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
        assert_eq!(
            g.decide_rollback(
                "a",
                TriggerType::Watchdog,
                false,
                Some(MODE_SESSION_TARGETED),
                0,
                COOLDOWN
            ),
            Decision::Execute
        );
        assert_eq!(
            g.decide_rollback(
                "b",
                TriggerType::Manual,
                false,
                Some(MODE_SESSION_TARGETED),
                1,
                COOLDOWN
            ),
            Decision::Suppress(SuppressReason::InProgress)
        );
        g.finish("b");
        assert_eq!(g.in_progress(), Some("a"), "a stale id frees nothing");
        g.finish("a");
        assert_eq!(g.in_progress(), None);
    }

    #[test]
    fn already_rolled_back_is_suppressed_for_everyone() {
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
        for t in TriggerType::ALL {
            assert_eq!(
                g.decide_rollback("a", t, false, Some(MODE_UNIVERSAL_CYCLE_4), 0, COOLDOWN),
                Decision::Suppress(SuppressReason::AlreadyRolledBack)
            );
        }
    }

    #[test]
    fn the_configured_profile_mode_is_what_counts_as_rolled_back() {
        let mut g = Guard::new("conservative_profile", Arming::ALL_ARMED);
        assert_eq!(
            g.decide_rollback(
                "a",
                TriggerType::Watchdog,
                false,
                Some("conservative_profile"),
                0,
                COOLDOWN
            ),
            Decision::Suppress(SuppressReason::AlreadyRolledBack)
        );
        assert_eq!(
            g.decide_rollback(
                "b",
                TriggerType::Manual,
                false,
                Some(MODE_UNIVERSAL_CYCLE_4),
                0,
                COOLDOWN
            ),
            Decision::Execute,
            "universal_cycle_4 is not this profile's mode"
        );
    }

    #[test]
    fn a_disarmed_path_is_suppressed_as_disarmed_and_a_person_still_acts() {
        let mut arming = Arming::ALL_ARMED;
        arming.path_mut(AutomaticPath::Alertmanager).armed = false;
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, arming);
        assert_eq!(
            g.decide_rollback("a", TriggerType::Alertmanager, false, None, 0, COOLDOWN),
            Decision::Suppress(SuppressReason::Disarmed)
        );
        assert_eq!(
            g.decide_rollback("b", TriggerType::Alertmanager, true, None, 0, COOLDOWN),
            Decision::DryRun {
                would_suppress: Some(SuppressReason::Disarmed)
            }
        );
        assert!(!arming.none_acts(), "the watchdog still acts");
        assert_eq!(
            g.decide_rollback("c", TriggerType::Manual, false, None, 0, COOLDOWN),
            Decision::Execute
        );
        g.finish("c");
        g.arming.path_mut(AutomaticPath::Watchdog).configured = false;
        assert!(g.arming.none_acts());
        assert_eq!(
            g.decide_rollback("d", TriggerType::Watchdog, false, None, 0, COOLDOWN),
            Decision::Suppress(SuppressReason::Disarmed)
        );
    }

    #[test]
    fn cooldown_holds_automatic_triggers_only() {
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
        assert_eq!(
            g.decide_rollback("a", TriggerType::Manual, false, None, 1_000, COOLDOWN),
            Decision::Execute
        );
        g.finish("a");
        let now = 1_000 + COOLDOWN - 1;
        assert_eq!(g.cooldown_remaining_ms(now, COOLDOWN), 1);
        assert_eq!(
            g.decide_rollback("b", TriggerType::Watchdog, false, None, now, COOLDOWN),
            Decision::Suppress(SuppressReason::Cooldown)
        );
        assert_eq!(
            g.decide_rollback("c", TriggerType::Alertmanager, false, None, now, COOLDOWN),
            Decision::Suppress(SuppressReason::Cooldown)
        );
        assert_eq!(
            g.decide_rollback("d", TriggerType::Manual, false, None, now, COOLDOWN),
            Decision::Execute
        );
        g.finish("d");
        let later = now + COOLDOWN;
        assert_eq!(
            g.decide_rollback("e", TriggerType::Watchdog, false, None, later, COOLDOWN),
            Decision::Execute
        );
    }

    #[test]
    fn dry_runs_never_take_the_slot_and_say_what_would_happen() {
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
        assert_eq!(
            g.decide_rollback("a", TriggerType::Manual, true, None, 0, COOLDOWN),
            Decision::DryRun {
                would_suppress: None
            }
        );
        assert_eq!(g.in_progress(), None);
        assert_eq!(
            g.decide_rollback(
                "b",
                TriggerType::Manual,
                true,
                Some(MODE_UNIVERSAL_CYCLE_4),
                0,
                COOLDOWN
            ),
            Decision::DryRun {
                would_suppress: Some(SuppressReason::AlreadyRolledBack)
            }
        );
    }

    #[test]
    fn a_withdrawn_admission_starts_no_cooldown() {
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
        assert_eq!(
            g.decide_rollback("a", TriggerType::Alertmanager, false, None, 1_000, COOLDOWN),
            Decision::Execute
        );
        g.withdraw("a");
        assert_eq!(g.in_progress(), None);
        assert_eq!(g.cooldown_remaining_ms(1_001, COOLDOWN), 0);
        assert_eq!(
            g.decide_rollback("b", TriggerType::Alertmanager, false, None, 1_001, COOLDOWN),
            Decision::Execute,
            "the retry is not held by a cooldown that never began"
        );
        g.withdraw("stale");
        assert_eq!(g.in_progress(), Some("b"));
    }

    #[test]
    fn restore_waits_for_an_execution() {
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
        assert_eq!(
            g.decide_rollback("a", TriggerType::Manual, false, None, 0, COOLDOWN),
            Decision::Execute
        );
        assert_eq!(g.begin_restore("r"), Err(SuppressReason::InProgress));
        g.finish("a");
        assert_eq!(g.begin_restore("r"), Ok(()));
        assert_eq!(
            g.decide_rollback("b", TriggerType::Manual, false, None, 0, COOLDOWN),
            Decision::Suppress(SuppressReason::InProgress)
        );
    }

    #[derive(Clone, Debug)]
    enum Op {
        Request {
            trigger: usize,
            dry: bool,
            rolled_back: bool,
        },
        Restore,
        FinishOldest,
        FinishStale,
        Tick(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..3, any::<bool>(), any::<bool>()).prop_map(|(trigger, dry, rolled_back)| {
                Op::Request {
                    trigger,
                    dry,
                    rolled_back,
                }
            }),
            Just(Op::Restore),
            Just(Op::FinishOldest),
            Just(Op::FinishStale),
            (0u64..2_000_000).prop_map(Op::Tick),
        ]
    }

    proptest! {
        #[test]
        fn no_input_sequence_yields_two_concurrent_executions(ops in proptest::collection::vec(op(), 1..200)) {
            let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
            let mut running: Vec<String> = Vec::new();
            let mut now = 0u64;
            for (i, op) in ops.into_iter().enumerate() {
                let id = format!("e{i}");
                match op {
                    Op::Request { trigger, dry, rolled_back } => {
                        let mode = if rolled_back { MODE_UNIVERSAL_CYCLE_4 } else { MODE_SESSION_TARGETED };
                        let d = g.decide_rollback(&id, TriggerType::ALL[trigger], dry, Some(mode), now, COOLDOWN);
                        if d == Decision::Execute {
                            prop_assert!(running.is_empty(), "executed while {:?} runs", running);
                            running.push(id);
                        }
                        if dry { let is_dry = matches!(d, Decision::DryRun { .. }); prop_assert!(is_dry); }
                    }
                    Op::Restore => {
                        if g.begin_restore(&id).is_ok() {
                            prop_assert!(running.is_empty());
                            running.push(id);
                        }
                    }
                    Op::FinishOldest => {
                        if let Some(id) = running.pop() { g.finish(&id); }
                    }
                    Op::FinishStale => g.finish("never-started"),
                    Op::Tick(ms) => now += ms,
                }
                prop_assert_eq!(g.in_progress().map(str::to_owned), running.first().cloned());
            }
        }
    }

    fn decide_with(g: &mut Guard, id: &str, trigger: TriggerType, policy: Policy<'_>) -> Decision {
        g.decide(
            id,
            trigger,
            false,
            Some(MODE_SESSION_TARGETED),
            0,
            COOLDOWN,
            policy,
        )
    }

    #[test]
    fn a_freeze_holds_automatic_triggers_but_not_a_person() {
        let freeze = Policy {
            freeze: Some("cpi"),
            ..Policy::default()
        };
        for t in [TriggerType::Watchdog, TriggerType::Alertmanager] {
            let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
            assert_eq!(
                decide_with(&mut g, "a", t, freeze),
                Decision::Suppress(SuppressReason::Freeze)
            );
            assert_eq!(g.in_progress(), None);
            let timed_out = Policy {
                approval: Approval::Timeout,
                ..freeze
            };
            assert_eq!(
                decide_with(&mut g, "b", t, timed_out),
                Decision::Suppress(SuppressReason::Freeze),
                "a proposal that timed out is still automatic"
            );
            let approved = Policy {
                approval: Approval::Person,
                ..freeze
            };
            assert_eq!(decide_with(&mut g, "c", t, approved), Decision::Execute);
        }
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
        assert_eq!(
            decide_with(&mut g, "m", TriggerType::Manual, freeze),
            Decision::Execute
        );
    }

    #[test]
    fn observe_and_confirm_change_only_what_would_execute() {
        for (mode, want) in [
            (AutomationMode::Observe, Decision::Observe),
            (AutomationMode::Confirm, Decision::Propose),
            (AutomationMode::Auto, Decision::Execute),
        ] {
            let policy = Policy {
                mode,
                ..Policy::default()
            };
            let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
            assert_eq!(
                decide_with(&mut g, "a", TriggerType::Watchdog, policy),
                want
            );
            assert_eq!(
                g.in_progress().is_some(),
                want == Decision::Execute,
                "{mode}: only an execution takes the slot"
            );
            let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
            assert_eq!(
                decide_with(&mut g, "m", TriggerType::Manual, policy),
                Decision::Execute,
                "{mode}: a manual rollback is a person's decision"
            );
            let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
            let frozen = Policy {
                freeze: Some("cpi"),
                ..policy
            };
            assert_eq!(
                decide_with(&mut g, "f", TriggerType::Watchdog, frozen),
                Decision::Suppress(SuppressReason::Freeze),
                "{mode}: a freeze is said before the mode"
            );
            for approval in [Approval::Person, Approval::Timeout] {
                let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
                let p = Policy { approval, ..policy };
                assert_eq!(
                    decide_with(&mut g, "p", TriggerType::Alertmanager, p),
                    Decision::Execute,
                    "{mode}: an answered proposal executes"
                );
            }
        }
    }

    #[test]
    fn an_approved_proposal_is_not_held_by_the_cooldown_a_timed_out_one_is() {
        let mut g = Guard::new(MODE_UNIVERSAL_CYCLE_4, Arming::ALL_ARMED);
        g.set_last_execution_ms(0);
        let timeout = Policy {
            approval: Approval::Timeout,
            ..Policy::default()
        };
        let d = g.decide(
            "t",
            TriggerType::Watchdog,
            false,
            None,
            1,
            COOLDOWN,
            timeout,
        );
        assert_eq!(d, Decision::Suppress(SuppressReason::Cooldown));
        let person = Policy {
            approval: Approval::Person,
            ..Policy::default()
        };
        let d = g.decide("p", TriggerType::Watchdog, false, None, 1, COOLDOWN, person);
        assert_eq!(d, Decision::Execute);
    }
}
