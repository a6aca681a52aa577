//! Validation and compilation: a `Rollout` becomes a `CompiledRollout` that evaluates fast.
//!
//! Compiling parses every CIDR, semver requirement and code once, and reports *every* problem
//! with the exact field path (`rules[0].when.ip_ranges[1]`). It must stay pure: no I/O, no
//! clock, no knowledge of HTTP or storage.

use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use semver::VersionReq;

use super::bucket::BasisPoints;
use super::country::parse_country;
use super::formats;
use super::location::Code;
use super::model::{
    Conditions, Flow, Guard, LegacySessions, Outcome, Rollout, RolloutContent, Schedule,
    ScheduleState,
};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// Every problem found in a rollout, in field order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    pub fn single(field: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationErrors(vec![FieldError {
            field: field.into(),
            message: message.into(),
        }])
    }
}

#[derive(Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// The largest epoch: the largest whole number a JSON number carries exactly, so that every
/// client reads it right and "one above a deleted rollout's epoch" never overflows.
pub const MAX_EPOCH: u64 = (1 << 53) - 1;

/// The most steps a schedule may have.
pub const MAX_SCHEDULE_STEPS: usize = 100;

/// A guard's window: 10 seconds (one count bucket) to a week (the longest
/// `guards.max_window_seconds`; a deployment's own setting may refuse more, in `admin`).
pub const GUARD_WINDOW_SECONDS: std::ops::RangeInclusive<u64> = 10..=604_800;

/// A guard's minimum attempts per flow.
pub const GUARD_MIN_ATTEMPTS: std::ops::RangeInclusive<u64> = 1..=1_000_000_000;

/// A guard's confidence: below 0.8 a one-sided bound trips on noise; above 0.999 it needs
/// samples few rollouts ever see.
pub const GUARD_CONFIDENCE: std::ops::RangeInclusive<f64> = 0.8..=0.999;

/// The continents a rule may name.
pub const CONTINENTS: [&str; 7] = ["AF", "AN", "AS", "EU", "NA", "OC", "SA"];

/// `^[a-z0-9][a-z0-9_-]{0,63}$`
pub fn is_valid_key(key: &str) -> bool {
    let b = key.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_' || c == b'-')
}

/// `^[A-Za-z0-9_-]{1,64}$`
pub fn is_valid_salt(salt: &str) -> bool {
    (1..=64).contains(&salt.len())
        && salt
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

fn is_valid_rule_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// A cookie name: an RFC 6265 token of at most 128 characters (`sy_` and the longest key
/// fit).
pub fn is_valid_cookie_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// A set of IP ranges, as sorted, merged intervals per family: membership is a binary search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpTable {
    v4: Ranges<u32>,
    v6: Ranges<u128>,
}

impl IpTable {
    pub fn from_networks(networks: impl IntoIterator<Item = IpNet>) -> IpTable {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in networks {
            match net.trunc() {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        IpTable {
            v4: Ranges::new(v4),
            v6: Ranges::new(v6),
        }
    }

    /// IPv4-mapped IPv6 addresses are matched as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.ranges.len() + self.v6.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Ranges in one search block: a block of `(u32, u32)` spans two cache lines.
const BLOCK: usize = 16;

/// Sorted, merged, disjoint intervals, with the start of every `BLOCK`-th one kept apart:
/// a search reads the small index (a few cache lines that stay warm), then one block, instead
/// of jumping across the whole table (a rule can hold thousands of networks).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Ranges<T> {
    ranges: Vec<(T, T)>,
    /// `ranges[i * BLOCK].0` for every block `i`.
    block_starts: Vec<T>,
}

impl<T: Ord + Copy + num_like::Successor> Ranges<T> {
    fn new(ranges: Vec<(T, T)>) -> Ranges<T> {
        let ranges = merge(ranges);
        let block_starts = ranges.iter().step_by(BLOCK).map(|r| r.0).collect();
        Ranges {
            ranges,
            block_starts,
        }
    }

    fn contains(&self, x: T) -> bool {
        // The last block whose first range starts at or before `x`, then the last range in it
        // that does: the only one that can hold `x`.
        let blocks = self.block_starts.partition_point(|&start| start <= x);
        let Some(block) = blocks.checked_sub(1) else {
            return false;
        };
        let first = block * BLOCK;
        let candidates = &self.ranges[first..self.ranges.len().min(first + BLOCK)];
        let i = candidates.partition_point(|&(start, _)| start <= x);
        i > 0 && x <= candidates[i - 1].1
    }
}

fn merge<T: Ord + Copy + num_like::Successor>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if start <= last.1.successor_saturating() => {
                if end > last.1 {
                    last.1 = end;
                }
            }
            _ => out.push((start, end)),
        }
    }
    out.shrink_to_fit();
    out
}

