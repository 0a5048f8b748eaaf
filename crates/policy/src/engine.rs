//! `Engine::decide`: a pure function from a request and a config snapshot (with
//! its providers' current key sets) to a [`Decision`].

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderName, HeaderValue, Method};
use portcullis_jose::{
    Claims, Rejected, TokenError, Validation, b64, verify_jwt_explained, verify_jwt_keeping,
};
use serde_json::Value;

use crate::cache::{CachedToken, NegativeCache, TokenCache, TokenDigest, TokenKeyer};
use crate::canonical::{canonical_host, canonical_path};
use crate::condition::{RequestVars, TokenVars};
use crate::config::{
    Access, Config, Limits, ProviderConfig, RequestReading, RuleConfig, RuleMode, TokenLocation,
};
use crate::decision::{Allow, Decision, Deny, DenyReason, Identity, TokenHints};
use crate::explain::{self, Explanation, NoTrace, Recorder, Step, TokenOutcome, Trace};
use crate::extract::{Found, find};
use crate::inject::TokenSlot;
use crate::issuer_index::IssuerIndex;
use crate::keyslot::{KeySlot, KeySnapshot};
use crate::request::AuthRequest;
use crate::rule_index::RuleIndex;

mod inbound;
mod introspection;
mod login;
mod peer;
mod workload;

/// A provider, ready to verify.
#[derive(Debug)]
pub struct Provider {
    name: Arc<str>,
    config: ProviderConfig,
    validation: Validation,
    slot: Arc<KeySlot>,
    /// The claims a verified token's identity is built from (see [`claims_read`]);
    /// `None`: all of them. The rest of the payload is checked, not built.
    claims_read: Option<Box<[String]>>,
}

impl Provider {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its config.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// What its tokens must satisfy.
    pub fn validation(&self) -> &Validation {
        &self.validation
    }

    /// Its key slot.
    pub fn slot(&self) -> &Arc<KeySlot> {
        &self.slot
    }

    /// The checks a token this provider verified must still pass, exactly as a
    /// decision makes them: the JWT-SVID rules of a `spiffe` provider, a
    /// well-formed `cnf`. The reason code and why, when one fails (`verify
    /// --config` reports them as `/verify` would).
    ///
    /// # Errors
    /// The first check that fails.
    pub fn check_verified(
        &self,
        header: &portcullis_jose::Header,
        claims: &Claims,
    ) -> Result<(), (DenyReason, String)> {
        workload::workload_of(header, claims, self.trust_domain()).map(|_| ())
    }

    /// The trust domain of a `spiffe` provider.
    fn trust_domain(&self) -> Option<&str> {
        self.config.spiffe.as_ref().map(|s| s.trust_domain.as_str())
    }
}

#[derive(Debug)]
struct Rule {
    name: Arc<str>,
    config: RuleConfig,
    /// The outbound token of an `inject` rule.
    token: Option<Arc<TokenSlot>>,
}

/// Counters of the token cache.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Lookups that found a valid entry.
    pub hits: AtomicU64,
    /// Lookups that did not.
    pub misses: AtomicU64,
}

/// A compiled config: rules, providers and the token cache. Immutable but for the cache.
#[derive(Debug)]
pub struct Engine {
    providers: Vec<Provider>,
    rules: Vec<Rule>,
    /// Which rules a path can match, for configs with many rules.
    rule_index: RuleIndex,
    /// Every header any provider or rule may set: removed from requests unless we set it.
    identity_headers: Vec<HeaderName>,
    /// The other spellings of each identity header (`x_user` for `x-user`), which
    /// CGI and WSGI upstreams read as the same header: removed on every allow. Named
    /// up front because Envoy's HTTP mode does not show them to us (it forwards only
    /// its `allowed_headers`).
    identity_spellings: Vec<HeaderName>,
    cache: Option<TokenCache>,
    /// Rejections that cannot change while the key set does not (on with the
    /// token cache; see [`crate::cache`]'s `negative`).
    negative: Option<NegativeCache>,
    cache_stats: Arc<CacheStats>,
    limits: Limits,
    /// How the original request's path is read.
    reading: RequestReading,
    /// Proxy mode's upstreams and trusted proxies.
    proxy: Arc<crate::config::ProxySettings>,
    /// The claims rules read on every request they allow (`claims`, `scopes`,
    /// header templates; and `iss`, `sub` for deny logs): identities keep these
    /// parsed, and otherwise only the token, shared with the cache key. A claim set
    /// parsed in full takes about eight times the bytes of its JSON.
    kept_claims: Vec<String>,
    /// Providers by the issuer they accept.
    issuers: IssuerIndex,
    /// `public_url/oauth2/start`, when sessions are configured.
    login_start: Option<String>,
    /// DPoP proofs already used.
    replay: crate::dpop::ReplayCache,
    /// Whether a rule has a `when:` (identities then keep CEL variables).
    has_conditions: bool,
    /// Whether any rule or provider has a `deny:` template (else none is looked up).
    has_deny_templates: bool,
}

