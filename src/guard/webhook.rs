//! Tells a person that a guard tripped: POSTs the trip as JSON to `guards.webhook_url`
//! (a Slack incoming webhook shows its `text`), in the background, retried with backoff a
//! bounded number of times.
//!
//! A delivery runs in its own task: it never blocks the evaluator, a write or a decision, and
//! its failure fails nothing else (it is logged). One HTTP/1.1 request per attempt, over TCP
//! or TLS (rustls with the Mozilla roots of `webpki-roots`). This module must not know about
//! rollouts beyond the payload it is given.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HOST, USER_AGENT};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

use super::trip::TripEvidence;
use crate::rules::model::GuardAction;

/// Attempts per trip, the first included.
pub const MAX_ATTEMPTS: u32 = 6;
/// The wait after the first failed attempt; it doubles after each (1, 2, 4, 8, 16 s).
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// How long one attempt may take (connect, TLS, answer).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a webhook receives.
#[derive(Debug, Clone, Serialize)]
pub struct TripNotice {
    /// One line a person can act on.
    pub text: String,
    pub rollout: String,
    pub action: GuardAction,
    pub evidence: TripEvidence,
    /// The version the trip wrote.
    pub version: u64,
}

impl TripNotice {
    pub fn new(rollout: &str, version: u64, trip: TripEvidence) -> TripNotice {
        TripNotice {
            text: trip.text(rollout, version),
            rollout: rollout.to_string(),
            action: trip.action,
            evidence: trip,
            version,
        }
    }
}

/// A webhook address: `http://` or `https://`, a host, an optional port and path.
#[derive(Debug, Clone)]
pub struct WebhookUrl {
    uri: Uri,
    https: bool,
    host: String,
    port: u16,
}

impl WebhookUrl {
    /// Reads `text`; the problem in the settings' words otherwise.
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        let uri: Uri = text
            .parse()
            .map_err(|e| format!("'{text}' is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("'{text}' must start with http:// or https://")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| format!("'{text}' names no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        Ok(WebhookUrl {
            uri,
            https,
            host,
            port,
        })
    }

    /// Scheme, host and port: what may be shown (the path of a Slack webhook is its secret).
    pub fn origin(&self) -> String {
        format!(
            "{}://{}:{}",
            if self.https { "https" } else { "http" },
            self.uri.host().unwrap_or_default(),
            self.port
        )
    }

    fn path(&self) -> &str {
        self.uri.path_and_query().map_or("/", |p| p.as_str())
    }

    fn authority(&self) -> &str {
        self.uri
            .authority()
            .map_or(self.host.as_str(), |a| a.as_str())
    }
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("cannot connect to {origin}: {source}")]
    Connect {
        origin: String,
        source: std::io::Error,
    },
    #[error("TLS with {origin} failed: {source}")]
    Tls {
        origin: String,
        source: std::io::Error,
    },
    #[error("'{0}' is not a name a TLS certificate can carry")]
    ServerName(String),
    #[error("HTTP exchange with {origin} failed: {source}")]
    Http {
        origin: String,
        source: hyper::Error,
    },
    #[error("{origin} answered {status}")]
    Status { origin: String, status: StatusCode },
    #[error("{origin} did not answer within {ATTEMPT_TIMEOUT:?}")]
    Timeout { origin: String },
}

/// Delivers trip notices to one URL.
#[derive(Clone)]
pub struct Webhook {
    url: WebhookUrl,
    tls: Arc<rustls::ClientConfig>,
    first_backoff: Duration,
}

impl Webhook {
    pub fn new(url: WebhookUrl) -> Webhook {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        Webhook {
            url,
            tls: Arc::new(tls),
            first_backoff: FIRST_BACKOFF,
        }
    }

