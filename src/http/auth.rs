//! Bearer tokens and scopes. A handler that takes `Authorized<AdminScope>` is authenticated
//! and authorised before it runs; its `actor` is the token's name (for history and audit).
//!
//! Tokens are compared as SHA-256 digests in constant time, against every configured token
//! without stopping early. Token values are never logged or kept in clear.

use std::future::{ready, Ready};
use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::AppState;
use crate::config::{Scope, TokenSettings};

struct Entry {
    name: Arc<str>,
    digest: [u8; 32],
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
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    pub fn new(settings: &[TokenSettings]) -> Tokens {
        Tokens {
            entries: settings
                .iter()
                .map(|t| Entry {
                    name: t.name.as_str().into(),
                    digest: digest(t.token.expose_secret()),
                    scopes: t.scopes.clone(),
                })
                .collect(),
        }
    }

    /// The entry whose token is `presented`, checked against all in constant time.
    fn find(&self, presented: &str) -> Option<&Entry> {
        let wanted = digest(presented);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&wanted)) {
                found = Some(entry);
            }
        }
        found
    }

    /// The actor name of a request's bearer token if it has `scope`.
    pub fn authorize(&self, req: &HttpRequest, scope: Scope) -> Result<Arc<str>, ApiError> {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let entry = self.find(presented).ok_or(ApiError::Unauthorized)?;
        if entry.allows(scope) {
            Ok(entry.name.clone())
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
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

/// Proof that the request carries a token with scope `S`.
pub struct Authorized<S> {
    pub actor: Arc<str>,
    _scope: PhantomData<S>,
}

impl<S: RequiredScope> FromRequest for Authorized<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let result = match req.app_data::<web::Data<AppState>>() {
            Some(state) => state
                .tokens
                .authorize(req, S::SCOPE)
                .map(|actor| Authorized {
                    actor,
                    _scope: PhantomData,
                }),
            None => Err(ApiError::Unauthorized),
        };
        ready(result)
    }
}
