//! `sessions.store: redis+cluster://` against a real Redis Cluster: three
//! `redis-server --cluster-enabled yes` masters on loopback (joined by
//! `redis-cli --cluster create`), npm `oidc-provider` with its scripted login, and
//! two Portcullis replicas seeded by the nodes. Logins land on every node (checked
//! with `redis-cli` per node); a session works from both replicas; sign-out and
//! back-channel logout are immediate on both; a master killed fails the sessions
//! whose key lives there closed (401 `session_invalid`) while the others keep
//! working; brought back, it serves them again without a Portcullis restart.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is a failure"
)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use portcullis_test_util::{
    Browser, Child, EchoUpstream, OidcProvider, Portcullis, TempDir, free_port, peer_bin, resolve,
    wait_for_port,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");
const SECRET: &str = "portcullis-client-secret-0123456789";

/// One cluster node: its port (the bus is port + 10000) and folder.
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let child = Child::spawn(
            Command::new(peer_bin("redis-server"))
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "2000"])
                // The other masters keep serving their slots while one is down.
                .args(["--cluster-require-full-coverage", "no"])
                // Durable across the kill below: the node comes back with its sessions.
                .args([
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "always",
                ])
                .arg("--dir")
                .arg(&self.dir),
            &self.dir.join("redis.log"),
        );
        wait_for_port(self.port, Duration::from_secs(10));
        self.child = Some(child);
    }

    /// `redis-cli -p PORT args...`, its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(peer_bin("redis-cli"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The session keys this node holds.
    fn sessions(&self) -> BTreeSet<String> {
        self.cli(&["--scan", "--pattern", "portcullis:session:*"])
            .lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect()
    }
}

/// A port free for a cluster node: it and its bus port (+10000).
fn node_port() -> u16 {
    loop {
        let p = free_port();
        if p <= 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

fn start_cluster(dir: &Path) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    while nodes.len() < 3 {
        let port = node_port();
        if nodes.iter().any(|n| n.port == port) {
            continue;
        }
        let dir = dir.join(format!("node-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut node = Node {
            port,
            dir,
            child: None,
        };
        node.start();
        nodes.push(node);
    }
    let addrs: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let out = Command::new(peer_bin("redis-cli"))
        .arg("--cluster")
        .arg("create")
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "redis-cli --cluster create: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    wait_cluster_ok(&nodes, &nodes.iter().collect::<Vec<_>>());
    nodes
}

/// Waits until every node in `up` says `cluster_state:ok` and knows every other
/// node of `all` (the gossip has spread).
fn wait_cluster_ok(all: &[Node], up: &[&Node]) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = up.iter().all(|n| {
            n.cli(&["cluster", "info"]).contains("cluster_state:ok")
                && n.cli(&["cluster", "nodes"])
                    .lines()
                    .filter(|l| l.contains("master") && !l.contains("fail"))
                    .count()
                    == all.len()
        });
        if ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "cluster not ok: {:?}",
            up.iter()
                .map(|n| n.cli(&["cluster", "nodes"]))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `/verify` as Traefik asks it, for `/app/x`, with `cookie`.
fn verify(p: &Portcullis, cookie: &str) -> portcullis_test_util::Response {
    p.verify(&[
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Host", "127.0.0.1"),
        ("X-Forwarded-Uri", "/app/x"),
        ("Cookie", cookie),
    ])
}

/// The value of the series `name{labels}` in a replica's scrape, if present.
fn metric(p: &Portcullis, series: &str) -> Option<f64> {
    let want = format!("{series} ");
    p.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&want).map(|v| v.trim().parse().unwrap()))
}

