//! Do-nothing servers that give `bench/run` its floors (not part of Portcullis).
//!
//! ```text
//! bench-floor http ADDR         every HTTP/1.1 request: 200, empty body (hyper's own floor)
//! bench-floor authz-grpc ADDR   envoy.service.auth.v3.Authorization/Check: always OK
//! bench-floor authz-grpc-metadata ADDR CLAIMS.json
//!                               the same OK, with the identity metadata of CLAIMS.json
//! bench-floor http-verify ADDR TOKENS JWKS
//!                               as `http`, plus one raw aws-lc-rs check of a signature
//!                               from TOKENS per request (issue 17's target 5)
//! ```
//!
//! All run on one current-thread tokio runtime (one core, as `--workers 1`) and stop
//! on SIGTERM or SIGINT. Nothing is read from the request beyond what the protocol
//! needs, so a benchmark row against them is the cost of the server stack itself.

mod authz;
mod http;
mod verify;

use std::net::SocketAddr;
use std::process::ExitCode;

const USAGE: &str = "usage: bench-floor (http | authz-grpc) ADDR | bench-floor authz-grpc-metadata ADDR CLAIMS.json | bench-floor http-verify ADDR TOKENS JWKS";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, addr, files) = match args.as_slice() {
        [mode, addr] => (mode.as_str(), addr, &[][..]),
        [mode, addr, rest @ ..] if mode == "authz-grpc-metadata" && rest.len() == 1 => {
            (mode.as_str(), addr, rest)
        }
        [mode, addr, rest @ ..] if mode == "http-verify" && rest.len() == 2 => {
            (mode.as_str(), addr, rest)
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-floor: bad ADDR {addr:?}: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench-floor: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let served = match mode {
        "http" => runtime.block_on(http::serve(addr)),
        "authz-grpc" => runtime.block_on(authz::serve(addr, None)),
        "authz-grpc-metadata" => {
            let metadata = files
                .first()
                .ok_or_else(|| std::io::Error::other("CLAIMS.json missing"))
                .and_then(std::fs::read)
                .and_then(|json| authz::identity_metadata(&json));
            match metadata {
                Ok(m) => runtime.block_on(authz::serve(addr, Some(m))),
                Err(e) => Err(e),
            }
        }
        "http-verify" => {
            let verifier = match files {
                [tokens, jwks] => std::fs::read(tokens)
                    .and_then(|t| std::fs::read(jwks).and_then(|j| verify::Verifier::load(&t, &j))),
                _ => Err(std::io::Error::other("TOKENS and JWKS missing")),
            };
            match verifier {
                Ok(v) => runtime.block_on(verify::serve(addr, v)),
                Err(e) => Err(e),
            }
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-floor {mode} {addr}: {e}");
            ExitCode::from(1)
        }
    }
}

/// Completes on SIGTERM or SIGINT (bench/run stops its servers with SIGTERM).
async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
