//! Reading JSON request bodies: content type (415), size (413), time (408), syntax (400) and
//! shape (422, with the exact field path), all answered with the SPEC §4 error body.
//!
//! Every request body the service reads is read here. actix bounds the time to receive a
//! request's head (`client_request_timeout`); the body is bounded here, so a client that sends
//! less than it announced cannot hold a connection. An unfinished body, read or not, ends its
//! connection after the answer (see [`HeldPayload`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::HttpMessage;
use actix_web::{FromRequest, HttpRequest};
use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;
use super::header_text::header_text;

/// The largest body accepted, in bytes (`server.max_body_bytes`), as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// How long a request's body may take to arrive (`server.request_timeout_seconds`), counted
/// from when the request reached the service (its head was read), as app data.
#[derive(Debug, Clone, Copy)]
pub struct RequestTimeout(pub Duration);

impl Default for RequestTimeout {
    fn default() -> Self {
        RequestTimeout(Duration::from_secs(10))
    }
}

/// A request body that is JSON by its content type and within the size limit, not yet parsed.
pub struct JsonBytes(pub Bytes);

fn is_json(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be JSON: send Content-Type: application/json".into(),
        ));
    };
    let mime = header_text(value)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    let json = ["application/json", "application/merge-patch+json"];
    match mime {
        m if json.iter().any(|j| m.eq_ignore_ascii_case(j)) => Ok(()),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type '{}' is not supported: send application/json",
            other.to_ascii_lowercase()
        ))),
    }
}

impl FromRequest for JsonBytes {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<JsonBytes, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(65536, |l| l.0);
        let checked = is_json(req).and_then(|()| {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(header_text)
                .and_then(|v| v.parse::<usize>().ok());
            match declared {
                Some(n) if n > limit => Err(ApiError::PayloadTooLarge(limit)),
                _ => Ok(declared),
            }
        });
        let timeout = req
            .app_data::<RequestTimeout>()
            .copied()
            .unwrap_or_default();
        let deadline = tokio::time::Instant::now() + timeout.0;
        let payload = payload.take();
        Box::pin(async move {
            let declared = checked?;
            tokio::time::timeout_at(deadline, read(payload, limit, declared))
                .await
                .map_err(|_| ApiError::RequestTimeout(timeout.0.as_secs()))?
                .map(JsonBytes)
        })
    }
}

/// Reads the whole body, at most `limit` bytes.
async fn read(
    mut payload: Payload,
    limit: usize,
    declared: Option<usize>,
) -> Result<Bytes, ApiError> {
    let read_error = |e| ApiError::BadRequest(format!("cannot read the body: {e}"));
    // Most bodies arrive in one chunk: keep it as it is, without a copy.
    let Some(first) = payload.next().await.transpose().map_err(read_error)? else {
        return Ok(Bytes::new());
    };
    if first.len() > limit {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let Some(second) = payload.next().await.transpose().map_err(read_error)? else {
        return Ok(first);
    };
    let mut body = BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    body.extend_from_slice(&first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        body.extend_from_slice(&chunk);
        next = payload.next().await.transpose().map_err(read_error)?;
    }
    Ok(body.freeze())
}

/// Parses JSON: syntax errors are 400, well-formed JSON of the wrong shape is 422 naming the
/// field (`rules[0].when`).
pub fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    // The fast path; the path-tracking parser runs again only to explain a failure.
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(value),
        Err(_) => explain::<T>(bytes),
    }
}

/// Parses again, tracking the field path, to say what is wrong.
fn explain<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // A shape error in a body that is not well-formed JSON is a syntax error (400).
        if let Err(syntax) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
            return ApiError::MalformedJson(syntax.to_string());
        }
        shape_error(&path, inner)
    })?;
    de.end()
        .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
    Ok(value)
}

fn shape_error(path: &str, error: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match error.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::MalformedJson(error.to_string())
        }
        Category::Data => {
            let field = crate::rules::wording::field_of(path, &error, "body");
            let message = crate::rules::wording::explain(&field, &error);
            ApiError::invalid(field, message)
        }
    }
}

/// A parsed JSON body of an owned type.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Json<T>, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = JsonBytes::from_request(req, payload);
        Box::pin(async move {
            let JsonBytes(bytes) = bytes.await?;
            parse(&bytes).map(Json)
        })
    }
}

/// A chunked request body, shared between the handler (which may read it) and the answer
/// (which keeps it alive until it is written).
///
/// actix closes a connection after an answer when the request's body is unfinished — unless
/// the body is chunked and its reader is gone: then it keeps reading (draining) the rest, with
/// no time limit, so a chunk size that lies would hold the connection forever. Keeping the
/// reader alive until the answer is written makes actix close it (after its short linger).
/// Bodies with a Content-Length need nothing: actix closes on an unfinished one.
pub struct HeldPayload {
    /// Only kept: while it lives, actix sees the body's reader alive.
    _reader: Rc<RefCell<Payload>>,
}

impl HeldPayload {
    /// For a chunked request: gives the handler a payload that reads through the shared one.
    pub fn of_chunked(req: &mut ServiceRequest) -> Option<HeldPayload> {
        if !req.head().chunked() {
            return None;
        }
        let shared = Rc::new(RefCell::new(req.take_payload()));
        req.set_payload(Payload::Stream {
            payload: Box::pin(SharedPayload(shared.clone())),
        });
        Some(HeldPayload { _reader: shared })
    }

    /// An answer's body that keeps the request's payload alive until it has been written.
    pub fn until_written<B: MessageBody + Unpin>(self, body: B) -> HoldingBody<B> {
        HoldingBody { body, _held: self }
    }
}

struct SharedPayload(Rc<RefCell<Payload>>);

impl Stream for SharedPayload {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.borrow_mut().poll_next_unpin(cx)
    }
}

/// See [`HeldPayload::until_written`].
pub struct HoldingBody<B> {
    body: B,
    _held: HeldPayload,
}

impl<B: MessageBody + Unpin> MessageBody for HoldingBody<B> {
    type Error = B::Error;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}
