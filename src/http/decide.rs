//! `POST /v1/decide`: parse the request (borrowing from the body), call the decider, write the
//! answer. Thin on purpose; the logic is in `crate::decider`.

use std::borrow::Cow;
use std::net::IpAddr;

use actix_web::{web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::auth::{Authorized, DecideScope};
use super::body::{parse, JsonBytes};
use super::error::ApiError;
use super::AppState;
use crate::decider::{CookieJar, DecideInput, Decided};

/// A string of the request body: borrowed from it unless it had escapes to undo. (serde
/// borrows a `Cow<str>` only as a direct field marked `borrow`, not inside an `Option` or a
/// map, hence this newtype.)
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

/// The body of `POST /v1/decide` (SPEC §4), borrowed from the request's bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest<'a> {
    #[serde(borrow)]
    pub rollout: Text<'a>,
    #[serde(borrow, default)]
    pub user_key: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub device_id: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub ip: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub country: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub platform: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub app_version: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub session_token: Option<Text<'a>>,
    #[serde(borrow, default)]
    pub cookies: Cookies<'a>,
}

/// The request's cookies as sent: a handful of pairs, looked up by a scan (no hash map to
/// build per request).
#[derive(Default)]
pub struct Cookies<'a>(pub Vec<(Text<'a>, Text<'a>)>);

impl CookieJar for Cookies<'_> {
    fn cookie(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, v)| &**v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Cookies<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Pairs<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Pairs<'a> {
            type Value = Cookies<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of cookie names to values")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(2).min(16));
                while let Some((name, value)) = map.next_entry::<Text<'a>, Text<'a>>()? {
                    pairs.push((name, value));
                }
                Ok(Cookies(pairs))
            }
        }
        deserializer.deserialize_map(Pairs(std::marker::PhantomData))
    }
}

#[derive(Serialize)]
pub struct SetCookieBody<'a> {
    pub name: &'a str,
    pub value: &'a str,
    pub max_age_seconds: u64,
}

#[derive(Serialize)]
pub struct SessionBody {
    pub source: &'static str,
    pub action: &'static str,
}

#[derive(Serialize)]
/// The answer of `POST /v1/decide` (SPEC §4).
pub struct DecideResponse<'a> {
    pub rollout: &'a str,
    pub flow: &'static str,
    pub reason: &'static str,
    pub rule: Option<&'a str>,
    pub bucket: u16,
    pub version: u64,
    pub set_cookie: Option<SetCookieBody<'a>>,
    pub session: SessionBody,
}

