//! A SPIFFE Workload API server for tests, over a Unix socket, with tonic.
//!
//! SPIRE cannot be installed here, so this stands in for the SPIRE Agent: it
//! serves `FetchJWTSVID` and the `FetchJWTBundles` stream of the official
//! `SpiffeWorkloadAPI` service (`proto/workload.proto`, copied from the SPIFFE
//! project; the messages below mirror its field numbers), refusing calls without
//! the `workload.spiffe.io: true` metadata as the agent does. Its JWT-SVIDs are
//! signed ES256 with the trust domain's current key; [`WorkloadApi::rotate`] swaps
//! that key and pushes the new bundle down every open stream.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use portcullis_jose::{Algorithm, SigningKey};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_stream::Stream;

/// `JWTSVIDRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct JwtSvidRequest {
    /// `audience = 1`.
    #[prost(string, repeated, tag = "1")]
    pub(crate) audience: Vec<String>,
    /// `spiffe_id = 2`.
    #[prost(string, tag = "2")]
    pub(crate) spiffe_id: String,
}

/// `JWTSVIDResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct JwtSvidResponse {
    /// `svids = 1`.
    #[prost(message, repeated, tag = "1")]
    pub(crate) svids: Vec<JwtSvid>,
}

/// `JWTSVID`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct JwtSvid {
    /// `spiffe_id = 1`.
    #[prost(string, tag = "1")]
    pub(crate) spiffe_id: String,
    /// `svid = 2`.
    #[prost(string, tag = "2")]
    pub(crate) svid: String,
    /// `hint = 3`.
    #[prost(string, tag = "3")]
    pub(crate) hint: String,
}

/// `JWTBundlesRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct JwtBundlesRequest {}

/// `JWTBundlesResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct JwtBundlesResponse {
    /// `bundles = 1`: trust domain name to its JWKS (JSON bytes).
    #[prost(map = "string, bytes", tag = "1")]
    pub(crate) bundles: HashMap<String, Vec<u8>>,
}

struct TrustDomainKey {
    key: SigningKey,
    kid: String,
    pkcs8: Vec<u8>,
}

struct State {
    trust_domain: String,
    /// The workload's identity: the `sub` of the SVIDs it hands out.
    spiffe_id: Mutex<String>,
    /// Current key first; older ones stay in the bundle until [`WorkloadApi::retire`].
    keys: Mutex<Vec<TrustDomainKey>>,
    bundles: watch::Sender<JwtBundlesResponse>,
    svid_calls: AtomicUsize,
    refused_calls: AtomicUsize,
    /// Connections accepted on the socket, over every restart.
    connections: AtomicUsize,
    ttl_secs: i64,
}

