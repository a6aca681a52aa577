//! The errors of the OpenFeature routes and their one mapping to OFREP's failure bodies
//! (SPEC §10): 400 `PARSE_ERROR` / `INVALID_CONTEXT` / `TARGETING_KEY_MISSING`, 404
//! `FLAG_NOT_FOUND`. What OFREP leaves to the server (401, 403, 408, 413, 415) keeps the
//! SPEC §4 error body of [`ApiError`].

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use super::wire::Failure;
use crate::decider::DecideError;
use crate::http::error::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum OfrepError {
    /// The body is not JSON, or not an object with a `context` object.
    #[error("{0}")]
    Parse(String),
    /// A context member of the wrong type or value.
    #[error("{0}")]
    InvalidContext(String),
    #[error("give context.targetingKey (the user key) or context.device_id")]
    TargetingKeyMissing,
    #[error("flag '{0}' does not exist (flag keys are rollout keys)")]
    FlagNotFound(String),
    /// Failures OFREP does not define a body for: authentication, body size, time, type.
    #[error(transparent)]
    Api(ApiError),
}

impl OfrepError {
    /// The OFREP error code (`Api` failures answer with the SPEC §4 body instead).
    pub fn code(&self) -> &'static str {
        match self {
            OfrepError::Parse(_) => "PARSE_ERROR",
            OfrepError::InvalidContext(_) => "INVALID_CONTEXT",
            OfrepError::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            OfrepError::FlagNotFound(_) => "FLAG_NOT_FOUND",
            OfrepError::Api(_) => "GENERAL",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            OfrepError::FlagNotFound(_) => StatusCode::NOT_FOUND,
            OfrepError::Api(e) => e.status_code(),
            OfrepError::Parse(_)
            | OfrepError::InvalidContext(_)
            | OfrepError::TargetingKeyMissing => StatusCode::BAD_REQUEST,
        }
    }

    /// The answer; `key` is the flag's for the single-flag route, `None` for the bulk route.
    pub fn respond(&self, key: Option<&str>) -> HttpResponse {
        match self {
            OfrepError::Api(e) => e.error_response(),
            _ => HttpResponse::build(self.status()).json(Failure {
                key,
                error_code: self.code(),
                error_details: self.to_string(),
            }),
        }
    }
}

/// A shape error names its field: one inside the context is an invalid context, anything
/// else (a body that is not an object, a `context` that is not one) a parse error.
impl From<ApiError> for OfrepError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::MalformedJson(_) => OfrepError::Parse(e.to_string()),
            ApiError::Invalid(ref errors)
                if errors.0.iter().all(|f| f.field.starts_with("context.")) =>
            {
                OfrepError::InvalidContext(e.to_string())
            }
            ApiError::Invalid(_) => OfrepError::Parse(e.to_string()),
            ApiError::MissingKey => OfrepError::TargetingKeyMissing,
            other => OfrepError::Api(other),
        }
    }
}

impl From<DecideError> for OfrepError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::UnknownRollout(key) => OfrepError::FlagNotFound(key),
            DecideError::MissingKey => OfrepError::TargetingKeyMissing,
        }
    }
}

/// A failure of the single-flag route: the error and the flag it was about.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct FlagError {
    pub key: String,
    pub error: OfrepError,
}

impl ResponseError for FlagError {
    fn status_code(&self) -> StatusCode {
        self.error.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.error.respond(Some(&self.key))
    }
}

impl ResponseError for OfrepError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        self.respond(None)
    }
}
