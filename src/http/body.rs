//! Reading JSON request bodies: content type (415), size (413), syntax (400) and shape (422,
//! with the exact field path), all answered with the SPEC §4 error body.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::{Bytes, BytesMut};
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::ApiError;

/// The largest body accepted, in bytes (`server.max_body_bytes`), as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// A request body that is JSON by its content type and within the size limit, not yet parsed.
pub struct JsonBytes(pub Bytes);

fn is_json(req: &HttpRequest) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(
            "the body must be JSON: send Content-Type: application/json".into(),
        ));
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "application/merge-patch+json" => Ok(()),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "content type '{other}' is not supported: send application/json"
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
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            match declared {
                Some(n) if n > limit => Err(ApiError::PayloadTooLarge(limit)),
                _ => Ok(declared),
            }
        });
        let mut payload = payload.take();
        Box::pin(async move {
            let declared = checked?;
            let read_error = |e| ApiError::BadRequest(format!("cannot read the body: {e}"));
            // Most bodies arrive in one chunk: keep it as it is, without a copy.
            let Some(first) = payload.next().await.transpose().map_err(read_error)? else {
                return Ok(JsonBytes(Bytes::new()));
            };
            if first.len() > limit {
                return Err(ApiError::PayloadTooLarge(limit));
            }
            let Some(second) = payload.next().await.transpose().map_err(read_error)? else {
                return Ok(JsonBytes(first));
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
            Ok(JsonBytes(body.freeze()))
        })
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
            let message = error.to_string();
            // `missing field `x`` is reported at the parent; name the field itself.
            let field = match message
                .strip_prefix("missing field `")
                .and_then(|m| m.split('`').next())
            {
                Some(name) if path == "." => name.to_string(),
                Some(name) => format!("{path}.{name}"),
                None if path == "." => "body".to_string(),
                None => path.to_string(),
            };
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
