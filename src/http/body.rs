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
use crate::config::ServerSettings;

/// How request bodies are bounded (`server.max_body_bytes`, `server.request_timeout_seconds`),
/// as app data: the largest body accepted, in bytes, and how long a body may take to arrive.
#[derive(Debug, Clone, Copy)]
pub struct BodyRules {
    pub max_bytes: usize,
    pub timeout: Duration,
}

impl BodyRules {
    pub fn of(server: &ServerSettings) -> BodyRules {
        BodyRules {
            max_bytes: server.max_body_bytes,
            timeout: Duration::from_secs(server.request_timeout_seconds.max(1)),
        }
    }
}

impl Default for BodyRules {
    /// The settings' defaults (for an app built without them, as some tests do).
    fn default() -> Self {
        BodyRules::of(&ServerSettings::default())
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
    let text = header_text(value).unwrap_or("");
    if text.eq_ignore_ascii_case("application/json") {
        return Ok(());
    }
    let mime = text.split(';').next().unwrap_or("").trim();
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
    type Future = ReadBody;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> ReadBody {
        let rules = req.app_data::<BodyRules>().copied().unwrap_or_default();
        let checked = is_json(req).and_then(|()| {
            let declared = req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(header_text)
                .and_then(|v| v.parse::<usize>().ok());
            match declared {
                Some(n) if n > rules.max_bytes => Err(ApiError::PayloadTooLarge(rules.max_bytes)),
                _ => Ok(declared),
            }
        });
        let (refused, declared) = match checked {
            Ok(declared) => (None, declared),
            Err(refused) => (Some(refused), None),
        };
        ReadBody {
            refused,
            payload: payload.take(),
            rules,
            declared,
            first: None,
            rest: None,
            waited_once: false,
            timer: None,
        }
    }
}

/// Reads a whole body, at most `rules.max_bytes`, within `rules.timeout` (408): the future
/// of [`JsonBytes`].
///
/// Most bodies arrive with their head: the first poll finds the payload not yet fed (actix
/// feeds it right after calling the handler) and the second finds it whole. So the timer is
/// armed only when the body is still unfinished at the second poll; the first one wakes the
/// task itself, so that a body that never comes is still polled again and timed. The
/// deadline thus counts from when the service first waited a second time, microseconds
/// after the head was read.
pub struct ReadBody {
    /// Refused before reading (content type, declared length).
    refused: Option<ApiError>,
    payload: Payload,
    rules: BodyRules,
    declared: Option<usize>,
    /// The first chunk, kept as it is (most bodies are one chunk: no copy).
    first: Option<Bytes>,
    /// The chunks so far, once there is more than one.
    rest: Option<BytesMut>,
    /// Waited once already, and woke the task so that it is polled again.
    waited_once: bool,
    /// The 408 timer, armed when the body is still unfinished at the second wait.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ReadBody {
    fn add(&mut self, chunk: Bytes) -> Result<(), ApiError> {
        let limit = self.rules.max_bytes;
        if let Some(body) = &mut self.rest {
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            body.extend_from_slice(&chunk);
            return Ok(());
        }
        match self.first.take() {
            None if chunk.len() > limit => Err(ApiError::PayloadTooLarge(limit)),
            None => {
                self.first = Some(chunk);
                Ok(())
            }
            Some(first) => {
                if first.len() + chunk.len() > limit {
                    return Err(ApiError::PayloadTooLarge(limit));
                }
                let mut body = BytesMut::with_capacity(self.declared.unwrap_or(4096).min(limit));
                body.extend_from_slice(&first);
                body.extend_from_slice(&chunk);
                self.rest = Some(body);
                Ok(())
            }
        }
    }

    fn finish(&mut self) -> Bytes {
        match (self.rest.take(), self.first.take()) {
            (Some(body), _) => body.freeze(),
            (None, Some(first)) => first,
            (None, None) => Bytes::new(),
        }
    }
}

impl Future for ReadBody {
    type Output = Result<JsonBytes, ApiError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(refused) = this.refused.take() {
            return Poll::Ready(Err(refused));
        }
        loop {
            match Pin::new(&mut this.payload).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => {
                    if let Err(e) = this.add(chunk) {
                        return Poll::Ready(Err(e));
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Err(ApiError::BadRequest(format!(
                        "cannot read the body: {e}"
                    ))))
                }
                Poll::Ready(None) => return Poll::Ready(Ok(JsonBytes(this.finish()))),
                Poll::Pending => break,
            }
        }
        if !this.waited_once {
            this.waited_once = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let timeout = this.rules.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(ApiError::RequestTimeout(timeout.as_secs()))),
            Poll::Pending => Poll::Pending,
        }
    }
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