impl DecideResponse<'_> {
    /// The answer as JSON, written by hand: the decide route's hottest bytes. Exactly what
    /// serde's derive writes (a unit test holds them equal); a string that would need escaping
    /// is handed to serde_json.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(320);
        out.extend_from_slice(b"{\"rollout\":");
        push_json_str(&mut out, self.rollout);
        out.extend_from_slice(b",\"flow\":");
        push_word(&mut out, self.flow);
        out.extend_from_slice(b",\"reason\":");
        push_word(&mut out, self.reason);
        out.extend_from_slice(b",\"rule\":");
        match self.rule {
            Some(rule) => push_json_str(&mut out, rule),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"bucket\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.bucket).as_bytes());
        out.extend_from_slice(b",\"version\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.version).as_bytes());
        out.extend_from_slice(b",\"set_cookie\":");
        match &self.set_cookie {
            Some(cookie) => {
                out.extend_from_slice(b"{\"name\":");
                push_json_str(&mut out, cookie.name);
                out.extend_from_slice(b",\"value\":");
                push_json_str(&mut out, cookie.value);
                out.extend_from_slice(b",\"max_age_seconds\":");
                out.extend_from_slice(
                    itoa::Buffer::new()
                        .format(cookie.max_age_seconds)
                        .as_bytes(),
                );
                out.push(b'}');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"session\":{\"source\":");
        push_word(&mut out, self.session.source);
        out.extend_from_slice(b",\"action\":");
        push_word(&mut out, self.session.action);
        out.extend_from_slice(b"}}");
        out
    }
}

/// `text` as a JSON string: as it is when nothing in it needs escaping (keys, rule ids, cookie
/// names and values, and the fixed words of the answer never do), else through serde_json.
fn push_json_str(out: &mut Vec<u8>, text: &str) {
    if !needs_escape(text.as_bytes()) {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    } else {
        serde_json::to_writer(&mut *out, text).expect("a string always serialises");
    }
}

/// One of the answer's fixed words (flow, reason, session source and action: `as_str()` of
/// enums, lowercase letters and `_`; a unit test holds every one of them to that) as a JSON
/// string, unchecked.
fn push_word(out: &mut Vec<u8>, word: &'static str) {
    debug_assert!(!needs_escape(word.as_bytes()), "{word}");
    out.push(b'"');
    out.extend_from_slice(word.as_bytes());
    out.push(b'"');
}

/// Whether JSON needs any byte of `bytes` escaped: a control character, `"` or `\\`. Eight
/// bytes at a time (the classic "has a zero byte" bit trick on each condition).
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        // A byte below 0x20, or equal to '"' (0x22) or '\\' (0x5c); bytes of 0x80 and above
        // (UTF-8) never need escaping and are masked out of the first test.
        let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGHS != 0;
        if below_space || has_zero(w ^ (ONES * 0x22)) || has_zero(w ^ (ONES * 0x5c)) {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// The longest user key or device id decide takes.
pub const MAX_KEY_BYTES: usize = 512;

/// The members of a decide request as sent, before they are checked: what both
/// `POST /v1/decide` and the OpenFeature evaluation context (`super::ofrep`) carry.
pub struct SentInput<'a, J> {
    pub rollout: &'a str,
    pub user_key: Option<&'a str>,
    pub device_id: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub country: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub app_version: Option<&'a str>,
    pub session_token: Option<&'a str>,
    pub cookies: J,
}

/// How the members are named where they came from, for the errors' field paths.
pub struct FieldNames {
    pub user_key: &'static str,
    pub device_id: &'static str,
    pub ip: &'static str,
    pub country: &'static str,
}

impl FieldNames {
    /// The names of `POST /v1/decide`'s body.
    pub const DECIDE: FieldNames = FieldNames {
        user_key: "user_key",
        device_id: "device_id",
        ip: "ip",
        country: "country",
    };
}

impl<'a, J> SentInput<'a, J> {
    /// Checks the keys' lengths, the IP address and the country code (422 naming the field),
    /// giving the decider's input.
    pub fn check(self, names: &FieldNames) -> Result<DecideInput<'a, J>, ApiError> {
        check_len(names.user_key, self.user_key)?;
        check_len(names.device_id, self.device_id)?;
        let ip = match self.ip.filter(|s| !s.is_empty()) {
            Some(text) => Some(text.parse::<IpAddr>().map_err(|_| {
                ApiError::invalid(names.ip, format!("invalid IP address '{text}'"))
            })?),
            None => None,
        };
        let country = self.country.filter(|c| !c.is_empty());
        if let Some(c) = country {
            if crate::rules::country::two_letter_code(c).is_none() {
                return Err(ApiError::invalid(
                    names.country,
                    format!("invalid country '{c}': expected an ISO 3166-1 alpha-2 code"),
                ));
            }
        }
        Ok(DecideInput {
            rollout: self.rollout,
            user_key: self.user_key,
            device_id: self.device_id,
            ip,
            country,
            platform: self.platform,
            app_version: self.app_version,
            session_token: self.session_token,
            cookies: self.cookies,
        })
    }
}

fn check_len(field: &str, value: Option<&str>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.len() > MAX_KEY_BYTES => Err(ApiError::invalid(
            field,
            format!("longer than {MAX_KEY_BYTES} bytes"),
        )),
        _ => Ok(()),
    }
}

pub async fn decide(
    _caller: Authorized<DecideScope>,
    state: web::Data<AppState>,
    body: JsonBytes,
) -> Result<HttpResponse, ApiError> {
    let request: DecideRequest = parse(&body.0)?;
    let input = SentInput {
        rollout: &request.rollout,
        user_key: request.user_key.as_deref(),
        device_id: request.device_id.as_deref(),
        ip: request.ip.as_deref(),
        country: request.country.as_deref(),
        platform: request.platform.as_deref(),
        app_version: request.app_version.as_deref(),
        session_token: request.session_token.as_deref(),
        cookies: &request.cookies,
    }
    .check(&FieldNames::DECIDE)?;
    let decided = state.decider.decide(&input)?;
    Ok(answer(&decided))
}

