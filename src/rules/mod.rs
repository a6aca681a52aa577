//! The pure core: the rollout model, its validation and compilation, the bucketing formula and
//! the evaluation order. Nothing in here does I/O, awaits, or knows about HTTP or storage.

pub mod bucket;
pub mod compile;
pub mod country;
pub mod evaluate;
pub mod formats;
pub mod location;
pub mod model;
#[cfg(test)]
mod rollout_properties;
pub mod schedule;
pub mod wording;

pub use bucket::{bucket_of, BasisPoints};
pub use compile::{compile, CompiledRollout, FieldError, ValidationErrors};
pub use evaluate::{decide, Decision, Reason, StickyState, Subject};
pub use location::{Code, Location};
pub use model::{
    Flow, Guard, GuardAction, LegacySessions, Rollout, RolloutContent, RolloutDraft, Rule,
    Schedule, ScheduleState, ScheduleStep,
};
