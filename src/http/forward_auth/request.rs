//! The forwarded request's headers read as a decide request (SPEC §11): who the client is,
//! its country (from a trusted proxy), its cookies, user key, platform, app version and
//! session token, and a fresh device id for a new device.
//!
//! Borrowed from the request's headers: nothing is copied. A value that cannot be used (a
//! country that is not two letters, a user key longer than decide takes, a header that is not
//! text) is left out as if it had not been sent, because a forward-auth answer is always a
//! routing decision, never a refusal. This module does not decide, count or answer.

use std::borrow::Cow;
use std::net::IpAddr;

use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::HttpRequest;
use smallvec::SmallVec;

use super::client::client_address;
use super::ForwardAuth;
use crate::decider::CookieJar;
use crate::http::auth::{Bearer, Credential};
use crate::http::decide::{SentInput, MAX_KEY_BYTES};
use crate::http::header_text::header_text;

/// The Stytch session cookies, in the order they are looked for (the JWT first).
pub const STYTCH_SESSION_COOKIES: [&str; 2] = ["stytch_session_jwt", "stytch_session"];

/// Cookies a request usually carries without spilling to the heap.
const INLINE_COOKIES: usize = 8;

/// The request's cookies, read once from its `Cookie` headers (borrowed, in order): a
/// decision then looks up a handful of names without reading the headers again.
pub struct HeaderCookies<'a> {
    pairs: SmallVec<[(&'a str, &'a str); INLINE_COOKIES]>,
}

impl CookieJar for HeaderCookies<'_> {
    fn cookie(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

impl<'a> HeaderCookies<'a> {
    /// Every `name=value` pair of the `Cookie` headers, in order, names and values trimmed
    /// and a value in double quotes read without them (RFC 6265); a header that is not
    /// visible ASCII is skipped.
    pub fn read(headers: &'a HeaderMap) -> HeaderCookies<'a> {
        let pairs = headers
            .get_all(header::COOKIE)
            .filter_map(header_text)
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.split_once('='))
            .map(|(name, value)| {
                let value = value.trim_ascii();
                let value = value
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(value);
                (name.trim_ascii(), value)
            })
            .collect();
        HeaderCookies { pairs }
    }

    /// The first cookie of that name (browsers send the most specific path first).
    pub fn get(&self, name: &str) -> Option<&'a str> {
        self.pairs.iter().find(|(n, _)| *n == name).map(|&(_, v)| v)
    }

    /// The value of the first of `names` (in their order) that is sent with a value.
    pub fn first_of(&self, names: &[&str]) -> Option<&'a str> {
        names.iter().find_map(|name| {
            self.pairs
                .iter()
                .find(|(n, v)| n == name && !v.is_empty())
                .map(|&(_, v)| v)
        })
    }
}

/// A random device id (a UUID v4, as text) for a request that has no user key; kept on the
/// handler's stack.
pub struct DeviceId([u8; uuid::fmt::Hyphenated::LENGTH]);

impl DeviceId {
    /// A new random id (from the thread's generator: no system call per request).
    pub fn random() -> DeviceId {
        let uuid = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        uuid.hyphenated().encode_lower(&mut text);
        DeviceId(text)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a UUID is ASCII")
    }
}

/// The rollout key of a forward-auth path (`/v1/forward-auth/<key>[/<anything>]`): its first
/// segment after the prefix, percent-decoded (borrowed unless it had escapes; bytes that are
/// not UTF-8 become U+FFFD, which no rollout key holds).
pub fn rollout_key(path: &str) -> Cow<'_, str> {
    let rest = path
        .strip_prefix(super::PREFIX)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or("");
    let segment = rest.split('/').next().unwrap_or("");
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let bytes = segment.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                decoded.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                decoded.push(b);
                i += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&decoded).into_owned())
}

/// The inputs of one forwarded request.
pub struct Forwarded<'a> {
    /// The client's address ([`client_address`]).
    pub client_ip: Option<IpAddr>,
    pub country: Option<&'a str>,
    pub user_key: Option<&'a str>,
    pub platform: Option<&'a str>,
    pub app_version: Option<&'a str>,
    pub session_token: Option<&'a str>,
    pub cookies: HeaderCookies<'a>,
}

/// A header's value as text, trimmed; `None` when absent, empty or not visible ASCII.
fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(header_text)
        .map(str::trim_ascii)
        .filter(|v| !v.is_empty())
}

const APP_PLATFORM: HeaderName = HeaderName::from_static("x-app-platform");
const APP_VERSION: HeaderName = HeaderName::from_static("x-app-version");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