mod num_like {
    pub trait Successor {
        fn successor_saturating(self) -> Self;
    }
    impl Successor for u32 {
        fn successor_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Successor for u128 {
        fn successor_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
}

/// One compiled condition; a rule holds when all of its conditions hold.
#[derive(Debug, Clone)]
pub enum Condition {
    IpRanges(IpTable),
    Countries(Vec<Code>),
    Continents(Vec<Code>),
    Subdivisions(Vec<Code>),
    /// Lower-cased; requests are compared case-insensitively.
    Platforms(Vec<Box<str>>),
    AppVersion(VersionReq),
    /// Hashed with foldhash (seeded per process): checked on every decision.
    UserKeys(HashSet<Box<str>, foldhash::fast::RandomState>),
}

impl Condition {
    pub fn needs_location(&self) -> bool {
        matches!(
            self,
            Condition::Countries(_) | Condition::Continents(_) | Condition::Subdivisions(_)
        )
    }
}

/// What a matching compiled rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleAction {
    Force(Flow),
    Segment(BasisPoints),
}

#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub id: Box<str>,
    pub conditions: Vec<Condition>,
    pub action: RuleAction,
}

/// Sticky-cookie policy of a compiled rollout (present only when sticky is enabled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyPolicy {
    pub cookie_name: Box<str>,
    pub max_age_seconds: u64,
}

/// A rollout version ready to evaluate. Built once per version, shared read-only.
#[derive(Debug, Clone)]
pub struct CompiledRollout {
    pub key: Box<str>,
    pub version: u64,
    pub enabled: bool,
    pub percentage: BasisPoints,
    pub salt: Box<str>,
    pub rules: Vec<CompiledRule>,
    pub sticky: Option<StickyPolicy>,
    pub epoch: u64,
    pub legacy_sessions: LegacySessions,
    /// Whether any rule has a geo condition (so a location lookup is worth doing).
    pub needs_location: bool,
}

impl CompiledRollout {
    /// The rule ids, in rule order.
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.iter().map(|r| &*r.id).collect()
    }
}

/// Validates a whole rollout (key included) and compiles it.
pub fn compile(rollout: &Rollout) -> Result<CompiledRollout, ValidationErrors> {
    let mut problems = Problems::default();
    if !is_valid_key(&rollout.key) {
        problems.add(
            "key",
            format!(
                "invalid key '{}': expected ^[a-z0-9][a-z0-9_-]{{0,63}}$",
                rollout.key
            ),
        );
    }
    let compiled = compile_content(
        &rollout.key,
        rollout.version,
        &rollout.content,
        &mut problems,
    );
    if problems.0.is_empty() {
        Ok(compiled)
    } else {
        Err(ValidationErrors(problems.0))
    }
}

/// Validates the editable content alone (what `PUT` and `PATCH` change).
pub fn validate_content(content: &RolloutContent) -> Result<(), ValidationErrors> {
    let mut problems = Problems::default();
    compile_content("", 0, content, &mut problems);
    if problems.0.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors(problems.0))
    }
}