/// The answer of SPEC §4 for a decision: what `POST /v1/decide` writes (and the admin page's
/// trials, `super::evaluate`, the very same bytes).
pub fn answer(decided: &Decided) -> HttpResponse {
    let response = DecideResponse {
        rollout: &decided.live.rollout.key,
        flow: decided.flow.as_str(),
        reason: decided.reason.as_str(),
        rule: decided.rule_id(),
        bucket: decided.bucket,
        version: decided.live.rollout.version,
        set_cookie: decided.set_cookie.as_ref().map(|c| SetCookieBody {
            name: decided.cookie_name(),
            value: &c.value,
            max_age_seconds: c.max_age_seconds,
        }),
        session: SessionBody {
            source: decided.session_source.as_str(),
            action: decided.session_action.as_str(),
        },
    };
    HttpResponse::Ok()
        .insert_header((
            actix_web::http::header::CONTENT_TYPE,
            super::APPLICATION_JSON,
        ))
        .body(response.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_escape_finds_exactly_what_json_escapes() {
        // Every byte at every position of a 17-byte string (two words and a remainder).
        for at in 0..17 {
            for byte in 0..=255u8 {
                let mut bytes = vec![b'a'; 17];
                bytes[at] = byte;
                let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(needs_escape(&bytes), expected, "byte {byte:#x} at {at}");
            }
        }
        assert!(!needs_escape(
            "s1.stytch-login.3.4217.1.Zm9v_-bar".as_bytes()
        ));
        assert!(!needs_escape("é✓ü".as_bytes()));
    }

    #[test]
    fn every_fixed_word_of_the_answer_is_lowercase_letters_and_underscores() {
        use crate::rules::{Flow, Reason};
        use crate::sessions::{SessionAction, SessionSource};
        let sources = [
            SessionSource::None,
            SessionSource::Stytch,
            SessionSource::Legacy,
            SessionSource::Foreign,
            SessionSource::Unknown,
        ];
        let words = [Flow::Stytch.as_str(), Flow::Legacy.as_str()]
            .into_iter()
            .chain(Reason::ALL.map(Reason::as_str))
            .chain(SessionAction::ALL.map(SessionAction::as_str))
            .chain(sources.map(SessionSource::as_str));
        for word in words {
            assert!(
                !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{word}"
            );
            assert!(!needs_escape(word.as_bytes()), "{word}");
        }
    }

    #[test]
    fn the_hand_written_answer_is_what_serde_writes() {
        let cookie = SetCookieBody {
            name: "sy_flow",
            value: "s1.stytch-login.3.4217.1.abc-_DEF",
            max_age_seconds: 2_592_000,
        };
        let odd = "quote \" backslash \\ newline \n tab \t \u{1} é ✓";
        for rule in [None, Some("offices"), Some(odd)] {
            for set_cookie in [None, Some(&cookie)] {
                for rollout in ["stytch-login", odd] {
                    let answer = DecideResponse {
                        rollout,
                        flow: "stytch",
                        reason: "percentage",
                        rule,
                        bucket: 9_999,
                        version: u64::MAX,
                        set_cookie: set_cookie.map(|c| SetCookieBody {
                            name: c.name,
                            value: c.value,
                            max_age_seconds: c.max_age_seconds,
                        }),
                        session: SessionBody {
                            source: "legacy",
                            action: "migrate_to_stytch",
                        },
                    };
                    assert_eq!(
                        String::from_utf8(answer.to_json()).unwrap(),
                        serde_json::to_string(&answer).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn strings_are_borrowed_from_the_body_unless_escaped() {
        let body =
            br#"{"rollout":"r","user_key":"a\u00e9","device_id":"d","cookies":{"sy_flow":"v"}}"#;
        let r: DecideRequest = serde_json::from_slice(body).unwrap();
        assert!(matches!(r.rollout.0, Cow::Borrowed("r")));
        assert!(matches!(
            r.device_id.as_ref().unwrap().0,
            Cow::Borrowed("d")
        ));
        assert!(matches!(r.user_key.as_ref().unwrap().0, Cow::Owned(ref s) if s == "aé"));
        assert!(matches!(r.cookies.0[0].1 .0, Cow::Borrowed("v")));
        assert_eq!(r.cookies.cookie("sy_flow"), Some("v"));
        assert_eq!(r.cookies.cookie("other"), None);
    }

    mod properties {
        //! Property tests of the decide body parser: no bytes make it panic, and what it
        //! refuses is a 400 (not JSON) or a 422 (JSON of the wrong shape), in the error shape.
        use actix_web::ResponseError;
        use proptest::prelude::*;

        use super::*;

        /// Bodies near a valid one: members of the request with values of every JSON type.
        fn near_decide_body() -> impl Strategy<Value = Vec<u8>> {
            let member = prop_oneof![
                Just("rollout"),
                Just("user_key"),
                Just("device_id"),
                Just("ip"),
                Just("country"),
                Just("platform"),
                Just("app_version"),
                Just("session_token"),
                Just("cookies"),
                Just("other"),
            ];
            let value = prop_oneof![
                Just("null".to_string()),
                Just("{}".to_string()),
                Just("[]".to_string()),
                Just("{\"sy_flow\":\"v\",\"sy_flow\":1}".to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                any::<f64>().prop_map(|f| f.to_string()),
                any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
                "\"(\\\\u[0-9a-fA-F]{4}|\\\\[nrt\"\\\\/]|[a-z])*\"",
            ];
            prop::collection::vec((member, value), 0..8).prop_map(|pairs| {
                let members: Vec<String> =
                    pairs.iter().map(|(m, v)| format!("\"{m}\":{v}")).collect();
                format!("{{{}}}", members.join(",")).into_bytes()
            })
        }

        fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
            if let Err(e) = parse::<DecideRequest>(bytes) {
                let status = e.status_code().as_u16();
                prop_assert!(status == 400 || status == 422, "{status} for {bytes:?}");
                let code = e.code();
                prop_assert!(
                    (status, code) == (400, "malformed_json")
                        || (status, code) == (422, "validation_failed"),
                    "{status} {code}"
                );
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn no_bytes_make_the_decide_parser_panic(bytes in any::<Vec<u8>>()) {
                check(&bytes)?;
            }

            #[test]
            fn bodies_near_a_valid_one_are_read_or_refused_in_the_error_shape(
                bytes in near_decide_body(),
            ) {
                check(&bytes)?;
            }
        }
    }
}
