//! What happens inside the engine, as values. The engine says once what happened; `Metrics`
//! applies it (src/metrics.rs) and the stream projects it (`stream_messages` below), so no
//! engine code touches a metric or builds a stream message by hand.

use crate::config::Config;
use crate::domain::condition::Status;
use crate::domain::lifecycle::Arming;
use crate::domain::review::{Rates, Window};
use crate::store::{Event, MissedDegradation, Review, ValidationRun};
use crate::views::{StatusView, StreamMessage, TriggersView};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// A call the engine makes to the trading system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetOperation {
    Status,
    Switch,
}

impl TargetOperation {
    pub const ALL: [TargetOperation; 2] = [TargetOperation::Status, TargetOperation::Switch];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetOperation::Status => "status",
            TargetOperation::Switch => "switch",
        }
    }
}

/// Why an Alertmanager delivery was refused before anything was recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    Version,
    TooLarge,
    Unauthorized,
    Storage,
}

impl Rejection {
    pub const ALL: [Rejection; 5] = [
        Rejection::Malformed,
        Rejection::Version,
        Rejection::TooLarge,
        Rejection::Unauthorized,
        Rejection::Storage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Version => "version",
            Rejection::TooLarge => "too_large",
            Rejection::Unauthorized => "unauthorized",
            Rejection::Storage => "storage",
        }
    }
}

/// One read of the target by the watchdog, with every condition judged.
#[derive(Clone, Debug)]
pub struct Poll {
    pub target_up: bool,
    /// The mode the target reported; `None` when it could not be read.
    pub mode: Option<String>,
    pub agents_healthy: u32,
    pub at: DateTime<Utc>,
    pub triggers: TriggersView,
}

/// The success rates read from the durable history, for every window, as of `at`.
#[derive(Clone, Debug, PartialEq)]
pub struct SuccessRates {
    pub at: DateTime<Utc>,
    pub windows: Vec<(Window, Rates)>,
    /// When the oldest executed rollback still without a review started (whole history).
    pub oldest_unreviewed: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug)]
pub enum EngineEvent {
    /// The watchdog read the target (or failed to) and judged the conditions.
    Polled(Arc<Poll>),
    /// The target reported its mode outside a poll (read back after a switch).
    ModeSeen(String),
    /// A condition moved from one status to another.
    ConditionChanged {
        condition: String,
        from: Status,
        to: Status,
    },
    /// A new event is durable: `pending` (the guard admitted it and holds the execution slot),
    /// `suppressed` (the guard's reason is in it) or `dry_run`.
    Recorded(Arc<Event>),
    /// A durable event moved on in its life cycle.
    Transitioned(Arc<Event>),
    /// The execution slot is free again (the execution ended, or its first record failed).
    SlotReleased {
        event_id: String,
    },
    /// A validation run is durable; `of_rollback` is false for a restore's validation.
    ValidationStored {
        run: Arc<ValidationRun>,
        of_rollback: bool,
    },
    StabilityStarted {
        event_id: String,
    },
    StabilityEnded {
        event_id: String,
    },
    /// One HTTP call to the target, retries counted one by one.
    TargetCalled {
        operation: TargetOperation,
        ok: bool,
    },
    /// A valid Alertmanager delivery arrived.
    AlertsReceived {
        firing: u64,
        resolved: u64,
        truncated: u64,
    },
    /// Firing rollback alerts of a delivery that were already recorded.
    AlertsDeduplicated {
        count: u64,
    },
    /// A delivery was refused.
    DeliveryRejected(Rejection),
    /// Which automatic paths may act changed (at start, by an operator, by a reload).
    ArmingChanged(Arming),
    /// A new config is in force (thresholds, tokens, cooldown ... may have changed).
    ConfigReloaded(Arc<Config>),
    /// The engine started on an existing history: the latest executed rollback and its latest
    /// validation, if any.
    Resumed {
        last_executed: Option<Arc<Event>>,
        last_validation: Option<Arc<ValidationRun>>,
    },
    /// A review of a trigger episode is durable.
    Reviewed(Arc<Review>),
    /// A degradation nothing caught is durable.
    MissedRecorded(Arc<MissedDegradation>),
    /// The success rates were computed again from the history.
    RatesComputed(Arc<SuccessRates>),
    /// A freeze or maintenance window, the regime, the automation mode or what awaits an
    /// answer changed; the holds as they are now.
    HoldsChanged(Arc<crate::views::HoldsView>),
    /// A drill is stored.
    DrillRecorded(Arc<crate::engine::DrillReport>),
    /// A notification test is stored.
    NotificationTested(Arc<crate::engine::NotificationTestReport>),
}

impl EngineEvent {
    /// Whether the rates read from the history may have changed: a trigger episode recorded or
    /// finished, a review, a missed degradation.
    pub fn changes_rates(&self) -> bool {
        match self {
            EngineEvent::Recorded(e) | EngineEvent::Transitioned(e) => e.status.is_terminal(),
            EngineEvent::Reviewed(_) | EngineEvent::MissedRecorded(_) => true,
            _ => false,
        }
    }

    /// What subscribers of the stream see of this event; `status` is asked only when needed.
    pub fn stream_messages(&self, status: impl FnOnce() -> StatusView) -> Vec<StreamMessage> {
        let status = || StreamMessage::Status(Box::new(status()));
        match self {
            EngineEvent::Polled(p) => {
                vec![StreamMessage::TriggerUpdate(Box::new(p.triggers.clone()))]
            }
            EngineEvent::Recorded(e) | EngineEvent::Transitioned(e) => vec![
                StreamMessage::RollbackEvent(Box::new(Event::clone(e))),
                status(),
            ],
            EngineEvent::ValidationStored { run, .. } => {
                vec![StreamMessage::Validation(Box::new(ValidationRun::clone(
                    run,
                )))]
            }
            EngineEvent::SlotReleased { .. }
            | EngineEvent::StabilityEnded { .. }
            | EngineEvent::ArmingChanged(_) => vec![status()],
            EngineEvent::ConditionChanged { .. }
            | EngineEvent::ModeSeen(_)
            | EngineEvent::StabilityStarted { .. }
            | EngineEvent::TargetCalled { .. }
            | EngineEvent::AlertsReceived { .. }
            | EngineEvent::AlertsDeduplicated { .. }
            | EngineEvent::DeliveryRejected(_)
            | EngineEvent::Resumed { .. } => vec![],
            EngineEvent::ConfigReloaded(_) => vec![status()],
            EngineEvent::Reviewed(r) => vec![StreamMessage::Review(Box::new(Review::clone(r)))],
            EngineEvent::MissedRecorded(m) => vec![StreamMessage::MissedDegradation(Box::new(
                MissedDegradation::clone(m),
            ))],
            EngineEvent::RatesComputed(_) => vec![],
            EngineEvent::DrillRecorded(_) | EngineEvent::NotificationTested(_) => vec![],
            EngineEvent::HoldsChanged(h) => vec![
                StreamMessage::Holds(Box::new(crate::views::HoldsView::clone(h))),
                status(),
            ],
        }
    }
}
