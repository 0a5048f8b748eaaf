//! The outcome of a decision, the same for every frontend.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use portcullis_jose::Claims;

use crate::condition::TokenVars;

mod reason;

pub use reason::{DenyReason, DenyStatus};

/// Who the caller is, once a token verified.
///
/// It keeps, parsed, only the claims the config's rules read on every request, and
/// not the verified token itself (the token cache keys on its digest; issue 17):
/// whatever needs the token or every claim (request-time claim requirements, gRPC
/// metadata, DPoP's `ath`) takes the token from the request and decodes its payload
/// again. A parsed claim set takes about eight times the bytes of its JSON, and
/// the token cache keeps many identities. Identities from a session or an
/// introspection keep their claims as the payload of an unsigned stand-in token
/// (they are never cached as tokens).
#[derive(Debug)]
pub struct Identity {
    /// The provider that accepted the token.
    pub provider: Arc<str>,
    /// `exp`, if the token has one.
    pub expires_at: Option<f64>,
    /// The provider's `claims_to_headers`, rendered once when the token verified
    /// (and so cached with it).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The token, when the identity keeps one ([`Identity::new`], stand-ins);
    /// `None` for the identities the engine verifies and caches.
    token: Option<Arc<str>>,
    kept_claims: Claims,
    workload: Option<Box<Workload>>,
    /// Every claim and the header as CEL values, when a rule has a `when:`.
    token_vars: Option<Arc<TokenVars>>,
}

/// What an identity says about a workload: its SPIFFE ID (`sub` of a JWT-SVID, or a
/// `sub` that is a SPIFFE ID) and the client certificate its token is bound to.
#[derive(Debug, Default)]
pub struct Workload {
    /// The SPIFFE ID.
    pub spiffe_id: Option<crate::spiffe::SpiffeId>,
    /// `cnf.x5t#S256`.
    pub binding: Option<crate::spiffe::CertificateBinding>,
    /// `cnf.jkt`: the DPoP key the token is bound to.
    pub dpop_jkt: Option<String>,
}