fn compile_content(
    key: &str,
    version: u64,
    content: &RolloutContent,
    problems: &mut Problems,
) -> CompiledRollout {
    if content.description.chars().count() > 1000 {
        problems.add("description", "longer than 1000 characters");
    }
    let percentage = percentage_field("percentage", content.percentage, problems);
    if !is_valid_salt(&content.salt) {
        problems.add(
            "salt",
            format!(
                "invalid salt '{}': expected ^[A-Za-z0-9_-]{{1,64}}$",
                content.salt
            ),
        );
    }
    if !(1..=MAX_EPOCH).contains(&content.epoch) {
        problems.add("epoch", format!("must be between 1 and {MAX_EPOCH}"));
    }
    if !is_valid_cookie_name(&content.sticky.cookie_name) {
        problems.add(
            "sticky.cookie_name",
            format!(
                "invalid cookie name '{}': expected 1 to 128 token characters",
                content.sticky.cookie_name
            ),
        );
    }
    if content.sticky.max_age_seconds == 0 || content.sticky.max_age_seconds > 400 * 24 * 3600 {
        problems.add(
            "sticky.max_age_seconds",
            "must be between 1 and 34560000 (400 days)",
        );
    }
    if content.rules.len() > 1000 {
        problems.add("rules", "more than 1000 rules");
    }

    let mut seen_ids = HashSet::new();
    let mut rules = Vec::with_capacity(content.rules.len());
    for (i, rule) in content.rules.iter().enumerate() {
        let at = format!("rules[{i}]");
        if !is_valid_rule_id(&rule.id) {
            problems.add(
                format!("{at}.id"),
                format!(
                    "invalid rule id '{}': expected 1 to 64 of A-Z a-z 0-9 _ - .",
                    rule.id
                ),
            );
        } else if !seen_ids.insert(rule.id.as_str()) {
            problems.add(
                format!("{at}.id"),
                format!("duplicate rule id '{}'", rule.id),
            );
        }
        let conditions = compile_conditions(&format!("{at}.when"), &rule.when, problems);
        let action = match rule.then {
            Outcome::Force(flow) => RuleAction::Force(flow),
            Outcome::Segment { percentage } => RuleAction::Segment(percentage_field(
                &format!("{at}.then.percentage"),
                percentage,
                problems,
            )),
        };
        rules.push(CompiledRule {
            id: rule.id.as_str().into(),
            conditions,
            action,
        });
    }

    if let Some(schedule) = &content.schedule {
        check_schedule(schedule, problems);
    }
    if let Some(guard) = &content.guard {
        check_guard(guard, problems);
    }

    let needs_location = rules
        .iter()
        .any(|r| r.conditions.iter().any(Condition::needs_location));
    CompiledRollout {
        key: key.into(),
        version,
        enabled: content.enabled,
        percentage,
        salt: content.salt.as_str().into(),
        rules,
        sticky: content.sticky.enabled.then(|| StickyPolicy {
            cookie_name: content.sticky.cookie_name.as_str().into(),
            max_age_seconds: content.sticky.max_age_seconds,
        }),
        epoch: content.epoch,
        legacy_sessions: content.legacy_sessions,
        needs_location,
    }
}

fn percentage_field(field: &str, percent: f64, problems: &mut Problems) -> BasisPoints {
    BasisPoints::from_percent(percent).unwrap_or_else(|| {
        problems.add(
            field,
            format!("invalid percentage {percent}: expected 0 to 100 with at most two decimals"),
        );
        BasisPoints::ZERO
    })
}

