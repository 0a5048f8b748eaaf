//! `bench-floor authz-grpc`: `envoy.service.auth.v3.Authorization/Check` answering OK
//! with no header mutations, whatever the request: the floor of Envoy's ext_authz
//! architecture (Envoy's gRPC client, HTTP/2, protobuf) without any decision.

use std::net::SocketAddr;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Always OK.
struct AlwaysOk;

// === impl AlwaysOk ===

#[tonic::async_trait]
impl Authorization for AlwaysOk {
    async fn check(
        &self,
        _request: Request<CheckRequest>,
    ) -> Result<Response<CheckResponse>, Status> {
        Ok(Response::new(CheckResponse {
            // google.rpc.Code OK.
            status: Some(RpcStatus::default()),
            http_response: Some(HttpResponse::OkResponse(OkHttpResponse::default())),
            dynamic_metadata: None,
        }))
    }
}

/// Serves on `addr` (HTTP/2 cleartext, as Portcullis's `grpc` listener) until SIGTERM/SIGINT.
pub(crate) async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // As Portcullis's grpc listener: small unary calls, sent at once.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .add_service(AuthorizationServer::new(AlwaysOk))
        .serve_with_incoming_shutdown(incoming, crate::shutdown())
        .await
        .map_err(std::io::Error::other)
}
