//! Command-line arguments (the first stage: raw values, no IO).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Portcullis: an authentication gateway that verifies JWTs for NGINX, Envoy,
/// Istio, Traefik and Caddy, and the tools to make and check tokens.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
pub(crate) struct Args {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run every listener the config names until SIGTERM/SIGINT, then drain and exit 0.
    ///
    /// Example: portcullis serve --config portcullis.yaml
    Serve(ServeArgs),
    /// Run the embedded default: an issuer, its JWKS, /verify and a protected upstream on 127.0.0.1.
    ///
    /// Prints curl lines to paste (one 401, one 200 with a fresh token).
    Demo(DemoArgs),
    /// Validate a config without serving: exit 0, or exit 2 with FILE:LINE: field: problem.
    Check(CheckArgs),
    /// Generate a private key (PKCS#8 PEM) and print its public JWKS.
    ///
    /// Example: portcullis keygen --alg ES256 --out es256.pem > jwks.json
    Keygen(KeygenArgs),
    /// Print the public JWK of a PEM key (public, private or certificate).
    ///
    /// Example: portcullis jwk public.pem --alg RS256
    Jwk(JwkArgs),
    /// Sign a JWT with a private key (or an HMAC secret) and print it.
    ///
    /// Example: portcullis mint --key es256.pem --alg ES256 --iss https://issuer --aud api --sub alice --claim groups='["admins"]'
    Mint(MintArgs),
    /// Decode a token and print its header and payload. Verifies NOTHING.
    ///
    /// Example: portcullis inspect "$TOKEN"
    Inspect(InspectArgs),
    /// Verify a token like the server does; print its claims (exit 0) or the reason (exit 1).
    ///
    /// Example: portcullis verify --jwks jwks.json --issuer https://issuer --audience api "$TOKEN"
    Verify(VerifyArgs),
    /// Explain how the server would decide a request, step by step: exit 0 allow, 1 deny.
    ///
    /// Example: portcullis explain --config portcullis.yaml --url https://api.example.com/admin "$TOKEN"
    Explain(ExplainArgs),
    /// Turn another product's auth config into a Portcullis config (printed on stdout).
    ///
    /// Reads Istio RequestAuthentication + AuthorizationPolicy, Ambassador Filter +
    /// FilterPolicy, nginx-subrequest-auth-jwt's config.yaml, or ingress-nginx Ingress
    /// objects with auth-url annotations. What cannot be carried over is one
    /// `warning:` line each on stderr.
    ///
    /// Example: portcullis import --from istio requestauthentication.yaml authorizationpolicy.yaml > portcullis.yaml
    Import(ImportArgs),
    /// Print a shell completion script.
    ///
    /// Example: portcullis completions bash > /etc/bash_completion.d/portcullis
    Completions(CompletionsArgs),
    /// Print the manual page (roff) of portcullis, or of one of its commands.
    ///
    /// Example: portcullis man > portcullis.1 && man ./portcullis.1
    Man(ManArgs),
    /// Print the JSON Schema (draft-07) of the config file, for editors.
    ///
    /// Example: portcullis schema > portcullis.schema.json, then put
    /// `# yaml-language-server: $schema=portcullis.schema.json` on the config's first line.
    Schema(SchemaArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct SchemaArgs {}

#[derive(Debug, clap::Args)]
pub(crate) struct ManArgs {
    /// A command (`portcullis man verify` is the page portcullis-verify(1)).
    pub(crate) command: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The config file (YAML).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub(crate) config: PathBuf,
    /// Worker threads [default: the number of cores].
    #[arg(long, env = "PORTCULLIS_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// Log lines on stdout as JSON or text [default: json when stdout is not a terminal].
    #[arg(long, value_enum)]
    pub(crate) log_format: Option<LogFormatArg>,
}

/// `--log-format`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum LogFormatArg {
    /// One JSON object a line.
    Json,
    /// Readable text.
    Text,
}

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Port of the verify endpoint [default: 8080, or a free port].
    #[arg(long)]
    pub(crate) port: Option<u16>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The config file (YAML).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub(crate) config: PathBuf,
}

