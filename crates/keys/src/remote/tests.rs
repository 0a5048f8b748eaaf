//! The timing of remote sources, on tokio's paused clock with a fake fetcher: no
//! server, no sleeping, the same result on every run.

use std::collections::{HashMap, VecDeque};
use std::error::Error as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use portcullis_policy::KeySlot;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::*;
use crate::error::{FetchError, InvalidKeys};
use crate::fetch::Fetched;
use crate::publish::Report;
use crate::refetch::{BURST, DEFER, MIN_INTERVAL, NEGATIVE_TTL, REFILL};

const ED25519_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
const SECRET: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const JWKS_URL: &str = "https://keys.test/jwks";
const ISSUER: &str = "https://issuer.test";
const DISCOVERY_URL: &str = "https://issuer.test/.well-known/openid-configuration";

fn jwk(kid: &str) -> String {
    format!(r#"{{"kty":"OKP","crv":"Ed25519","x":"{ED25519_X}","kid":"{kid}"}}"#)
}

fn jwks(keys: &[String]) -> Vec<u8> {
    format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
}

/// What the fake answers for a URL.
#[derive(Clone, Debug)]
enum Answer {
    Body(Vec<u8>, Option<Duration>),
    Down,
    Status(u16),
}

fn keys(kids: &[&str]) -> Answer {
    Answer::Body(jwks(&kids.iter().map(|k| jwk(k)).collect::<Vec<_>>()), None)
}

#[derive(Debug, Default)]
struct Script {
    /// Per URL, the answers to come; the last one repeats.
    answers: HashMap<String, VecDeque<Answer>>,
    /// Every call: when (on the paused clock) and for what.
    calls: Vec<(Instant, String)>,
}

/// A fetcher that answers from a script and records its calls.
#[derive(Clone, Debug, Default)]
struct FakeFetch(Arc<Mutex<Script>>);

impl FakeFetch {
    async fn answer(&self, url: &str, answers: impl IntoIterator<Item = Answer>) {
        self.0
            .lock()
            .await
            .answers
            .insert(url.to_owned(), answers.into_iter().collect());
    }

    /// The times of the calls for `url`, as offsets from `start`.
    async fn calls(&self, url: &str, start: Instant) -> Vec<Duration> {
        let script = self.0.lock().await;
        script
            .calls
            .iter()
            .filter(|(_, u)| u == url)
            .map(|(at, _)| at.duration_since(start))
            .collect()
    }
}

impl Fetch for FakeFetch {
    async fn get(&self, url: &str, _limit: Duration) -> Result<Fetched, FetchError> {
        let mut script = self.0.lock().await;
        script.calls.push((Instant::now(), url.to_owned()));
        let answer = match script.answers.get_mut(url) {
            Some(queue) if queue.len() > 1 => queue.pop_front(),
            Some(queue) => queue.front().cloned(),
            None => None,
        };
        match answer.unwrap_or(Answer::Status(404)) {
            Answer::Body(body, max_age) => Ok(Fetched { body, max_age }),
            Answer::Down => Err(FetchError::Transport {
                url: url.to_owned(),
                source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            }),
            Answer::Status(status) => Err(FetchError::Status {
                url: url.to_owned(),
                status,
            }),
        }
    }
}

/// Counts outcomes, and the last key count.
#[derive(Debug, Default)]
struct Counts {
    error: AtomicUsize,
    invalid: AtomicUsize,
    success: AtomicUsize,
    keys: AtomicUsize,
}

impl Counts {
    fn of(&self, outcome: FetchOutcome) -> usize {
        match outcome {
            FetchOutcome::Error => &self.error,
            FetchOutcome::Invalid => &self.invalid,
            FetchOutcome::Success => &self.success,
        }
        .load(Ordering::SeqCst)
    }
}

impl Report for Counts {
    fn fetch(&self, _: &str, outcome: FetchOutcome) {
        match outcome {
            FetchOutcome::Error => &self.error,
            FetchOutcome::Invalid => &self.invalid,
            FetchOutcome::Success => &self.success,
        }
        .fetch_add(1, Ordering::SeqCst);
    }

    fn keys(&self, _: &str, count: usize) {
        self.keys.store(count, Ordering::SeqCst);
    }
}

struct Running {
    slot: Arc<KeySlot>,
    counts: Arc<Counts>,
    fetcher: FakeFetch,
    start: Instant,
    _handle: crate::SourceHandle,
}

fn tuning(refresh: u64) -> FetchTuning {
    FetchTuning {
        refresh: Duration::from_secs(refresh),
        min_refresh: Duration::from_secs(30),
        max_refresh: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
    }
}

/// Starts a source over `fetcher` (already scripted) and lets its first cycle run.
async fn run(target: Target, tuning: FetchTuning, fetcher: FakeFetch) -> Running {
    let slot = Arc::new(KeySlot::empty());
    let counts = Arc::new(Counts::default());
    let publisher = Publisher::single("corp", slot.clone(), counts.clone());
    let start = Instant::now();
    let handle = crate::spawn(
        RemoteSource {
            target,
            tuning,
            fetcher: fetcher.clone(),
        },
        publisher,
    );
    settle().await;
    Running {
        slot,
        counts,
        fetcher,
        start,
        _handle: handle,
    }
}

/// Lets the source's task run what it can without the clock moving.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

fn secs(s: &[f64]) -> Vec<Duration> {
    s.iter().map(|s| Duration::from_secs_f64(*s)).collect()
}

#[tokio::test(start_paused = true)]
async fn failed_fetches_back_off_doubling_up_to_the_cap_and_reset_on_success() {
    let fetcher = FakeFetch::default();
    fetcher.answer(JWKS_URL, [Answer::Down]).await;
    let r = run(Target::Jwks(JWKS_URL.to_owned()), tuning(10), fetcher).await;
    tokio::time::sleep(Duration::from_secs(36)).await;
    // 0.5s, doubling, capped by the 10s refresh interval (and never over 60s).
    assert_eq!(
        r.fetcher.calls(JWKS_URL, r.start).await,
        secs(&[0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 25.5, 35.5])
    );
    assert_eq!(r.counts.of(FetchOutcome::Error), 8);
    assert!(!r.slot.is_ready());

    // Up again: keys at the next retry (45.5s); the refresh interval later it is
    // down again, and the backoff starts over at 0.5s.
    r.fetcher
        .answer(JWKS_URL, [keys(&["a"]), Answer::Down])
        .await;
    tokio::time::sleep(Duration::from_secs(21)).await;
    let calls = r.fetcher.calls(JWKS_URL, r.start).await;
    assert_eq!(calls[8..], secs(&[45.5, 55.5, 56.0]), "{calls:?}");
    assert!(r.slot.is_ready());
}

#[tokio::test(start_paused = true)]
async fn the_backoff_cap_is_a_minute_when_the_refresh_is_longer() {
    let fetcher = FakeFetch::default();
    fetcher.answer(JWKS_URL, [Answer::Status(503)]).await;
    let r = run(Target::Jwks(JWKS_URL.to_owned()), tuning(3600), fetcher).await;
    tokio::time::sleep(Duration::from_secs(300)).await;
    let calls = r.fetcher.calls(JWKS_URL, r.start).await;
    let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        gaps,
        secs(&[0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0])
    );
}

