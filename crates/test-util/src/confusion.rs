//! The raw-request confusion suite (issue 10): confusing requests sent as exact bytes
//! through a real proxy in front of Portcullis, an upstream that records exactly what
//! reached it, and a checker that reads each recorded request the strictest way an
//! upstream might.
//!
//! - [`RecordingUpstream`]: a raw TCP server that keeps, per request, the request line
//!   (the raw target bytes) and every header as received (original case, duplicates
//!   kept), and answers 200. Each probe carries `X-Probe-Id: N`, so what the upstream
//!   got is matched to what was sent; a probe with no record did not reach it.
//! - [`send_raw`]: writes bytes as they are (no client-side normalization) and reads
//!   the response status.
//! - [`corpus()`]: hundreds of probes from the classes of issue 10 and the peers'
//!   advisories, plus positive controls (an admin token reaches `/admin/x` with the
//!   identity header set; `/public/x` reaches without a token; a developer token is
//!   denied at `/admin/x`), so a deny-everything set-up cannot pass.
//! - [`Confusion::run`]: sends every probe, checks every record and prints a table per
//!   class; [`Outcome::finish`] panics with every failure (proxy, class, request bytes,
//!   what the upstream got) and the logs.

mod client;
mod corpus;
mod proxy_corpus;
mod strict;
mod upstream;

pub use client::{Answer, send_h2c, send_raw};
pub use corpus::{Check, Credential, H2cRequest, Probe, Tokens, corpus};
pub use proxy_corpus::proxy_corpus;
pub use upstream::{Received, RecordingUpstream};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

pub(crate) use crate::matrix::{
    ANONYMOUS_HOST, RESTRICTED_HOST, SPOOFED_USER as SPOOFED, SUBJECT, USER_HEADER,
};
use crate::{MatrixEnv, ProxyUnderTest};
use upstream::find;

/// `bytes` as printable text: `\r`, `\n`, `\t`, `\\` and `\xNN` escapes.
pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    out
}

/// One problem found.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The probe's class.
    pub class: &'static str,
    /// The probe's id (`None`: a request the upstream got without a probe id).
    pub id: Option<usize>,
    /// What went wrong.
    pub what: String,
    /// The bytes sent, escaped (tokens shortened).
    pub sent: String,
    /// The status the client got.
    pub status: Option<u16>,
    /// What the upstream got, one line per request.
    pub upstream: Vec<String>,
}

/// Per-class counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClassCount {
    /// Probes sent.
    pub probes: usize,
    /// Probes the upstream received.
    pub reached: usize,
    /// Probes with at least one failure.
    pub failing: usize,
}

/// What one proxy's run found.
#[derive(Debug)]
pub struct Outcome {
    /// The proxy's name.
    pub proxy: String,
    /// Counts by class.
    pub classes: BTreeMap<&'static str, ClassCount>,
    /// Every failure.
    pub failures: Vec<Failure>,
    /// Probes that timed out.
    pub timeouts: usize,
    /// How long it took.
    pub elapsed: Duration,
    logs: String,
}

impl Outcome {
    /// The table: counts per class, then every failure.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let total: ClassCount =
            self.classes
                .values()
                .fold(ClassCount::default(), |a, c| ClassCount {
                    probes: a.probes + c.probes,
                    reached: a.reached + c.reached,
                    failing: a.failing + c.failing,
                });
        let _ = writeln!(
            out,
            "[{}] {} probes, {} reached the upstream, {} failing, {} timeouts, {:.1?}",
            self.proxy, total.probes, total.reached, total.failing, self.timeouts, self.elapsed
        );
        let _ = writeln!(
            out,
            "[{}] {:<22} {:>6} {:>8} {:>8}",
            self.proxy, "class", "probes", "reached", "failing"
        );
        for (class, c) in &self.classes {
            let _ = writeln!(
                out,
                "[{}] {:<22} {:>6} {:>8} {:>8}",
                self.proxy, class, c.probes, c.reached, c.failing
            );
        }
        for f in &self.failures {
            let id = f.id.map_or("?".to_owned(), |i| i.to_string());
            let status = f.status.map_or("none".to_owned(), |s| s.to_string());
            let _ = writeln!(
                out,
                "[{}] FAIL #{id} {}: {}\n    sent:     {}\n    status:   {status}",
                self.proxy, f.class, f.what, f.sent
            );
            for u in &f.upstream {
                let _ = writeln!(out, "    upstream: {u}");
            }
        }
        out
    }

    /// Prints the table; panics with it and the logs if anything failed.
    pub fn finish(&self) {
        let table = self.table();
        eprint!("{table}");
        assert!(
            self.failures.is_empty(),
            "{} failure(s) through {}:\n{table}\n{}",
            self.failures.len(),
            self.proxy,
            self.logs
        );
    }
}