    /// Sends `notice` in a task of its own: up to [`MAX_ATTEMPTS`] attempts, waiting
    /// [`FIRST_BACKOFF`], doubling, between them. Returns at once.
    pub fn notify(&self, notice: TripNotice) -> tokio::task::JoinHandle<bool> {
        let webhook = self.clone();
        tokio::spawn(async move { webhook.deliver(&notice).await })
    }

    /// Tries until one attempt succeeds (`true`) or the attempts run out (`false`).
    async fn deliver(&self, notice: &TripNotice) -> bool {
        let body = match serde_json::to_vec(notice) {
            Ok(body) => Bytes::from(body),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode the guard's webhook notice");
                return false;
            }
        };
        let mut backoff = self.first_backoff;
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt(body.clone()).await {
                Ok(()) => {
                    tracing::info!(
                        rollout = %notice.rollout,
                        version = notice.version,
                        attempt,
                        to = %self.url.origin(),
                        "guard trip sent to the webhook"
                    );
                    return true;
                }
                Err(e) if attempt < MAX_ATTEMPTS => {
                    tracing::warn!(
                        rollout = %notice.rollout,
                        attempt,
                        retry_in = ?backoff,
                        error = %e,
                        "guard webhook failed; retrying"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(e) => {
                    tracing::error!(
                        rollout = %notice.rollout,
                        attempts = MAX_ATTEMPTS,
                        error = %e,
                        "guard webhook failed; giving up"
                    );
                }
            }
        }
        false
    }

    async fn attempt(&self, body: Bytes) -> Result<(), DeliveryError> {
        let origin = self.url.origin();
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.exchange(body)).await {
            Ok(Ok(status)) if status.is_success() => Ok(()),
            Ok(Ok(status)) => Err(DeliveryError::Status { origin, status }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(DeliveryError::Timeout { origin }),
        }
    }

    async fn exchange(&self, body: Bytes) -> Result<StatusCode, DeliveryError> {
        let origin = self.url.origin();
        let tcp = TcpStream::connect((self.url.host.as_str(), self.url.port))
            .await
            .map_err(|source| DeliveryError::Connect {
                origin: origin.clone(),
                source,
            })?;
        let request = Request::post(self.url.path())
            .header(HOST, self.url.authority())
            .header(CONTENT_TYPE, "application/json")
            .header(
                USER_AGENT,
                concat!("switchyard/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(body))
            .expect("a request of valid parts");
        if self.url.https {
            let name = rustls::pki_types::ServerName::try_from(self.url.host.clone())
                .map_err(|_| DeliveryError::ServerName(self.url.host.clone()))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|source| DeliveryError::Tls {
                    origin: origin.clone(),
                    source,
                })?;
            send(TokioIo::new(tls), request, origin).await
        } else {
            send(TokioIo::new(tcp), request, origin).await
        }
    }
}

/// One request on a fresh HTTP/1.1 connection; the answer's status.
async fn send<I>(
    io: I,
    request: Request<Full<Bytes>>,
    origin: String,
) -> Result<StatusCode, DeliveryError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let http = |source| DeliveryError::Http {
        origin: origin.clone(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(http)?;
    let driving = tokio::spawn(connection);
    let answer = sender.send_request(request).await.map_err(http);
    driving.abort();
    Ok(answer?.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_is_http_or_https_with_a_host_and_shows_only_its_origin() {
        let slack = WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/secret").unwrap();
        assert_eq!(slack.origin(), "https://hooks.slack.com:443");
        assert_eq!(slack.path(), "/services/T0/B0/secret");
        let local = WebhookUrl::parse("http://127.0.0.1:9000/hook?x=1").unwrap();
        assert_eq!((local.host.as_str(), local.port), ("127.0.0.1", 9000));
        assert_eq!(local.path(), "/hook?x=1");
        assert_eq!(local.authority(), "127.0.0.1:9000");
        let bare = WebhookUrl::parse("http://example.com").unwrap();
        assert_eq!((bare.port, bare.path()), (80, "/"));
        for bad in ["ftp://example.com/", "example.com/hook", "", "http://"] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