/// Issue 18 (rotation): every request that asks while a kid-triggered fetch is in
/// flight waits on it, not only the first; the fetch's end wakes them all. A
/// second rotation right after the first is fetched after the short minimum
/// interval (it was held for 30 s), and a `kid` that fetch did not bring is junk:
/// answered at once, with no fetch, until its verdict is old.
#[tokio::test(start_paused = true)]
async fn unknown_kids_wake_every_waiter_and_a_rotation_right_after_a_rotation_is_fetched() {
    let fetcher = FakeFetch::default();
    fetcher
        .answer(
            JWKS_URL,
            [keys(&["a"]), keys(&["a", "b"]), keys(&["a", "b", "c"])],
        )
        .await;
    let r = run(Target::Jwks(JWKS_URL.to_owned()), tuning(3600), fetcher).await;
    assert_eq!(r.slot.generation(), 1);
    tokio::time::advance(Duration::from_secs(1)).await;

    // The first unknown kid asks for a fetch; the others asking before it ends wait
    // on the same fetch; its end wakes them.
    let round = r.slot.round();
    assert!(r.slot.request_refetch("b"));
    assert!(
        r.slot.request_refetch("b"),
        "a second request waits on it too"
    );
    assert!(r.slot.request_refetch("b"), "and a third");
    let woken = tokio::time::timeout(Duration::from_millis(10), r.slot.next_round(round)).await;
    assert!(woken.is_ok());
    assert_eq!(r.slot.generation(), 2);
    assert!(r.slot.load().unwrap().has_kid("b"));
    assert_eq!(
        r.fetcher.calls(JWKS_URL, r.start).await.len(),
        2,
        "one fetch"
    );

    // The issuer rotates again at once: the new kid waits for the fetch at the end of
    // the minimum interval, not 30 s.
    let asked = Instant::now();
    let round = r.slot.round();
    assert!(r.slot.request_refetch("c"), "a never-seen kid waits");
    let woken =
        tokio::time::timeout(DEFER + Duration::from_millis(10), r.slot.next_round(round)).await;
    assert!(woken.is_ok());
    assert!(r.slot.load().unwrap().has_kid("c"));
    assert!(asked.elapsed() <= MIN_INTERVAL, "{:?}", asked.elapsed());
    assert_eq!(r.fetcher.calls(JWKS_URL, r.start).await.len(), 3);

    // A junk kid: one fetch looks for it (the same keys: no new snapshot, so the
    // generation and the token cache stay) ...
    tokio::time::advance(MIN_INTERVAL).await;
    let round = r.slot.round();
    assert!(r.slot.request_refetch("junk"));
    let woken =
        tokio::time::timeout(DEFER + Duration::from_millis(10), r.slot.next_round(round)).await;
    assert!(woken.is_ok());
    assert_eq!(r.fetcher.calls(JWKS_URL, r.start).await.len(), 4);
    assert_eq!(r.slot.generation(), 3);
    // ... then it is answered at once, and asks for nothing, until the verdict is old.
    for _ in 0..30 {
        assert!(!r.slot.request_refetch("junk"));
        settle().await;
        tokio::time::advance(Duration::from_millis(400)).await;
    }
    assert_eq!(r.fetcher.calls(JWKS_URL, r.start).await.len(), 4);
    tokio::time::advance(NEGATIVE_TTL).await;
    assert!(
        r.slot.request_refetch("junk"),
        "an old verdict: asked again"
    );
    settle().await;
    assert_eq!(r.fetcher.calls(JWKS_URL, r.start).await.len(), 5);
}