/// A confusion run through one proxy.
#[derive(Debug)]
pub struct Confusion<'a> {
    env: &'a MatrixEnv,
    proxy: &'a ProxyUnderTest,
    upstream: &'a RecordingUpstream,
    proxy_probes: bool,
}

/// Probes in flight at once.
const WORKERS: usize = 4;
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

impl<'a> Confusion<'a> {
    /// A run through `proxy`, whose upstream is `upstream`.
    pub fn new(
        env: &'a MatrixEnv,
        proxy: &'a ProxyUnderTest,
        upstream: &'a RecordingUpstream,
    ) -> Confusion<'a> {
        Confusion {
            env,
            proxy,
            upstream,
            proxy_probes: false,
        }
    }

    /// Also sends [`proxy_corpus`]: what only a proxy meets (smuggling, hop-by-hop
    /// tricks, upgrades, `CONNECT`, h2c `:authority` against `Host`).
    pub fn with_proxy_probes(mut self) -> Self {
        self.proxy_probes = true;
        self
    }

    /// Sends the corpus and checks what the upstream got.
    pub fn run(&self) -> Outcome {
        let started = Instant::now();
        let authority = self
            .proxy
            .base_url
            .strip_prefix("http://")
            .expect("http:// base_url")
            .to_owned();
        let port: u16 = authority
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("base_url ends with :PORT");
        let tokens = Tokens {
            admin: self.env.token(json!({ "groups": ["admins"] })),
            developer: self.env.token(json!({ "groups": ["developers"] })),
        };
        let mut probes = corpus(&authority, &tokens);
        if self.proxy_probes {
            let more = proxy_corpus(&authority, &tokens, probes.len());
            probes.extend(more);
        }
        let answers: Vec<Mutex<Option<Answer>>> = probes.iter().map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..WORKERS {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = probes.get(i) else { break };
                        let a = match &p.h2c {
                            Some(h2) => send_h2c(port, h2, PROBE_TIMEOUT),
                            None => send_raw(port, &p.bytes, PROBE_TIMEOUT),
                        };
                        *answers[i].lock().unwrap() = Some(a);
                    }
                });
            }
        });
        // A proxy may still be forwarding a probe whose answer timed out.
        std::thread::sleep(Duration::from_millis(200));
        let received = self.upstream.received();
        let mut by_probe: BTreeMap<usize, Vec<&Received>> = BTreeMap::new();
        let mut unattributed = Vec::new();
        for r in &received {
            let ids = r.probe_ids();
            if ids.is_empty() {
                unattributed.push(r);
            }
            for id in ids {
                by_probe.entry(id).or_default().push(r);
            }
        }
        let shorten = |text: String| {
            text.replace(&tokens.admin, "<admin token>")
                .replace(&tokens.developer, "<developer token>")
        };
        let mut classes: BTreeMap<&'static str, ClassCount> = BTreeMap::new();
        let mut failures = Vec::new();
        let mut timeouts = 0;
        // Every probe, its status and what the upstream got, for investigating.
        let dump = std::env::var_os("PORTCULLIS_CONFUSION_DUMP").is_some();
        for (p, answer) in probes.iter().zip(&answers) {
            let answer = answer.lock().unwrap().clone().unwrap_or(Answer {
                status: None,
                timed_out: true,
            });
            timeouts += usize::from(answer.timed_out);
            let got = by_probe.get(&p.id).cloned().unwrap_or_default();
            let problems = check(p, answer.status, &got);
            if dump {
                eprintln!(
                    "[{}] #{} {} {:?} status {:?}: {}\n    upstream: {:?}",
                    self.proxy.name,
                    p.id,
                    p.class,
                    p.credential,
                    answer.status,
                    shorten(escape(&p.bytes)),
                    got.iter()
                        .map(|r| shorten(r.describe()))
                        .collect::<Vec<_>>()
                );
            }
            let count = classes.entry(p.class).or_default();
            count.probes += 1;
            count.reached += usize::from(!got.is_empty());
            count.failing += usize::from(!problems.is_empty());
            for what in problems {
                failures.push(Failure {
                    class: p.class,
                    id: Some(p.id),
                    what,
                    sent: shorten(escape(&p.bytes)),
                    status: answer.status,
                    upstream: got.iter().map(|r| shorten(r.describe())).collect(),
                });
            }
        }
        // Requests the upstream got without a probe id (a proxy dropped or rewrote it).
        for r in unattributed {
            let claims = r.host_claims();
            let hosts: Vec<&[u8]> = claims.iter().map(Vec::as_slice).collect();
            let protected = strict::protected_reading(r.target(), &hosts);
            let spoofed = spoofed_identity(r);
            if protected.is_some() || spoofed {
                failures.push(Failure {
                    class: "unattributed",
                    id: None,
                    what: format!(
                        "a request without X-Probe-Id reached the upstream: protected reading {protected:?}, spoofed identity {spoofed}"
                    ),
                    sent: String::new(),
                    status: None,
                    upstream: vec![shorten(r.describe())],
                });
            }
        }
        let logs = if failures.is_empty() {
            String::new()
        } else {
            crate::matrix::logs(self.env, self.proxy)
        };
        Outcome {
            proxy: self.proxy.name.clone(),
            classes,
            failures,
            timeouts,
            elapsed: started.elapsed(),
            logs,
        }
    }
}

