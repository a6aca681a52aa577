//! `GET /admin` and its assets (`GET /admin/{file}`): the admin page of SPEC §12, built into
//! the binary from `admin_page/` (plain HTML, CSS and JavaScript: no build step, nothing
//! fetched from elsewhere). The page speaks only the REST API, with the token the person
//! signs in with; these routes need no token and serve nothing but the files.
//!
//! Every answer carries a Content-Security-Policy that allows only this origin's files (no
//! inline script or style, no framing, no form posts), `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`. This module must not serve anything that is not one of
//! the files below.

use actix_web::http::header;
use actix_web::HttpResponse;

use super::error::ApiError;
use super::path::Path;

/// What the page may load and do: its own files and API, nothing inline, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'none'; \
     object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// One file of the page.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The page itself, at `/admin`.
pub const PAGE: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("admin_page/index.html"),
};

/// The files the page loads, at `/admin/{name}`.
pub const ASSETS: [Asset; 3] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("admin_page/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("admin_page/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("admin_page/favicon.svg"),
    },
];

fn serve(asset: &Asset) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(asset.body)
}

pub async fn page() -> HttpResponse {
    serve(&PAGE)
}

pub async fn asset(file: Path<String>) -> Result<HttpResponse, ApiError> {
    ASSETS
        .iter()
        .find(|a| a.name == file.as_str())
        .map(serve)
        .ok_or_else(|| ApiError::NotFound(format!("the admin page has no file '{}'", *file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_page_is_under_200_kilobytes() {
        let total: usize = std::iter::once(&PAGE)
            .chain(ASSETS.iter())
            .map(|a| a.body.len())
            .sum();
        assert!(total < 200 * 1024, "{total} bytes");
    }

    #[test]
    fn the_page_loads_only_its_own_files_and_nothing_inline() {
        let html = PAGE.body;
        assert!(!html.contains("<style"), "no inline style");
        let attribute = regex::Regex::new(r#"\s(style|on[a-z]+)\s*="#).unwrap();
        assert!(
            !attribute.is_match(html),
            "no style or event handler attribute"
        );
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert_eq!(scripts.len(), 1, "one script");
        assert!(scripts[0].starts_with(" type=\"module\" src=\"/admin/app.js\"></script>"));
        // The only absolute URL in any file is the SVG namespace (a name, never fetched).
        let url = regex::Regex::new(r"(?i)(https?:)?//[a-z0-9.-]+").unwrap();
        for asset in std::iter::once(&PAGE).chain(ASSETS.iter()) {
            for found in url.find_iter(asset.body) {
                let at = found.start();
                assert!(
                    asset.body[at..].starts_with("http://www.w3.org/2000/svg"),
                    "{} names {}",
                    asset.name,
                    found.as_str()
                );
            }
        }
    }

    #[test]
    fn the_script_never_writes_html() {
        let js = ASSETS[0].body;
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!js.contains(sink), "app.js uses {sink}");
        }
    }
}
