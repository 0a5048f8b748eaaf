//! `bench-floor authz-grpc`: `envoy.service.auth.v3.Authorization/Check` answering OK
//! with no header mutations, whatever the request: the floor of Envoy's ext_authz
//! architecture (Envoy's gRPC client, HTTP/2, protobuf) without any decision.
//!
//! `bench-floor authz-grpc-metadata ADDR CLAIMS.json` answers the same OK with the
//! dynamic metadata the contract asks of Portcullis on every allow (`provider`, `iss`,
//! `sub`, `claims`), built once from CLAIMS.json: the floor with the same answer, so
//! Envoy's own cost of reading that metadata is on both sides of the ratio.

use std::net::SocketAddr;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse, OkHttpResponse};
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// Always OK, with `metadata` (when set) as the answer's dynamic metadata.
struct AlwaysOk {
    metadata: Option<Struct>,
}

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
            dynamic_metadata: self.metadata.clone(),
        }))
    }
}

/// `{provider, iss, sub, claims}` as Portcullis's ext_authz frontend builds it, from a
/// JSON object of claims.
pub(crate) fn identity_metadata(claims_json: &[u8]) -> std::io::Result<Struct> {
    let claims: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(claims_json).map_err(std::io::Error::other)?;
    let mut fields = std::collections::HashMap::new();
    fields.insert("provider".to_owned(), string("bench"));
    for name in ["iss", "sub"] {
        if let Some(serde_json::Value::String(v)) = claims.get(name) {
            fields.insert(name.to_owned(), string(v));
        }
    }
    let claims = claims.into_iter().map(|(k, v)| (k, value(v))).collect();
    fields.insert(
        "claims".to_owned(),
        Value {
            kind: Some(Kind::StructValue(Struct { fields: claims })),
        },
    );
    Ok(Struct { fields })
}

fn value(v: serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(a) => Kind::ListValue(ListValue {
            values: a.into_iter().map(value).collect(),
        }),
        serde_json::Value::Object(o) => Kind::StructValue(Struct {
            fields: o.into_iter().map(|(k, v)| (k, value(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_owned())),
    }
}

/// Serves on `addr` (HTTP/2 cleartext, as Portcullis's `grpc` listener) until SIGTERM/SIGINT.
pub(crate) async fn serve(addr: SocketAddr, metadata: Option<Struct>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // As Portcullis's grpc listener: small unary calls, sent at once.
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    Server::builder()
        .add_service(AuthorizationServer::new(AlwaysOk { metadata }))
        .serve_with_incoming_shutdown(incoming, crate::shutdown())
        .await
        .map_err(std::io::Error::other)
}
