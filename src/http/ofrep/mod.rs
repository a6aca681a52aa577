//! OpenFeature remote evaluation (OFREP, SPEC §10): `POST /ofrep/v1/evaluate/flags/{key}` for
//! one rollout and `POST /ofrep/v1/evaluate/flags` for all of them, so that any OpenFeature
//! SDK with an OFREP provider can ask Switchyard.
//!
//! Thin handlers over the decide use case (`crate::decider::Decider`): the context is read as
//! a decide request (`wire`), decided exactly as `POST /v1/decide` decides (same checks, same
//! metrics, counted once in the decider) and answered in OFREP's shape. No evaluation of its
//! own and no state: the bulk answer's `ETag` is a digest of the answer itself.

mod error;
mod wire;

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};

use super::auth::{Authorized, BearerOrApiKey, DecideScope};
use super::body::{parse, JsonBytes};
use super::header_text::header_text;
use super::path::Path;
use super::AppState;
pub use error::{FlagError, OfrepError};
use wire::{BulkEvaluation, Evaluation, EvaluationRequest, CONTEXT_NAMES};

/// `POST /ofrep/v1/evaluate/flags/{key}`: the rollout `key` decided for the context.
pub async fn evaluate_flag(
    _caller: Authorized<DecideScope, BearerOrApiKey>,
    state: web::Data<AppState>,
    key: Path<String>,
    body: JsonBytes,
) -> Result<HttpResponse, FlagError> {
    let key = key.into_inner();
    let fail = |error: OfrepError| FlagError {
        key: key.clone(),
        error,
    };
    let request: EvaluationRequest = parse(&body.0).map_err(|e| fail(e.into()))?;
    let context = request.context.unwrap_or_default();
    let input = context
        .sent_input(&key)
        .check(&CONTEXT_NAMES)
        .map_err(|e| fail(e.into()))?;
    let decided = state.decider.decide(&input).map_err(|e| fail(e.into()))?;
    let bytes = serde_json::to_vec(&Evaluation::of(&decided))
        .expect("an evaluation is strings and numbers only");
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, super::APPLICATION_JSON))
        .body(bytes))
}

/// `POST /ofrep/v1/evaluate/flags`: every rollout decided for the context, with an `ETag`;
/// 304 without a body when `If-None-Match` names the answer's.
pub async fn evaluate_flags(
    _caller: Authorized<DecideScope, BearerOrApiKey>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: JsonBytes,
) -> Result<HttpResponse, OfrepError> {
    let request: EvaluationRequest = parse(&body.0)?;
    let context = request.context.unwrap_or_default();
    let input = context.sent_input("").check(&CONTEXT_NAMES)?;
    let decided = state.decider.decide_all(&input)?;
    let answer = BulkEvaluation {
        flags: decided.iter().map(Evaluation::of).collect(),
    };
    let bytes = serde_json::to_vec(&answer).expect("an evaluation is strings and numbers only");
    let etag = etag_of(&bytes);
    if is_current(req.headers().get(header::IF_NONE_MATCH), &etag) {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish());
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, super::APPLICATION_JSON))
        .insert_header((header::ETAG, etag))
        .body(bytes))
}

/// A strong ETag of an answer: its 128-bit XXH3 digest, so it changes whenever any flag's
/// value, reason, version or cookie does (a rollout's version is in each flag's metadata), and
/// only then.
fn etag_of(answer: &[u8]) -> String {
    format!("\"{:032x}\"", xxhash_rust::xxh3::xxh3_128(answer))
}

/// Whether `If-None-Match` names `etag` (weakly compared, as RFC 9110 has it for this
/// header) or is `*`.
fn is_current(if_none_match: Option<&HeaderValue>, etag: &str) -> bool {
    if_none_match.and_then(header_text).is_some_and(|list| {
        list.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_etag_is_quoted_and_follows_the_answer() {
        let a = etag_of(br#"{"flags":[]}"#);
        assert_eq!(a, etag_of(br#"{"flags":[]}"#));
        assert_ne!(a, etag_of(br#"{"flags":[{}]}"#));
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 34);
    }

    #[test]
    fn if_none_match_lists_are_compared_weakly() {
        let etag = "\"abc\"";
        let header = |s: &'static str| Some(HeaderValue::from_static(s));
        assert!(is_current(header("\"abc\"").as_ref(), etag));
        assert!(is_current(header("W/\"abc\"").as_ref(), etag));
        assert!(is_current(header("\"x\", \"abc\"").as_ref(), etag));
        assert!(is_current(header("*").as_ref(), etag));
        assert!(!is_current(header("\"abd\"").as_ref(), etag));
        assert!(!is_current(header("abc").as_ref(), etag));
        assert!(!is_current(None, etag));
    }
}