impl Engine {
    /// Builds an engine. `slots[i]` holds the keys of `config.providers[i]`;
    /// a missing slot is an empty one (its provider denies until keys arrive).
    pub fn new(config: Config, slots: Vec<Arc<KeySlot>>) -> Engine {
        let Config {
            listen: _,
            providers,
            rules,
            limits,
            request: reading,
            proxy,
            sessions,
            // Read by `serve` at start (listeners, shutdown), not by decisions.
            lifecycle: _,
            dpop: _,
            // Read by `serve` at start (the exporter), not by decisions.
            telemetry: _,
        } = config;
        let login_start = sessions.map(|s| format!("{}/oauth2/start", s.public_url));
        let kept_claims = claims_rules_read(&rules);
        let has_conditions = rules.iter().any(|r| r.when.is_some());
        let mut slots = slots.into_iter();
        let providers: Vec<Provider> = providers
            .into_iter()
            .map(|config| {
                let validation = Validation {
                    // A template is checked as one (exact equality would refuse every token).
                    issuer: config
                        .issuer
                        .clone()
                        .filter(|_| config.issuer_template.is_none()),
                    issuer_template: config.issuer_template.clone(),
                    audiences: config.audiences.clone(),
                    algorithms: config.algorithms,
                    clock_skew_secs: config.clock_skew_secs,
                    require_exp: config.require_exp,
                    typ: config.typ.clone(),
                    max_token_bytes: limits.max_token_bytes,
                };
                Provider {
                    name: Arc::from(config.name.as_str()),
                    validation,
                    slot: slots.next().unwrap_or_else(|| Arc::new(KeySlot::empty())),
                    claims_read: claims_read(&config, &kept_claims, has_conditions),
                    config,
                }
            })
            .collect();
        let mut identity_headers: Vec<HeaderName> = Vec::new();
        let mut note = |h: &HeaderName| {
            if !identity_headers.contains(h) {
                identity_headers.push(h.clone());
            }
        };
        for p in &providers {
            p.config.claims_to_headers.iter().for_each(|(h, _)| note(h));
        }
        for r in &rules {
            r.headers.iter().for_each(|(h, _)| note(h));
        }
        let identity_spellings = identity_headers.iter().flat_map(other_spellings).collect();
        let rule_index = RuleIndex::new(rules.iter());
        let issuers = IssuerIndex::new(&providers.iter().map(|p| &p.config).collect::<Vec<_>>());
        let has_deny_templates = rules.iter().any(|r| r.deny.is_some())
            || providers.iter().any(|p| p.config.deny.is_some());
        // One secret key per engine for both caches; without a random source there
        // is no cache (slower, never predictable).
        let keyer = (limits.token_cache_entries > 0)
            .then(TokenKeyer::random)
            .flatten();
        let cache = keyer.map(|keyer| {
            TokenCache::new(limits.token_cache_entries, limits.token_cache_bytes, keyer)
        });
        let negative = cache
            .is_some()
            .then(|| NegativeCache::new(limits.token_cache_entries));
        Engine {
            providers,
            rule_index,
            rules: rules
                .into_iter()
                .map(|config| Rule {
                    name: Arc::from(config.name.as_str()),
                    token: config
                        .inject
                        .is_some()
                        .then(|| Arc::new(TokenSlot::empty())),
                    config,
                })
                .collect(),
            identity_headers,
            identity_spellings,
            cache,
            negative,
            cache_stats: Arc::default(),
            limits,
            reading,
            kept_claims,
            issuers,
            proxy: Arc::new(proxy),
            login_start,
            replay: crate::dpop::ReplayCache::new(65_536),
            has_conditions,
            has_deny_templates,
        }
    }

    /// Builds an engine whose inline and PEM providers hold their keys and whose
    /// remote providers have none (they deny until a key source fills their slot):
    /// for tools and tests that run no key source.
    pub fn with_static_keys(config: Config) -> Engine {
        let slots = config
            .providers
            .iter()
            .map(|p| match &p.jwks.source {
                crate::config::JwksSource::Static(keys) => {
                    Arc::new(KeySlot::with_keys(keys.clone()))
                }
                _ => Arc::new(KeySlot::empty()),
            })
            .collect();
        Engine::new(config, slots)
    }

    /// Shares cache counters across engines (so metrics survive reloads).
    #[must_use]
    pub fn with_cache_stats(mut self, stats: Arc<CacheStats>) -> Engine {
        self.cache_stats = stats;
        self
    }

    /// The providers, in config order.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// Whether every provider has usable keys.
    pub fn is_ready(&self) -> bool {
        self.providers.iter().all(|p| p.slot.is_ready())
    }

    /// Every identity header this config may set.
    pub fn identity_headers(&self) -> &[HeaderName] {
        &self.identity_headers
    }

    /// Token cache counters.
    pub fn cache_stats(&self) -> &CacheStats {
        &self.cache_stats
    }

    /// The `inject` rules: name, config and the slot their token source fills.
    pub fn inject_slots(
        &self,
    ) -> impl Iterator<Item = (&str, &crate::config::spiffe::InjectConfig, &Arc<TokenSlot>)> {
        self.rules
            .iter()
            .filter_map(|r| Some((&*r.name, r.config.inject.as_ref()?, r.token.as_ref()?)))
    }

    /// How the original request is read (the proxy listener reads it before deciding).
    pub fn reading(&self) -> RequestReading {
        self.reading
    }

    /// Proxy mode's settings (upstreams, trusted proxies).
    pub fn proxy(&self) -> &Arc<crate::config::ProxySettings> {
        &self.proxy
    }

    /// The upstream of the rule named `rule` (proxy mode), if it has one.
    pub fn rule_upstream(&self, rule: &str) -> Option<&Arc<crate::config::UpstreamConfig>> {
        self.rules
            .iter()
            .find(|r| &*r.name == rule)
            .and_then(|r| r.config.upstream.as_ref())
    }

    /// Gives `inject` rules the slots `slot_for(rule, config)` names (a reload keeps a
    /// running source and its token); the others keep their own.
    #[must_use]
    pub fn with_inject_slots(
        mut self,
        slot_for: impl Fn(&str, &crate::config::spiffe::InjectConfig) -> Option<Arc<TokenSlot>>,
    ) -> Engine {
        for rule in &mut self.rules {
            if let (Some(config), Some(token)) = (&rule.config.inject, &mut rule.token)
                && let Some(slot) = slot_for(&rule.name, config)
            {
                *token = slot;
            }
        }
        self
    }

    /// The rules, in order.
    pub fn rules(&self) -> impl Iterator<Item = &RuleConfig> {
        self.rules.iter().map(|r| &r.config)
    }