#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Algorithm the key is for: RS256/384/512, PS256/384/512 (RSA 2048), ES256/384/512, EdDSA or Ed25519 (RFC 9864's name; Ed448 is not supported).
    #[arg(long)]
    pub(crate) alg: String,
    /// Key id for the JWKS [default: the RFC 7638 thumbprint].
    #[arg(long)]
    pub(crate) kid: Option<String>,
    /// Where to write the private key (mode 0600, written atomically) [default: key.pem].
    /// An existing file is never replaced without --force.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Replace the --out file if it exists (the old key is lost).
    #[arg(long)]
    pub(crate) force: bool,
    /// RSA modulus size, for RS*/PS* only: 2048, 3072 or 4096 [default: 2048].
    #[arg(long, value_parser = ["2048", "3072", "4096"])]
    pub(crate) bits: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct JwkArgs {
    /// A PEM file: PUBLIC KEY, RSA PUBLIC KEY, CERTIFICATE or a private key.
    pub(crate) pem: PathBuf,
    /// Pin the JWK to this algorithm (`alg` member).
    #[arg(long)]
    pub(crate) alg: Option<String>,
    /// Key id [default: the RFC 7638 thumbprint].
    #[arg(long)]
    pub(crate) kid: Option<String>,
    /// Print a JWKS, `{"keys": [JWK]}`, ready for `jwks: {file: ...}`.
    #[arg(long)]
    pub(crate) jwks: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct MintArgs {
    /// Private key PEM; for HS*, a file holding the secret (raw bytes, or an `oct` JWK).
    #[arg(long)]
    pub(crate) key: PathBuf,
    /// Signature algorithm [default: RS256 for RSA keys, the curve's for EC, EdDSA for Ed25519 keys; Ed25519 names the same].
    #[arg(long)]
    pub(crate) alg: Option<String>,
    /// `kid` header [default: the key's RFC 7638 thumbprint; none for HMAC].
    #[arg(long)]
    pub(crate) kid: Option<String>,
    /// Leave `kid` out of the header.
    #[arg(long, conflicts_with = "kid")]
    pub(crate) no_kid: bool,
    /// `iss` claim.
    #[arg(long)]
    pub(crate) iss: Option<String>,
    /// `sub` claim.
    #[arg(long)]
    pub(crate) sub: Option<String>,
    /// `aud` claim; repeat for several (then `aud` is an array).
    #[arg(long)]
    pub(crate) aud: Vec<String>,
    /// Lifetime: `exp` = now + TTL (`90s`, `5m`, `3h`; `-1h` mints an expired token).
    #[arg(long, default_value = "1h", allow_hyphen_values = true)]
    pub(crate) ttl: String,
    /// Leave `exp` out.
    #[arg(long)]
    pub(crate) no_exp: bool,
    /// `nbf`: seconds since the epoch, or now plus/minus a duration (`+5m`, `-30s`).
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) nbf: Option<String>,
    /// `iat` override (as --nbf); default now.
    #[arg(long, allow_hyphen_values = true)]
    pub(crate) iat: Option<String>,
    /// Extra claim NAME=VALUE; VALUE is parsed as JSON, else taken as a string. Overrides the flags above.
    #[arg(long = "claim", value_name = "NAME=JSON_OR_STRING")]
    pub(crate) claims: Vec<String>,
    /// Extra header member NAME=VALUE (as --claim), e.g. typ=at+jwt.
    #[arg(long = "header", value_name = "NAME=JSON_OR_STRING")]
    pub(crate) headers: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct InspectArgs {
    /// The token, or `-` (or nothing) to read it from stdin.
    pub(crate) token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VerifyArgs {
    /// Verify as the server configured by this file does.
    #[arg(long, conflicts_with_all = ["jwks", "issuer", "audience", "alg", "allow_missing_exp", "typ"], required_unless_present = "jwks")]
    pub(crate) config: Option<PathBuf>,
    /// With --config: the provider to verify as [default: those whose issuer the token claims first, then the others].
    #[arg(long, requires = "config")]
    pub(crate) provider: Option<String>,
    /// Keys: a JWKS or JWK JSON file, or a PEM public key / certificate.
    #[arg(long)]
    pub(crate) jwks: Option<PathBuf>,
    /// Required `iss`.
    #[arg(long)]
    pub(crate) issuer: Option<String>,
    /// Accepted audience; repeat for several (the token needs one of them).
    #[arg(long)]
    pub(crate) audience: Vec<String>,
    /// Allowed algorithm; repeat for several [default: the algorithms of the keys].
    #[arg(long)]
    pub(crate) alg: Vec<String>,
    /// Clock skew tolerance.
    #[arg(long, default_value = "60s")]
    pub(crate) clock_skew: String,
    /// Accept tokens without `exp` (dangerous).
    #[arg(long)]
    pub(crate) allow_missing_exp: bool,
    /// Required `typ` header (e.g. at+jwt).
    #[arg(long)]
    pub(crate) typ: Option<String>,
    /// The token, or `-` (or nothing) to read it from stdin.
    pub(crate) token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExplainArgs {
    /// The config to decide by (remote keys are fetched once).
    #[arg(long, env = "PORTCULLIS_CONFIG")]
    pub(crate) config: PathBuf,
    /// The original request's method.
    #[arg(long, default_value = "GET")]
    pub(crate) method: String,
    /// The original request's URL (https://host/path?query).
    #[arg(long)]
    pub(crate) url: String,
    /// A request header, `Name: value`; repeat for several.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// Print the explanation as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// The token (placed where each provider looks first), or `-` to read it from stdin.
    pub(crate) token: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The product the files come from.
    #[arg(long, value_parser = ["istio", "ambassador", "nginx-subrequest-auth-jwt", "ingress-nginx"])]
    pub(crate) from: String,
    /// ingress-nginx only: also write HTTPRoute + Envoy Gateway SecurityPolicy manifests into DIR.
    #[arg(long, value_name = "DIR")]
    pub(crate) gateway_api: Option<PathBuf>,
    /// The product's YAML files (`-` for stdin).
    #[arg(required = true)]
    pub(crate) files: Vec<PathBuf>,
}
