//! The frozen bucketing formula of SPEC §2. Changing anything here moves users between flows.
//!
//! ```text
//! h      = xxh3_64( utf8(salt) ++ ":" ++ utf8(key) )     XXH3 64-bit, seed 0
//! bucket = (h * 10000) >> 64                              128-bit product: 0..=9999
//! stytch ⇔ bucket < percentage in basis points
//! ```

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

/// A percentage with two decimals, as basis points: `25.0 %` is `2500`, `100 %` is `10000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BasisPoints(u16);

impl BasisPoints {
    pub const ZERO: BasisPoints = BasisPoints(0);
    pub const ALL: BasisPoints = BasisPoints(10_000);

    pub fn new(points: u16) -> Option<BasisPoints> {
        (points <= 10_000).then_some(BasisPoints(points))
    }

    /// `None` unless `percent` is within 0..=100 and has at most two decimals.
    pub fn from_percent(percent: f64) -> Option<BasisPoints> {
        if !percent.is_finite() || !(0.0..=100.0).contains(&percent) {
            return None;
        }
        let scaled = percent * 100.0;
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 {
            return None;
        }
        BasisPoints::new(rounded as u16)
    }

    pub fn get(self) -> u16 {
        self.0
    }

    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// Whether a bucket falls inside this share.
    pub fn admits(self, bucket: u16) -> bool {
        bucket < self.0
    }
}

/// The number of buckets: buckets are `0..BUCKETS`.
pub const BUCKETS: u16 = 10_000;

/// The bucket (0..=9999) of `key` under `salt`.
pub fn bucket_of(salt: &str, key: &str) -> u16 {
    bucket_from_hash(hash_of(salt, key))
}

fn hash_of(salt: &str, key: &str) -> u64 {
    // Hash `salt ++ ":" ++ key` without allocating: short inputs are joined on the stack.
    const STACK: usize = 192;
    let len = salt.len() + 1 + key.len();
    if len <= STACK {
        let mut buf = [0u8; STACK];
        buf[..salt.len()].copy_from_slice(salt.as_bytes());
        buf[salt.len()] = b':';
        buf[salt.len() + 1..len].copy_from_slice(key.as_bytes());
        xxh3_64(&buf[..len])
    } else {
        let mut hasher = Xxh3::new();
        hasher.update(salt.as_bytes());
        hasher.update(b":");
        hasher.update(key.as_bytes());
        hasher.digest()
    }
}

fn bucket_from_hash(h: u64) -> u16 {
    ((u128::from(h) * u128::from(BUCKETS)) >> 64) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_inputs_hash_like_the_joined_string() {
        let salt = "s".repeat(100);
        let key = "k".repeat(300);
        let joined = format!("{salt}:{key}");
        assert_eq!(hash_of(&salt, &key), xxh3_64(joined.as_bytes()));
        assert_eq!(hash_of("abc", "x"), xxh3_64(b"abc:x"));
    }

    /// Golden vectors computed independently (Python `xxhash.xxh3_64_intdigest`, then
    /// `(h * 10000) >> 64`). If one of these changes, users move between flows.
    #[test]
    fn golden_vectors_are_frozen() {
        let long_salt = "x".repeat(64);
        let long_key = "k".repeat(300);
        let cases: [(&str, &str, u64, u16); 8] = [
            ("3f1c8a", "alice@example.com", 16739227303856796791, 9074),
            ("3f1c8a", "bob@example.com", 7433854354358128164, 4029),
            ("3f1c8a", "d-81f2", 15753463023100030517, 8539),
            ("salt", "user-1", 11330119643356416095, 6142),
            ("salt", "", 11103986784350159530, 6019),
            ("A_b-9", "ünïcødé@example.com", 5013473671443498070, 2717),
            (&long_salt, &long_key, 16033237366956582489, 8691),
            (
                "Pz8UIMrSr97Z",
                "alice@example.com",
                15544229107761597536,
                8426,
            ),
        ];
        for (salt, key, hash, bucket) in cases {
            assert_eq!(hash_of(salt, key), hash, "hash of {salt:?}:{key:?}");
            assert_eq!(bucket_of(salt, key), bucket, "bucket of {salt:?}:{key:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_same_inputs_always_give_the_same_bucket(salt in "[A-Za-z0-9_-]{1,64}", key in ".{0,200}") {
            let b = bucket_of(&salt, &key);
            proptest::prop_assert!(b < BUCKETS);
            proptest::prop_assert_eq!(b, bucket_of(&salt, &key));
        }

        #[test]
        fn raising_the_percentage_never_moves_a_bucket_out(bucket in 0u16..BUCKETS, low in 0u16..=10_000, extra in 0u16..=10_000) {
            let low = BasisPoints::new(low).unwrap();
            let high = BasisPoints::new(low.get().saturating_add(extra).min(10_000)).unwrap();
            if low.admits(bucket) {
                proptest::prop_assert!(high.admits(bucket));
            }
        }
    }

    /// The share admitted over many keys is within statistical noise of the percentage.
    #[test]
    fn shares_are_within_noise_of_the_percentage() {
        let n = 100_000u32;
        for percent in [1.0, 10.0, 25.0, 50.0, 99.5] {
            let share = BasisPoints::from_percent(percent).unwrap();
            let admitted = (0..n)
                .filter(|i| share.admits(bucket_of("share-test", &format!("user-{i}"))))
                .count() as f64;
            let p = percent / 100.0;
            let expected = p * f64::from(n);
            // Five standard deviations of a binomial: fails by chance about once in 3.5 million.
            let tolerance = 5.0 * (f64::from(n) * p * (1.0 - p)).sqrt();
            assert!(
                (admitted - expected).abs() <= tolerance,
                "{percent} %: {admitted} admitted, expected {expected} ± {tolerance}"
            );
        }
    }

    /// Two salts bucket independently: being in the first 50 % under one salt says nothing
    /// about the other (the joint share is about 25 %).
    #[test]
    fn different_salts_bucket_independently() {
        let n = 100_000u32;
        let half = BasisPoints::from_percent(50.0).unwrap();
        let both = (0..n)
            .filter(|i| {
                let key = format!("user-{i}");
                half.admits(bucket_of("salt-a", &key)) && half.admits(bucket_of("salt-b", &key))
            })
            .count() as f64;
        let expected = 0.25 * f64::from(n);
        let tolerance = 5.0 * (f64::from(n) * 0.25 * 0.75).sqrt();
        assert!(
            (both - expected).abs() <= tolerance,
            "{both} in both halves, expected {expected}"
        );
    }

    #[test]
    fn bucket_extremes() {
        assert_eq!(bucket_from_hash(0), 0);
        assert_eq!(bucket_from_hash(u64::MAX), 9999);
        assert_eq!(bucket_from_hash(1 << 63), 5000);
    }

    #[test]
    fn percentages_convert_to_basis_points() {
        assert_eq!(BasisPoints::from_percent(25.0), BasisPoints::new(2500));
        assert_eq!(BasisPoints::from_percent(12.34), BasisPoints::new(1234));
        assert_eq!(BasisPoints::from_percent(0.07), BasisPoints::new(7));
        assert_eq!(BasisPoints::from_percent(100.0), Some(BasisPoints::ALL));
        assert_eq!(BasisPoints::from_percent(12.345), None);
        assert_eq!(BasisPoints::from_percent(-1.0), None);
        assert_eq!(BasisPoints::from_percent(100.01), None);
        assert_eq!(BasisPoints::from_percent(f64::NAN), None);
    }
}
