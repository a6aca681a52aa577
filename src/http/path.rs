//! Path parameters, decoded strictly. actix decodes a percent-encoded segment that is not
//! UTF-8 lossily (`%ff%fe` becomes `"\u{FFFD}\u{FFFD}"`, the same as `%fe%ff`), so two keys
//! would collide; here such a segment is a 400 naming the parameter, before any handler runs.
//!
//! Handlers take `Path<T>` instead of `web::Path<T>`; it must not do more than this check.

use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The matched path parameters, as `web::Path<T>` gives them, once every parameter's raw
/// segment has been found to be UTF-8 after percent-decoding.
pub struct Path<T>(T);

impl<T> Path<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Path<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned> FromRequest for Path<T> {
    type Error = actix_web::Error;
    type Future = Ready<Result<Path<T>, actix_web::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        if let Err(e) = check_utf8(req) {
            return ready(Err(e.into()));
        }
        // `web::Path` answers its own errors through the `PathConfig` of `configure`.
        let inner = web::Path::<T>::from_request(req, payload).into_inner();
        ready(inner.map(|p| Path(p.into_inner())))
    }
}

/// A 400 naming the first parameter whose raw segment does not decode to UTF-8.
fn check_utf8(req: &HttpRequest) -> Result<(), ApiError> {
    let raw = req.uri().path();
    // Without a '%' every segment is the URI's own text, which is ASCII.
    if !raw.contains('%') {
        return Ok(());
    }
    let Some(pattern) = req.match_pattern() else {
        return Ok(());
    };
    // Our patterns hold one parameter per segment, and '/' is never decoded ('%2F' stays
    // inside its segment), so the pattern's segments and the raw path's line up.
    for (name, segment) in pattern.split('/').zip(raw.split('/')) {
        if let Some(name) = name.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            if std::str::from_utf8(&percent_decode(segment)).is_err() {
                return Err(ApiError::BadRequest(format!(
                    "{name} in the path is not valid UTF-8 (after percent-decoding)"
                )));
            }
        }
    }
    Ok(())
}

/// The bytes `%XX` escapes stand for; anything else, a malformed escape included, as it is.
fn percent_decode(segment: &str) -> Vec<u8> {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high << 4) | low);
                i += 3;
            }
            (other, _, _) => {
                out.push(other);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn decodes_escapes_and_keeps_everything_else() {
        assert_eq!(percent_decode("a%20b"), b"a b");
        assert_eq!(percent_decode("%ff%FE"), [0xff, 0xfe]);
        assert_eq!(percent_decode("%C3%A9t%C3%A9"), "été".as_bytes());
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
    }
}