impl Identity {
    /// An identity for `token` (a compact JWS whose signature held and whose payload
    /// parsed as claims), keeping `kept_claims`, the claims rules read, parsed.
    pub fn new(
        provider: Arc<str>,
        token: Arc<str>,
        kept_claims: Claims,
        expires_at: Option<f64>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Identity {
        Identity {
            provider,
            expires_at,
            headers,
            token: Some(token),
            kept_claims,
            workload: None,
            token_vars: None,
        }
    }

    /// An identity for a token that verified, without the token (the token cache
    /// keeps many of them): [`Identity::claims`] and [`Identity::claims_json`] then
    /// know no claim beyond `kept_claims`; read every claim with
    /// [`Identity::claims_json_with`] and the request's token.
    pub fn verified(
        provider: Arc<str>,
        kept_claims: Claims,
        expires_at: Option<f64>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Identity {
        Identity {
            provider,
            expires_at,
            headers,
            token: None,
            kept_claims,
            workload: None,
            token_vars: None,
        }
    }

    /// The identity with what its token says about the workload.
    #[must_use]
    pub fn with_workload(mut self, workload: Workload) -> Identity {
        self.workload = (workload.spiffe_id.is_some()
            || workload.binding.is_some()
            || workload.dpop_jkt.is_some())
        .then(|| Box::new(workload));
        self
    }

    /// The workload's SPIFFE ID, if the token names one.
    pub fn spiffe_id(&self) -> Option<&crate::spiffe::SpiffeId> {
        self.workload.as_ref().and_then(|w| w.spiffe_id.as_ref())
    }

    /// The DPoP key thumbprint the token is bound to (`cnf.jkt`), if any.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.workload.as_ref().and_then(|w| w.dpop_jkt.as_deref())
    }

    /// The client certificate the token is bound to, if any.
    pub fn binding(&self) -> Option<&crate::spiffe::CertificateBinding> {
        self.workload.as_ref().and_then(|w| w.binding.as_ref())
    }

    /// An identity from a browser session (see [`crate::VerifiedSession`]): its
    /// claims are kept as the payload of an unsigned stand-in for a token
    /// (`session.<claims>.`), never forwarded and never cached as a token.
    pub fn from_session(
        provider: Arc<str>,
        claims_json: &[u8],
        kept_claims: Claims,
        expires_at: Option<f64>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Identity {
        let token = format!("session.{}.", portcullis_jose::b64::encode(claims_json));
        Identity::new(provider, Arc::from(token), kept_claims, expires_at, headers)
    }

    /// An identity from an opaque token's introspection response (RFC 7662): the
    /// response is kept as the payload of an unsigned stand-in for a token
    /// (`introspected.<response>.`), never forwarded and never cached as a token.
    pub fn from_introspection(
        provider: Arc<str>,
        response_json: &[u8],
        kept_claims: Claims,
        expires_at: Option<f64>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Identity {
        let token = format!(
            "introspected.{}.",
            portcullis_jose::b64::encode(response_json)
        );
        Identity::new(provider, Arc::from(token), kept_claims, expires_at, headers)
    }

    /// Whether this identity comes from a browser session rather than a token.
    pub fn is_session(&self) -> bool {
        self.token
            .as_deref()
            .is_some_and(|t| t.starts_with("session."))
    }

    /// With the CEL variables of the token (for rules' `when:`), converted once.
    #[must_use]
    pub fn with_token_vars(mut self, vars: TokenVars) -> Identity {
        self.token_vars = Some(Arc::new(vars));
        self
    }

    /// The CEL variables of the token, when they were converted.
    pub fn token_vars(&self) -> Option<&TokenVars> {
        self.token_vars.as_deref()
    }

    /// Every verified claim, parsed again from the token the identity keeps
    /// (none: see [`Identity::claims_with`]).
    pub fn claims(&self) -> Claims {
        // This payload decoded and parsed when the token verified; should it not
        // now (it cannot), an empty claim set meets no requirement: fails closed.
        self.claims_json()
            .and_then(|json| Claims::from_json(&json).ok())
            .unwrap_or_default()
    }

    /// Every verified claim: from the token the identity keeps, else from `token`,
    /// the request's token that verified as this identity.
    pub fn claims_with(&self, token: Option<&str>) -> Claims {
        self.claims_json_with(token)
            .and_then(|json| Claims::from_json(&json).ok())
            .unwrap_or_default()
    }

    /// The claims kept parsed: those the rules read. A missing claim meets no
    /// requirement.
    pub fn kept_claims(&self) -> &Claims {
        &self.kept_claims
    }

    /// The verified payload's JSON (a frontend that needs every claim may read
    /// them straight from it).
    /// `None` when the identity keeps no token (see [`Identity::claims_json_with`]).
    pub fn claims_json(&self) -> Option<Vec<u8>> {
        self.claims_json_with(None)
    }

    /// The verified payload's JSON: from the token the identity keeps, else from
    /// `token`, the request's token that verified as this identity.
    pub fn claims_json_with(&self, token: Option<&str>) -> Option<Vec<u8>> {
        let payload = self.token.as_deref().or(token)?.split('.').nth(1)?;
        portcullis_jose::b64::decode(payload.as_bytes())
    }

    /// The token the identity keeps: a stand-in for a session or an introspection,
    /// or the token given to [`Identity::new`]; `None` for verified tokens (the
    /// request has them).
    pub fn token(&self) -> Option<&Arc<str>> {
        self.token.as_ref()
    }

    /// About how many bytes of memory the identity holds (for the cache's bound),
    /// not counting a token it keeps (verified, cached identities keep none).
    pub fn estimated_bytes(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 48)
            .sum();
        let claims = match self.kept_claims.members() {
            m if m.is_empty() => 0,
            m => object_bytes(m),
        };
        let vars = self.token_vars.as_ref().map_or(0, |v| v.estimated_bytes());
        std::mem::size_of::<Identity>() + 16 + headers + claims + vars
    }
}

/// Heap bytes of a parsed JSON object, roughly as the allocator sees them: B-tree
/// nodes hold up to 11 members of 56 bytes, every string is its own allocation.
fn object_bytes(members: &serde_json::Map<String, serde_json::Value>) -> usize {
    let nodes = members.len().div_ceil(11).max(1) * (11 * 56 + 96);
    nodes
        + members
            .iter()
            .map(|(name, value)| string_bytes(name) + value_bytes(value))
            .sum::<usize>()
}

fn value_bytes(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(s) => string_bytes(s),
        serde_json::Value::Array(items) => {
            items.len() * 32 + items.iter().map(value_bytes).sum::<usize>()
        }
        serde_json::Value::Object(members) => object_bytes(members),
        _ => 0,
    }
}

fn string_bytes(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        s.len().next_multiple_of(16) + 16
    }
}

