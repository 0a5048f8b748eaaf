//! Clock and durations for the command line.

use std::time::UNIX_EPOCH;

use anyhow::{Context as _, Result, bail};

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    portcullis_policy::Clock::now(&portcullis_policy::SystemClock)
}

/// A signed duration in seconds: `90s`, `5m`, `3h`, `1h30m`, `-1h`, or plain seconds.
pub(crate) fn signed_secs(text: &str) -> Result<i64> {
    let (sign, body) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let secs = match body.parse::<i64>() {
        Ok(n) => n,
        Err(_) => {
            let d = humantime::parse_duration(body)
                .with_context(|| format!("{text:?} is not a duration like 90s, 5m or 3h"))?;
            i64::try_from(d.as_secs()).context("duration too long")?
        }
    };
    Ok(sign * secs)
}

/// A point in time: seconds since the epoch, or now plus/minus a duration (`+5m`, `-30s`).
pub(crate) fn instant(text: &str, now: i64) -> Result<i64> {
    if text.starts_with(['+', '-']) {
        return Ok(now + signed_secs(text)?);
    }
    match text.parse::<i64>() {
        Ok(t) => Ok(t),
        Err(_) => match humantime::parse_rfc3339_weak(text) {
            Ok(t) => Ok(t
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))),
            Err(_) => bail!("{text:?} is not a time (epoch seconds, +5m/-30s, or RFC 3339)"),
        },
    }
}

/// A time made human: RFC 3339 and how far from now.
pub(crate) fn human(t: f64, now: i64) -> String {
    let whole = t.floor();
    let when = if (0.0..=253_402_300_799.0).contains(&whole) {
        // In range by the check above; the cast cannot truncate.
        let secs = whole as u64;
        humantime::format_rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(secs)).to_string()
    } else {
        "out of range".to_owned()
    };
    let delta = whole as i64 - now;
    let rel = humantime::format_duration(std::time::Duration::from_secs(delta.unsigned_abs()));
    if delta >= 0 {
        format!("{when} (in {rel})")
    } else {
        format!("{when} ({rel} ago)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(signed_secs("90s").unwrap(), 90);
        assert_eq!(signed_secs("3h").unwrap(), 10_800);
        assert_eq!(signed_secs("-1h").unwrap(), -3_600);
        assert_eq!(signed_secs("42").unwrap(), 42);
        assert!(signed_secs("soon").is_err());
        assert_eq!(instant("+5m", 100).unwrap(), 400);
        assert_eq!(instant("1700000000", 0).unwrap(), 1_700_000_000);
        assert_eq!(instant("2023-11-14T22:13:20Z", 0).unwrap(), 1_700_000_000);
    }
}
