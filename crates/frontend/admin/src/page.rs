//! The admin page at `/`: plain HTML, a stylesheet and a script, embedded in the
//! binary (no build step, works offline), served with a strict CSP: only this
//! origin's script and style, no inline code, no framing, nothing sent elsewhere.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

/// The page's `Content-Security-Policy`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/admin.js");
const STYLE: &str = include_str!("page/admin.css");
const ICON: &str = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 16 16\"><path d=\"M2 15V5l6-4 6 4v10h-3V8H5v7z\" fill=\"#1d2330\"/></svg>";

/// The page's files: `/`, `/admin.js`, `/admin.css`.
pub(crate) fn asset(path: &str) -> Option<Response<Full<Bytes>>> {
    let (body, content_type) = match path {
        "/" | "/index.html" => (INDEX, "text/html; charset=utf-8"),
        "/admin.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/admin.css" => (STYLE, "text/css; charset=utf-8"),
        "/favicon.svg" | "/favicon.ico" => (ICON, "image/svg+xml"),
        _ => return None,
    };
    Some(secured(
        Response::new(Full::new(Bytes::from_static(body.as_bytes()))),
        content_type,
    ))
}

/// [`secured`] for a JSON answer whose status stays (`/explain`'s 400s).
pub(crate) fn secured_keep_status(r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let status = r.status();
    let mut r = secured(r, "application/json");
    *r.status_mut() = status;
    r
}

/// Adds the page's security headers (also on `/state.json` and `/explain`).
pub(crate) fn secured(
    mut r: Response<Full<Bytes>>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    *r.status_mut() = StatusCode::OK;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    r
}
