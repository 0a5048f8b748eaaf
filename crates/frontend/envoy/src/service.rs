//! The `envoy.service.auth.v3.Authorization` service: map, decide, render.

use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::Authorization;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use portcullis_decider::{Decider, Frontend};
use portcullis_login::Login;
use portcullis_policy::{AuthRequest, Decision, Deny, DenyReason};
use tonic::{Request, Response, Status};

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
    pub(crate) async fn decide(&self, check: CheckRequest) -> CheckResponse {
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

#[tonic::async_trait]
impl Authorization for AuthorizationService {
    async fn check(
        &self,
        request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(self.decide(request.into_inner()).await))
    }
}
