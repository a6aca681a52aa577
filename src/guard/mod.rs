//! The guard of SPEC §9: an automatic brake that stops a rollout when Stytch logins fail
//! measurably more often than legacy ones.
//!
//! - `statistics`: the pure arithmetic — the lower confidence bound of the increase in the
//!   failure rate, and the verdict (`watching`, `insufficient_data`, `tripped`) it leads to.
//! - `trip`: pure too — where a guard's window starts, what a trip writes, the evidence it
//!   records and the state a guard is shown in.
//! - `evaluator`: the background task that, every `guards.interval_seconds`, reads each
//!   guarded rollout's window from the `TallyStore`, judges it, and trips through the admin
//!   use case (actor `guard`); it keeps the views `GET /v1/rollouts/{key}/guard` shows.
//! - `webhook`: tells a person about a trip (`guards.webhook_url`), in the background.
//!
//! The counts it judges come from `crate::tally` (outcomes counted across replicas). Nothing
//! here is on the decide path.

pub mod evaluator;
pub mod statistics;
pub mod trip;
pub mod webhook;

pub use evaluator::{GuardView, GuardViews};
pub use statistics::{Confidence, FlowOutcomes, GuardLimits, GuardState, GuardVerdict};
pub use trip::{GuardEvidence, TripEvidence, ViewState, GUARD_ACTOR};
