//! The guard of SPEC §9: an automatic brake that stops a rollout when Stytch logins fail
//! measurably more often than legacy ones.
//!
//! - `statistics`: the pure arithmetic — the lower confidence bound of the increase in the
//!   failure rate, and the verdict (`watching`, `insufficient_data`, `tripped`) it leads to.
//!
//! The counts it judges come from `crate::tally` (outcomes counted across replicas).

pub mod statistics;

pub use statistics::{Confidence, FlowOutcomes, GuardLimits, GuardState, GuardVerdict};