fn spoofed_identity(r: &Received) -> bool {
    r.spellings(USER_HEADER)
        .iter()
        .any(|v| find(v, SPOOFED.as_bytes()).is_some())
}

/// Every problem with one probe, given its status and what the upstream got for it.
fn check(p: &Probe, status: Option<u16>, got: &[&Received]) -> Vec<String> {
    let mut problems = Vec::new();
    for r in got {
        if spoofed_identity(r) {
            problems.push(format!(
                "the client's {USER_HEADER}: {SPOOFED} reached the upstream (as {:?})",
                r.headers
                    .iter()
                    .filter(|(n, _)| strict::is_spelling_of(n, USER_HEADER))
                    .map(|(n, v)| format!("{}: {}", escape(n), escape(v)))
                    .collect::<Vec<_>>()
            ));
        }
        if p.credential != Credential::Admin
            && !matches!(p.check, Check::Reaches { .. })
            && let Some((host, path)) = {
                let claims = r.host_claims();
                let hosts: Vec<&[u8]> = claims.iter().map(Vec::as_slice).collect();
                strict::protected_reading(r.target(), &hosts)
            }
        {
            problems.push(format!(
                "reached the upstream without an admin token, which can read it as host {host:?} path {path:?}"
            ));
        }
    }
    let users = |r: &Received| -> Vec<String> {
        r.spellings(USER_HEADER)
            .iter()
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    };
    match &p.check {
        Check::Attack => {}
        Check::Single => {
            if got.len() > 1 {
                problems.push(format!(
                    "the upstream got {} requests for one probe (a smuggled one among them)",
                    got.len()
                ));
            }
            for r in got {
                if r.values("upgrade")
                    .iter()
                    .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"h2c"))
                {
                    problems.push(
                        "the upstream was offered Upgrade: h2c (h2c smuggling past the decision)"
                            .to_owned(),
                    );
                }
            }
        }
        Check::Refused => {
            if !got.is_empty() || !status.is_some_and(|s| (400..500).contains(&s)) {
                problems.push(format!(
                    "want a 4xx and no upstream request, got status {status:?} and {} upstream request(s)",
                    got.len()
                ));
            }
        }
        Check::IdentityKept => {
            for r in got {
                let seen = users(r);
                if seen != [SUBJECT] {
                    problems.push(format!(
                        "the upstream saw identity {seen:?}, want exactly [{SUBJECT:?}] (Portcullis's)"
                    ));
                }
            }
        }
        Check::Reaches { target, user } => {
            if status != Some(200) || got.len() != 1 {
                problems.push(format!(
                    "control: want 200 from the upstream once, got status {status:?} and {} upstream request(s)",
                    got.len()
                ));
            }
            for r in got {
                if r.target() != target.as_bytes() {
                    problems.push(format!(
                        "control: the upstream got target {}, want {target}",
                        escape(r.target())
                    ));
                }
                let seen = users(r);
                let want: Vec<String> = user.iter().map(|u| (*u).to_owned()).collect();
                if seen != want {
                    problems.push(format!(
                        "control: the upstream saw identity {seen:?}, want {want:?}"
                    ));
                }
            }
        }
        Check::Denied => {
            if !got.is_empty() || !matches!(status, Some(401 | 403)) {
                problems.push(format!(
                    "control: want 401/403 and no upstream request, got status {status:?} and {} upstream request(s)",
                    got.len()
                ));
            }
        }
    }
    problems
}