    /// Names of the rules, in order.
    pub fn rule_names(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|r| &*r.name)
    }

    /// Whether rules are found through the [`RuleIndex`] (many rules).
    #[cfg(test)]
    pub(crate) fn rule_index_enabled(&self) -> bool {
        self.rule_index.enabled()
    }

    /// Decides a request at `now` (seconds since the epoch).
    pub fn decide(&self, req: &AuthRequest<'_>, now: i64) -> Decision {
        self.decide_traced(req, now, &mut NoTrace)
    }

    /// Decides a request and explains each step (`portcullis explain`, admin
    /// `POST /explain`): the same decision as [`Engine::decide`], but the token
    /// cache is neither read nor filled and no key refetch is asked for.
    pub fn explain(&self, req: &AuthRequest<'_>, now: i64) -> Explanation {
        let mut recorder = Recorder::default();
        let decision = self.decide_traced(req, now, &mut recorder);
        let mut steps = recorder.into_steps();
        steps.extend(explain::proxy_step(&self.proxy, &decision, |rule| {
            self.rule_upstream(rule)
        }));
        Explanation::new(&decision, steps)
    }

    /// [`Engine::decide`], reporting each step to `trace`.
    pub fn decide_traced<T: Trace>(
        &self,
        req: &AuthRequest<'_>,
        now: i64,
        trace: &mut T,
    ) -> Decision {
        match self.decide_rules(req, now, trace) {
            Decision::Deny(mut d) if !self.is_dry_run(d.rule.as_deref()) => {
                if self.has_deny_templates {
                    d.template = self.deny_template(&d);
                    trace.step(|| {
                        Step::new(
                            "deny",
                            true,
                            match (&d.template, d.rule.as_deref(), d.provider.as_deref()) {
                                (None, ..) => "the default JSON body".to_owned(),
                                (Some(_), Some(rule), _)
                                    if self.rule(rule).is_some_and(|r| r.config.deny.is_some()) =>
                                {
                                    format!("rendered by rule {rule:?}'s deny template")
                                }
                                (Some(_), _, provider) => format!(
                                    "rendered by provider {:?}'s deny template",
                                    provider.unwrap_or_default()
                                ),
                            },
                        )
                    });
                }
                Decision::Deny(d)
            }
            Decision::Deny(d) => {
                trace.step(|| {
                    Step::new(
                        "dry_run",
                        true,
                        format!(
                            "the rule is in dry-run mode: it would deny ({} {}), and allows",
                            d.status(),
                            d.reason
                        ),
                    )
                });
                Decision::Allow(self.dry_run_allow(d))
            }
            decision => decision,
        }
    }

    fn decide_rules<T: Trace>(&self, req: &AuthRequest<'_>, now: i64, trace: &mut T) -> Decision {
        // Every request is read the one canonical way, even when the proxy names the
        // rule: what cannot be read one way only is refused, never defaulted.
        let path = match canonical_path(req.path, self.reading.escaped_slashes) {
            Ok(path) => path,
            Err(e) => {
                trace.step(|| Step::new("request", false, format!("path {:?}: {e}", req.path)));
                return Decision::Deny(Deny::request_invalid(format!("path: {e}")));
            }
        };
        let host = match canonical_host(req.host) {
            Ok(host) => host,
            Err(e) => {
                trace.step(|| Step::new("request", false, format!("host {:?}: {e}", req.host)));
                return Decision::Deny(Deny::request_invalid(format!("host: {e}")));
            }
        };
        if let Some(trick) = self.header_trick(req) {
            trace.step(|| Step::new("request", false, trick.clone()));
            return Decision::Deny(Deny::request_invalid(trick));
        }
        trace.step(|| {
            Step::new(
                "request",
                true,
                format!("read as {} {host}{path}", req.method),
            )
        });
        let rule = match req.rule {
            Some(name) => {
                let rule = self.rules.iter().find(|r| &*r.name == name);
                trace.step(|| {
                    Step::new(
                        "rule",
                        rule.is_some(),
                        format!("rule {name:?} named by the proxy (no matching)"),
                    )
                });
                rule
            }
            // Many rules: only those the path's first segment allows, in the same
            // order ([`RuleIndex`]). Explained requests try every rule, so that the
            // explanation shows each one that did not match.
            None if !T::RECORDS && self.rule_index.enabled() => self
                .rule_index
                .candidates(&path)
                .filter_map(|i| self.rules.get(i))
                .find(|r| matches(&r.config, req.method, &host, &path)),
            None => self.rules.iter().find(|r| {
                let matched = matches(&r.config, req.method, &host, &path);
                trace.step(|| explain::rule_step(&r.config, matched, req.method, &host, &path));
                matched
            }),
        };
        let Some(rule) = rule else {
            return Decision::Deny(deny(
                DenyReason::NoRule,
                None,
                None,
                match req.rule {
                    Some(_) => "the rule named by the proxy does not exist".to_owned(),
                    None => "no rule matches".to_owned(),
                },
            ));
        };
        if let Err(d) = peer::check_peer(
            &rule.config.peer_spiffe_ids,
            req,
            &self.proxy,
            &rule.name,
            trace,
        ) {
            return Decision::Deny(*d);
        }
        if let (Some(config), Some(slot)) = (&rule.config.inject, &rule.token) {
            if let Some(d) = self.refuse_before_exchange(rule, config, req, now, trace) {
                return Decision::Deny(*d);
            }
            let mut remove_headers = self.identity_headers.clone();
            self.add_other_spellings(&mut remove_headers);
            let decision = workload::inject(&rule.name, config, slot, req, remove_headers, now);
            trace.step(|| explain::inject_step(config, &decision));
            return decision;
        }
        let request_vars = RequestVars {
            method: req.method.as_str(),
            host: &host,
            path: path.split('?').next().unwrap_or_default(),
            headers: req.headers,
            now,
        };
        match rule.config.access {
            Access::Anonymous => {
                return match check_condition(rule, None, &request_vars, trace) {
                    Ok(()) => Decision::Allow(self.anonymous(rule)),
                    Err(d) => Decision::Deny(*d),
                };
            }
            Access::Deny => {
                return Decision::Deny(deny(
                    DenyReason::RuleDenied,
                    Some(&rule.name),
                    None,
                    "the rule denies".to_owned(),
                ));
            }
            Access::Authenticated | Access::Optional => {}
        }
        // The token that verified, for what needs it beyond the (cached) identity.
        let mut request_token: Option<Cow<'_, str>> = None;
        let (identity, location) = match self.find_token(rule, req, trace) {
            Ok((token, candidates, location)) => {
                // An opaque token goes to its provider's introspection (RFC 7662).
                let verified = match self.introspecting_provider(&token, &candidates) {
                    Some(idx) => self.introspected_identity(idx, &token, rule, req, now, trace),
                    None => self.verify(&token, &candidates, rule, now, trace),
                };
                match verified {
                    Ok(identity) => {
                        request_token = Some(token);
                        (identity, location)
                    }
                    Err(d) => return Decision::Deny(*d),
                }
            }
            // No bearer token: a browser session may stand in for one.
            Err(d) if d.reason == DenyReason::TokenMissing => {
                let session = self.session_identity(rule, req, d, now);
                if req.session.is_some() || rule.config.login.is_some() {
                    trace.step(|| explain::session_step(&self.providers, req.session, &session));
                }
                match session {
                    Ok(identity) => (identity, None),
                    // `allow: optional`: neither token nor session is anonymous;
                    // a malformed or a second, different token is still refused.
                    Err(d)
                        if d.reason == DenyReason::TokenMissing
                            && rule.config.access == Access::Optional =>
                    {
                        return match check_condition(rule, None, &request_vars, trace) {
                            Ok(()) => Decision::Allow(self.anonymous(rule)),
                            Err(d) => Decision::Deny(*d),
                        };
                    }
                    Err(d) => return Decision::Deny(*d),
                }
            }
            Err(d) => return Decision::Deny(*d),
        };
        let provider = &self.providers[identity.0];
        if let Err(d) =
            workload::check_identity(&identity.1, &rule.config.spiffe_ids, req, &rule.name, trace)
        {
            return Decision::Deny(*d);
        }
        // The scheme the proxy names, when it names one clearly; else either.
        let mut protos = req.headers.get_all("x-forwarded-proto").iter();
        let scheme = match (protos.next().map(|v| v.to_str()), protos.next()) {
            (Some(Ok(s)), None) if s.eq_ignore_ascii_case("http") => Some("http"),
            (Some(Ok(s)), None) if s.eq_ignore_ascii_case("https") => Some("https"),
            _ => None,
        };
        let target = crate::dpop::ProofTarget {
            scheme,
            method: req.method.as_str(),
            host: &host,
            path: &path,
        };
        let dpop = workload::check_dpop(
            provider.config.dpop,
            provider.config.clock_skew_secs,
            &identity.1,
            location,
            request_token.as_deref(),
            req,
            target,
            &self.replay,
            &rule.name,
            now,
        );
        if provider.config.dpop.is_some() || identity.1.dpop_jkt().is_some() {
            trace.step(|| explain::dpop_step(provider.config.dpop, &dpop));
        }
        if let Err(d) = dpop {
            return Decision::Deny(*d);
        }
        let step_up = self.check_step_up(rule, identity.0, &identity.1, req, now);
        if let Some(wanted) = &rule.config.step_up {
            trace.step(|| explain::step_up_step(wanted, &identity.1, &step_up));
        }
        if let Err(d) = step_up {
            return Decision::Deny(*d);
        }
        // The claims the rules read are kept parsed (see `kept_claims`); a request
        // with its own claim requirements may name any claim: all of them, parsed again.
        let claims = if !req.extra_claims.is_empty() {
            Some(Cow::Owned(identity.1.claims_with(request_token.as_deref())))
        } else {
            rule_reads_claims(&rule.config).then(|| Cow::Borrowed(identity.1.kept_claims()))
        };
        if let Some(claims) = &claims
            && let Err(d) = authorize(rule, req, claims, trace)
        {
            let mut d = *d;
            d.provider = Some(provider.name.clone());
            d.token_hints = hints_from_claims(claims);
            return Decision::Deny(d);
        }
        if let Err(d) = check_condition(
            rule,
            Some((&*identity.1, request_token.as_deref())),
            &request_vars,
            trace,
        ) {
            let mut d = *d;
            d.provider = Some(provider.name.clone());
            d.token_hints = hints_from_claims(identity.1.kept_claims());
            return Decision::Deny(d);
        }
        let rule_headers = match &claims {
            Some(claims) => render_headers(&rule.config.headers, claims),
            None => Vec::new(),
        };
        let mut allow = self.allow(rule, provider, identity.1, rule_headers, location, now);
        if req.wants_claims && allow.dynamic_metadata {
            allow.claims_json = allow
                .identity
                .as_ref()
                .and_then(|i| i.claims_json_with(request_token.as_deref()));
        }
        self.add_other_spellings(&mut allow.remove_headers);
        Decision::Allow(allow)
    }

    fn rule(&self, name: &str) -> Option<&Rule> {
        self.rules.iter().find(|r| &*r.name == name)
    }

    /// The deny template for `deny`: its rule's, else its provider's.
    fn deny_template(&self, deny: &Deny) -> Option<Arc<crate::DenyTemplate>> {
        let by_rule = deny
            .rule
            .as_deref()
            .and_then(|name| self.rule(name))
            .and_then(|r| r.config.deny.clone());
        by_rule.or_else(|| {
            let name = deny.provider.as_deref()?;
            self.providers
                .iter()
                .find(|p| &*p.name == name)
                .and_then(|p| p.config.deny.clone())
        })
    }

    /// Whether the rule named `rule` only reports what it would decide.
    fn is_dry_run(&self, rule: Option<&str>) -> bool {
        rule.is_some_and(|name| {
            self.rules
                .iter()
                .any(|r| &*r.name == name && r.config.mode == RuleMode::DryRun)
        })
    }

    /// The allow of a dry-run rule that would have denied: no identity, every
    /// identity header removed (none was earned), not cacheable.
    fn dry_run_allow(&self, deny: Deny) -> Allow {
        let mut remove_headers = self.identity_headers.clone();
        self.add_other_spellings(&mut remove_headers);
        Allow {
            rule: deny.rule.clone().unwrap_or_else(|| Arc::from("")),
            identity: None,
            set_headers: Vec::new(),
            remove_headers,
            cache_max_age: None,
            dry_run: Some(Box::new(deny)),
            claims_json: None,
            dynamic_metadata: false,
        }
    }

    /// The token, the providers that may have issued it, and where it was.
    #[expect(clippy::type_complexity, reason = "private helper")]
    fn find_token<'r>(
        &self,
        rule: &Rule,
        req: &AuthRequest<'r>,
        trace: &mut impl Trace,
    ) -> Result<(Cow<'r, str>, Vec<usize>, Option<&TokenLocation>), Box<Deny>> {
        let query = req.query();
        let mut token: Option<Cow<'r, str>> = None;
        let mut candidates = Vec::new();
        let mut location = None;
        for &idx in &rule.config.providers {
            let provider = &self.providers[idx];
            for loc in &provider.config.locations {
                match find(loc, req.headers, query) {
                    Found::Absent => {}
                    Found::Malformed(why) => {
                        trace.step(|| {
                            Step::new(
                                "token",
                                false,
                                format!(
                                    "{} of provider {:?}: {why}",
                                    explain::location(loc),
                                    provider.name
                                ),
                            )
                        });
                        return Err(boxed(
                            DenyReason::TokenMalformed,
                            Some(&rule.name),
                            Some(&provider.name),
                            why.to_owned(),
                        ));
                    }
                    Found::Token(t) => {
                        match &token {
                            Some(existing) if *existing != t => {
                                trace.step(|| {
                                    Step::new(
                                        "token",
                                        false,
                                        format!(
                                            "{} holds another token than the one found first",
                                            explain::location(loc)
                                        ),
                                    )
                                });
                                return Err(boxed(
                                    DenyReason::TokenMalformed,
                                    Some(&rule.name),
                                    None,
                                    "two different tokens in one request".to_owned(),
                                ));
                            }
                            Some(_) => {}
                            None => {
                                token = Some(t);
                                location = Some(loc);
                            }
                        }
                        if !candidates.contains(&idx) {
                            candidates.push(idx);
                        }
                    }
                }
            }
        }
        trace.step(|| match (&token, location) {
            (Some(t), Some(loc)) => {
                let names: Vec<&str> = candidates
                    .iter()
                    .map(|&i| &*self.providers[i].name)
                    .collect();
                Step::new(
                    "token",
                    true,
                    format!(
                        "{} bytes in {}, for providers [{}]",
                        t.len(),
                        explain::location(loc),
                        names.join(", ")
                    ),
                )
            }
            _ => {
                let mut places: Vec<String> = Vec::new();
                for &idx in &rule.config.providers {
                    for loc in &self.providers[idx].config.locations {
                        let place = explain::location(loc);
                        if !places.contains(&place) {
                            places.push(place);
                        }
                    }
                }
                Step::new("token", false, format!("no token in {}", places.join(", ")))
            }
        });
        match token {
            Some(t) => Ok((t, candidates, location)),
            None => Err(boxed(
                DenyReason::TokenMissing,
                Some(&rule.name),
                None,
                "no token in the request".to_owned(),
            )),
        }
    }

    /// Verifies with the candidate providers: those whose issuer the token claims first.
    fn verify<T: Trace>(
        &self,
        token: &str,
        candidates: &[usize],
        rule: &Rule,
        now: i64,
        trace: &mut T,
    ) -> Result<(usize, Arc<Identity>), Box<Deny>> {
        // An explained token is verified afresh and never cached. The digest of
        // the token's bytes keys both caches (computed once per request; a token
        // over the size limit is refused unread, not digested).
        let digest = self
            .cache
            .as_ref()
            .filter(|_| !T::RECORDS && token.len() <= self.limits.max_token_bytes)
            .map(|cache| cache.digest(token));
        if let (Some(cache), Some(digest)) = (self.cache.as_ref(), digest.as_ref()) {
            let hit = cache.get(digest, now, |p| {
                self.providers
                    .get(p)
                    .map_or(u64::MAX, |p| p.slot.generation())
            });
            match hit {
                Some(hit) if candidates.contains(&hit.provider) => {
                    self.cache_stats.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok((hit.provider, hit.identity));
                }
                _ => {
                    self.cache_stats.misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Only to order several candidates; with one there is nothing to choose.
        let claimed_iss = if candidates.len() > 1 {
            peek_issuer(token)
        } else {
            None
        };
        let mut order = self.issuers.order(claimed_iss.as_deref(), candidates);
        if order.is_empty() {
            // No provider claims this issuer: let the first one explain why.
            order.extend(candidates.first().copied());
        }
        let mut first_error: Option<Box<Deny>> = None;
        for idx in order {
            // One load: the keys and the generation they are cached under belong together.
            let snapshot = self.providers[idx].slot.current();
            trace.step(|| {
                let p = &self.providers[idx];
                Step::new(
                    "provider",
                    true,
                    match (&p.config.issuer, &claimed_iss) {
                        (Some(iss), Some(claimed)) if iss == claimed => {
                            format!("{:?}: its issuer is the token's iss", p.name)
                        }
                        _ => format!("{:?}", p.name),
                    },
                )
            });
            match self.verify_with(idx, &snapshot, token, digest.as_ref(), rule, now, trace) {
                Ok(identity) => return Ok((idx, identity)),
                Err(d) => {
                    first_error.get_or_insert(d);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| {
            boxed(
                DenyReason::KeyNotFound,
                Some(&rule.name),
                None,
                "no provider".to_owned(),
            )
        }))
    }

    /// Verifies `token` as provider `idx` with the keys of `snapshot`, and caches a
    /// success under that snapshot's generation: a cache hit is then valid only while
    /// the keys that verified the token are still the provider's current ones.
    #[expect(clippy::too_many_arguments, reason = "private helper")]
    fn verify_with<T: Trace>(
        &self,
        idx: usize,
        snapshot: &KeySnapshot,
        token: &str,
        digest: Option<&TokenDigest>,
        rule: &Rule,
        now: i64,
        trace: &mut T,
    ) -> Result<Arc<Identity>, Box<Deny>> {
        let provider = &self.providers[idx];
        let Some(keys) = snapshot.keys() else {
            trace.step(|| {
                Step::new(
                    "key",
                    false,
                    format!(
                        "provider {:?} has no keys yet (from {})",
                        provider.name,
                        explain::key_source(&provider.config)
                    ),
                )
            });
            return Err(boxed(
                DenyReason::KeyNotFound,
                Some(&rule.name),
                Some(&provider.name),
                "the provider has no keys yet".to_owned(),
            ));
        };
        // A rejection that cannot change under these keys, remembered: no verify.
        let negative = self.negative.as_ref().zip(digest).filter(|_| !T::RECORDS);
        if let Some((negative, digest)) = negative
            && let Some(hit) = negative.get(digest, idx, snapshot.generation(), now)
        {
            let mut d = boxed(
                DenyReason::from(&hit.error),
                Some(&rule.name),
                Some(&provider.name),
                hit.error.to_string(),
            );
            d.token_hints = hit.hints;
            return Err(d);
        }
        // An explanation shows every claim; a decision builds only those it reads.
        let verified = match provider.claims_read.as_deref().filter(|_| !T::RECORDS) {
            Some(names) => verify_jwt_keeping(token, keys, &provider.validation, now, &|name| {
                names.iter().any(|n| n == name)
            }),
            None => verify_jwt_explained(token, keys, &provider.validation, now),
        };
        if T::RECORDS {
            let outcome = match &verified {
                Ok(jwt) => TokenOutcome::Verified(&jwt.header, &jwt.claims, jwt.key),
                Err(r) => {
                    TokenOutcome::Rejected(&r.error, r.signed.as_deref().map(|s| (&s.0, &s.1)))
                }
            };
            explain::token_steps(trace, provider, keys, token, outcome, now);
        }
        match verified {
            Ok(jwt) => {
                let trust_domain = provider
                    .config
                    .spiffe
                    .as_ref()
                    .map(|s| s.trust_domain.as_str());
                let workload = match workload::workload_of(&jwt.header, &jwt.claims, trust_domain) {
                    Ok(w) => w,
                    Err((reason, why)) => {
                        trace.step(|| {
                            let step = if trust_domain.is_some() {
                                "jwt_svid"
                            } else {
                                "cnf"
                            };
                            Step::new(step, false, why.clone())
                        });
                        let mut d = boxed(reason, Some(&rule.name), Some(&provider.name), why);
                        d.token_hints = TokenHints {
                            kid: jwt.header.kid().map(clip),
                            ..hints_from_claims(&jwt.claims)
                        };
                        return Err(d);
                    }
                };
                let expires_at = jwt.claims.expires_at().ok().flatten();
                let headers = render_headers(&provider.config.claims_to_headers, &jwt.claims);
                // Rules' `when:` read every claim and the header: converted once, cached.
                let vars = self
                    .has_conditions
                    .then(|| TokenVars::new(jwt.claims.members(), jwt.header.members()));
                let name = provider.name.clone();
                let kept = jwt
                    .claims
                    .retain(|claim| self.kept_claims.iter().any(|k| k == claim));
                let mut identity =
                    Identity::verified(name, kept, expires_at, headers).with_workload(workload);
                if let Some(vars) = vars {
                    identity = identity.with_token_vars(vars);
                }
                let identity = Arc::new(identity);
                if let (Some(cache), Some(digest)) = (self.cache.as_ref(), digest)
                    && !T::RECORDS
                {
                    let valid_until =
                        expires_at.map(|e| e + provider.config.clock_skew_secs as f64);
                    cache.insert(
                        *digest,
                        CachedToken::new(idx, snapshot.generation(), valid_until, identity.clone()),
                    );
                }
                Ok(identity)
            }
            Err(Rejected { error: e, signed }) => {
                let mut d = boxed(
                    DenyReason::from(&e),
                    Some(&rule.name),
                    Some(&provider.name),
                    e.to_string(),
                );
                d.token_hints = match signed {
                    // The signature held: name what it signed, without a second parse.
                    Some(parts) => TokenHints {
                        kid: parts.0.kid().map(clip),
                        ..hints_from_claims(&parts.1)
                    },
                    None => unverified_hints(token),
                };
                if let Some((negative, digest)) = negative {
                    negative.insert(*digest, idx, snapshot.generation(), now, &e, &d.token_hints);
                }
                if let TokenError::KeyNotFound { kid: Some(kid) } = &e
                    && !T::RECORDS
                    && provider.slot.request_refetch(kid)
                {
                    d.refetch_started = Some(idx);
                }
                Err(d)
            }
        }
    }

    /// An allow without identity: every identity header removed.
    fn anonymous(&self, rule: &Rule) -> Allow {
        let mut remove_headers = self.identity_headers.clone();
        self.add_other_spellings(&mut remove_headers);
        Allow {
            rule: rule.name.clone(),
            identity: None,
            set_headers: Vec::new(),
            remove_headers,
            cache_max_age: None,
            dry_run: None,
            claims_json: None,
            dynamic_metadata: false,
        }
    }

    fn allow(
        &self,
        rule: &Rule,
        provider: &Provider,
        identity: Arc<Identity>,
        rule_headers: Vec<(HeaderName, HeaderValue)>,
        location: Option<&TokenLocation>,
        now: i64,
    ) -> Allow {
        let mut set_headers = identity.headers.clone();
        for (name, value) in rule_headers {
            // A rule header overrides a provider header of the same name.
            set_headers.retain(|(n, _)| *n != name);
            set_headers.push((name, value));
        }
        let mut remove_headers: Vec<HeaderName> = self
            .identity_headers
            .iter()
            .filter(|h| !set_headers.iter().any(|(n, _)| n == *h))
            .cloned()
            .collect();
        if !provider.config.forward_token
            && let Some(TokenLocation::Header { name, .. }) = location
        {
            remove_headers.push(name.clone());
        }
        let cache_max_age = identity.expires_at.map(|exp| {
            let left = exp.floor() - now as f64;
            if left > 0.0 { left as u64 } else { 0 }
        });
        Allow {
            rule: rule.name.clone(),
            identity: Some(identity),
            set_headers,
            remove_headers,
            cache_max_age,
            dry_run: None,
            claims_json: None,
            dynamic_metadata: rule.config.dynamic_metadata,
        }
    }

    /// The other spellings of the identity headers (`x_user` for `x-user`): CGI and
    /// WSGI upstreams read `_` as `-`, so they are removed like the header, whether
    /// or not the request shows them (Envoy's HTTP mode does not).
    fn add_other_spellings(&self, remove: &mut Vec<HeaderName>) {
        remove.extend(self.identity_spellings.iter().cloned());
    }

    fn is_spoofed_spelling(&self, name: &HeaderName) -> bool {
        name.as_str().contains('_') && self.is_identity_spelling(name.as_str().as_bytes())
    }

    /// Whether `name` spells an identity header, reading `_` as `-` and any case.
    pub(crate) fn is_identity_spelling(&self, name: &[u8]) -> bool {
        self.identity_headers.iter().any(|h| {
            h.as_str().len() == name.len()
                && h.as_str().bytes().zip(name.iter()).all(|(a, &b)| {
                    let b = if b == b'_' {
                        b'-'
                    } else {
                        b.to_ascii_lowercase()
                    };
                    a == b
                })
        })
    }

    /// Header tricks that would make the upstream see other identity headers than
    /// the ones an allow sets or removes: `Connection` naming an identity header
    /// (a proxy then drops the header we set), and, where the proxy cannot remove
    /// headers on our word, a client-sent `x_user` spelling of one.
    fn header_trick(&self, req: &AuthRequest<'_>) -> Option<String> {
        if self.identity_headers.is_empty() {
            return None;
        }
        for value in req.headers.get_all(http::header::CONNECTION) {
            for token in value.as_bytes().split(|&b| b == b',') {
                if self.is_identity_spelling(token.trim_ascii()) {
                    return Some("Connection names an identity header".to_owned());
                }
            }
        }
        if !req.removes_headers
            && let Some(name) = req.headers.keys().find(|n| self.is_spoofed_spelling(n))
        {
            return Some(format!(
                "{name} spells an identity header, and this proxy cannot be told to remove it"
            ));
        }
        None
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Entries in the token cache.
    pub fn cached_tokens(&self) -> usize {
        self.cache.as_ref().map_or(0, TokenCache::len)
    }
}

/// Renders header templates; a header whose claim is missing (or whose value is no
/// valid header value) is not set.
fn render_headers(
    templates: &[(HeaderName, crate::template::Template)],
    claims: &Claims,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(templates.len());
    for (name, template) in templates {
        if let Some(v) = template
            .render(claims)
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            out.retain(|(n, _)| n != name);
            out.push((name.clone(), v));
        }
    }
    out
}

fn deny(
    reason: DenyReason,
    rule: Option<&Arc<str>>,
    provider: Option<&Arc<str>>,
    detail: String,
) -> Deny {
    let mut d = Deny::new(reason, detail);
    d.rule = rule.cloned();
    d.provider = provider.cloned();
    d
}

fn boxed(
    reason: DenyReason,
    rule: Option<&Arc<str>>,
    provider: Option<&Arc<str>>,
    detail: String,
) -> Box<Deny> {
    Box::new(deny(reason, rule, provider, detail))
}

/// Checks the rule's `when:`, if any: only `true` passes; `false`, a run-time
/// error or a value that is not a boolean is a 403 `condition_failed`.
fn check_condition(
    rule: &Rule,
    identity: Option<(&Identity, Option<&str>)>,
    request: &RequestVars<'_>,
    trace: &mut impl Trace,
) -> Result<(), Box<Deny>> {
    let Some(condition) = &rule.config.when else {
        return Ok(());
    };
    // An identity made without the variables (not by this engine's verify):
    // converted now, from every claim and the header.
    let built;
    let vars = match identity {
        None => None,
        Some((id, token)) => match id.token_vars() {
            Some(v) => Some(v),
            None => {
                built = token_vars_of(id, token);
                Some(&built)
            }
        },
    };
    let value = condition.evaluate(vars, request);
    trace.step(|| explain::condition_step(condition, &value));
    match value {
        Ok(true) => Ok(()),
        Ok(false) => Err(boxed(
            DenyReason::ConditionFailed,
            Some(&rule.name),
            None,
            "the rule's condition is false".to_owned(),
        )),
        Err(why) => Err(boxed(
            DenyReason::ConditionFailed,
            Some(&rule.name),
            None,
            format!("the rule's condition failed: {why}"),
        )),
    }
}

/// The CEL variables of `identity`, from the token it keeps, else from `token`
/// (the request's, which verified as it).
fn token_vars_of(identity: &Identity, token: Option<&str>) -> TokenVars {
    let claims = identity.claims_with(token);
    let header = identity
        .token()
        .map(|t| &**t)
        .or(token)
        .unwrap_or_default()
        .split('.')
        .next()
        .filter(|h| h.len() < 8 * 1024)
        .and_then(|h| b64::decode(h.as_bytes()))
        .and_then(|h| serde_json::from_slice::<serde_json::Map<String, Value>>(&h).ok())
        .unwrap_or_default();
    TokenVars::new(claims.members(), &header)
}

/// Whether `rule` reads the token's claims beyond what the identity holds ready
/// (`exp`, the provider's headers).
fn rule_reads_claims(rule: &RuleConfig) -> bool {
    !rule.claims.is_empty() || !rule.scopes.is_empty() || !rule.headers.is_empty()
}

/// The top-level claims `rules` read (for `realm_access.roles`: `realm_access`,
/// and the whole name too, as a claim may have dots in its own name), plus `iss`
/// and `sub`, which deny logs name. Empty when no rule reads claims.
fn claims_rules_read(rules: &[RuleConfig]) -> Vec<String> {
    fn add(names: &mut Vec<String>, path: &str) {
        for name in [path, path.split('.').next().unwrap_or(path)] {
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    let mut names: Vec<String> = Vec::new();
    for rule in rules {
        rule.claims
            .iter()
            .for_each(|(path, _)| add(&mut names, path));
        if !rule.scopes.is_empty() {
            add(&mut names, "scope");
            add(&mut names, "scp");
        }
        if rule.step_up.is_some() {
            add(&mut names, "acr");
            add(&mut names, "amr");
            add(&mut names, "auth_time");
        }
        for (_, template) in &rule.headers {
            template
                .claim_paths()
                .for_each(|path| add(&mut names, path));
        }
    }
    if !names.is_empty() {
        add(&mut names, "iss");
        add(&mut names, "sub");
    }
    names
}

/// The claims a decision reads from a token of provider `config` once it verified, so
/// the only ones worth building (the rest of the payload is still checked in full):
/// the claims rules read (`kept`, which holds `iss` and `sub` when it holds any), the
/// provider's `claims_to_headers`, `cnf` (a token's binding to a certificate or a
/// DPoP key) and `sub` (its SPIFFE ID). `None`, all of them: a rule's `when:` sees every
/// claim, and a `spiffe` provider's JWT-SVID checks read several. The registered
/// claims validation reads are added by `verify_jwt_keeping` itself.
fn claims_read(
    config: &ProviderConfig,
    kept: &[String],
    has_conditions: bool,
) -> Option<Box<[String]>> {
    if has_conditions || config.spiffe.is_some() {
        return None;
    }
    let mut names: Vec<String> = kept.to_vec();
    let mut add = |name: &str| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    };
    add("cnf");
    add("sub");
    for (_, template) in &config.claims_to_headers {
        for path in template.claim_paths() {
            // `Claims::path` reads a claim named with the dots before descending.
            add(path);
            add(path.split('.').next().unwrap_or(path));
        }
    }
    Some(names.into_boxed_slice())
}

/// Every spelling of `name` with `_` for some of its `-` (`x_user` for `x-user`), but
/// `name` itself. A name with more than six dashes gets only the all-underscore
/// spelling besides (64 names per header at most).
fn other_spellings(name: &HeaderName) -> Vec<HeaderName> {
    let text = name.as_str();
    let dashes: Vec<usize> = text.match_indices('-').map(|(i, _)| i).collect();
    let masks: Vec<u32> = if dashes.len() <= 6 {
        (1..1u32 << dashes.len()).collect()
    } else {
        vec![u32::MAX]
    };
    masks
        .into_iter()
        .filter_map(|mask| {
            let mut bytes = text.as_bytes().to_vec();
            for (bit, &at) in dashes.iter().enumerate() {
                if mask & (1 << bit.min(31)) != 0 {
                    bytes[at] = b'_';
                }
            }
            HeaderName::from_bytes(&bytes).ok()
        })
        .collect()
}

/// Whether a rule matches the canonical host and path.
fn matches(rule: &RuleConfig, method: &Method, host: &str, path: &str) -> bool {
    (rule.hosts.is_empty() || rule.hosts.iter().any(|h| h.matches(host)))
        && (rule.paths.is_empty() || rule.paths.iter().any(|p| p.matches(path)))
        && (rule.methods.is_empty() || rule.methods.iter().any(|m| m == method))
}

/// Checks the rule's claims and scopes and the request's extra claims.
fn authorize(
    rule: &Rule,
    req: &AuthRequest<'_>,
    claims: &Claims,
    trace: &mut impl Trace,
) -> Result<(), Box<Deny>> {
    for (path, accepted) in &rule.config.claims {
        let ok = claim_matches(claims.path(path), |v| {
            accepted.iter().any(|a| value_eq(v, a))
        });
        trace.step(|| {
            Step::new(
                "claim",
                ok,
                format!(
                    "{path}: wants one of {}, token has {}",
                    Value::from(accepted.clone()),
                    explain::shown(claims.path(path))
                ),
            )
        });
        if !ok {
            return Err(boxed(
                DenyReason::ClaimMismatch,
                Some(&rule.name),
                None,
                format!("claim {path:?} does not match"),
            ));
        }
    }
    // Extra requirements: each distinct name must hold one of its values.
    let mut names: Vec<&str> = req.extra_claims.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    for name in names {
        let ok = claim_matches(claims.path(name), |v| {
            req.extra_claims
                .iter()
                .filter(|(n, _)| n == name)
                .any(|(_, want)| value_eq(v, &Value::from(want.as_str())))
        });
        trace.step(|| {
            let wanted: Vec<&str> = req
                .extra_claims
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, w)| w.as_str())
                .collect();
            Step::new(
                "claim",
                ok,
                format!(
                    "{name} (asked by the request): wants one of {wanted:?}, token has {}",
                    explain::shown(claims.path(name))
                ),
            )
        });
        if !ok {
            return Err(boxed(
                DenyReason::ClaimMismatch,
                Some(&rule.name),
                None,
                format!("claim {name:?} does not match the request's requirement"),
            ));
        }
    }
    if !rule.config.scopes.is_empty() {
        let granted = scopes(claims);
        let missing = rule
            .config
            .scopes
            .iter()
            .find(|s| !granted.contains(&s.as_str()));
        trace.step(|| {
            Step::new(
                "scopes",
                missing.is_none(),
                format!(
                    "wants all of {:?}, token grants {granted:?}",
                    rule.config.scopes
                ),
            )
        });
        if let Some(missing) = missing {
            return Err(boxed(
                DenyReason::ScopeMissing,
                Some(&rule.name),
                None,
                format!("scope {missing:?} missing"),
            ));
        }
    }
    Ok(())
}

fn claim_matches(value: Option<&Value>, ok: impl Fn(&Value) -> bool) -> bool {
    match value {
        None => false,
        Some(Value::Array(items)) => items.iter().any(&ok),
        Some(v) => ok(v),
    }
}

/// A claim equals a configured value: same JSON value, or the same text for a
/// number or boolean compared with a string (`"true"`, `"42"`).
fn value_eq(claim: &Value, wanted: &Value) -> bool {
    if claim == wanted {
        return true;
    }
    match (claim, wanted) {
        (Value::Number(n), Value::String(s)) | (Value::String(s), Value::Number(n)) => {
            s.parse::<f64>().ok().is_some_and(|f| Some(f) == n.as_f64())
        }
        (Value::Bool(b), Value::String(s)) | (Value::String(s), Value::Bool(b)) => {
            s == if *b { "true" } else { "false" }
        }
        _ => false,
    }
}

/// Scopes from `scope` (space-separated string or array) and `scp` (array or string).
fn scopes(claims: &Claims) -> Vec<&str> {
    let mut out = Vec::new();
    for name in ["scope", "scp"] {
        match claims.get(name) {
            Some(Value::String(s)) => out.extend(s.split(' ').filter(|s| !s.is_empty())),
            Some(Value::Array(items)) => out.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

/// The unverified `iss`, only to choose which provider verifies (never to trust).
fn peek_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = b64::decode(payload.as_bytes())?;
    #[derive(serde::Deserialize)]
    struct Iss {
        iss: Option<String>,
    }
    serde_json::from_slice::<Iss>(&bytes).ok()?.iss
}

fn unverified_hints(token: &str) -> TokenHints {
    let mut hints = TokenHints::default();
    let mut parts = token.split('.');
    if let Some(h) = parts
        .next()
        .filter(|h| h.len() < 4096)
        .and_then(|h| b64::decode(h.as_bytes()))
        && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&h)
    {
        hints.kid = m.get("kid").and_then(Value::as_str).map(clip);
    }
    if let Some(p) = parts
        .next()
        .filter(|p| p.len() < 16 * 1024)
        .and_then(|p| b64::decode(p.as_bytes()))
        && let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&p)
    {
        hints.iss = m.get("iss").and_then(Value::as_str).map(clip);
        hints.sub = m.get("sub").and_then(Value::as_str).map(clip);
    }
    hints
}

fn hints_from_claims(claims: &Claims) -> TokenHints {
    TokenHints {
        kid: None,
        iss: claims.issuer().map(clip),
        sub: claims.subject().map(clip),
    }
}

/// Keeps logged values short and printable.
fn clip(s: &str) -> String {
    s.chars()
        .take(128)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod tests_issue16;

#[cfg(test)]
mod tests_cache;