/// Allow the request.
#[derive(Debug)]
pub struct Allow {
    /// The rule that allowed it.
    pub rule: Arc<str>,
    /// The verified identity (`None` for anonymous rules).
    pub identity: Option<Arc<Identity>>,
    /// Headers to set on the upstream request (overwrite, never append).
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
    /// Headers to remove from the upstream request: every identity header we did not
    /// set (so client-sent copies never pass), and the token when not forwarded.
    pub remove_headers: Vec<HeaderName>,
    /// How long the answer may be cached (seconds until `exp`), `None`: not at all.
    pub cache_max_age: Option<u64>,
    /// The deny a `mode: dry_run` rule would have answered, had it not been in
    /// dry-run mode (logged and counted as such).
    pub dry_run: Option<Box<Deny>>,
    /// Every verified claim as the payload's JSON, when the request asked for it
    /// ([`crate::AuthRequest::wants_claims`]: Envoy's dynamic metadata), read from
    /// the request's token (cached identities do not keep it).
    pub claims_json: Option<Vec<u8>>,
    /// Whether the identity goes to Envoy as dynamic metadata (the rule's
    /// `dynamic_metadata:`; `false` when there is no identity).
    pub dynamic_metadata: bool,
}

/// Deny the request. Its status is derived from its reason (and a redirect), never
/// stored beside it.
#[derive(Debug)]
pub struct Deny {
    /// The stable reason code.
    pub reason: DenyReason,
    /// Where a browser is sent instead (`Location`, a 302): the login flow.
    pub redirect: Option<String>,
    /// The rule that matched, if any.
    pub rule: Option<Arc<str>>,
    /// The provider whose check failed, if any.
    pub provider: Option<Arc<str>>,
    /// A detail for logs only (never in a response): it names no secret and no token.
    pub detail: String,
    /// The token's `kid`, `iss`, `sub` where known, for logs.
    pub token_hints: TokenHints,
    /// When set, the deny was for an unknown `kid` and a key refresh was started for
    /// this provider: a frontend may wait briefly for it and decide again.
    pub refetch_started: Option<usize>,
    /// When set, the token is opaque and this provider introspects such tokens:
    /// a frontend (the decider) asks it and decides again with the answer in
    /// [`crate::AuthRequest::introspected`].
    pub introspect: Option<Box<crate::IntrospectionAsk>>,
    /// When set, a `token_exchange` rule has no exchanged token for the inbound one
    /// yet: the decider runs this exchange and decides again.
    pub exchange: Option<Box<crate::inject::PendingExchange>>,
    /// The request's ID (from `x-request-id`, else made up), set by whoever logs the
    /// deny, for the log line and the `{{ request_id }}` of a deny template.
    pub request_id: Option<String>,
    /// The `deny:` template that renders it (the rule's, else the token's
    /// provider's), set by the engine; `None`: the default JSON body.
    pub template: Option<Arc<crate::deny_template::DenyTemplate>>,
    /// `step_up_required`: the `acr_values` the rule accepts (space-separated), for
    /// the RFC 9470 challenge.
    pub acr_values: Option<Arc<str>>,
    /// `step_up_required` for a login too old: the rule's `max_age` (seconds), for
    /// the RFC 9470 challenge.
    pub max_age: Option<u64>,
}