/// A running Workload API (stopped on drop).
pub struct WorkloadApi {
    state: Arc<State>,
    socket: PathBuf,
    rotations: AtomicUsize,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WorkloadApi {
    /// Serves on `<dir>/agent.sock` for `trust_domain`, handing out SVIDs for
    /// `spiffe_id` that live `ttl_secs`.
    pub fn start(dir: &Path, trust_domain: &str, spiffe_id: &str, ttl_secs: i64) -> WorkloadApi {
        let socket = dir.join("agent.sock");
        let _ = std::fs::remove_file(&socket);
        let (bundles, _) = watch::channel(JwtBundlesResponse::default());
        let state = Arc::new(State {
            trust_domain: trust_domain.to_owned(),
            spiffe_id: Mutex::new(spiffe_id.to_owned()),
            keys: Mutex::new(Vec::new()),
            bundles,
            svid_calls: AtomicUsize::new(0),
            refused_calls: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            ttl_secs,
        });
        let mut api = WorkloadApi {
            state: state.clone(),
            socket: socket.clone(),
            rotations: AtomicUsize::new(0),
            stop: None,
            thread: None,
        };
        api.rotate();
        api.serve();
        api
    }

    /// Binds the socket and serves on a thread of its own.
    fn serve(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (state, socket) = (self.state.clone(), self.socket.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::bind(&socket).unwrap();
                ready_tx.send(()).unwrap();
                let counted = state.clone();
                let incoming = tokio_stream::StreamExt::map(
                    tokio_stream::wrappers::UnixListenerStream::new(listener),
                    move |conn| {
                        counted.connections.fetch_add(1, Ordering::SeqCst);
                        conn
                    },
                );
                let server = tonic::transport::Server::builder()
                    .add_service(Service(state))
                    .serve_with_incoming(incoming);
                // Not a graceful shutdown: the bundle streams never end by themselves.
                // Leaving `block_on` drops the server; dropping the runtime then ends
                // every connection task, as an agent that dies would.
                tokio::select! {
                    r = server => r.unwrap(),
                    _ = stop_rx => {}
                }
            });
            rt.shutdown_background();
        });
        ready_rx.recv().unwrap();
        self.stop = Some(stop_tx);
        self.thread = Some(thread);
    }

    /// Stops serving, as an agent that goes away: open streams are cut and the
    /// socket file is removed. The keys and the identity stay for [`WorkloadApi::restart`].
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.socket);
    }

    /// Serves again on the same socket, with the current keys.
    pub fn restart(&mut self) {
        self.stop();
        self.serve();
    }

    /// The endpoint to configure: `unix:///.../agent.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// A new current key; the old ones stay in the bundle (as SPIRE keeps a
    /// retiring key until the SVIDs it signed expire). Streams get the new bundle.
    pub fn rotate(&self) {
        let (key, pkcs8) = SigningKey::generate(Algorithm::ES256).unwrap();
        let kid = format!("k{}", self.rotations.fetch_add(1, Ordering::SeqCst) + 1);
        self.state.keys.lock().unwrap().insert(
            0,
            TrustDomainKey {
                key,
                kid,
                pkcs8: pkcs8.to_vec(),
            },
        );
        self.publish();
    }

    /// Drops every key but the current one from the bundle, and pushes it.
    pub fn retire(&self) {
        self.state.keys.lock().unwrap().truncate(1);
        self.publish();
    }

    /// Changes the identity the workload gets SVIDs for.
    pub fn set_spiffe_id(&self, spiffe_id: &str) {
        *self.state.spiffe_id.lock().unwrap() = spiffe_id.to_owned();
    }

    /// A JWT-SVID signed with the current key, with these claims.
    pub fn mint(&self, claims: &Value) -> String {
        let keys = self.state.keys.lock().unwrap();
        let current = &keys[0];
        let mut header = serde_json::Map::new();
        header.insert("typ".into(), json!("JWT"));
        current
            .key
            .encode(Some(&current.kid), &header, claims.to_string().as_bytes())
            .unwrap()
    }

    /// The current signing key (PKCS#8 PEM) and its `kid`, for an independent signer.
    pub fn current_key_pem(&self) -> (String, String) {
        let keys = self.state.keys.lock().unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", keys[0].pkcs8.clone()));
        (pem, keys[0].kid.clone())
    }

    /// The trust domain's bundle (a JWKS of its `jwt-svid` keys).
    pub fn jwks(&self) -> String {
        bundle_json(&self.state.keys.lock().unwrap())
    }

    /// `FetchJWTSVID` calls answered.
    pub fn svid_calls(&self) -> usize {
        self.state.svid_calls.load(Ordering::SeqCst)
    }

    /// Connections accepted on the socket so far (over restarts).
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Calls refused for lack of the `workload.spiffe.io` metadata.
    pub fn refused_calls(&self) -> usize {
        self.state.refused_calls.load(Ordering::SeqCst)
    }

    fn publish(&self) {
        let json = bundle_json(&self.state.keys.lock().unwrap());
        let mut bundles = HashMap::new();
        bundles.insert(self.state.trust_domain.clone(), json.into_bytes());
        self.state
            .bundles
            .send_replace(JwtBundlesResponse { bundles });
    }
}

fn bundle_json(keys: &[TrustDomainKey]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut jwk = Value::Object(k.key.public_material().public_jwk().unwrap());
            jwk["kid"] = json!(k.kid);
            jwk["use"] = json!("jwt-svid");
            jwk
        })
        .collect();
    json!({"keys": keys, "spiffe_sequence": 1, "spiffe_refresh_hint": 5}).to_string()
}

