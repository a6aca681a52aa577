//! `GET /v1/rollouts/{key}/stats` (scope `read`): a rollout's decisions per flow and login
//! outcomes per flow and outcome, minute by minute over the last hour, oldest first — what the
//! admin page charts (SPEC §12).
//!
//! The counts are the shared 10-second buckets of `crate::tally` — with Redis, every
//! replica's — read in one step and added up per minute here. Counts a replica made in the
//! last second, not yet flushed, are not in them yet.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::auth::{Authorized, ReadScope};
use super::error::ApiError;
use super::path::Path;
use super::AppState;
use crate::admin::AdminError;
use crate::rules::Flow;
use crate::tally::{Bucket, BucketRange, Tally, STATS_SECONDS};

/// Minutes in an answer.
const MINUTES: u64 = STATS_SECONDS / 60;

#[derive(Serialize)]
struct Stats<'a> {
    rollout: &'a str,
    minutes: Vec<Minute>,
}

#[derive(Serialize)]
struct Minute {
    start: DateTime<Utc>,
    decisions: PerFlow<u64>,
    outcomes: PerFlow<Outcomes>,
}

#[derive(Serialize)]
struct PerFlow<T> {
    stytch: T,
    legacy: T,
}

#[derive(Serialize)]
struct Outcomes {
    success: u64,
    failure: u64,
}

impl Minute {
    fn of(start_seconds: u64, tally: &Tally) -> Minute {
        let outcomes = |flow| {
            let counts = tally.outcomes(flow);
            Outcomes {
                success: counts.successes,
                failure: counts.failures,
            }
        };
        Minute {
            start: DateTime::<Utc>::from(UNIX_EPOCH + Duration::from_secs(start_seconds)),
            decisions: PerFlow {
                stytch: tally.decisions(Flow::Stytch),
                legacy: tally.decisions(Flow::Legacy),
            },
            outcomes: PerFlow {
                stytch: outcomes(Flow::Stytch),
                legacy: outcomes(Flow::Legacy),
            },
        }
    }
}

/// The last hour's minutes, oldest first (the current minute last), each with the sum of the
/// buckets it holds.
fn per_minute(now: SystemTime, buckets: &[(Bucket, Tally)]) -> Vec<Minute> {
    let this_minute = Bucket::at(now).start_seconds() / 60;
    let first_minute = this_minute + 1 - MINUTES;
    let mut minutes = vec![Tally::default(); MINUTES as usize];
    for (bucket, tally) in buckets {
        let minute = bucket.start_seconds() / 60;
        if (first_minute..=this_minute).contains(&minute) {
            minutes[(minute - first_minute) as usize].merge(tally);
        }
    }
    minutes
        .iter()
        .zip(first_minute..)
        .map(|(tally, minute)| Minute::of(minute * 60, tally))
        .collect()
}

/// The buckets of the minutes [`per_minute`] shows.
fn last_hour(now: SystemTime) -> BucketRange {
    let last = Bucket::at(now);
    let first_minute = last.start_seconds() / 60 + 1 - MINUTES;
    BucketRange {
        first: Bucket::containing(first_minute * 60),
        last,
    }
}

pub async fn stats(
    _: Authorized<ReadScope>,
    state: web::Data<AppState>,
    key: Path<String>,
) -> Result<HttpResponse, ApiError> {
    if state.catalog.get(&key).is_none() {
        return Err(AdminError::NotFound(key.to_string()).into());
    }
    let now = SystemTime::now();
    let buckets = state
        .tallies
        .read(&key, last_hour(now))
        .await
        .map_err(AdminError::Unavailable)?;
    Ok(HttpResponse::Ok().json(Stats {
        rollout: &key,
        minutes: per_minute(now, &buckets),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tally::{Counter, LoginOutcome};

    #[test]
    fn an_hour_of_minutes_sums_the_buckets_of_each_minute_oldest_first() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000 * 60 + 25);
        let range = last_hour(now);
        assert_eq!(range.first.start_seconds(), (1_000_000 - 59) * 60);
        assert_eq!(range.last.start_seconds(), 1_000_000 * 60 + 20);
        let mut a = Tally::default();
        a.add(Counter::decision(Flow::Stytch), 2);
        a.add(Counter::outcome(Flow::Legacy, LoginOutcome::Failure), 1);
        let mut b = Tally::default();
        b.add(Counter::decision(Flow::Stytch), 3);
        let old = Bucket::containing((1_000_000 - 60) * 60); // the minute before the hour
        let buckets = [
            (old, b),
            (Bucket::containing(1_000_000 * 60), a),
            (Bucket::containing(1_000_000 * 60 + 20), b),
            (Bucket::containing((1_000_000 - 59) * 60 + 50), a),
        ];
        let minutes = per_minute(now, &buckets);
        assert_eq!(minutes.len(), 60);
        assert_eq!(minutes[59].decisions.stytch, 5);
        assert_eq!(minutes[59].outcomes.legacy.failure, 1);
        assert_eq!(
            minutes[0].decisions.stytch, 2,
            "the oldest minute, not the one before"
        );
        assert_eq!(minutes[1].decisions.stytch, 0);
        assert_eq!(
            minutes[59].start.timestamp(),
            1_000_000 * 60,
            "a minute starts at its first second"
        );
    }
}