/// What may be logged about a denied token (never the token itself).
#[derive(Clone, Debug, Default)]
pub struct TokenHints {
    /// Header `kid`.
    pub kid: Option<String>,
    /// Claimed `iss` (unverified unless the signature held).
    pub iss: Option<String>,
    /// Claimed `sub` (unverified unless the signature held).
    pub sub: Option<String>,
}

/// The decision.
#[derive(Debug)]
pub enum Decision {
    /// Let the request through.
    Allow(Allow),
    /// Refuse it.
    Deny(Deny),
}

impl Decision {
    /// The reason code, or `None` for an allow.
    pub fn reason(&self) -> Option<DenyReason> {
        match self {
            Decision::Allow(_) => None,
            Decision::Deny(d) => Some(d.reason),
        }
    }

    /// The HTTP status a frontend answers with (200 on allow).
    pub fn status(&self) -> u16 {
        match self {
            Decision::Allow(_) => 200,
            Decision::Deny(d) => d.status(),
        }
    }
}

impl Deny {
    /// A 400 for a request that cannot be read one way only (an ambiguous path or
    /// host, contradictory or unreadable proxy headers, an ext_authz request without
    /// HTTP attributes). Frontends whose proxy turns a 400 into a 500 (NGINX
    /// `auth_request`) answer 403 instead. `detail` is for logs.
    pub fn request_invalid(detail: String) -> Deny {
        Deny::new(DenyReason::RequestInvalid, detail)
    }

    /// A deny for `reason`; `detail` is for logs only.
    pub fn new(reason: DenyReason, detail: String) -> Deny {
        Deny {
            reason,
            redirect: None,
            rule: None,
            provider: None,
            detail,
            token_hints: TokenHints::default(),
            refetch_started: None,
            introspect: None,
            exchange: None,
            request_id: None,
            template: None,
            acr_values: None,
            max_age: None,
        }
    }

    /// The HTTP status: 302 with a redirect, else the reason's.
    pub fn status(&self) -> u16 {
        match self.redirect {
            Some(_) => 302,
            None => self.reason.status().code(),
        }
    }

    /// The `WWW-Authenticate` value for this deny, if any (RFC 6750 §3).
    pub fn www_authenticate(&self) -> Option<String> {
        match self.reason {
            DenyReason::TokenMissing | DenyReason::LoginRequired => {
                Some(r#"Bearer realm="portcullis""#.to_owned())
            }
            DenyReason::ScopeMissing => Some(r#"Bearer error="insufficient_scope""#.to_owned()),
            // RFC 9470 §3: the challenge names the acceptable `acr` values.
            DenyReason::StepUpRequired => {
                let mut v = format!(
                    r#"Bearer realm="portcullis", error="insufficient_user_authentication", error_description="{}""#,
                    self.reason.description()
                );
                if let Some(acr) = &self.acr_values {
                    v.push_str(&format!(r#", acr_values="{acr}""#));
                }
                if let Some(max_age) = self.max_age {
                    v.push_str(&format!(r#", max_age="{max_age}""#));
                }
                Some(v)
            }
            // RFC 9449 §7.1: the DPoP scheme, with the algorithms we verify proofs with.
            DenyReason::DpopInvalid => Some(
                r#"DPoP realm="portcullis", error="invalid_dpop_proof", algs="ES256 ES384 ES512 EdDSA PS256 PS384 PS512 RS256 RS384 RS512""#
                    .to_owned(),
            ),
            r if r.status() == DenyStatus::Unauthorized => Some(format!(
                r#"Bearer realm="portcullis", error="invalid_token", error_description="{}""#,
                r.description()
            )),
            _ => None,
        }
    }

    /// The fixed JSON body: `{"error": "...", "reason": "..."}`.
    pub fn body(&self) -> String {
        format!(
            r#"{{"error":"{}","reason":"{}"}}"#,
            self.reason.error_code(),
            self.reason.as_str()
        )
    }
}