/// A ramp schedule (SPEC §9): 1 to 100 steps in strictly increasing time order, each with a
/// percentage as valid as the rollout's; `done` only once every step is behind it.
fn check_schedule(schedule: &Schedule, problems: &mut Problems) {
    let steps = &schedule.steps;
    if steps.is_empty() {
        problems.add(
            "schedule.steps",
            "must have at least one step (to stop a schedule, set its state to \"paused\")",
        );
    }
    if steps.len() > MAX_SCHEDULE_STEPS {
        problems.add(
            "schedule.steps",
            format!("more than {MAX_SCHEDULE_STEPS} steps"),
        );
    }
    for (i, step) in steps.iter().enumerate() {
        if i > 0 && step.at <= steps[i - 1].at {
            problems.add(
                format!("schedule.steps[{i}].at"),
                format!(
                    "must be later than steps[{}].at ({}): steps are in strictly increasing time order",
                    i - 1,
                    steps[i - 1].at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                ),
            );
        }
        percentage_field(
            &format!("schedule.steps[{i}].percentage"),
            step.percentage,
            problems,
        );
    }
    if schedule.applied_steps > steps.len() {
        problems.add(
            "schedule.applied_steps",
            format!(
                "{} steps applied of {}: more than the schedule has",
                schedule.applied_steps,
                steps.len()
            ),
        );
    } else if schedule.state == ScheduleState::Done && schedule.applied_steps < steps.len() {
        problems.add(
            "schedule.state",
            format!(
                "cannot be \"done\" with {} of {} steps pending: the service sets \"done\" after \
                 the last step; set \"active\" or \"paused\"",
                steps.len() - schedule.applied_steps,
                steps.len()
            ),
        );
    }
}

/// A guard (SPEC §9): its window, minimum attempts, threshold and confidence in range.
fn check_guard(guard: &Guard, problems: &mut Problems) {
    if !GUARD_WINDOW_SECONDS.contains(&guard.window_seconds) {
        problems.add(
            "guard.window_seconds",
            format!(
                "must be a whole number of seconds from {} to {} (a week)",
                GUARD_WINDOW_SECONDS.start(),
                GUARD_WINDOW_SECONDS.end()
            ),
        );
    }
    if !GUARD_MIN_ATTEMPTS.contains(&guard.min_attempts) {
        problems.add(
            "guard.min_attempts",
            format!(
                "must be a whole number from {} to {}",
                GUARD_MIN_ATTEMPTS.start(),
                GUARD_MIN_ATTEMPTS.end()
            ),
        );
    }
    let increase = guard.max_failure_rate_increase;
    if !(increase > 0.0 && increase <= 100.0) {
        problems.add(
            "guard.max_failure_rate_increase",
            "must be more than 0 and at most 100 (percentage points)",
        );
    }
    if !GUARD_CONFIDENCE.contains(&guard.confidence) {
        problems.add(
            "guard.confidence",
            format!(
                "must be from {} to {} (a one-sided confidence level)",
                GUARD_CONFIDENCE.start(),
                GUARD_CONFIDENCE.end()
            ),
        );
    }
}

/// A list condition: must be non-empty; each element is checked by `parse`.
fn list<T>(
    at: &str,
    name: &str,
    values: &Option<Vec<String>>,
    problems: &mut Problems,
    mut parse: impl FnMut(&str) -> Result<T, String>,
) -> Option<Vec<T>> {
    let values = values.as_ref()?;
    if values.is_empty() {
        problems.add(
            format!("{at}.{name}"),
            "must not be empty (leave the condition out instead)",
        );
        return None;
    }
    if values.len() > 100_000 {
        problems.add(format!("{at}.{name}"), "more than 100000 entries");
        return None;
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        match parse(value) {
            Ok(v) => out.push(v),
            Err(message) => problems.add(format!("{at}.{name}[{i}]"), message),
        }
    }
    Some(out)
}

/// An `ip_ranges` element (its documented form, [`formats::IP_RANGE`]): a range, or a single
/// address as a range of one.
pub fn parse_network(text: &str) -> Result<IpNet, String> {
    if !formats::is_ip_range(text) {
        return Err(format!("invalid CIDR '{text}'"));
    }
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid CIDR '{text}'"))
}

