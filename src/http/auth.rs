//! Bearer tokens and scopes. A handler that takes `Authorized<AdminScope>` is authenticated
//! and authorised before it runs; its `actor` is the token's name (for history and audit).
//! Where the token is read is the extractor's second parameter: `Authorization: Bearer` by
//! default, or also `X-API-Key` (`BearerOrApiKey`, for the OpenFeature routes of SPEC §10), or
//! only `X-Switchyard-Token` (`SwitchyardToken`, for forward-auth, SPEC §11, where the
//! client's own `Authorization` header is forwarded by the proxy and must not be read as ours).
//!
//! Tokens are compared as keyed 128-bit digests (SipHash-1-3 under a key drawn at random when
//! the service starts) in constant time, against every configured token without stopping
//! early: the time taken says nothing about how much of a token was right, nor how long the
//! real tokens are. SipHash is a pseudo-random function designed for short inputs under a
//! secret key; without the key, a presented token's digest matches a real one only by
//! guessing the token (2^-128 per try). For a 48-character token it takes ~19 ns where
//! SHA-256 took ~56 ns (with the CPU's SHA extensions), on a check every decide request makes.
//! Token values are never logged or kept in clear.

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::ExposeSecret;
use siphasher::sip128::{Hasher128, SipHasher13};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::header_text::header_text;
use super::AppState;
use crate::config::{Scope, TokenSettings};

struct Entry {
    name: Arc<str>,
    digest: [u8; 16],
    scopes: Vec<Scope>,
}

impl Entry {
    /// `admin` implies `read`: an admin must be able to fetch what it edits.
    fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
            || (scope == Scope::Read && self.scopes.contains(&Scope::Admin))
    }
}

/// The tokens this service accepts.
pub struct Tokens {
    entries: Vec<Entry>,
    /// The digest key, random per process (never leaves it).
    key: [u8; 16],
}

fn digest(key: &[u8; 16], token: &str) -> [u8; 16] {
    let mut hasher = SipHasher13::new_with_key(key);
    std::hash::Hasher::write(&mut hasher, token.as_bytes());
    hasher.finish128().as_bytes()
}

impl Tokens {
    pub fn new(settings: &[TokenSettings]) -> Tokens {
        let key: [u8; 16] = rand::random();
        Tokens {
            entries: settings
                .iter()
                .map(|t| Entry {
                    name: t.name.as_str().into(),
                    digest: digest(&key, t.token.expose_secret()),
                    scopes: t.scopes.clone(),
                })
                .collect(),
            key,
        }
    }

    /// The entry whose token is `presented`, checked against all in constant time.
    fn find(&self, presented: &str) -> Option<&Entry> {
        let wanted = digest(&self.key, presented);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&wanted)) {
                found = Some(entry);
            }
        }
        found
    }

    /// The name and the scopes (`read` included when `admin` implies it) of the token a request
    /// presents as a bearer token, whatever they are.
    pub fn identify(&self, req: &HttpRequest) -> Result<Identified, ApiError> {
        let presented = Bearer::presented(req)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(Bearer::EXPECTED))?;
        let entry = self
            .find(presented)
            .ok_or(ApiError::Unauthorized(Bearer::EXPECTED))?;
        Ok(Identified {
            name: entry.name.clone(),
            scopes: Scope::ALL
                .into_iter()
                .filter(|s| entry.allows(*s))
                .collect(),
        })
    }

    /// The actor name of the token a request presents (read where `C` says) if it has `scope`.
    pub fn authorize<C: Credential>(
        &self,
        req: &HttpRequest,
        scope: Scope,
    ) -> Result<Arc<str>, ApiError> {
        let presented = C::presented(req)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized(C::EXPECTED))?;
        let entry = self
            .find(presented)
            .ok_or(ApiError::Unauthorized(C::EXPECTED))?;
        if entry.allows(scope) {
            Ok(entry.name.clone())
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
    }
}

/// Where a request presents its token.
pub trait Credential {
    /// What a 401 says is missing or unknown (`missing or unknown bearer token`).
    const EXPECTED: &'static str;

    fn presented(req: &HttpRequest) -> Option<&str>;
}

/// `Authorization: Bearer <token>` (SPEC §4).
pub struct Bearer;

impl Credential for Bearer {
    const EXPECTED: &'static str = "bearer token";

    fn presented(req: &HttpRequest) -> Option<&str> {
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(header_text)
            .and_then(|v| {
                // `Bearer` (any case), one space, the token (spaces around it trimmed).
                let v = v.trim_ascii();
                let (scheme, token) = (v.get(..7)?, v.get(7..)?);
                scheme
                    .eq_ignore_ascii_case("bearer ")
                    .then(|| token.trim_ascii())
            })
    }
}