/// Issue 18 (junk kids, then rotation): a flood of never-seen `kid`s costs the key
/// server a bounded number of fetches (a burst, then one per REFILL), requests do not
/// wait for a fetch that is further away than DEFER, and a real rotation in the
/// middle of the flood is found by the next fetch, whoever triggered it.
#[tokio::test(start_paused = true)]
async fn junk_kids_cost_bounded_fetches_and_do_not_starve_a_real_rotation() {
    let fetcher = FakeFetch::default();
    fetcher.answer(JWKS_URL, [keys(&["a"])]).await;
    let r = run(Target::Jwks(JWKS_URL.to_owned()), tuning(3600), fetcher).await;
    tokio::time::advance(Duration::from_secs(1)).await;
    let flood_start = Instant::now();
    let mut waited = 0;
    let mut answered_at_once = 0;
    let mut rotated_at = None;
    let mut found_after = None;
    for i in 0..400 {
        // 20 never-seen kids a second for 20 s; the issuer rotates at 10 s.
        if r.slot.request_refetch(&format!("junk-{i}")) {
            waited += 1;
        } else {
            answered_at_once += 1;
        }
        if i == 200 {
            r.fetcher.answer(JWKS_URL, [keys(&["a", "b"])]).await;
            rotated_at = Some(Instant::now());
        }
        if let Some(at) = rotated_at
            && found_after.is_none()
            && r.slot.load().unwrap().has_kid("b")
        {
            found_after = Some(at.elapsed());
        }
        settle().await;
        tokio::time::advance(Duration::from_millis(50)).await;
    }
    settle().await;
    let fetches = r.fetcher.calls(JWKS_URL, r.start).await.len() - 1;
    let elapsed = flood_start.elapsed();
    let budget = BURST as usize + (elapsed.as_millis() / REFILL.as_millis()) as usize + 1;
    assert!(
        fetches <= budget,
        "{fetches} fetches in {elapsed:?} (budget {budget})"
    );
    assert!(
        fetches >= BURST as usize,
        "the flood did trigger fetches: {fetches}"
    );
    assert!(
        waited > 0 && answered_at_once > 0,
        "{waited} / {answered_at_once}"
    );
    let found_after = found_after.expect("the rotated key was fetched");
    assert!(found_after <= REFILL + MIN_INTERVAL, "{found_after:?}");
}

