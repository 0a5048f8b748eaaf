//! Top-level `shutdown_grace`, `startup:` and `connections:`: how `serve` starts,
//! holds connections and stops (issue 18). Read by `serve` at start only.

use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::{ConfigError, Ctx, parse_duration};

/// `startup:` as written.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStartup {
    /// Longest wait for every provider's first keys before listening (default: none).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub wait_for_keys: Option<Spanned<String>>,
}

/// `connections:` as written.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConnections {
    /// A connection with no request in flight for this long is closed (default 60s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub idle_timeout: Option<Spanned<String>>,
    /// Time a client has to send a request's headers, from accept (default 10s).
    #[schemars(with = "Option<crate::schema::Duration>")]
    pub header_read_timeout: Option<Spanned<String>>,
    /// Most connections per listener; past it, the oldest idle one is closed (default 10000).
    #[schemars(with = "Option<usize>")]
    pub max: Option<Spanned<usize>>,
}

/// How `serve` starts, holds connections and stops.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Lifecycle {
    /// After SIGTERM: `/readyz` answers 503 and everything keeps serving this long,
    /// then the listeners drain.
    pub shutdown_grace: Duration,
    /// Longest wait for every provider's first keys before listening (`None`: none).
    pub wait_for_keys: Option<Duration>,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Time a client has to send a request's headers, from accept.
    pub header_read_timeout: Duration,
    /// Most connections per listener.
    pub max_connections: usize,
}

impl Default for Lifecycle {
    fn default() -> Lifecycle {
        Lifecycle {
            // Well inside Kubernetes' default terminationGracePeriodSeconds (30 s),
            // leaving time for the drain after it.
            shutdown_grace: Duration::from_secs(5),
            wait_for_keys: None,
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 10_000,
        }
    }
}

pub(super) fn validate_lifecycle(
    cx: &Ctx<'_>,
    shutdown_grace: Option<Spanned<String>>,
    startup: Option<Spanned<RawStartup>>,
    connections: Option<Spanned<RawConnections>>,
) -> Result<Lifecycle, ConfigError> {
    let mut out = Lifecycle::default();
    let duration =
        |s: Spanned<String>, field: &str, max: Duration| -> Result<Duration, ConfigError> {
            let d = parse_duration(&s.value).map_err(|e| cx.err(s.referenced.line(), field, e))?;
            if d > max {
                return Err(cx.err(
                    s.referenced.line(),
                    field,
                    format!("at most {}s", max.as_secs()),
                ));
            }
            Ok(d)
        };
    let hour = Duration::from_secs(3600);
    if let Some(g) = shutdown_grace {
        out.shutdown_grace = duration(g, "shutdown_grace", Duration::from_secs(300))?;
    }
    if let Some(s) = startup {
        let RawStartup { wait_for_keys } = s.value;
        if let Some(w) = wait_for_keys {
            let d = duration(w, "startup.wait_for_keys", Duration::from_secs(300))?;
            out.wait_for_keys = (!d.is_zero()).then_some(d);
        }
    }
    if let Some(c) = connections {
        let RawConnections {
            idle_timeout,
            header_read_timeout,
            max,
        } = c.value;
        let positive = |s: Spanned<String>, field: &str| -> Result<Duration, ConfigError> {
            let line = s.referenced.line();
            let d = duration(s, field, hour)?;
            if d.is_zero() {
                return Err(cx.err(line, field, "must be more than 0s"));
            }
            Ok(d)
        };
        if let Some(t) = idle_timeout {
            out.idle_timeout = positive(t, "connections.idle_timeout")?;
        }
        if let Some(t) = header_read_timeout {
            out.header_read_timeout = positive(t, "connections.header_read_timeout")?;
        }
        if let Some(m) = max {
            if !(1..=1_000_000).contains(&m.value) {
                return Err(cx.err(
                    m.referenced.line(),
                    "connections.max",
                    "must be between 1 and 1000000",
                ));
            }
            out.max_connections = m.value;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Result<Lifecycle, ConfigError> {
        let text = format!("{text}rules: [{{name: any, match: {{}}, allow: anonymous}}]\n");
        crate::config::parse(&text, "t.yaml", Path::new("."), &|_| None).map(|c| c.lifecycle)
    }

    #[test]
    fn defaults_and_values_are_read_and_bad_ones_name_their_field() {
        assert_eq!(parse("").unwrap(), Lifecycle::default());
        let l = parse(
            "shutdown_grace: 2s\nstartup: {wait_for_keys: 5s}\nconnections: {idle_timeout: 30s, header_read_timeout: 4s, max: 50}\n",
        )
        .unwrap();
        assert_eq!(l.shutdown_grace, Duration::from_secs(2));
        assert_eq!(l.wait_for_keys, Some(Duration::from_secs(5)));
        assert_eq!(l.idle_timeout, Duration::from_secs(30));
        assert_eq!(l.header_read_timeout, Duration::from_secs(4));
        assert_eq!(l.max_connections, 50);
        assert_eq!(
            parse("startup: {wait_for_keys: 0s}\n")
                .unwrap()
                .wait_for_keys,
            None
        );
        for (text, field) in [
            ("shutdown_grace: soon\n", "shutdown_grace"),
            ("shutdown_grace: 1h\n", "shutdown_grace"),
            ("startup: {wait_for_keys: x}\n", "startup.wait_for_keys"),
            (
                "connections: {idle_timeout: 0s}\n",
                "connections.idle_timeout",
            ),
            ("connections: {max: 0}\n", "connections.max"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
        }
        assert!(
            parse("startup: {wait: 1s}\n").is_err(),
            "unknown keys are errors"
        );
    }
}
