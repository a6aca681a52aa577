//! The one error type of the HTTP layer and its mapping to the SPEC §4 error body:
//! `{"error": {"code", "message", "details": [{"field", "message"}]}}`.
//!
//! Every failure, including those actix produces itself (bad JSON, wrong content type, body
//! too large, unknown route), goes through here. Nothing else builds an error response —
//! except actix's own bare 408 for a request head not received in time, sent before any of
//! our code runs.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::admin::AdminError;
use crate::decider::DecideError;
use crate::rules::{FieldError, ValidationErrors};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    #[error("{0}")]
    BadRequest(String),
    /// The token was missing or unknown; the text says where it is expected.
    #[error("missing or unknown {0}")]
    Unauthorized(&'static str),
    #[error("this token lacks the '{0}' scope")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("method {method} is not allowed on this path (allowed: {allow})")]
    MethodNotAllowed {
        method: String,
        /// The path's methods, as the `Allow` header lists them.
        allow: String,
    },
    #[error("the request was not received within {0} s (server.request_timeout_seconds)")]
    RequestTimeout(u64),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    PreconditionFailed(String),
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Invalid(ValidationErrors),
    #[error("give user_key or device_id")]
    MissingKey,
    #[error("{0}")]
    StoreUnavailable(String),
    #[error("not ready: {0}")]
    NotReady(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::Invalid(ValidationErrors::single(field, message))
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::RequestTimeout(_) => "request_timeout",
            ApiError::AlreadyExists(_) => "already_exists",
            ApiError::PreconditionFailed(_) => "precondition_failed",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnsupportedMediaType(_) => "unsupported_media_type",
            ApiError::Invalid(_) => "validation_failed",
            ApiError::MissingKey => "missing_key",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::NotReady(_) => "not_ready",
        }
    }

    fn details(&self) -> Vec<FieldError> {
        match self {
            ApiError::Invalid(errors) => errors.0.clone(),
            ApiError::MissingKey => vec![FieldError {
                field: "user_key".into(),
                message: "give user_key or device_id".into(),
            }],
            _ => Vec::new(),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: String,
    details: Vec<Field>,
}

#[derive(Serialize)]
struct Field {
    field: String,
    message: String,
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::AlreadyExists(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Invalid(_) | ApiError::MissingKey => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::StoreUnavailable(_) | ApiError::NotReady(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let body = Body {
            error: Detail {
                code: self.code(),
                message: self.to_string(),
                details: self
                    .details()
                    .into_iter()
                    .map(|d| Field {
                        field: d.field,
                        message: d.message,
                    })
                    .collect(),
            },
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unauthorized(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                response.insert_header((header::ALLOW, allow.as_str()));
            }
            // The rest of the body may never come: the connection is not reused.
            ApiError::RequestTimeout(_) => {
                response.force_close();
            }
            _ => {}
        }
        response.json(body)
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Invalid(errors) => ApiError::Invalid(errors),
            AdminError::NotFound(_) => ApiError::NotFound(e.to_string()),
            AdminError::AlreadyExists(_) | AdminError::Retired { .. } => {
                ApiError::AlreadyExists(e.to_string())
            }
            AdminError::VersionMismatch { .. } => ApiError::PreconditionFailed(e.to_string()),
            AdminError::Unavailable(_) => ApiError::StoreUnavailable(e.to_string()),
        }
    }
}

impl From<DecideError> for ApiError {
    fn from(e: DecideError) -> Self {
        match e {
            DecideError::UnknownRollout(_) => ApiError::NotFound(e.to_string()),
            DecideError::MissingKey => ApiError::MissingKey,
        }
    }
}
