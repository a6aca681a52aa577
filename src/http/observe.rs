//! What happens around every request, whatever its route: its id (from `X-Request-Id`, or
//! made; echoed in the answer and carried by every log line of the request), its count in
//! `switchyard_http_requests_total{route,status}`, and holding a chunked body until the answer
//! is written. A middleware with a concrete future (no box, no dynamic call per request): it
//! runs on every decision. It must not look at what a request asks or answers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web;
use pin_project_lite::pin_project;
use tracing::Span;

use super::body::HeldPayload;
use super::{forward_auth, AppState};
use crate::metrics::Metrics;

/// The header that carries a request's id, in and out.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The middleware (`App::wrap(ObserveRequests)`): see the module's documentation.
pub struct ObserveRequests;

impl<S, B> Transform<S, ServiceRequest> for ObserveRequests
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Transform = Observing<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Observing<S>, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(Observing { service }))
    }
}

/// [`ObserveRequests`] around the app's routes.
pub struct Observing<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for Observing<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B, BoxBody>>;
    type Error = actix_web::Error;
    type Future = Observed<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        let id = request_id(&req);
        let id_text = id.to_str().unwrap_or("-");
        let span = if is_hot(&req) {
            tracing::debug_span!("request", request_id = id_text, method = %req.method())
        } else {
            tracing::info_span!("request", request_id = id_text, method = %req.method())
        };
        let held = HeldPayload::of_chunked(&mut req);
        let answer = span.in_scope(|| self.service.call(req));
        Observed {
            answer,
            span,
            id: Some(id),
            held,
        }
    }
}

pin_project! {
    /// A request on its way through the routes: counted and given its id once answered.
    pub struct Observed<F> {
        #[pin]
        answer: F,
        span: Span,
        id: Option<HeaderValue>,
        held: Option<HeldPayload>,
    }
}

impl<F, B> Future for Observed<F>
where
    F: Future<Output = Result<ServiceResponse<B>, actix_web::Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _in_span = this.span.enter();
        let mut response = ready!(this.answer.poll(cx))?;
        let request = response.request();
        let route = request
            .match_name()
            .or_else(|| forward_auth::is_under(request.path()).then_some(forward_auth::ROUTE))
            .unwrap_or("unmatched");
        let status = response.status();
        tracing::debug!(route, status = status.as_u16(), "answered");
        if let Some(state) = request.app_data::<web::Data<AppState>>() {
            count_answer(&state.metrics, route, status.as_u16());
        }
        if let Some(id) = this.id.take() {
            response.headers_mut().insert(REQUEST_ID, id);
        }
        Poll::Ready(Ok(match this.held.take() {
            None => response.map_into_left_body(),
            Some(held) => response.map_body(|_, body| {
                EitherBody::right(BoxBody::new(held.until_written(BoxBody::new(body))))
            }),
        }))
    }
}

/// A caller's request id if it is sane (1–128 visible ASCII characters), else a new one:
/// a random per-process prefix and a counter (unique without a system call per request).
fn request_id(req: &ServiceRequest) -> HeaderValue {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u32> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    if let Some(given) = req.headers().get(&REQUEST_ID).filter(|v| {
        !v.is_empty() && v.len() <= 128 && v.as_bytes().iter().all(u8::is_ascii_graphic)
    }) {
        return given.clone();
    }
    let prefix = *PREFIX.get_or_init(rand::random::<u32>);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // `pppppppp-nnnnnnnnnnnn` in hex, written without a format string.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [b'-'; 21];
    for i in 0..8 {
        id[i] = HEX[((prefix >> (28 - 4 * i)) & 0xf) as usize];
    }
    for i in 0..12 {
        id[9 + i] = HEX[((n >> (44 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

/// Counts one answer. Each worker thread keeps the counters it has used, so the hot path does
/// no label lookup (route names live as long as the app; a new app starts a fresh cache). The
/// cache is a short list searched in order, each hit moved one place up: a worker sees a few
/// dozen (route, status) pairs at most and the hot ones end up first, cheaper than hashing.
fn count_answer(metrics: &Arc<Metrics>, route: &str, status: u16) {
    use std::cell::RefCell;
    type Key = (usize, usize, usize, u16);
    /// More pairs than this means something is churning: start over rather than grow.
    const MAX_CACHED: usize = 256;
    thread_local! {
        static COUNTERS: RefCell<Vec<(Key, prometheus::IntCounter)>> = const { RefCell::new(Vec::new()) };
    }
    let key = (
        Arc::as_ptr(metrics) as usize,
        route.as_ptr() as usize,
        route.len(),
        status,
    );
    COUNTERS.with(|counters| {
        let mut counters = counters.borrow_mut();
        if let Some(i) = counters.iter().position(|(k, _)| *k == key) {
            counters[i].1.inc();
            if i > 0 {
                counters.swap(i, i - 1);
            }
            return;
        }
        if counters.len() >= MAX_CACHED {
            counters.clear();
        }
        let status_text = actix_web::http::StatusCode::from_u16(status)
            .map_or_else(|_| status.to_string(), |s| s.as_str().to_string());
        let counter = metrics
            .http_requests
            .with_label_values(&[route, &status_text]);
        counter.inc();
        counters.push((key, counter));
    });
}

fn is_hot(req: &ServiceRequest) -> bool {
    let method = req.method();
    method == actix_web::http::Method::GET
        || method == actix_web::http::Method::HEAD
        || matches!(req.path(), "/v1/decide" | "/v1/outcomes")
        || req.path().starts_with("/ofrep/")
        || forward_auth::is_under(req.path())
}
