//! `Decision` → `CheckResponse`: OK with header mutations on allow, a denied HTTP
//! response (status, `WWW-Authenticate`, JSON body) on deny.

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::envoy::r#type::v3::{HttpStatus, StatusCode as HttpStatusCode};
use envoy_types::pb::google::rpc::Status;
use portcullis_policy::{Allow, Decision, Deny, DenyStatus};

use crate::answer::CheckAnswer;
use crate::metadata::identity_metadata;

/// `google.rpc.Code` values used in `CheckResponse.status`.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[repr(i32)]
pub(crate) enum RpcCode {
    InvalidArgument = 3,
    Ok = 0,
    PermissionDenied = 7,
    Unauthenticated = 16,
}

/// The answer to Envoy for a decision.
pub(crate) fn check_response(decision: &Decision) -> CheckAnswer {
    match decision {
        Decision::Allow(allow) => allowed(allow),
        Decision::Deny(deny) => denied(deny).into(),
    }
}

/// OK, with the identity headers set (overwriting client-sent copies), every other
/// identity header removed, and the identity as dynamic metadata unless the rule says
/// `dynamic_metadata: false`.
pub(crate) fn allowed(allow: &Allow) -> CheckAnswer {
    let Allow {
        rule: _,
        identity,
        set_headers,
        remove_headers,
        // The gRPC API has no caching of answers.
        cache_max_age: _,
        // Logged and counted by the decider; the answer is an ordinary allow.
        dry_run: _,
        claims_json,
        dynamic_metadata,
    } = allow;
    let ok = OkHttpResponse {
        headers: set_headers
            .iter()
            .map(|(name, value)| overwrite(name.as_str(), value.as_bytes()))
            .collect(),
        headers_to_remove: remove_headers
            .iter()
            .map(|name| name.as_str().to_owned())
            .collect(),
        ..OkHttpResponse::default()
    };
    CheckAnswer {
        response: CheckResponse {
            status: Some(status(RpcCode::Ok, "")),
            // Written as bytes in `metadata`.
            dynamic_metadata: None,
            http_response: Some(HttpResponse::OkResponse(ok)),
        },
        metadata: identity
            .as_deref()
            .filter(|_| *dynamic_metadata)
            .map(|i| identity_metadata(i, claims_json.as_deref())),
    }
}

/// INVALID_ARGUMENT for a request that cannot be read, UNAUTHENTICATED for 401,
/// PERMISSION_DENIED otherwise, with the HTTP answer Envoy sends to the client
/// (302 and `Location` for a login redirect).
pub(crate) fn denied(deny: &Deny) -> CheckResponse {
    let code = match deny.reason.status() {
        DenyStatus::BadRequest => RpcCode::InvalidArgument,
        DenyStatus::Unauthorized => RpcCode::Unauthenticated,
        DenyStatus::Forbidden => RpcCode::PermissionDenied,
        // Proxy mode's own denies (no upstream, upstream failures): never decided here.
        DenyStatus::NotFound | DenyStatus::BadGateway | DenyStatus::GatewayTimeout => {
            RpcCode::PermissionDenied
        }
        // Introspection unavailable: a deny with its 503, never a gRPC error
        // (`failure_mode_allow` could turn that into an allow).
        DenyStatus::ServiceUnavailable => RpcCode::PermissionDenied,
    };
    // The rule's or provider's `deny:` template, else the default JSON body.
    let rendered = deny.response(deny.status());
    denied_with(
        code,
        deny.reason.as_str(),
        deny.status(),
        deny.www_authenticate().as_deref(),
        deny.redirect.as_deref(),
        rendered,
    )
}

fn denied_with(
    code: RpcCode,
    message: &str,
    http_status: u16,
    www_authenticate: Option<&str>,
    location: Option<&str>,
    rendered: portcullis_policy::DenyResponse,
) -> CheckResponse {
    let portcullis_policy::DenyResponse {
        content_type,
        body,
        headers: extra,
    } = rendered;
    // Anything Envoy's StatusCode enum lacks (never produced by the engine) becomes 403.
    let http_code = HttpStatusCode::try_from(i32::from(http_status))
        .ok()
        .filter(|c| *c != HttpStatusCode::Empty)
        .unwrap_or(HttpStatusCode::Forbidden);
    let mut headers = Vec::with_capacity(3 + extra.len());
    for (name, value) in &extra {
        headers.push(overwrite(name.as_str(), value.as_bytes()));
    }
    if let Some(value) = www_authenticate {
        headers.push(overwrite("www-authenticate", value.as_bytes()));
    }
    if let Some(value) = location {
        headers.push(overwrite("location", value.as_bytes()));
    }
    headers.push(overwrite("content-type", content_type.as_bytes()));
    CheckResponse {
        status: Some(status(code, message)),
        dynamic_metadata: None,
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: http_code.into(),
            }),
            headers,
            body,
        })),
    }
}

/// A header that replaces any existing value (`append` stays unset: it is deprecated).
/// Adds `Set-Cookie` headers (appended, one per cookie) to an answer: a denied one's
/// own response, or an allowed one's response from the upstream.
pub(crate) fn add_set_cookies(answer: &mut CheckAnswer, cookies: &[String]) {
    let to = match &mut answer.response.http_response {
        Some(HttpResponse::DeniedResponse(denied)) => &mut denied.headers,
        // An allow: on the upstream's response to the client (a renewed session cookie).
        Some(HttpResponse::OkResponse(ok)) => &mut ok.response_headers_to_add,
        _ => return,
    };
    for cookie in cookies {
        let mut option = overwrite("set-cookie", cookie.as_bytes());
        option.append_action = HeaderAppendAction::AppendIfExistsOrAdd.into();
        to.push(option);
    }
}

fn overwrite(name: &str, value: &[u8]) -> HeaderValueOption {
    // `value` must be UTF-8; bytes that are not go in `raw_value`.
    let (value, raw_value) = match std::str::from_utf8(value) {
        Ok(text) => (text.to_owned(), Vec::new()),
        Err(_) => (String::new(), value.to_vec()),
    };
    HeaderValueOption {
        header: Some(HeaderValue {
            key: name.to_owned(),
            value,
            raw_value,
        }),
        append_action: HeaderAppendAction::OverwriteIfExistsOrAdd.into(),
        ..HeaderValueOption::default()
    }
}

fn status(code: RpcCode, message: &str) -> Status {
    Status {
        code: code as i32,
        message: message.to_owned(),
        details: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
