//! The guard's arithmetic (SPEC §9): from the login attempts and failures of the two flows,
//! the one-sided lower confidence bound of (Stytch failure rate − legacy failure rate), and
//! the verdict it leads to.
//!
//! # Method
//!
//! Newcombe's hybrid score interval (method 10 of R. G. Newcombe, "Interval estimation for the
//! difference between independent proportions: comparison of eleven methods", Statistics in
//! Medicine 17:873–890, 1998), built from the Wilson score interval of each flow's failure
//! rate. With p₁ = Stytch failures / attempts, p₂ = legacy failures / attempts, and each
//! rate's Wilson bounds lᵢ ≤ pᵢ ≤ uᵢ at the critical value z:
//!
//! ```text
//! lower bound of p₁ − p₂ = (p₁ − p₂) − √((p₁ − l₁)² + (u₂ − p₂)²)
//! ```
//!
//! A one-sided bound at confidence c takes z = Φ⁻¹(c) (the lower end of the two-sided
//! interval at 1 − 2(1 − c)). Φ⁻¹ is Wichura's algorithm AS241 (PPND16, "The percentage
//! points of the normal distribution", Applied Statistics 37:477–484, 1988), accurate to
//! about 1 part in 10¹⁶ — no statistics crate is needed for one function.
//!
//! Unlike the textbook (Wald) interval, the Wilson and Newcombe intervals stay sensible with
//! no failures at all, with every attempt failing, and with small samples; for large samples
//! they agree with it.
//!
//! This module is pure: numbers in, numbers out. It must not read a clock, count, log or
//! know where the numbers come from.

use serde::Serialize;

/// A confidence level strictly between 0.5 and 1 (as a fraction: 0.95 is 95 %).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Confidence(f64);

impl Confidence {
    /// `None` unless `level` is a number strictly between 0.5 and 1: a one-sided bound at
    /// 50 % or less would not be a bound below the observed difference.
    pub fn new(level: f64) -> Option<Confidence> {
        (level > 0.5 && level < 1.0).then_some(Confidence(level))
    }

    pub fn level(self) -> f64 {
        self.0
    }

    /// The one-sided critical value z = Φ⁻¹(level): 1.645 at 95 %, 2.326 at 99 %.
    pub fn z(self) -> f64 {
        inverse_normal_cdf(self.0)
    }
}

/// How the login attempts of one flow ended. Attempts are the sum, so there can never be
/// more failures than attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowOutcomes {
    pub successes: u64,
    pub failures: u64,
}

impl FlowOutcomes {
    pub fn attempts(self) -> u64 {
        self.successes.saturating_add(self.failures)
    }

    /// The failure rate as a fraction; `None` without attempts.
    pub fn failure_rate(self) -> Option<f64> {
        let attempts = self.attempts();
        (attempts > 0).then(|| self.failures as f64 / attempts as f64)
    }

    /// The Wilson score interval of the failure rate at the critical value `z`; `None`
    /// without attempts.
    pub fn wilson(self, z: f64) -> Option<Wilson> {
        let n = self.attempts() as f64;
        let p = self.failure_rate()?;
        let z2 = z * z;
        // Both distances from p are computed directly (rather than as differences of the
        // bounds), so they keep their precision at a billion attempts.
        let half_width =
            z * (z2 + 4.0 * self.failures as f64 * (1.0 - p)).sqrt() / (2.0 * (n + z2));
        let centre_shift = z2 * (0.5 - p) / (n + z2);
        let below = (half_width - centre_shift).clamp(0.0, p);
        let above = (half_width + centre_shift).clamp(0.0, 1.0 - p);
        Some(Wilson {
            rate: p,
            below,
            above,
        })
    }
}

/// A Wilson score interval of one proportion, kept as the distances of its bounds from the
/// observed rate (what Newcombe's interval combines).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wilson {
    pub rate: f64,
    /// rate − lower bound.
    pub below: f64,
    /// upper bound − rate.
    pub above: f64,
}

