//! Signing and checking the sticky and override cookies (HMAC-SHA256).
//!
//! Formats (the signature covers everything before the last `.`):
//! - sticky:   `s1.<rollout>.<epoch>.<bucket>.<0|1>.<sig>` — the device's bucket and whether
//!   it has been sent to Stytch;
//! - override: `o1.<rollout>.<epoch>.<flow>.<expires_unix>.<sig>`.
//!
//! `<sig>` is base64url without padding. A cookie that fails any check is rejected with a
//! reason, never an error: the caller ignores it and counts it. This module knows nothing of
//! HTTP; it must never log cookie values or the secret.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::rules::{Flow, StickyState};

type HmacSha256 = Hmac<Sha256>;

/// Why a cookie was ignored (the `reason` label of `switchyard_cookies_rejected_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    /// Not in the expected format.
    Malformed,
    /// The signature does not match: forged or tampered with.
    BadSignature,
    /// Signed for another rollout.
    OtherRollout,
    /// Signed for an earlier (or later) epoch of this rollout.
    OtherEpoch,
    /// An override cookie past its expiry.
    Expired,
}

impl Rejection {
    pub const ALL: [Rejection; 5] = [
        Rejection::Malformed,
        Rejection::BadSignature,
        Rejection::OtherRollout,
        Rejection::OtherEpoch,
        Rejection::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::BadSignature => "bad_signature",
            Rejection::OtherRollout => "other_rollout",
            Rejection::OtherEpoch => "other_epoch",
            Rejection::Expired => "expired",
        }
    }
}

/// Signs and verifies cookies with one secret. Cheap to clone; holds the keyed HMAC state.
#[derive(Clone)]
pub struct CookieSigner {
    mac: HmacSha256,
}

impl std::fmt::Debug for CookieSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieSigner([REDACTED])")
    }
}

const STICKY_TAG: &str = "s1";
const OVERRIDE_TAG: &str = "o1";
/// Longest cookie value we look at; anything longer is malformed.
const MAX_LEN: usize = 512;
/// A signature's length: 32 bytes in base64url without padding.
const SIGNATURE_LEN: usize = 43;

impl CookieSigner {
    pub fn new(secret: &[u8]) -> CookieSigner {
        CookieSigner {
            mac: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"),
        }
    }

    /// Appends `.<signature of everything in value so far>` to `value`.
    fn sign_in_place(&self, mut value: String) -> String {
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        value.push('.');
        URL_SAFE_NO_PAD.encode_string(mac.finalize().into_bytes(), &mut value);
        value
    }

    /// Splits `value` into payload and signature and checks the signature in constant time.
    fn verified_payload<'v>(&self, value: &'v str) -> Result<&'v str, Rejection> {
        if value.len() > MAX_LEN {
            return Err(Rejection::Malformed);
        }
        // The signature is the last SIGNATURE_LEN characters, after a `.`; anything else is
        // malformed (a shorter or longer one, or one holding a `.`, cannot decode to 32 bytes).
        let dot = value
            .len()
            .checked_sub(SIGNATURE_LEN + 1)
            .filter(|&i| value.as_bytes()[i] == b'.')
            .ok_or(Rejection::Malformed)?;
        let (payload, sig) = (&value[..dot], &value[dot + 1..]);
        let mut raw = [0u8; 33];
        let n = URL_SAFE_NO_PAD
            .decode_slice(sig, &mut raw)
            .map_err(|_| Rejection::Malformed)?;
        if n != 32 {
            return Err(Rejection::Malformed);
        }
        let mut mac = self.mac.clone();
        mac.update(payload.as_bytes());
        mac.verify_slice(&raw[..n])
            .map_err(|_| Rejection::BadSignature)?;
        Ok(payload)
    }

    pub fn sign_sticky(&self, rollout: &str, epoch: u64, state: StickyState) -> String {
        // One allocation: payload, then the signature appended in place (no `fmt`: hot path).
        let mut value = String::with_capacity(rollout.len() + 72);
        value.push_str(STICKY_TAG);
        value.push('.');
        value.push_str(rollout);
        value.push('.');
        value.push_str(itoa::Buffer::new().format(epoch));
        value.push('.');
        value.push_str(itoa::Buffer::new().format(state.bucket));
        value.push_str(if state.stytch { ".1" } else { ".0" });
        self.sign_in_place(value)
    }

    pub fn verify_sticky(
        &self,
        value: &str,
        rollout: &str,
        epoch: u64,
    ) -> Result<StickyState, Rejection> {
        let [bucket, flag] = self.bound_fields(value, STICKY_TAG, rollout, epoch)?;
        let bucket: u16 = bucket.parse().map_err(|_| Rejection::Malformed)?;
        if bucket >= crate::rules::bucket::BUCKETS {
            return Err(Rejection::Malformed);
        }
        let stytch = match flag {
            "0" => false,
            "1" => true,
            _ => return Err(Rejection::Malformed),
        };
        Ok(StickyState { bucket, stytch })
    }

    pub fn sign_override(&self, rollout: &str, epoch: u64, flow: Flow, expires_at: i64) -> String {
        let payload = format!(
            "{OVERRIDE_TAG}.{rollout}.{epoch}.{}.{expires_at}",
            flow.as_str()
        );
        self.sign_in_place(payload)
    }

    /// `now` is unix seconds.
    pub fn verify_override(
        &self,
        value: &str,
        rollout: &str,
        epoch: u64,
        now: i64,
    ) -> Result<Flow, Rejection> {
        let [flow, expires] = self.bound_fields(value, OVERRIDE_TAG, rollout, epoch)?;
        let flow = Flow::parse(flow).ok_or(Rejection::Malformed)?;
        let expires: i64 = expires.parse().map_err(|_| Rejection::Malformed)?;
        if now >= expires {
            return Err(Rejection::Expired);
        }
        Ok(flow)
    }
}