fn parse_continent(text: &str) -> Result<Code, String> {
    let upper = text.to_ascii_uppercase();
    if CONTINENTS.contains(&upper.as_str()) {
        Code::new(&upper).ok_or_else(String::new)
    } else {
        Err(format!(
            "invalid continent '{text}': expected one of {}",
            CONTINENTS.join(" ")
        ))
    }
}

fn parse_subdivision(text: &str) -> Result<Code, String> {
    let err = || format!("invalid subdivision '{text}': expected an ISO 3166-2 code like US-CA");
    let (country, part) = text.split_once('-').ok_or_else(err)?;
    let country = parse_country(country)
        .map_err(|why| format!("invalid subdivision '{text}': its country part: {why}"))?;
    if part.is_empty() || part.len() > 3 || !part.bytes().all(|c| c.is_ascii_alphanumeric()) {
        return Err(err());
    }
    Code::joined(country, part).ok_or_else(err)
}

/// A platform name: 1 to 64 characters (as openapi.json's `maxLength` counts them, not bytes).
fn parse_platform(text: &str) -> Result<Box<str>, String> {
    if text.is_empty() || text.chars().count() > 64 {
        Err(format!(
            "invalid platform '{text}': expected 1 to 64 characters"
        ))
    } else {
        Ok(text.to_ascii_lowercase().into())
    }
}

fn parse_user_key(text: &str) -> Result<Box<str>, String> {
    if text.is_empty() || text.len() > 512 {
        Err("invalid user key: expected 1 to 512 characters".to_string())
    } else {
        Ok(text.into())
    }
}

/// A semver requirement as npm reads it: a bare version (`5.2.0`) means exactly that version
/// (`=5.2.0`; `5.2` is any 5.2.x), where the semver crate alone would read it as `^5.2.0`.
/// Operators, wildcards and comma-separated lists are the semver crate's.
pub fn parse_version_req(text: &str) -> Result<VersionReq, semver::Error> {
    let exact: Vec<String> = text
        .split(',')
        .map(|part| {
            let part = part.trim();
            // A wildcard is in the version's numbers, not its pre-release (`5.2.0-x1` is bare).
            let numbers = part.split(['-', '+']).next().unwrap_or(part);
            let bare = part.starts_with(|c: char| c.is_ascii_digit())
                && !numbers.contains(['*', 'x', 'X']);
            if bare {
                format!("={part}")
            } else {
                part.to_string()
            }
        })
        .collect();
    VersionReq::parse(&exact.join(", "))
}

/// A rule's `app_version`: a requirement of the documented form ([`formats::VERSION_REQ`]),
/// read as [`parse_version_req`] reads it. The semver crate alone takes more (build metadata,
/// spaces after an operator, numbers past 9 digits) than the API promises.
fn parse_app_version_req(text: &str) -> Result<VersionReq, String> {
    let parsed = parse_version_req(text).map_err(|e| e.to_string());
    if formats::is_version_req(text) {
        parsed
    } else {
        Err(parsed.err().unwrap_or_else(|| {
            "expected comparators such as '>=5.0.0, <6.0.0', '~5.2', '5.2.*' or '5.2.0'".into()
        }))
    }
}