impl<'a> Forwarded<'a> {
    /// Reads `req` as `settings` say.
    pub fn read(req: &'a HttpRequest, settings: &'a ForwardAuth) -> Forwarded<'a> {
        let headers = req.headers();
        let peer = req.peer_addr().map(|a| a.ip());
        let trusted_peer = peer.is_some_and(|p| settings.trusted_proxies.contains(p));
        let client_ip = client_address(
            peer,
            &settings.trusted_proxies,
            headers.get_all(X_FORWARDED_FOR).filter_map(header_text),
            || text(headers, &X_REAL_IP),
        );
        let country = settings
            .country_header
            .as_ref()
            .filter(|_| trusted_peer)
            .and_then(|name| text(headers, name))
            .filter(|c| crate::rules::country::two_letter_code(c).is_some());
        let user_key = settings
            .user_key_header
            .as_ref()
            .and_then(|name| text(headers, name))
            .filter(|k| k.len() <= MAX_KEY_BYTES);
        let cookies = HeaderCookies::read(headers);
        let [stytch_jwt, stytch_opaque] = STYTCH_SESSION_COOKIES;
        let session_cookie = match settings.legacy_session_cookie.as_deref() {
            Some(legacy) => cookies.first_of(&[stytch_jwt, stytch_opaque, legacy]),
            None => cookies.first_of(&STYTCH_SESSION_COOKIES),
        };
        let session_token =
            session_cookie.or_else(|| Bearer::presented(req).filter(|t| !t.is_empty()));
        Forwarded {
            client_ip,
            country,
            user_key,
            platform: text(headers, &APP_PLATFORM),
            app_version: text(headers, &APP_VERSION),
            session_token,
            cookies,
        }
    }

    /// The decide request these inputs make for `rollout`, the address left out (it is
    /// already an address: the caller sets it on the checked input). Without a user key the
    /// request is a new device's unless its sticky cookie says otherwise: `device` is a fresh
    /// id, and a valid sticky cookie's bucket stands in for the id's (SPEC §3 step 5), so a
    /// returning device keeps its place.
    pub fn sent_input<'s>(
        &'s self,
        rollout: &'s str,
        device: Option<&'s DeviceId>,
    ) -> SentInput<'s, &'s HeaderCookies<'a>> {
        SentInput {
            rollout,
            user_key: self.user_key,
            device_id: device.map(DeviceId::as_str),
            ip: None,
            country: self.country,
            platform: self.platform,
            app_version: self.app_version,
            session_token: self.session_token,
            cookies: &self.cookies,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn jar(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::COOKIE, HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn cookies_are_found_by_exact_name_in_every_cookie_header() {
        let headers = jar(&["a=1; sy_flow=s1.x; b=\"quoted\"", "c = 3 ;d=4=5"]);
        let cookies = HeaderCookies::read(&headers);
        assert_eq!(cookies.cookie("sy_flow"), Some("s1.x"));
        assert_eq!(cookies.cookie("a"), Some("1"));
        assert_eq!(cookies.cookie("b"), Some("quoted"));
        assert_eq!(cookies.cookie("c"), Some("3"));
        assert_eq!(cookies.cookie("d"), Some("4=5"));
        assert_eq!(cookies.cookie("sy_flo"), None);
        assert_eq!(cookies.cookie("flow"), None);
    }

    #[test]
    fn the_first_of_two_cookies_of_one_name_wins() {
        let headers = jar(&["sy_flow=first; sy_flow=second"]);
        assert_eq!(
            HeaderCookies::read(&headers).cookie("sy_flow"),
            Some("first")
        );
    }

    #[test]
    fn first_of_takes_the_earliest_name_in_its_list_sent_with_a_value() {
        let headers = jar(&["c=3; b=2; a=; b=22", "a=1"]);
        let cookies = HeaderCookies::read(&headers);
        assert_eq!(cookies.first_of(&["a", "b", "c"]), Some("1"));
        assert_eq!(cookies.first_of(&["b", "a"]), Some("2"));
        assert_eq!(cookies.first_of(&["x", "c", "b"]), Some("3"));
        assert_eq!(cookies.first_of(&["x", "y"]), None);
        let empty = jar(&["a="]);
        assert_eq!(HeaderCookies::read(&empty).first_of(&["a"]), None);
    }

    #[test]
    fn the_rollout_key_is_the_first_segment_after_the_prefix_decoded() {
        for (path, key) in [
            ("/v1/forward-auth/stytch-login", "stytch-login"),
            ("/v1/forward-auth/stytch-login/login", "stytch-login"),
            ("/v1/forward-auth/stytch-login/", "stytch-login"),
            ("/v1/forward-auth/web%2Dlogin/x%2Fy", "web-login"),
            ("/v1/forward-auth/NOT%20A%20KEY", "NOT A KEY"),
            ("/v1/forward-auth/%ff%fe", "\u{FFFD}\u{FFFD}"),
            ("/v1/forward-auth/100%", "100%"),
            ("/v1/forward-auth/%4", "%4"),
            ("/v1/forward-auth/", ""),
            ("/v1/forward-auth", ""),
        ] {
            assert_eq!(rollout_key(path), key, "{path}");
        }
        assert!(matches!(
            rollout_key("/v1/forward-auth/web/login"),
            Cow::Borrowed("web")
        ));
    }

    #[test]
    fn device_ids_are_random_version_4_uuids() {
        let (a, b) = (DeviceId::random(), DeviceId::random());
        assert_ne!(a.as_str(), b.as_str());
        let parsed = uuid::Uuid::parse_str(a.as_str()).unwrap();
        assert_eq!(parsed.get_version_num(), 4);
        assert_eq!(a.as_str(), parsed.hyphenated().to_string());
    }
}