impl Wilson {
    pub fn lower(&self) -> f64 {
        self.rate - self.below
    }

    pub fn upper(&self) -> f64 {
        self.rate + self.above
    }
}

/// A confidence interval of a difference of two proportions (fractions, within −1..1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

/// Newcombe's hybrid score interval (method 10) of `first`'s failure rate minus `second`'s
/// at the critical value `z` (two-sided at 1 − 2(1 − Φ(z))); `None` when a flow has no
/// attempts.
pub fn newcombe_interval(first: FlowOutcomes, second: FlowOutcomes, z: f64) -> Option<Interval> {
    let a = first.wilson(z)?;
    let b = second.wilson(z)?;
    let difference = a.rate - b.rate;
    Some(Interval {
        lower: (difference - a.below.hypot(b.above)).max(-1.0),
        upper: (difference + a.above.hypot(b.below)).min(1.0),
    })
}

/// The one-sided lower confidence bound of (Stytch failure rate − legacy failure rate), in
/// percentage points; `None` when a flow has no attempts.
pub fn increase_lower_bound(
    stytch: FlowOutcomes,
    legacy: FlowOutcomes,
    confidence: Confidence,
) -> Option<f64> {
    newcombe_interval(stytch, legacy, confidence.z()).map(|i| i.lower * 100.0)
}

/// What a guard allows (the numbers of a rollout's `guard`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuardLimits {
    /// Each flow needs at least this many attempts (and always at least one) before the
    /// guard judges at all.
    pub min_attempts: u64,
    /// In percentage points: 2.0 allows Stytch to fail 2 points more often than legacy.
    pub max_failure_rate_increase: f64,
    pub confidence: Confidence,
}

/// Where the guard stands after looking at the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardState {
    /// Enough attempts, and the increase is not shown to exceed the limit.
    Watching,
    /// A flow has fewer attempts than `min_attempts`: too few to judge, never a regression.
    InsufficientData,
    /// With the required confidence, Stytch fails more than the limit allows.
    Tripped,
}

/// One flow's counts as the guard saw them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FlowEvidence {
    pub attempts: u64,
    pub failures: u64,
    /// In percent; `None` without attempts.
    pub failure_rate_percent: Option<f64>,
}

impl From<FlowOutcomes> for FlowEvidence {
    fn from(outcomes: FlowOutcomes) -> FlowEvidence {
        FlowEvidence {
            attempts: outcomes.attempts(),
            failures: outcomes.failures,
            failure_rate_percent: outcomes.failure_rate().map(|r| r * 100.0),
        }
    }
}

/// What the guard decided, and everything it decided from (the evidence a trip records).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GuardVerdict {
    pub state: GuardState,
    pub stytch: FlowEvidence,
    pub legacy: FlowEvidence,
    /// The one-sided lower confidence bound of the increase, in percentage points; `None`
    /// with insufficient data (it is not computed then).
    pub increase_lower_bound_points: Option<f64>,
    pub max_failure_rate_increase: f64,
    pub confidence: f64,
}

impl GuardVerdict {
    /// Judges the two flows' outcomes against `limits`.
    pub fn of(stytch: FlowOutcomes, legacy: FlowOutcomes, limits: &GuardLimits) -> GuardVerdict {
        let enough = |flow: FlowOutcomes| flow.attempts() >= limits.min_attempts.max(1);
        let bound = if enough(stytch) && enough(legacy) {
            increase_lower_bound(stytch, legacy, limits.confidence)
        } else {
            None
        };
        let state = match bound {
            None => GuardState::InsufficientData,
            Some(b) if b > limits.max_failure_rate_increase => GuardState::Tripped,
            Some(_) => GuardState::Watching,
        };
        GuardVerdict {
            state,
            stytch: stytch.into(),
            legacy: legacy.into(),
            increase_lower_bound_points: bound,
            max_failure_rate_increase: limits.max_failure_rate_increase,
            confidence: limits.confidence.level(),
        }
    }
}