fn compile_conditions(at: &str, when: &Conditions, problems: &mut Problems) -> Vec<Condition> {
    let mut out = Vec::new();
    if let Some(nets) = list(at, "ip_ranges", &when.ip_ranges, problems, parse_network) {
        out.push(Condition::IpRanges(IpTable::from_networks(nets)));
    }
    if let Some(c) = list(at, "countries", &when.countries, problems, parse_country) {
        out.push(Condition::Countries(c));
    }
    if let Some(c) = list(
        at,
        "continents",
        &when.continents,
        problems,
        parse_continent,
    ) {
        out.push(Condition::Continents(c));
    }
    if let Some(c) = list(
        at,
        "subdivisions",
        &when.subdivisions,
        problems,
        parse_subdivision,
    ) {
        out.push(Condition::Subdivisions(c));
    }
    if let Some(p) = list(at, "platforms", &when.platforms, problems, parse_platform) {
        out.push(Condition::Platforms(p));
    }
    if let Some(req) = &when.app_version {
        match parse_app_version_req(req) {
            Ok(req) => out.push(Condition::AppVersion(req)),
            Err(why) => problems.add(
                format!("{at}.app_version"),
                format!("invalid semver requirement '{req}': {why}"),
            ),
        }
    }
    if let Some(keys) = list(at, "user_keys", &when.user_keys, problems, parse_user_key) {
        out.push(Condition::UserKeys(keys.into_iter().collect()));
    }
    if *when == Conditions::default() {
        problems.add(at, "a rule needs at least one condition");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::model::{Rule, Sticky};

    fn content(rules: Vec<Rule>) -> RolloutContent {
        RolloutContent {
            description: String::new(),
            enabled: true,
            percentage: 25.0,
            salt: "3f1c8a".into(),
            rules,
            sticky: Sticky::default(),
            epoch: 1,
            legacy_sessions: LegacySessions::Reject,
            schedule: None,
            guard: None,
        }
    }

    fn rule(id: &str, when: serde_json::Value) -> Rule {
        Rule {
            id: id.into(),
            when: serde_json::from_value(when).unwrap(),
            then: Outcome::Force(Flow::Stytch),
        }
    }

    fn fields(result: Result<(), ValidationErrors>) -> Vec<String> {
        result.unwrap_err().0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn a_valid_rollout_compiles_its_tables_once() {
        let rollout = Rollout {
            key: "stytch-login".into(),
            content: content(vec![rule(
                "office",
                serde_json::json!({"ip_ranges": ["203.0.113.0/24", "2001:db8::/32", "198.51.100.7"]}),
            )]),
            version: 3,
            updated_at: chrono::Utc::now(),
            updated_by: "t".into(),
        };
        let compiled = compile(&rollout).unwrap();
        assert_eq!(compiled.percentage.get(), 2500);
        assert_eq!(compiled.version, 3);
        let Condition::IpRanges(table) = &compiled.rules[0].conditions[0] else {
            panic!("expected an IP table");
        };
        assert!(table.contains("203.0.113.200".parse().unwrap()));
        assert!(table.contains("::ffff:203.0.113.9".parse().unwrap()));
        assert!(table.contains("2001:db8::1".parse().unwrap()));
        assert!(table.contains("198.51.100.7".parse().unwrap()));
        assert!(!table.contains("198.51.100.8".parse().unwrap()));
        assert!(!compiled.needs_location);
    }

    #[test]
    fn every_problem_is_reported_with_its_field_path() {
        let mut c = content(vec![
            rule(
                "a",
                serde_json::json!({"ip_ranges": ["10.0.0.0/8", "10.0.0.0/33"]}),
            ),
            rule(
                "a",
                serde_json::json!({"countries": ["GBR"], "continents": ["XX"]}),
            ),
            rule(
                "ok",
                serde_json::json!({"subdivisions": ["US"], "app_version": "<<5"}),
            ),
            rule("empty", serde_json::json!({"platforms": []})),
            rule("none", serde_json::json!({})),
        ]);
        c.percentage = 12.345;
        c.salt = "bad salt".into();
        c.epoch = 0;
        c.sticky.cookie_name = "a b".into();
        assert_eq!(
            fields(validate_content(&c)),
            [
                "percentage",
                "salt",
                "epoch",
                "sticky.cookie_name",
                "rules[0].when.ip_ranges[1]",
                "rules[1].id",
                "rules[1].when.countries[0]",
                "rules[1].when.continents[0]",
                "rules[2].when.subdivisions[0]",
                "rules[2].when.app_version",
                "rules[3].when.platforms",
                "rules[4].when",
            ]
        );
    }

    #[test]
    fn percentages_need_at_most_two_decimals_within_0_and_100() {
        for ok in [0.0, 0.01, 33.33, 100.0] {
            let mut c = content(vec![]);
            c.percentage = ok;
            assert!(validate_content(&c).is_ok(), "{ok}");
        }
        for bad in [-0.01, 100.01, 0.001, f64::INFINITY] {
            let mut c = content(vec![]);
            c.percentage = bad;
            assert_eq!(fields(validate_content(&c)), ["percentage"], "{bad}");
        }
    }

    #[test]
    fn an_epoch_is_a_whole_number_every_json_reader_carries_exactly() {
        let mut c = content(vec![]);
        for (epoch, ok) in [
            (0, false),
            (1, true),
            (MAX_EPOCH, true),
            (MAX_EPOCH + 1, false),
        ] {
            c.epoch = epoch;
            match validate_content(&c) {
                Ok(()) => assert!(ok, "{epoch}"),
                Err(e) => assert_eq!((ok, e.0[0].field.as_str()), (false, "epoch")),
            }
        }
    }

    fn step(at: &str, percentage: f64) -> crate::rules::ScheduleStep {
        crate::rules::ScheduleStep {
            at: chrono::DateTime::parse_from_rfc3339(at).unwrap().into(),
            percentage,
        }
    }

    #[test]
    fn schedule_steps_are_in_strictly_increasing_time_order_with_valid_percentages() {
        let mut c = content(vec![]);
        c.schedule = Some(Schedule {
            state: ScheduleState::Active,
            steps: vec![
                step("2026-12-01T09:00:00Z", 5.0),
                step("2026-12-01T10:00:00+01:00", 10.0),
                step("2026-12-02T09:00:00Z", 100.001),
            ],
            applied_steps: 0,
        });
        assert_eq!(
            fields(validate_content(&c)),
            ["schedule.steps[1].at", "schedule.steps[2].percentage"]
        );
        let schedule = c.schedule.as_mut().unwrap();
        schedule.steps[1].at += chrono::Duration::milliseconds(1);
        schedule.steps[2].percentage = 100.0;
        assert_eq!(validate_content(&c), Ok(()));
    }

    #[test]
    fn a_schedule_has_one_to_a_hundred_steps_and_is_done_only_with_none_pending() {
        let at = |i: i64| chrono::DateTime::from_timestamp(1_800_000_000 + i, 0).unwrap();
        let schedule = |n: usize, state, applied_steps| Schedule {
            state,
            steps: (0..n)
                .map(|i| crate::rules::ScheduleStep {
                    at: at(i as i64),
                    percentage: 1.0,
                })
                .collect(),
            applied_steps,
        };
        let mut c = content(vec![]);
        for (s, problems) in [
            (
                schedule(0, ScheduleState::Active, 0),
                vec!["schedule.steps"],
            ),
            (schedule(1, ScheduleState::Active, 0), vec![]),
            (schedule(100, ScheduleState::Paused, 100), vec![]),
            (
                schedule(101, ScheduleState::Active, 0),
                vec!["schedule.steps"],
            ),
            (schedule(2, ScheduleState::Done, 2), vec![]),
            (schedule(2, ScheduleState::Done, 1), vec!["schedule.state"]),
            (
                schedule(2, ScheduleState::Active, 3),
                vec!["schedule.applied_steps"],
            ),
        ] {
            c.schedule = Some(s);
            let found = match validate_content(&c) {
                Ok(()) => vec![],
                Err(e) => e.0.into_iter().map(|e| e.field).collect(),
            };
            assert_eq!(found, problems, "{:?}", c.schedule);
        }
    }

    #[test]
    fn a_guard_is_checked_member_by_member() {
        let mut c = content(vec![]);
        c.guard = Some(Guard::default());
        assert_eq!(validate_content(&c), Ok(()));
        c.guard = Some(Guard {
            window_seconds: 9,
            min_attempts: 0,
            max_failure_rate_increase: 0.0,
            confidence: 0.5,
            ..Guard::default()
        });
        assert_eq!(
            fields(validate_content(&c)),
            [
                "guard.window_seconds",
                "guard.min_attempts",
                "guard.max_failure_rate_increase",
                "guard.confidence"
            ]
        );
        c.guard = Some(Guard {
            window_seconds: 604_800,
            min_attempts: 1,
            max_failure_rate_increase: 100.0,
            confidence: 0.999,
            ..Guard::default()
        });
        assert_eq!(validate_content(&c), Ok(()));
        for (increase, confidence) in [
            (f64::NAN, 0.95),
            (100.01, 0.95),
            (2.0, 1.0),
            (2.0, f64::NAN),
        ] {
            c.guard = Some(Guard {
                max_failure_rate_increase: increase,
                confidence,
                ..Guard::default()
            });
            assert!(validate_content(&c).is_err(), "{increase} {confidence}");
        }
    }

    #[test]
    fn a_platform_name_is_counted_in_characters_not_bytes() {
        assert!(parse_platform(&"𝕿".repeat(64)).is_ok());
        assert!(parse_platform(&"𝕿".repeat(65)).is_err());
        assert!(parse_platform("").is_err());
    }

    #[test]
    fn keys_follow_the_spec_pattern() {
        for ok in ["stytch-login", "a", "0_x", &"a".repeat(64)] {
            assert!(is_valid_key(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "A", "a.b", &"a".repeat(65)] {
            assert!(!is_valid_key(bad), "{bad}");
        }
    }

    #[test]
    fn a_bare_version_means_exactly_that_version() {
        let matches = |req: &str, version: &str| {
            parse_version_req(req)
                .unwrap()
                .matches(&semver::Version::parse(version).unwrap())
        };
        assert!(matches("5.2.0", "5.2.0"));
        assert!(!matches("5.2.0", "5.9.1"));
        assert!(!matches("5.2.0", "5.2.1"));
        assert!(matches("5.2", "5.2.7") && !matches("5.2", "5.3.0"));
        assert!(matches("^5.2.0", "5.9.1"));
        assert!(matches(">=5.0.0, <6.0.0", "5.9.1"));
        assert!(matches("<5.2.0", "5.1.9") && !matches("<5.2.0", "5.2.0"));
        assert!(matches("5.*", "5.4.0") && matches("~5.2", "5.2.3"));
        assert!(parse_version_req("five").is_err());
    }

    #[test]
    fn overlapping_ranges_are_merged() {
        let table = IpTable::from_networks(
            ["10.0.0.0/24", "10.0.0.128/25", "10.0.1.0/24", "10.0.3.0/24"]
                .map(|n| n.parse::<IpNet>().unwrap()),
        );
        assert_eq!(table.len(), 2);
        assert!(table.contains("10.0.1.255".parse().unwrap()));
        assert!(!table.contains("10.0.2.0".parse().unwrap()));
        assert!(table.contains("10.0.3.0".parse().unwrap()));
    }

    proptest::proptest! {
        /// Across many blocks, membership is exactly "inside one of the networks".
        #[test]
        fn membership_is_being_inside_a_network(
            networks in proptest::collection::vec((proptest::prelude::any::<u32>(), 8u8..=32), 0..200),
            probes in proptest::collection::vec(proptest::prelude::any::<u32>(), 50),
        ) {
            let nets: Vec<ipnet::Ipv4Net> = networks
                .iter()
                .map(|&(a, len)| ipnet::Ipv4Net::new(a.into(), len).unwrap().trunc())
                .collect();
            let table = IpTable::from_networks(nets.iter().map(|&n| IpNet::V4(n)));
            // Probes: random addresses, and each network's first and last address and the
            // ones just outside.
            let edges = nets.iter().flat_map(|n| {
                let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]
            });
            for x in probes.into_iter().chain(edges) {
                let ip = std::net::Ipv4Addr::from(x);
                let inside = nets.iter().any(|n| n.contains(&ip));
                proptest::prop_assert_eq!(table.contains(ip.into()), inside, "{}", ip);
            }
        }
    }
}