/// Issue 18: every refresh emptied the token cache, because each store bumped the
/// generation. Refreshes that find the same keys keep the snapshot.
#[tokio::test(start_paused = true)]
async fn refreshes_with_the_same_keys_keep_the_generation() {
    let fetcher = FakeFetch::default();
    fetcher
        .answer(JWKS_URL, [keys(&["a"]), keys(&["a"]), keys(&["a", "b"])])
        .await;
    let mut t = tuning(60);
    t.min_refresh = Duration::from_secs(1);
    let r = run(Target::Jwks(JWKS_URL.to_owned()), t, fetcher).await;
    let first = r.slot.snapshot();
    assert_eq!(first.generation(), 1);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(r.fetcher.calls(JWKS_URL, r.start).await.len(), 2);
    assert_eq!(r.slot.generation(), 1, "same keys: same snapshot");
    assert!(Arc::ptr_eq(&first, &r.slot.snapshot()));
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(r.fetcher.calls(JWKS_URL, r.start).await.len(), 3);
    assert_eq!(r.slot.generation(), 2, "a changed set bumps it");
}

#[tokio::test(start_paused = true)]
async fn hmac_keys_in_a_fetched_jwks_are_refused() {
    let oct = format!(r#"{{"kty":"oct","k":"{SECRET}","kid":"hs"}}"#);
    let fetcher = FakeFetch::default();
    fetcher
        .answer(
            JWKS_URL,
            [
                Answer::Body(jwks(std::slice::from_ref(&oct)), None),
                Answer::Body(jwks(&[oct.clone(), jwk("a")]), None),
            ],
        )
        .await;
    let r = run(Target::Jwks(JWKS_URL.to_owned()), tuning(60), fetcher).await;
    // A served secret is no secret: alone, the document has no usable key.
    assert!(!r.slot.is_ready());
    assert_eq!(r.counts.of(FetchOutcome::Invalid), 1);
    assert_eq!(r.counts.of(FetchOutcome::Success), 0);

    // Beside a public key, it is left out and the public key loads.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let keys = r.slot.load().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys.has_kid("a"));
    assert!(!keys.has_kid("hs"));
    assert_eq!(r.counts.of(FetchOutcome::Success), 1);
    assert_eq!(r.counts.keys.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn cache_control_max_age_sets_the_next_refresh_within_bounds() {
    let fetcher = FakeFetch::default();
    let body = jwks(&[jwk("a")]);
    let with_age = |s: u64| Answer::Body(body.clone(), Some(Duration::from_secs(s)));
    fetcher
        .answer(
            JWKS_URL,
            [
                with_age(120),
                with_age(5),
                with_age(86_400),
                Answer::Body(body.clone(), None),
            ],
        )
        .await;
    let r = run(Target::Jwks(JWKS_URL.to_owned()), tuning(300), fetcher).await;
    tokio::time::sleep(Duration::from_secs(4100)).await;
    // 120s as said; 5s raised to min_refresh (30s); a day cut to max_refresh
    // (3600s); no max-age: the refresh interval (300s).
    assert_eq!(
        r.fetcher.calls(JWKS_URL, r.start).await,
        secs(&[0.0, 120.0, 150.0, 3750.0, 4050.0])
    );
}

#[tokio::test(start_paused = true)]
async fn an_outage_keeps_the_last_good_keys() {
    let fetcher = FakeFetch::default();
    fetcher
        .answer(
            JWKS_URL,
            [
                keys(&["a"]),
                Answer::Down,
                Answer::Status(500),
                Answer::Body(b"<html>".to_vec(), None),
            ],
        )
        .await;
    let r = run(Target::Jwks(JWKS_URL.to_owned()), tuning(60), fetcher).await;
    assert_eq!(r.slot.generation(), 1);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(r.fetcher.calls(JWKS_URL, r.start).await.len() > 4);
    assert_eq!(r.counts.of(FetchOutcome::Success), 1);
    assert_eq!(r.counts.of(FetchOutcome::Error), 2);
    assert!(r.counts.of(FetchOutcome::Invalid) >= 2);
    // Still the first snapshot: nothing replaced the last good keys.
    assert_eq!(r.slot.generation(), 1);
    assert!(r.slot.load().unwrap().has_kid("a"));
}

#[tokio::test(start_paused = true)]
async fn discovery_publishes_metadata_next_to_the_keys_and_rediscovers_after_a_failed_fetch() {
    let doc = format!(
        r#"{{"issuer":"{ISSUER}","jwks_uri":"{JWKS_URL}","token_endpoint":"{ISSUER}/token","end_session_endpoint":"{ISSUER}/logout"}}"#
    );
    let fetcher = FakeFetch::default();
    fetcher
        .answer(DISCOVERY_URL, [Answer::Body(doc.into_bytes(), None)])
        .await;
    fetcher
        .answer(JWKS_URL, [keys(&["a"]), Answer::Down, keys(&["a"])])
        .await;
    let r = run(Target::Discovery(ISSUER.to_owned()), tuning(60), fetcher).await;
    assert!(r.slot.is_ready());
    let metadata = r.slot.metadata().unwrap();
    assert_eq!(metadata.issuer(), ISSUER);
    assert_eq!(metadata.jwks_uri(), JWKS_URL);
    assert_eq!(metadata.token_endpoint(), Some("https://issuer.test/token"));
    assert_eq!(
        metadata.end_session_endpoint(),
        Some("https://issuer.test/logout")
    );
    assert_eq!(metadata.authorization_endpoint(), None);

    // The keys fetch fails at 60s: the document is read again before the retry.
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(
        r.fetcher.calls(DISCOVERY_URL, r.start).await,
        secs(&[0.0, 60.5])
    );
    assert_eq!(
        r.fetcher.calls(JWKS_URL, r.start).await,
        secs(&[0.0, 60.0, 60.5])
    );
}

#[tokio::test(start_paused = true)]
async fn discovery_of_another_issuer_publishes_nothing() {
    let doc = format!(r#"{{"issuer":"https://evil.test","jwks_uri":"{JWKS_URL}"}}"#);
    let fetcher = FakeFetch::default();
    fetcher
        .answer(DISCOVERY_URL, [Answer::Body(doc.into_bytes(), None)])
        .await;
    fetcher.answer(JWKS_URL, [keys(&["a"])]).await;
    let r = run(Target::Discovery(ISSUER.to_owned()), tuning(60), fetcher).await;
    assert!(!r.slot.is_ready());
    assert!(r.slot.metadata().is_none());
    assert_eq!(r.counts.of(FetchOutcome::Error), 1);
    assert!(r.fetcher.calls(JWKS_URL, r.start).await.is_empty());
}

#[test]
fn errors_name_what_failed_and_keep_their_cause() {
    let down = FetchError::Transport {
        url: JWKS_URL.to_owned(),
        source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
    };
    assert!(
        down.to_string()
            .starts_with("https://keys.test/jwks: transport: ")
    );
    assert!(down.source().is_some());
    let wrapped = SourceError::from(down);
    assert!(wrapped.source().is_some(), "transparent: the cause is kept");

    let secret = format!(r#"{{"kty":"oct","k":"{SECRET}"}}"#);
    let keys = crate::publish::parse_keys(
        &"corp",
        JWKS_URL,
        &jwks(&[secret]),
        portcullis_jose::Secrets::Refuse,
    )
    .unwrap_err();
    assert!(matches!(keys, InvalidKeys::NoUsableKey { ignored: 1, .. }));
    let e = SourceError::Keys {
        origin: JWKS_URL.to_owned(),
        source: keys,
    };
    let cause = e.source().unwrap();
    let reason = cause.source().unwrap();
    assert!(reason.to_string().contains("HMAC"), "{reason}");
    assert!(
        e.to_string()
            .starts_with("https://keys.test/jwks: no usable key (1 ignored; key 0: "),
        "{e}"
    );
}
