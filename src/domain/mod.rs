//! The domain core: conditions, the rollback life cycle, recovery validation and the reviews
//! of trigger episodes with the success rates read from them.
//! Nothing here does I/O or reads a clock; callers pass time in.

pub mod condition;
pub mod holds;
pub mod lifecycle;
pub mod review;
pub mod target_status;
pub mod tuning;
pub mod validation;

pub use condition::{ConditionSpec, Operator, Samples, Status, Trend};
pub use lifecycle::{
    Action, Arming, AutomaticPath, Decision, EventStatus, Guard, PathState, SuppressReason,
    TriggerType,
};
pub use target_status::{Agent, SwitchRequest, TargetStatus};