/// `Authorization: Bearer <token>`, else `X-API-Key: <token>` (OFREP's two schemes, SPEC §10).
pub struct BearerOrApiKey;

impl Credential for BearerOrApiKey {
    const EXPECTED: &'static str = "bearer token or X-API-Key";

    fn presented(req: &HttpRequest) -> Option<&str> {
        Bearer::presented(req).or_else(|| {
            req.headers()
                .get("x-api-key")
                .and_then(header_text)
                .map(str::trim_ascii)
        })
    }
}

/// `X-Switchyard-Token: <token>` alone (forward-auth, SPEC §11): a proxy forwards the client's
/// `Authorization` header, which may hold the client's session, never our token.
pub struct SwitchyardToken;

impl Credential for SwitchyardToken {
    const EXPECTED: &'static str = "X-Switchyard-Token header";

    fn presented(req: &HttpRequest) -> Option<&str> {
        req.headers()
            .get("x-switchyard-token")
            .and_then(header_text)
            .map(str::trim_ascii)
    }
}

/// A scope a handler requires, as a type.
pub trait RequiredScope {
    const SCOPE: Scope;
}

macro_rules! scopes {
    ($($marker:ident => $scope:ident),* $(,)?) => {$(
        pub struct $marker;
        impl RequiredScope for $marker {
            const SCOPE: Scope = Scope::$scope;
        }
    )*};
}

scopes! {
    DecideScope => Decide,
    EnrollScope => Enroll,
    ReportScope => Report,
    ReadScope => Read,
    AdminScope => Admin,
}

/// A request's bearer token, known whatever its scopes: its name and what it may do.
pub struct Identified {
    pub name: Arc<str>,
    pub scopes: Vec<Scope>,
}

impl FromRequest for Identified {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match req.app_data::<web::Data<AppState>>() {
            Some(state) => state.tokens.identify(req),
            None => Err(ApiError::Unauthorized(Bearer::EXPECTED)),
        })
    }
}

/// Proof that the request carries a token with scope `S`, presented as `C` says.
pub struct Authorized<S, C = Bearer> {
    pub actor: Arc<str>,
    _scope: PhantomData<(S, C)>,
}

impl<S: RequiredScope, C: Credential> FromRequest for Authorized<S, C> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<AppState>>() {
            Some(state) => state
                .tokens
                .authorize::<C>(req, S::SCOPE)
                .map(|actor| Authorized {
                    actor,
                    _scope: PhantomData,
                }),
            None => Err(ApiError::Unauthorized(C::EXPECTED)),
        };
        ready(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        let token = |name: &str, value: &str, scopes: Vec<Scope>| TokenSettings {
            name: name.into(),
            token: value.to_string().into(),
            scopes,
        };
        Tokens::new(&[
            token("ops", "admin-token-0123456789abcdef", vec![Scope::Admin]),
            token("app", "decide-token-0123456789abcdef", vec![Scope::Decide]),
        ])
    }

    #[test]
    fn finds_exactly_the_presented_token() {
        let tokens = tokens();
        let name = |t: &str| tokens.find(t).map(|e| e.name.to_string());
        assert_eq!(name("admin-token-0123456789abcdef").as_deref(), Some("ops"));
        assert_eq!(
            name("decide-token-0123456789abcdef").as_deref(),
            Some("app")
        );
        for wrong in [
            "",
            "admin-token-0123456789abcde",
            "admin-token-0123456789abcdef ",
            "admin-token-0123456789abcdeF",
            "decide-token-0123456789abcdefadmin-token-0123456789abcdef",
        ] {
            assert_eq!(name(wrong), None, "{wrong:?} must not match");
        }
    }

    #[test]
    fn a_token_is_identified_with_its_scopes_and_admin_implies_read() {
        let tokens = tokens();
        let identify = |value: &str| {
            let req = actix_web::test::TestRequest::default()
                .insert_header((header::AUTHORIZATION, format!("Bearer {value}")))
                .to_http_request();
            tokens.identify(&req)
        };
        let admin = identify("admin-token-0123456789abcdef").unwrap();
        assert_eq!(&*admin.name, "ops");
        assert_eq!(admin.scopes, vec![Scope::Read, Scope::Admin]);
        let app = identify("decide-token-0123456789abcdef").unwrap();
        assert_eq!(app.scopes, vec![Scope::Decide]);
        assert!(matches!(identify("nope"), Err(ApiError::Unauthorized(_))));
    }

    #[test]
    fn each_process_digests_under_its_own_key() {
        let (a, b) = (tokens(), tokens());
        assert_ne!(a.key, b.key);
        assert_ne!(a.entries[0].digest, b.entries[0].digest);
        assert!(b.find("admin-token-0123456789abcdef").is_some());
    }
}