/// Φ⁻¹(p), the standard normal quantile, by Wichura's AS241 (PPND16): rational
/// approximations in three ranges of p, relative error about 10⁻¹⁶. `p` must lie in (0, 1).
// The coefficients are written as published, with more digits than an f64 holds.
#[allow(clippy::excessive_precision)]
pub fn inverse_normal_cdf(p: f64) -> f64 {
    /// Evaluates a polynomial whose coefficients are given lowest power first.
    fn poly(coefficients: &[f64], x: f64) -> f64 {
        coefficients.iter().rev().fold(0.0, |acc, c| acc * x + c)
    }
    const A: [f64; 8] = [
        3.387_132_872_796_366_608,
        1.331_416_678_917_843_774_5e2,
        1.971_590_950_306_551_442_7e3,
        1.373_169_376_550_946_112_5e4,
        4.592_195_393_154_987_145_7e4,
        6.726_577_092_700_870_085_3e4,
        3.343_057_558_358_812_810_5e4,
        2.509_080_928_730_122_672_7e3,
    ];
    const B: [f64; 8] = [
        1.0,
        4.231_333_070_160_091_125_2e1,
        6.871_870_074_920_579_083e2,
        5.394_196_021_424_751_107_7e3,
        2.121_379_430_158_659_586_7e4,
        3.930_789_580_009_271_061e4,
        2.872_908_573_572_194_267_4e4,
        5.226_495_278_852_854_561e3,
    ];
    const C: [f64; 8] = [
        1.423_437_110_749_683_577_34,
        4.630_337_846_156_545_295_9,
        5.769_497_221_460_691_405_5,
        3.647_848_324_763_204_605_04,
        1.270_458_252_452_368_382_58,
        2.417_807_251_774_506_117_7e-1,
        2.272_384_498_926_918_458_33e-2,
        7.745_450_142_783_414_076_4e-4,
    ];
    const D: [f64; 8] = [
        1.0,
        2.053_191_626_637_758_821_87,
        1.676_384_830_183_803_849_4,
        6.897_673_349_851_000_045_5e-1,
        1.481_039_764_274_800_745_9e-1,
        1.519_866_656_361_645_719_66e-2,
        5.475_938_084_995_344_946e-4,
        1.050_750_071_644_416_843_24e-9,
    ];
    const E: [f64; 8] = [
        6.657_904_643_501_103_777_2,
        5.463_784_911_164_114_369_9,
        1.784_826_539_917_291_335_8,
        2.965_605_718_285_048_912_3e-1,
        2.653_218_952_657_612_309_3e-2,
        1.242_660_947_388_078_438_6e-3,
        2.711_555_568_743_487_578_15e-5,
        2.010_334_399_292_288_132_65e-7,
    ];
    const F: [f64; 8] = [
        1.0,
        5.998_322_065_558_879_376_9e-1,
        1.369_298_809_227_358_053_1e-1,
        1.487_536_129_085_061_485_25e-2,
        7.868_691_311_456_132_591e-4,
        1.846_318_317_510_054_681_8e-5,
        1.421_511_758_316_445_888_7e-7,
        2.044_263_103_389_939_785_64e-15,
    ];
    let q = p - 0.5;
    if q.abs() <= 0.425 {
        let r = 0.180_625 - q * q;
        return q * poly(&A, r) / poly(&B, r);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let magnitude = if r <= 5.0 {
        let r = r - 1.6;
        poly(&C, r) / poly(&D, r)
    } else {
        let r = r - 5.0;
        poly(&E, r) / poly(&F, r)
    };
    if q < 0.0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcomes(failures: u64, attempts: u64) -> FlowOutcomes {
        FlowOutcomes {
            successes: attempts - failures,
            failures,
        }
    }

    /// z of a two-sided 95 % interval.
    fn z95() -> f64 {
        inverse_normal_cdf(0.975)
    }

    /// Published values are rounded to four decimals: equal when ours rounds to them.
    fn assert_rounds_to(actual: f64, published: f64, what: &str) {
        assert!(
            (actual - published).abs() <= 0.00005 + 1e-12,
            "{what}: {actual} does not round to {published}"
        );
    }

    fn limits(min_attempts: u64, max_increase: f64, confidence: f64) -> GuardLimits {
        GuardLimits {
            min_attempts,
            max_failure_rate_increase: max_increase,
            confidence: Confidence::new(confidence).unwrap(),
        }
    }

    #[test]
    fn the_normal_quantile_matches_reference_values_in_every_range_of_as241() {
        // Reference quantiles (R's qnorm, Python's statistics.NormalDist): one point in each
        // of AS241's three ranges and both tails; this checks the transcribed coefficients.
        let known = [
            (0.5, 0.0),
            (0.75, 0.674_489_750_196_081_7),
            (0.9, 1.281_551_565_544_600_5),
            (0.95, 1.644_853_626_951_472_2),
            (0.975, 1.959_963_984_540_054),
            (0.99, 2.326_347_874_040_840_8),
            (0.999, 3.090_232_306_167_813_5),
            (1e-10, -6.361_340_902_404_056),
            (1e-15, -7.941_345_326_170_995),
        ];
        for (p, z) in known {
            let got = inverse_normal_cdf(p);
            assert!(
                (got - z).abs() <= 1e-12 * z.abs().max(1.0),
                "Φ⁻¹({p}) = {got}, not {z}"
            );
            // (1 − p is exact enough in f64 only away from the far tails.)
            if p >= 1e-3 {
                assert!(
                    (inverse_normal_cdf(1.0 - p) + got).abs() < 1e-12,
                    "symmetry at {p}"
                );
            }
        }
    }

    #[test]
    fn a_confidence_is_strictly_between_one_half_and_one() {
        for level in [0.5, 1.0, 0.0, -0.9, 1.5, f64::NAN, f64::INFINITY] {
            assert_eq!(Confidence::new(level), None, "{level}");
        }
        let c = Confidence::new(0.95).unwrap();
        assert_eq!(c.level(), 0.95);
        assert!((c.z() - 1.644_853_626_951_472_2).abs() < 1e-12);
    }

    #[test]
    fn wilson_intervals_match_newcombes_published_single_proportion_examples() {
        // Newcombe (1998), "Two-sided confidence intervals for the single proportion:
        // comparison of seven methods", Statistics in Medicine 17:857–872, method 3 (score).
        for (failures, attempts, lower, upper) in
            [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605)]
        {
            let w = outcomes(failures, attempts).wilson(z95()).unwrap();
            let what = format!("{failures}/{attempts}");
            assert_rounds_to(w.lower(), lower, &what);
            assert_rounds_to(w.upper(), upper, &what);
        }
    }

    #[test]
    fn newcombe_intervals_match_the_published_method_10_examples() {
        // Newcombe (1998), Statistics in Medicine 17:873–890, Table II, method 10, 95 %:
        // (a), (b) as also checked by the R package propint's tests; (d) as in the R package
        // ratesci's tests ("Newcombe RD example (d)", square-and-add); (e)–(h) at the
        // boundaries, where the bounds are the Wilson bounds of 0/10 (0.2775) and 0/20
        // (0.1611) themselves; all eight as statsmodels' `newcomb` method gives them too.
        // (For (d), (−0.0326, 0.1933) — seen quoted as Newcombe's — is the Miettinen–Nurminen
        // score interval of the same table, as ratesci's tests list it: another method.)
        let table = [
            ((56, 70), (48, 80), 0.0524, 0.3339),
            ((9, 10), (3, 10), 0.1705, 0.8090),
            ((6, 7), (2, 7), 0.0582, 0.8062),
            ((5, 56), (0, 29), -0.0381, 0.1926),
            ((0, 10), (0, 20), -0.1611, 0.2775),
            ((0, 10), (0, 10), -0.2775, 0.2775),
            ((10, 10), (0, 20), 0.6791, 1.0000),
            ((10, 10), (0, 10), 0.6075, 1.0000),
        ];
        for ((x1, n1), (x2, n2), lower, upper) in table {
            let i = newcombe_interval(outcomes(x1, n1), outcomes(x2, n2), z95()).unwrap();
            let what = format!("{x1}/{n1} − {x2}/{n2}");
            assert_rounds_to(i.lower, lower, &what);
            assert_rounds_to(i.upper, upper, &what);
        }
    }

    #[test]
    fn the_bounds_agree_with_an_independent_implementation_to_twelve_digits() {
        // statsmodels 0.15.0, confint_proportions_2indep(x1, n1, x2, n2, method="newcomb",
        // compare="diff", alpha): one-sided at c is alpha = 2(1 − c). (Generated once in a
        // throw-away venv; statsmodels is not part of the suite.)
        let vectors = [
            ((45, 300), (6, 300), 0.95, 9.424_503_112_346_457),
            ((45, 300), (6, 300), 0.99, 7.918_535_982_619_926),
            ((20, 300), (6, 300), 0.95, 1.960_392_700_464_502_8),
            ((22, 300), (6, 300), 0.99, 1.305_987_239_862_442),
            ((6, 7), (2, 7), 0.975, 5.822_792_748_231_209),
            ((5, 56), (0, 29), 0.975, -3.813_714_790_353_693_6),
            (
                (21_000_000, 1_000_000_000),
                (20_000_000, 1_000_000_000),
                0.95,
                0.098_957_639_653_583_78,
            ),
        ];
        for ((x1, n1), (x2, n2), confidence, expected) in vectors {
            let bound = increase_lower_bound(
                outcomes(x1, n1),
                outcomes(x2, n2),
                Confidence::new(confidence).unwrap(),
            )
            .unwrap();
            assert!(
                (bound - expected).abs() <= 1e-12 * expected.abs().max(1.0),
                "{x1}/{n1} − {x2}/{n2} at {confidence}: {bound}, not {expected}"
            );
        }
    }

    #[test]
    fn a_one_sided_bound_at_c_is_the_lower_end_of_the_two_sided_interval_at_2c_minus_1() {
        let (a, b) = (outcomes(56, 70), outcomes(48, 80));
        let one_sided = increase_lower_bound(a, b, Confidence::new(0.975).unwrap()).unwrap();
        let two_sided = newcombe_interval(a, b, z95()).unwrap();
        assert!((one_sided - 100.0 * two_sided.lower).abs() < 1e-12);
        assert_rounds_to(one_sided / 100.0, 0.0524, "56/70 − 48/80");
    }

    #[test]
    fn the_spec_example_trips_at_95_percent_and_equal_rates_do_not() {
        // SPEC §9: 300 legacy attempts at 2 % failure, 300 Stytch attempts at 15 %.
        let legacy = outcomes(6, 300);
        let stytch = outcomes(45, 300);
        let verdict = GuardVerdict::of(stytch, legacy, &limits(200, 2.0, 0.95));
        assert_eq!(verdict.state, GuardState::Tripped);
        let bound = verdict.increase_lower_bound_points.unwrap();
        // The README's worked example: Wilson 11.92 % below 15 %, 3.82 % above 2 %.
        assert!((bound - 9.4245).abs() < 0.0005, "{bound}");
        assert_eq!(verdict.stytch.attempts, 300);
        assert_eq!(verdict.stytch.failures, 45);
        assert!((verdict.stytch.failure_rate_percent.unwrap() - 15.0).abs() < 1e-9);
        assert!((verdict.legacy.failure_rate_percent.unwrap() - 2.0).abs() < 1e-9);
        let stytch_wilson = stytch.wilson(Confidence::new(0.95).unwrap().z()).unwrap();
        assert_rounds_to(stytch_wilson.lower(), 0.1192, "45/300");
        let legacy_wilson = legacy.wilson(Confidence::new(0.95).unwrap().z()).unwrap();
        assert_rounds_to(legacy_wilson.upper(), 0.0382, "6/300");

        for failures in [0, 6, 45, 300] {
            let same = outcomes(failures, 300);
            let verdict = GuardVerdict::of(same, same, &limits(200, 2.0, 0.95));
            assert_eq!(verdict.state, GuardState::Watching, "{failures}/300 each");
            assert!(verdict.increase_lower_bound_points.unwrap() <= 0.0);
        }
    }

    #[test]
    fn the_verdict_flips_where_the_bound_crosses_the_allowed_increase() {
        // 300 attempts each, legacy failing 6: the bound passes 2.0 points between 20 and
        // 21 Stytch failures (1.96 and 2.25 points).
        let legacy = outcomes(6, 300);
        let at =
            |failures| GuardVerdict::of(outcomes(failures, 300), legacy, &limits(200, 2.0, 0.95));
        assert_eq!(at(20).state, GuardState::Watching);
        assert!((at(20).increase_lower_bound_points.unwrap() - 1.960).abs() < 0.001);
        assert_eq!(at(21).state, GuardState::Tripped);
        assert!((at(21).increase_lower_bound_points.unwrap() - 2.252).abs() < 0.001);
        // The bound grows with every extra Stytch failure.
        let bounds: Vec<f64> = (0..=300)
            .map(|f| at(f).increase_lower_bound_points.unwrap())
            .collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_higher_confidence_needs_stronger_evidence_to_trip() {
        // 22 of 300 Stytch attempts fail (7.3 %), 6 of 300 legacy (2 %).
        let (stytch, legacy) = (outcomes(22, 300), outcomes(6, 300));
        let at_95 = GuardVerdict::of(stytch, legacy, &limits(200, 2.0, 0.95));
        let at_99 = GuardVerdict::of(stytch, legacy, &limits(200, 2.0, 0.99));
        assert_eq!(at_95.state, GuardState::Tripped);
        assert_eq!(at_99.state, GuardState::Watching);
        assert!((at_95.increase_lower_bound_points.unwrap() - 2.545).abs() < 0.001);
        assert!((at_99.increase_lower_bound_points.unwrap() - 1.306).abs() < 0.001);
        assert_eq!(at_99.confidence, 0.99);
    }

    #[test]
    fn too_few_attempts_in_either_flow_is_insufficient_data_however_bad_the_rate() {
        let all_failing = outcomes(199, 199);
        let fine = outcomes(0, 10_000);
        for (stytch, legacy) in [
            (all_failing, fine),
            (outcomes(150, 10_000), outcomes(0, 199)),
        ] {
            let verdict = GuardVerdict::of(stytch, legacy, &limits(200, 2.0, 0.95));
            assert_eq!(verdict.state, GuardState::InsufficientData);
            assert_eq!(verdict.increase_lower_bound_points, None);
            assert_eq!(verdict.stytch.attempts, stytch.attempts());
        }
        // Exactly min_attempts is enough.
        let verdict = GuardVerdict::of(
            outcomes(200, 200),
            outcomes(0, 200),
            &limits(200, 2.0, 0.95),
        );
        assert_eq!(verdict.state, GuardState::Tripped);
        // No attempts at all is never enough, even with min_attempts 0; no rate is shown.
        let verdict = GuardVerdict::of(outcomes(0, 0), outcomes(0, 5), &limits(0, 2.0, 0.95));
        assert_eq!(verdict.state, GuardState::InsufficientData);
        assert_eq!(verdict.stytch.failure_rate_percent, None);
        assert_eq!(verdict.legacy.failure_rate_percent, Some(0.0));
    }

    #[test]
    fn no_failures_anywhere_and_failures_everywhere_never_trip() {
        for failures in [0, 1000] {
            let flow = outcomes(failures, 1000);
            let verdict = GuardVerdict::of(flow, flow, &limits(200, 0.0, 0.95));
            assert_eq!(verdict.state, GuardState::Watching, "{failures}/1000 each");
            let bound = verdict.increase_lower_bound_points.unwrap();
            assert!(bound < 0.0 && bound > -1.0, "{bound}");
        }
    }

    #[test]
    fn every_stytch_attempt_failing_against_none_in_legacy_trips_with_a_bound_below_100() {
        let verdict = GuardVerdict::of(
            outcomes(1000, 1000),
            outcomes(0, 1000),
            &limits(200, 50.0, 0.99),
        );
        assert_eq!(verdict.state, GuardState::Tripped);
        let bound = verdict.increase_lower_bound_points.unwrap();
        assert!(bound > 98.0 && bound < 100.0, "{bound}");
        let interval = newcombe_interval(outcomes(1000, 1000), outcomes(0, 1000), 2.0).unwrap();
        assert_eq!(interval.upper, 1.0);
    }

    #[test]
    fn with_a_billion_attempts_the_bound_agrees_with_the_normal_approximation() {
        // For large samples the Wilson and Newcombe intervals become the textbook (Wald) one:
        // (p₁ − p₂) − z √(p₁q₁/n₁ + p₂q₂/n₂). 2.1 % against 2.0 %, a billion attempts each.
        let n = 1_000_000_000u64;
        let (stytch, legacy) = (outcomes(21_000_000, n), outcomes(20_000_000, n));
        let confidence = Confidence::new(0.95).unwrap();
        let bound = increase_lower_bound(stytch, legacy, confidence).unwrap();
        let z = confidence.z();
        let wald = 100.0 * (0.001 - z * (0.021 * 0.979 / n as f64 + 0.02 * 0.98 / n as f64).sqrt());
        assert!((bound - wald).abs() < 1e-6, "{bound} vs {wald}");
        assert!((bound - 0.098_957_64).abs() < 1e-6, "{bound}");
        let verdict = GuardVerdict::of(stytch, legacy, &limits(200, 0.05, 0.95));
        assert_eq!(verdict.state, GuardState::Tripped);
        // Equal rates stay within a thousandth of a point below zero.
        let equal = increase_lower_bound(legacy, legacy, confidence).unwrap();
        assert!(equal < 0.0 && equal > -0.002, "{equal}");
        // Counts near the top of u64 neither overflow nor lose the answer.
        let huge = FlowOutcomes {
            successes: u64::MAX - 10,
            failures: 10,
        };
        let bound = increase_lower_bound(huge, huge, confidence).unwrap();
        assert!(bound.is_finite() && bound <= 0.0, "{bound}");
    }

    #[test]
    fn the_verdict_serialises_with_its_state_counts_rates_and_bound() {
        let verdict =
            GuardVerdict::of(outcomes(45, 300), outcomes(6, 300), &limits(200, 2.0, 0.95));
        let json = serde_json::to_value(verdict).unwrap();
        assert_eq!(json["state"], "tripped");
        assert_eq!(json["stytch"]["attempts"], 300);
        assert_eq!(json["stytch"]["failures"], 45);
        assert_eq!(json["legacy"]["failure_rate_percent"], 2.0);
        assert!(json["increase_lower_bound_points"].as_f64().unwrap() > 9.0);
        assert_eq!(json["max_failure_rate_increase"], 2.0);
        assert_eq!(json["confidence"], 0.95);
        let waiting = GuardVerdict::of(outcomes(1, 3), outcomes(0, 3), &limits(200, 2.0, 0.95));
        assert_eq!(
            serde_json::to_value(waiting).unwrap()["state"],
            "insufficient_data"
        );
    }
}