impl Drop for WorkloadApi {
    fn drop(&mut self) {
        self.stop();
    }
}

impl std::fmt::Debug for WorkloadApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadApi")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

/// The `SpiffeWorkloadAPI` service, written out as tonic's generated servers are.
#[derive(Clone)]
struct Service(Arc<State>);

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;
type BundleStream =
    Pin<Box<dyn Stream<Item = Result<JwtBundlesResponse, tonic::Status>> + Send + 'static>>;

fn check_header<T>(state: &State, req: &tonic::Request<T>) -> Result<(), tonic::Status> {
    let ok = req
        .metadata()
        .get("workload.spiffe.io")
        .and_then(|v| v.to_str().ok())
        == Some("true");
    if ok {
        Ok(())
    } else {
        state.refused_calls.fetch_add(1, Ordering::SeqCst);
        Err(tonic::Status::invalid_argument(
            "security header missing from request",
        ))
    }
}

struct FetchJwtSvid(Arc<State>);

impl tonic::server::UnaryService<JwtSvidRequest> for FetchJwtSvid {
    type Response = JwtSvidResponse;
    type Future = BoxFuture<Result<tonic::Response<JwtSvidResponse>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<JwtSvidRequest>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            check_header(&state, &req)?;
            let req = req.into_inner();
            if req.audience.is_empty() {
                return Err(tonic::Status::invalid_argument(
                    "audience must be specified",
                ));
            }
            let spiffe_id = state.spiffe_id.lock().unwrap().clone();
            let now = crate::Issuer::now();
            let claims = json!({
                "sub": spiffe_id,
                "aud": req.audience,
                "iat": now,
                "exp": now + state.ttl_secs,
            });
            let svid = {
                let keys = state.keys.lock().unwrap();
                let current = &keys[0];
                let mut header = serde_json::Map::new();
                header.insert("typ".into(), json!("JWT"));
                current
                    .key
                    .encode(Some(&current.kid), &header, claims.to_string().as_bytes())
                    .unwrap()
            };
            state.svid_calls.fetch_add(1, Ordering::SeqCst);
            Ok(tonic::Response::new(JwtSvidResponse {
                svids: vec![JwtSvid {
                    spiffe_id,
                    svid,
                    hint: String::new(),
                }],
            }))
        })
    }
}

struct FetchJwtBundles(Arc<State>);

impl tonic::server::ServerStreamingService<JwtBundlesRequest> for FetchJwtBundles {
    type Response = JwtBundlesResponse;
    type ResponseStream = BundleStream;
    type Future = BoxFuture<Result<tonic::Response<BundleStream>, tonic::Status>>;

    fn call(&mut self, req: tonic::Request<JwtBundlesRequest>) -> Self::Future {
        let state = self.0.clone();
        Box::pin(async move {
            check_header(&state, &req)?;
            let rx = state.bundles.subscribe();
            let stream = tokio_stream::wrappers::WatchStream::new(rx);
            let stream: BundleStream = Box::pin(tokio_stream::StreamExt::map(stream, Ok));
            Ok(tonic::Response::new(stream))
        })
    }
}

impl<B> tower_service::Service<http::Request<B>> for Service
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let state = self.0.clone();
        match req.uri().path() {
            "/SpiffeWorkloadAPI/FetchJWTSVID" => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::default();
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.unary(FetchJwtSvid(state), req).await)
            }),
            "/SpiffeWorkloadAPI/FetchJWTBundles" => Box::pin(async move {
                let codec = tonic_prost::ProstCodec::default();
                let mut grpc = tonic::server::Grpc::new(codec);
                Ok(grpc.server_streaming(FetchJwtBundles(state), req).await)
            }),
            _ => Box::pin(async move {
                Ok(tonic::Status::unimplemented("not served by the test Workload API").into_http())
            }),
        }
    }
}

impl tonic::server::NamedService for Service {
    const NAME: &'static str = "SpiffeWorkloadAPI";
}