/// Waits (2 s at most) until `series` on `p` is `value`.
fn wait_metric(p: &Portcullis, series: &str, value: f64) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while metric(p, series) != Some(value) {
        assert!(
            Instant::now() < deadline,
            "{series} is {:?}, not {value}\n{}",
            metric(p, series),
            p.metrics()
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// `promtool check metrics` passes on a scrape.
fn promtool_check(text: &str) {
    use std::io::Write as _;
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus): run scripts/install-peers");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Follows the OP's logout page (GET it, submit its form), then its redirects, until
/// one leaves the OP.
fn op_logout(b: &mut Browser, issuer: &str) {
    let url = format!("{issuer}/session/end?client_id=portcullis");
    let r = b.send("GET", &url, &[], "");
    assert_eq!(r.status, 200, "OP logout page: {r:?}");
    let between = |start: &str| {
        let from = r.body.find(start).unwrap() + start.len();
        let to = r.body[from..].find('"').unwrap() + from;
        r.body[from..to].to_owned()
    };
    let action = resolve(&url, &between("action=\""));
    let xsrf = between("name=\"xsrf\" value=\"");
    let mut r = b.send(
        "POST",
        &action,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &format!("xsrf={xsrf}&logout=yes"),
    );
    let mut at = action;
    while matches!(r.status, 302 | 303) {
        let next = resolve(&at, r.header("location").unwrap());
        if !next.starts_with(issuer) {
            return;
        }
        at = next;
        r = b.send("GET", &at, &[], "");
    }
}

#[test]
fn sessions_live_in_a_real_redis_cluster() {
    let dir = TempDir::new("login-cluster");
    let mut nodes = start_cluster(dir.path());
    let upstream = EchoUpstream::start();
    let rd = format!("http://127.0.0.1:{}/app/", upstream.port);
    let (h1, g1, a1) = (free_port(), free_port(), free_port());
    let public = format!("http://127.0.0.1:{h1}");
    let op = OidcProvider::start(
        dir.path(),
        &json!([{
            "client_id": "portcullis",
            "client_secret": SECRET,
            "redirect_uris": [format!("{public}/oauth2/callback")],
            "post_logout_redirect_uris": [rd.clone()],
            "backchannel_logout_uri": format!("{public}/oauth2/backchannel_logout"),
            "backchannel_logout_session_required": true,
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic",
        }]),
    );
    let issuer = op.issuer();
    let secret = dir.write(
        "session.key",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n",
    );
    // Seeded by two of the three nodes: the client finds the third itself.
    let seeds = format!("127.0.0.1:{},127.0.0.1:{}", nodes[0].port, nodes[1].port);
    let config = format!(
        r#"
providers:
  - name: op
    issuer: {issuer}
    jwks: {{discovery: {issuer}}}
    login:
      client_id: portcullis
      client_secret: {SECRET}
    claims_to_headers:
      - {{header: x-user, claim: sub}}
sessions:
  public_url: {public}
  secret_file: {secret}
  cookie: {{secure: false}}
  store: redis+cluster://{seeds}
  allowed_redirect_hosts: ["127.0.0.1"]
rules:
  - name: app
    match: {{path: /app/**}}
    login: op
"#,
        secret = secret.display(),
    );
    let one = Portcullis::start_on(BIN, &config, h1, g1, a1);
    let two = Portcullis::start(BIN, &config);
    one.wait_ready(Duration::from_secs(20));
    two.wait_ready(Duration::from_secs(20));
    let logs = || format!("one:\n{}\ntwo:\n{}", one.log(), two.log());

    // A browser-style login: /oauth2/start, the OP's scripted login, the callback
    // (which writes the session into the cluster), back at `rd`; returns the
    // browser, its cookie header and the node (index) that took its session key.
    let all_keys =
        |nodes: &[Node]| -> Vec<BTreeSet<String>> { nodes.iter().map(Node::sessions).collect() };
    let log_in = |nodes: &[Node], account: &str| {
        let before = all_keys(nodes);
        let mut b = Browser::navigating();
        b.headers
            .push(("x-op-account".to_owned(), account.to_owned()));
        let start = format!(
            "{public}/oauth2/start?rd={}",
            percent_encoding::utf8_percent_encode(&rd, percent_encoding::NON_ALPHANUMERIC)
        );
        let (url, r) = b.get(&start);
        assert_eq!(url, rd, "{r:?}\n{}", logs());
        assert_eq!(r.status, 200, "{r:?}");
        let cookie = format!(
            "portcullis_session={}",
            b.cookie("portcullis_session").unwrap().value
        );
        let after = all_keys(nodes);
        let new: Vec<usize> = (0..nodes.len())
            .filter(|&i| after[i].len() > before[i].len())
            .collect();
        assert_eq!(new.len(), 1, "one new session key on one node: {after:?}");
        (b, cookie, new[0])
    };

    // Sessions spread over the cluster's slots: log in until every node holds one.
    // A session's key is random, so a fixed count can miss a node (twelve logins
    // miss one about 2 % of the time: 3 * (2/3)^12; it failed CI once); forty
    // miss one with odds of 3 * (2/3)^40, about 3 in 10 million.
    let mut sessions = Vec::new();
    let mut used = BTreeSet::new();
    for i in 0..40 {
        let account = if i % 2 == 0 { "alice" } else { "bob" };
        let session = log_in(&nodes, account);
        used.insert(session.2);
        sessions.push((account, session));
        if used.len() == nodes.len() && sessions.len() >= 12 {
            break;
        }
    }
    assert_eq!(used.len(), 3, "sessions on every node: {used:?}");
    let logins = sessions.len() as f64;
    // Each session works from both replicas.
    for (account, (_, cookie, _)) in &sessions {
        for replica in [&one, &two] {
            let r = verify(replica, cookie);
            assert_eq!(r.status, 200, "{r:?}\n{}", logs());
            assert_eq!(r.header("x-user"), Some(*account));
        }
    }

    // The sessions series: every login begun at replica one (every callback went
    // there), as many in the store (a count both replicas share).
    let created = r#"portcullis_sessions_created_total{store="redis_cluster"}"#;
    let active = r#"portcullis_sessions_active{store="redis_cluster"}"#;
    assert_eq!(metric(&one, created), Some(logins), "{}", one.metrics());
    assert_eq!(metric(&two, created), None, "{}", two.metrics());
    wait_metric(&one, active, logins);

    // Sign-out (RP-initiated logout) at one replica: gone for the other at once.
    let (account, (mut b, cookie, _)) = sessions.remove(0);
    assert_eq!(account, "alice");
    let r = b.send("POST", &format!("{public}/oauth2/sign_out"), &[], "");
    assert_eq!(r.status, 302, "{r:?}");
    assert!(
        r.header("location")
            .unwrap()
            .starts_with(&format!("{issuer}/session/end")),
        "{r:?}"
    );
    for replica in [&two, &one] {
        let r = verify(replica, &cookie);
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(r.json()["reason"], "session_invalid");
    }
    // Back-channel logout (the OP ends its session of bob: one `sid`) reaches
    // replica one; the set of that `sid` and the session it names live in
    // different slots; the session is gone for both replicas.
    let (account, (mut b, cookie, _)) = sessions.remove(0);
    assert_eq!(account, "bob");
    op_logout(&mut b, &issuer);
    for replica in [&two, &one] {
        let r = verify(replica, &cookie);
        assert_eq!(r.status, 401, "{r:?}\n{}\n{}", logs(), op.log());
        assert_eq!(r.json()["reason"], "session_invalid");
    }
    assert!(op.log().contains("backchannel.success"), "{}", op.log());
    // Each counted once as ended, by its cause; the rest left in the store.
    let ended = |cause: &str| {
        metric(
            &one,
            &format!(r#"portcullis_sessions_ended_total{{store="redis_cluster",cause="{cause}"}}"#),
        )
    };
    assert_eq!(ended("sign_out"), Some(1.0), "{}", one.metrics());
    assert_eq!(ended("backchannel"), Some(1.0), "{}", one.metrics());
    wait_metric(&one, active, logins - 2.0);
    promtool_check(&one.metrics());
    // The others, bob's other OP sessions included, are untouched.
    for (account, (_, cookie, _)) in &sessions {
        let r = verify(&two, cookie);
        assert_eq!(r.status, 200, "{account}: {r:?}\n{}", logs());
    }

    // A master dies: sessions whose key lives there fail closed on both replicas
    // (401 session_invalid, answered within the store's bound); the others work.
    let victim = sessions[0].1.2;
    assert!(sessions.iter().any(|(_, (_, _, n))| *n != victim));
    let mut child = nodes[victim].child.take().unwrap();
    child.signal("KILL");
    child.stop(Duration::from_secs(5));
    for (account, (_, cookie, node)) in &sessions {
        for replica in [&one, &two] {
            let asked = Instant::now();
            let r = verify(replica, cookie);
            if *node == victim {
                assert_eq!(r.status, 401, "{account}: {r:?}\n{}", logs());
                assert_eq!(r.json()["reason"], "session_invalid");
            } else {
                assert_eq!(r.status, 200, "{account}: {r:?}\n{}", logs());
                assert_eq!(r.header("x-user"), Some(*account));
            }
            // Not a timing claim: a held request would wait for the client's whole
            // reconnect back-off; the store answers within its 1 s bound.
            assert!(
                asked.elapsed() < Duration::from_secs(4),
                "{:?}",
                asked.elapsed()
            );
        }
    }
    assert!(
        logs().contains("session store unreachable"),
        "the failure is logged\n{}",
        logs()
    );

    // It comes back (same port, its data on disk): its sessions work again on both
    // replicas, without restarting them.
    nodes[victim].start();
    let up: Vec<&Node> = nodes.iter().collect();
    wait_cluster_ok(&nodes, &up);
    let deadline = Instant::now() + Duration::from_secs(20);
    for (account, (_, cookie, node)) in sessions.iter().filter(|(_, (_, _, n))| *n == victim) {
        for replica in [&one, &two] {
            loop {
                let r = verify(replica, cookie);
                if r.status == 200 {
                    assert_eq!(r.header("x-user"), Some(*account));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {node} back, session still refused: {r:?}\n{}",
                    logs()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    // And new logins are stored again.
    let (_, cookie, _) = log_in(&nodes, "alice");
    assert_eq!(verify(&two, &cookie).status, 200);
}