impl CookieSigner {
    /// Checks the signature, the tag and the binding to `rollout` and `epoch` of a cookie
    /// `<tag>.<rollout>.<epoch>.<a>.<b>.<sig>`, and returns `[a, b]`.
    fn bound_fields<'v>(
        &self,
        value: &'v str,
        tag: &str,
        rollout: &str,
        epoch: u64,
    ) -> Result<[&'v str; 2], Rejection> {
        let payload = self.verified_payload(value)?;
        match crate::text::split_exactly::<5>(payload, b'.') {
            Some([t, key, ep, a, b]) if t == tag => {
                check_binding(key, ep, rollout, epoch)?;
                Ok([a, b])
            }
            _ => Err(Rejection::Malformed),
        }
    }
}

fn check_binding(key: &str, epoch_text: &str, rollout: &str, epoch: u64) -> Result<(), Rejection> {
    if key != rollout {
        return Err(Rejection::OtherRollout);
    }
    let signed_epoch: u64 = epoch_text.parse().map_err(|_| Rejection::Malformed)?;
    if signed_epoch != epoch {
        return Err(Rejection::OtherEpoch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> CookieSigner {
        CookieSigner::new(b"a test secret that is long enough!!")
    }

    #[test]
    fn sticky_round_trips_and_is_bound() {
        let s = signer();
        let state = StickyState {
            bucket: 1234,
            stytch: true,
        };
        let v = s.sign_sticky("stytch-login", 3, state);
        assert_eq!(s.verify_sticky(&v, "stytch-login", 3), Ok(state));
        assert_eq!(
            s.verify_sticky(&v, "other", 3),
            Err(Rejection::OtherRollout)
        );
        assert_eq!(
            s.verify_sticky(&v, "stytch-login", 4),
            Err(Rejection::OtherEpoch)
        );
        let tampered = v.replacen(".1234.", ".0001.", 1);
        assert_eq!(
            s.verify_sticky(&tampered, "stytch-login", 3),
            Err(Rejection::BadSignature)
        );
        let other_key = CookieSigner::new(b"another secret, also long enough!!");
        assert_eq!(
            other_key.verify_sticky(&v, "stytch-login", 3),
            Err(Rejection::BadSignature)
        );
        for garbage in ["", "x", "a.b", "s1.k.1.2.1.!!!!", &"z".repeat(600)] {
            assert_eq!(
                s.verify_sticky(garbage, "stytch-login", 3),
                Err(Rejection::Malformed),
                "{garbage}"
            );
        }
    }

    #[test]
    fn an_override_cookie_is_not_a_sticky_cookie() {
        let s = signer();
        let o = s.sign_override("stytch-login", 1, Flow::Stytch, 2_000_000_000);
        assert_eq!(
            s.verify_sticky(&o, "stytch-login", 1),
            Err(Rejection::Malformed)
        );
        assert_eq!(
            s.verify_override(&o, "stytch-login", 1, 1_000_000_000),
            Ok(Flow::Stytch)
        );
        assert_eq!(
            s.verify_override(&o, "stytch-login", 1, 2_000_000_000),
            Err(Rejection::Expired)
        );
    }

    mod properties {
        //! Property tests: no input makes verification panic, and no cookie but the one
        //! signed — with this secret, for this rollout and epoch — is ever accepted.
        use proptest::prelude::*;

        use super::*;

        const ROLLOUT: &str = "[a-z0-9][a-z0-9_-]{0,63}";

        fn sticky_state() -> impl Strategy<Value = StickyState> {
            (0..crate::rules::bucket::BUCKETS, any::<bool>())
                .prop_map(|(bucket, stytch)| StickyState { bucket, stytch })
        }

        fn flow() -> impl Strategy<Value = Flow> {
            prop_oneof![Just(Flow::Stytch), Just(Flow::Legacy)]
        }

        /// `value` with the byte at `at` (modulo its length) replaced by another printable
        /// ASCII byte, or `None` when that is not possible.
        fn altered(value: &str, at: usize, to: u8) -> String {
            let mut bytes = value.as_bytes().to_vec();
            let i = at % bytes.len();
            bytes[i] = if bytes[i] == to {
                b'!' + (to - b'!' + 1) % 94
            } else {
                to
            };
            String::from_utf8(bytes).expect("ASCII in, ASCII out")
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            #[test]
            fn any_text_is_rejected_without_a_panic(value in any::<String>(), epoch in any::<u64>()) {
                let s = signer();
                prop_assert!(s.verify_sticky(&value, "stytch-login", epoch).is_err());
                prop_assert!(s.verify_override(&value, "stytch-login", epoch, 0).is_err());
            }

            #[test]
            fn text_shaped_like_a_cookie_is_rejected_without_a_panic(
                value in "(s1|o1)\\.[a-z0-9.-]{0,20}\\.[0-9]{0,20}\\.[a-z0-9]{0,12}\\.[0-9-]{0,20}\\.[A-Za-z0-9_=-]{0,50}",
            ) {
                let s = signer();
                prop_assert!(s.verify_sticky(&value, "stytch-login", 1).is_err());
                prop_assert!(s.verify_override(&value, "stytch-login", 1, 0).is_err());
            }

            #[test]
            fn a_sticky_cookie_altered_in_any_byte_is_never_accepted(
                rollout in ROLLOUT, epoch in any::<u64>(), state in sticky_state(),
                at in any::<usize>(), to in b'!'..=b'~',
            ) {
                let s = signer();
                let value = s.sign_sticky(&rollout, epoch, state);
                prop_assert_eq!(s.verify_sticky(&value, &rollout, epoch), Ok(state));
                let forged = altered(&value, at, to);
                prop_assert!(s.verify_sticky(&forged, &rollout, epoch).is_err(), "{forged} accepted");
                prop_assert!(s.verify_sticky(&value[..value.len() - 1], &rollout, epoch).is_err());
            }

            #[test]
            fn a_sticky_cookie_counts_only_for_its_secret_rollout_and_epoch(
                rollout in ROLLOUT, other in ROLLOUT, epoch in any::<u64>(),
                other_epoch in any::<u64>(), state in sticky_state(), secret in any::<[u8; 32]>(),
            ) {
                let s = signer();
                let value = s.sign_sticky(&rollout, epoch, state);
                let stranger = CookieSigner::new(&secret);
                prop_assert_eq!(stranger.verify_sticky(&value, &rollout, epoch), Err(Rejection::BadSignature));
                let theirs = stranger.sign_sticky(&rollout, epoch, state);
                prop_assert_eq!(s.verify_sticky(&theirs, &rollout, epoch), Err(Rejection::BadSignature));
                if other != rollout {
                    prop_assert_eq!(s.verify_sticky(&value, &other, epoch), Err(Rejection::OtherRollout));
                }
                if other_epoch != epoch {
                    prop_assert_eq!(s.verify_sticky(&value, &rollout, other_epoch), Err(Rejection::OtherEpoch));
                }
                prop_assert!(s.verify_override(&value, &rollout, epoch, 0).is_err());
            }

            #[test]
            fn an_override_cookie_altered_or_misplaced_is_never_accepted(
                rollout in ROLLOUT, other in ROLLOUT, epoch in any::<u64>(), other_epoch in any::<u64>(),
                flow in flow(), expires in 1..i64::MAX, at in any::<usize>(), to in b'!'..=b'~',
                secret in any::<[u8; 32]>(),
            ) {
                let s = signer();
                let value = s.sign_override(&rollout, epoch, flow, expires);
                prop_assert_eq!(s.verify_override(&value, &rollout, epoch, expires - 1), Ok(flow));
                prop_assert_eq!(s.verify_override(&value, &rollout, epoch, expires), Err(Rejection::Expired));
                let forged = altered(&value, at, to);
                prop_assert!(s.verify_override(&forged, &rollout, epoch, expires - 1).is_err(), "{forged} accepted");
                let stranger = CookieSigner::new(&secret);
                prop_assert_eq!(stranger.verify_override(&value, &rollout, epoch, 0), Err(Rejection::BadSignature));
                if other != rollout {
                    prop_assert_eq!(s.verify_override(&value, &other, epoch, 0), Err(Rejection::OtherRollout));
                }
                if other_epoch != epoch {
                    prop_assert_eq!(s.verify_override(&value, &rollout, other_epoch, 0), Err(Rejection::OtherEpoch));
                }
                prop_assert!(s.verify_sticky(&value, &rollout, epoch).is_err());
            }
        }
    }
}
