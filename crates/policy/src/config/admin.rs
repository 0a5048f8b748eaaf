//! `listen.admin` stays on loopback unless `listen.admin_allow_remote: true` says
//! otherwise: the admin listener serves `/explain`, the rules in order and the key
//! metadata, which are for operators, not for the network.

use std::net::SocketAddr;

use serde_saphyr::Spanned;

use super::{ConfigError, Ctx};

/// Refuses a non-loopback `listen.admin` without `listen.admin_allow_remote: true`,
/// and `admin_allow_remote` without `listen.admin`. An address that does not parse is
/// left to the listener check, which names it.
pub(super) fn check_admin_addr(
    cx: &Ctx<'_>,
    admin: Option<&Spanned<String>>,
    allow_remote: Option<&Spanned<bool>>,
) -> Result<(), ConfigError> {
    let allowed = allow_remote.is_some_and(|a| a.value);
    let Some(admin) = admin else {
        return match allow_remote {
            Some(a) => Err(cx.err(
                a.referenced.line(),
                "listen.admin_allow_remote",
                "needs listen.admin",
            )),
            None => Ok(()),
        };
    };
    let Ok(addr) = admin.value.parse::<SocketAddr>() else {
        return Ok(());
    };
    if addr.ip().is_loopback() || allowed {
        return Ok(());
    }
    Err(cx.err(
        admin.referenced.line(),
        "listen.admin",
        format!(
            "{addr} is not a loopback address; the admin listener serves /explain, the rules \
             and key metadata, so it listens on 127.0.0.1 or [::1] unless `listen.admin_allow_remote: true` \
             is set (for example for Kubernetes probes, with a NetworkPolicy)"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{ConfigError, parse};

    fn load(text: &str) -> Result<(), ConfigError> {
        parse(text, "admin.yaml", Path::new("/etc/portcullis"), &|_| None).map(|_| ())
    }

    #[test]
    fn allows_admin_on_loopback_without_the_opt_in() {
        for addr in ["127.0.0.1:9090", "[::1]:9090", "127.0.0.2:9090"] {
            let text = format!("listen:\n  admin: \"{addr}\"\n");
            assert!(load(&text).is_ok(), "{addr}");
        }
    }

    #[test]
    fn denies_admin_off_loopback_without_the_opt_in() {
        for (addr, line) in [("0.0.0.0:9090", 3), ("[::]:9090", 3), ("10.0.0.5:9090", 3)] {
            let text = format!("listen:\n  http: 127.0.0.1:8080\n  admin: \"{addr}\"\n");
            let e = load(&text).unwrap_err();
            assert_eq!(
                (e.file.as_str(), e.line, e.field.as_str()),
                ("admin.yaml", line, "listen.admin"),
                "{e}"
            );
            assert!(
                e.to_string().contains("listen.admin_allow_remote: true"),
                "{e}"
            );
        }
        let text = "listen:\n  admin: 0.0.0.0:9090\n  admin_allow_remote: false\n";
        assert_eq!(load(text).unwrap_err().field, "listen.admin");
    }

    #[test]
    fn allows_admin_off_loopback_when_the_config_says_so() {
        let text = "listen:\n  admin: 0.0.0.0:9090\n  admin_allow_remote: true\n";
        assert!(load(text).is_ok());
    }

    #[test]
    fn denies_the_opt_in_without_an_admin_listener() {
        let text = "listen:\n  http: 127.0.0.1:8080\n  admin_allow_remote: true\n";
        let e = load(text).unwrap_err();
        assert_eq!(
            (e.line, e.field.as_str()),
            (3, "listen.admin_allow_remote"),
            "{e}"
        );
    }
}
