//! The `envoy.service.auth.v3.Authorization` service: map, decide, render.

use std::sync::Arc;

use std::convert::Infallible;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use portcullis_decider::{Decider, Frontend};
use portcullis_login::Login;
use portcullis_policy::{AuthRequest, Decision, Deny, DenyReason};
use tonic::codegen::{BoxFuture, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};

use crate::answer::CheckAnswer;
use crate::request::EnvoyRequest;
use crate::response;

/// The frontend name in metrics and logs.
pub(crate) const FRONTEND: Frontend = Frontend::ExtAuthzGrpc;

/// Answers `Check` with the decider's decision.
#[derive(Debug)]
pub(crate) struct AuthorizationService {
    decider: Arc<Decider>,
    login: Option<Arc<Login>>,
}

// === impl AuthorizationService ===

impl AuthorizationService {
    pub(crate) fn new(decider: Arc<Decider>) -> Self {
        AuthorizationService {
            decider,
            login: None,
        }
    }

    /// Also reads browser sessions (the request's session cookie).
    pub(crate) fn with_login(mut self, login: Option<Arc<Login>>) -> Self {
        self.login = login;
        self
    }

    /// Decides one `CheckRequest`. Never an error: every outcome is an answer Envoy
    /// enforces, whatever its `failure_mode_allow`.
    pub(crate) async fn decide(&self, check: CheckRequest) -> CheckAnswer {
        match EnvoyRequest::try_from(check) {
            Ok(req) => {
                let now = self.decider.now();
                let (session, renewed) = match &self.login {
                    Some(login) => {
                        login
                            .read_session_renewing(&self.decider, &req.headers)
                            .await
                    }
                    None => (None, Vec::new()),
                };
                let mut auth = req.auth_request();
                auth.session = session.as_ref();
                let mut decision = self.decider.decide(&auth, FRONTEND).await;
                let Some(login) = &self.login else {
                    return response::check_response(&decision);
                };
                login.complete(&mut decision, now);
                let mut answer = response::check_response(&decision);
                response::add_set_cookies(&mut answer, &renewed);
                if let Decision::Deny(d) = &decision
                    && d.reason == DenyReason::SessionInvalid
                {
                    response::add_set_cookies(&mut answer, &login.clear_session_cookies());
                }
                answer
            }
            Err(error) => {
                // Counted and logged like every decision; an answer, not a gRPC error,
                // so Envoy's `failure_mode_allow` cannot turn it into an allow.
                let headers = http::HeaderMap::new();
                let nothing = AuthRequest::new(&http::Method::GET, "", "", &headers);
                let deny = Deny::request_invalid(format!("unreadable CheckRequest: {error}"));
                response::check_response(&self.decider.reject(deny, &nothing, FRONTEND))
            }
        }
    }
}

/// The `envoy.service.auth.v3.Authorization` gRPC service, as tonic's generated
/// server would route it, but answering with [`CheckAnswer`] (the same bytes as a
/// `CheckResponse`, with the metadata written once, not built as a tree).
#[derive(Clone, Debug)]
pub(crate) struct AuthorizationServer {
    service: Arc<AuthorizationService>,
}

/// The one method's path.
pub(crate) const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

// === impl AuthorizationServer ===

impl AuthorizationServer {
    pub(crate) fn new(service: AuthorizationService) -> Self {
        AuthorizationServer {
            service: Arc::new(service),
        }
    }
}

impl NamedService for AuthorizationServer {
    const NAME: &'static str = crate::SERVICE_NAME;
}

impl<B> tower_service::Service<http::Request<B>> for AuthorizationServer
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != CHECK_PATH {
            return Box::pin(async { Ok(unimplemented()) });
        }
        let check = Check(Arc::clone(&self.service));
        Box::pin(async move {
            // tonic's defaults, as the generated server has them: no compression,
            // 4 MiB per message.
            let codec = tonic_prost::ProstCodec::<CheckAnswer, CheckRequest>::default();
            Ok(Grpc::new(codec).unary(check, request).await)
        })
    }
}

/// Any other method of the service: `UNIMPLEMENTED`.
fn unimplemented() -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::default());
    let headers = response.headers_mut();
    headers.insert(
        tonic::Status::GRPC_STATUS,
        http::HeaderValue::from(tonic::Code::Unimplemented as i32),
    );
    headers.insert(
        http::header::CONTENT_TYPE,
        tonic::metadata::GRPC_CONTENT_TYPE,
    );
    response
}

/// One `Check` call.
struct Check(Arc<AuthorizationService>);

impl UnaryService<CheckRequest> for Check {
    type Response = CheckAnswer;
    type Future = BoxFuture<tonic::Response<CheckAnswer>, tonic::Status>;

    fn call(&mut self, request: tonic::Request<CheckRequest>) -> Self::Future {
        let service = Arc::clone(&self.0);
        Box::pin(async move {
            Ok(tonic::Response::new(
                service.decide(request.into_inner()).await,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use tower_service::Service as _;

    use super::*;

    fn server() -> AuthorizationServer {
        let decider = crate::test_decider("rules: [{name: any, match: {}, allow: anonymous}]");
        AuthorizationServer::new(AuthorizationService::new(decider))
    }

    #[tokio::test]
    async fn other_methods_of_the_service_are_unimplemented() {
        for path in [
            "/envoy.service.auth.v3.Authorization/Other",
            "/envoy.service.auth.v3.Authorization/Check/",
            "/envoy.service.auth.v2.Authorization/Check",
            "/",
        ] {
            let request = http::Request::builder()
                .method("POST")
                .uri(path)
                .body(tonic::body::Body::default())
                .unwrap();
            let response = server().call(request).await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            assert_eq!(response.headers()["grpc-status"], "12", "{path}");
            assert_eq!(response.headers()["content-type"], "application/grpc");
        }
    }

    /// A `Check`'s decision future is moved into a box when it starts (`Check::call`),
    /// so its size is a cost per request. It holds the login's session read (the
    /// store, a refresh at the provider), which is boxed behind the cookie check:
    /// inline, it made this future 6,512 bytes in the test build whether login is
    /// configured or not (the type is the same either way); 3,640 boxed. Most of the
    /// rest is the request held twice (the `CheckRequest`, then what it maps to).
    #[test]
    fn a_check_s_decision_future_stays_small() {
        let decider = crate::test_decider("rules: [{name: any, match: {}, allow: anonymous}]");
        let mut check = Check(Arc::new(AuthorizationService::new(decider)));
        let future = check.call(tonic::Request::new(CheckRequest::default()));
        let size = std::mem::size_of_val(&*future);
        assert!(size <= 4_096, "the Check decision future is {size} bytes");
    }
}
