//! Child processes that die with the test, and loopback ports.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A child process, killed (SIGTERM, then SIGKILL) when dropped. Its output goes to a log file.
#[derive(Debug)]
pub struct Child {
    inner: Option<std::process::Child>,
    log: PathBuf,
}

impl Child {
    /// Spawns `command` with stdout and stderr appended to `log`.
    pub fn spawn(command: &mut Command, log: &Path) -> Child {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let err = out.try_clone().unwrap();
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        Child {
            inner: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.inner.as_ref().map_or(0, std::process::Child::id)
    }

    /// What it wrote so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a signal (`"TERM"`, `"HUP"`, `"KILL"`).
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status();
    }

    /// Sends SIGTERM and waits for the exit status (up to `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.inner.take()?;
        self.signal_pid(child.id(), "TERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal_pid(&self, pid: u32, sig: &str) {
        let _ = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status();
    }

    /// Whether it has exited.
    pub fn has_exited(&mut self) -> bool {
        self.inner
            .as_mut()
            .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))))
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.inner.take() {
            self.signal_pid(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A free loopback port (bound, then released), below the kernel's ephemeral range.
///
/// A port the kernel hands out for `bind(0)` comes from the same range as the local
/// ports of outgoing connections, so between the pick and the bind it could become the
/// local end of any connection on the machine: a peer's, a client's, or the very
/// server under test fetching its keys before it binds its listeners (CI saw
/// `Address already in use` that way). Below that range only a listener takes a port.
/// Ports are walked from a random start per process, so that threads of one test
/// binary never pick the same one and two processes rarely do.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};

    const LOWEST: u32 = 10_000;
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let first_ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let span = first_ephemeral.saturating_sub(LOWEST);
    if span >= 1_000 {
        let next = NEXT.get_or_init(|| {
            let random = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish();
            AtomicU32::new((random % u64::from(span)) as u32)
        });
        for _ in 0..span {
            let port = LOWEST + next.fetch_add(1, Ordering::Relaxed) % span;
            if let Ok(port) = u16::try_from(port)
                && TcpListener::bind(("127.0.0.1", port)).is_ok()
            {
                return port;
            }
        }
    }
    // No room below the ephemeral range: the kernel's pick, as before.
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts on `127.0.0.1:port`.
pub fn wait_for_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Runs `command` to completion with `input` on its stdin (written from a thread, so a
/// child that answers before it has read everything cannot deadlock us) and returns its
/// stdout; panics with `what`, the exit status and stderr when it fails.
pub fn run_with_input(command: &mut Command, input: &[u8], what: &str) -> Vec<u8> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {command:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        // A child that exits without reading all of it closes the pipe: not our error.
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// [`run_with_input`] for the peers' scripts that read one JSON document on stdin and
/// print one on stdout.
pub fn run_json(command: &mut Command, input: &serde_json::Value, what: &str) -> serde_json::Value {
    let out = run_with_input(command, input.to_string().as_bytes(), what);
    serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "{what}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// `promtool check metrics` (Debian `prometheus`) on a scrape; panics with its findings.
pub fn promtool_check(scrape: &str) {
    run_with_input(
        Command::new("promtool").args(["check", "metrics"]),
        scrape.as_bytes(),
        &format!(
            "promtool check metrics (Debian prometheus; run scripts/install-peers) on\n{scrape}\n"
        ),
    );
}
