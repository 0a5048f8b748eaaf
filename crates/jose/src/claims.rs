//! JWT claims (RFC 7519 §4.1) and their validation against the caller's clock.

use serde_json::{Map, Value};

use crate::alg::AlgorithmSet;
use crate::error::{Segment, TokenError};
use crate::json;
use crate::token::Header;

/// Time claims above this (year 9999) are refused as malformed: they are either
/// errors or attempts to overflow someone's arithmetic.
pub const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// The claims [`Validation::validate`] reads besides those an issuer template binds,
/// and the ones a log names (`sub`): [`Claims::from_json_keeping`] always keeps them.
pub const REGISTERED: [&str; 6] = ["iss", "sub", "aud", "exp", "nbf", "iat"];

/// Default tolerance for clock differences, in seconds.
pub const DEFAULT_CLOCK_SKEW_SECS: i64 = 60;

/// The payload of a JWT: a strict JSON object.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Claims {
    members: Map<String, Value>,
}

impl Claims {
    /// Parses a payload.
    ///
    /// # Errors
    /// Not a strict JSON object.
    pub fn from_json(bytes: &[u8]) -> Result<Claims, TokenError> {
        json::parse_object(bytes)
            .map(|members| Claims { members })
            .map_err(|problem| TokenError::InvalidJson {
                segment: Segment::Payload,
                problem,
            })
    }

    /// Parses a payload as [`Claims::from_json`] does, checking all of it, but keeps only
    /// the claims whose names `keep` accepts and those [`Validation::validate`] reads
    /// ([`REGISTERED`]): a caller that reads a few claims does not pay for the rest.
    ///
    /// # Errors
    /// Not a strict JSON object (whether the offending member is kept or not).
    pub fn from_json_keeping(
        bytes: &[u8],
        keep: &dyn Fn(&str) -> bool,
    ) -> Result<Claims, TokenError> {
        json::parse_object_keeping(bytes, &|name| REGISTERED.contains(&name) || keep(name))
            .map(|members| Claims { members })
            .map_err(|problem| TokenError::InvalidJson {
                segment: Segment::Payload,
                problem,
            })
    }

    /// Every claim.
    pub fn members(&self) -> &Map<String, Value> {
        &self.members
    }

    /// Consumes the claims.
    pub fn into_members(self) -> Map<String, Value> {
        self.members
    }

    /// Keeps only the claims whose names `keep` accepts, in a map of their own size
    /// (removing in place would keep the emptied tree's nodes allocated).
    #[must_use]
    pub fn retain(self, mut keep: impl FnMut(&str) -> bool) -> Claims {
        Claims {
            members: self
                .members
                .into_iter()
                .filter(|(name, _)| keep(name))
                .collect(),
        }
    }

    /// A claim by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name)
    }

    /// A claim by dotted path (`realm_access.roles`): each step descends into an object.
    /// A claim whose own name contains the dots wins over the path.
    pub fn path(&self, path: &str) -> Option<&Value> {
        if let Some(v) = self.members.get(path) {
            return Some(v);
        }
        let mut parts = path.split('.');
        let mut current = self.members.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }

    /// `iss`, when it is a string.
    pub fn issuer(&self) -> Option<&str> {
        self.get("iss").and_then(Value::as_str)
    }

    /// `sub`, when it is a string.
    pub fn subject(&self) -> Option<&str> {
        self.get("sub").and_then(Value::as_str)
    }

    /// A time claim (`exp`, `nbf`, `iat`).
    ///
    /// # Errors
    /// Present but not a finite JSON number in `0..=MAX_NUMERIC_DATE`.
    pub fn numeric_date(&self, name: &'static str) -> Result<Option<f64>, TokenError> {
        let Some(value) = self.members.get(name) else {
            return Ok(None);
        };
        let invalid = |problem| TokenError::InvalidClaim { name, problem };
        let n = value
            .as_number()
            .ok_or_else(|| invalid("not a JSON number"))?;
        let t = n.as_f64().ok_or_else(|| invalid("not representable"))?;
        if !t.is_finite() || !(0.0..=MAX_NUMERIC_DATE).contains(&t) {
            return Err(invalid("out of range"));
        }
        Ok(Some(t))
    }

    /// `exp`, if present and valid.
    ///
    /// # Errors
    /// As [`Claims::numeric_date`].
    pub fn expires_at(&self) -> Result<Option<f64>, TokenError> {
        self.numeric_date("exp")
    }

    /// The audiences (`aud` as a string or an array of strings).
    ///
    /// # Errors
    /// `aud` of any other shape.
    pub fn audiences(&self) -> Result<Vec<&str>, TokenError> {
        match self.members.get("aud") {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.as_str()]),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().ok_or(TokenError::InvalidClaim {
                        name: "aud",
                        problem: "an array member is not a string",
                    })
                })
                .collect(),
            Some(_) => Err(TokenError::InvalidClaim {
                name: "aud",
                problem: "neither a string nor an array of strings",
            }),
        }
    }
}

/// What a token must satisfy beyond its signature.
#[derive(Clone, Debug)]
pub struct Validation {
    /// Required `iss` (exact string equality), if any.
    pub issuer: Option<String>,
    /// Required `iss` as a template binding claims (`.../{tid}/v2.0`), if any:
    /// checked besides `issuer`.
    pub issuer_template: Option<crate::IssuerTemplate>,
    /// At least one of these must be in `aud`; empty means `aud` is not checked.
    pub audiences: Vec<String>,
    /// Allowed algorithms; `None` means those of the key set.
    pub algorithms: Option<AlgorithmSet>,
    /// Tolerance for clock differences, in seconds.
    pub clock_skew_secs: i64,
    /// Whether `exp` must be present (the default; see [`Validation::dangerous_allow_missing_exp`]).
    pub require_exp: bool,
    /// Expected `typ` (case-insensitive, `application/` prefix optional).
    pub typ: Option<String>,
    /// Longest token accepted.
    pub max_token_bytes: usize,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            issuer: None,
            issuer_template: None,
            audiences: Vec::new(),
            algorithms: None,
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
            require_exp: true,
            typ: None,
            max_token_bytes: crate::token::DEFAULT_MAX_TOKEN_BYTES,
        }
    }
}

impl Validation {
    /// Accept tokens without `exp`. Such tokens never expire: opt in per provider only.
    #[must_use]
    pub fn dangerous_allow_missing_exp(mut self) -> Self {
        self.require_exp = false;
        self
    }

    /// Checks header `typ` and the registered claims against `now` (seconds since the epoch).
    ///
    /// # Errors
    /// The first check that fails, in this order: shapes of time claims, `exp`,
    /// `nbf`, `iat`, `iss`, `aud`, `typ`.
    pub fn validate(&self, header: &Header, claims: &Claims, now: i64) -> Result<(), TokenError> {
        let skew = self.clock_skew_secs as f64;
        let now_f = now as f64;
        let exp = claims.numeric_date("exp")?;
        let nbf = claims.numeric_date("nbf")?;
        let iat = claims.numeric_date("iat")?;
        match exp {
            Some(exp) if now_f >= exp + skew => return Err(TokenError::Expired { exp, now }),
            None if self.require_exp => return Err(TokenError::MissingExp),
            _ => {}
        }
        if let Some(nbf) = nbf
            && nbf > now_f + skew
        {
            return Err(TokenError::NotYetValid { nbf, now });
        }
        if let Some(iat) = iat
            && iat > now_f + skew
        {
            return Err(TokenError::IssuedInFuture { iat, now });
        }
        if let Some(issuer) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(TokenError::IssuerMismatch);
        }
        if let Some(template) = &self.issuer_template
            && !template.matches(claims)
        {
            return Err(TokenError::IssuerMismatch);
        }
        let auds = claims.audiences()?;
        if !self.audiences.is_empty() && !auds.iter().any(|a| self.audiences.iter().any(|w| w == a))
        {
            return Err(TokenError::AudienceMismatch);
        }
        if let Some(expected) = &self.typ
            && !typ_matches(header.typ(), expected)
        {
            return Err(TokenError::TypeMismatch {
                expected: expected.clone(),
            });
        }
        Ok(())
    }
}

/// RFC 7515 §4.1.9: `typ` compares case-insensitively and may omit `application/`.
fn typ_matches(actual: Option<&str>, expected: &str) -> bool {
    use crate::token::strip_application;
    actual.is_some_and(|a| strip_application(a).eq_ignore_ascii_case(strip_application(expected)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000;

    fn header(typ: Option<&str>) -> Header {
        let json = match typ {
            Some(t) => format!(r#"{{"alg":"RS256","typ":"{t}"}}"#),
            None => r#"{"alg":"RS256"}"#.to_owned(),
        };
        Header::from_json(json.as_bytes()).unwrap()
    }

    fn check(v: &Validation, claims: &str) -> &'static str {
        match Claims::from_json(claims.as_bytes()) {
            Ok(c) => v
                .validate(&header(None), &c, NOW)
                .map(|()| "ok")
                .unwrap_or_else(|e| e.reason().as_str()),
            Err(e) => e.reason().as_str(),
        }
    }

    #[test]
    fn time_claims() {
        let v = Validation::default();
        assert_eq!(check(&v, r#"{"exp":1700000100}"#), "ok");
        assert_eq!(check(&v, r#"{"exp":1699999999}"#), "ok", "within skew");
        assert_eq!(check(&v, r#"{"exp":1699999940}"#), "token_expired");
        assert_eq!(check(&v, r#"{"exp":1699999940.5}"#), "ok");
        assert_eq!(check(&v, r#"{}"#), "token_malformed", "exp required");
        assert_eq!(
            check(&v.clone().dangerous_allow_missing_exp(), r#"{}"#),
            "ok"
        );
        assert_eq!(
            check(&v, r#"{"exp":1700000100,"nbf":1700000061}"#),
            "token_not_yet_valid"
        );
        assert_eq!(check(&v, r#"{"exp":1700000100,"nbf":1700000060}"#), "ok");
        assert_eq!(
            check(&v, r#"{"exp":1700000100,"iat":1700000061}"#),
            "token_malformed"
        );
        for bad in [
            r#""1700000100""#,
            "true",
            "null",
            "[1700000100]",
            "1e50",
            "100000000000000000000000000000000000000000000000000",
            "-1",
            "1e300",
        ] {
            assert_eq!(
                check(&v, &format!(r#"{{"exp":{bad}}}"#)),
                "token_malformed",
                "{bad}"
            );
            assert_eq!(
                check(&v, &format!(r#"{{"exp":1700000100,"nbf":{bad}}}"#)),
                "token_malformed",
                "{bad}"
            );
        }
        assert_eq!(check(&v, r#"{"exp":1e309}"#), "token_malformed");
    }

    #[test]
    fn issuer_and_audience() {
        let v = Validation {
            issuer: Some("https://login.example.com".into()),
            audiences: vec!["orders-api".into(), "billing".into()],
            ..Validation::default()
        };
        let with = |iss: &str, aud: &str| {
            check(
                &v,
                &format!(r#"{{"exp":1700000100,"iss":{iss},"aud":{aud}}}"#),
            )
        };
        let iss = r#""https://login.example.com""#;
        assert_eq!(with(iss, r#""orders-api""#), "ok");
        assert_eq!(with(iss, r#"["x","billing"]"#), "ok");
        for aud in [
            r#"[]"#,
            r#""""#,
            r#""Orders-api""#,
            r#""orders-api ""#,
            r#"["other"]"#,
        ] {
            assert_eq!(with(iss, aud), "audience_mismatch", "{aud}");
        }
        for aud in [r#"[123]"#, r#"[["orders-api"]]"#, "7", "{}"] {
            assert_eq!(with(iss, aud), "token_malformed", "{aud}");
        }
        for bad in [
            r#""https://login.example.com/""#,
            r#""https://login.example.co""#,
            r#""https://login.example.com.evil""#,
            r#"["https://login.example.com"]"#,
            "null",
        ] {
            assert_eq!(with(bad, r#""orders-api""#), "issuer_mismatch", "{bad}");
        }
        assert_eq!(
            check(&v, r#"{"exp":1700000100,"aud":"orders-api"}"#),
            "issuer_mismatch"
        );
    }

    #[test]
    fn typ_comparison() {
        assert!(typ_matches(Some("at+jwt"), "at+jwt"));
        assert!(typ_matches(Some("application/AT+JWT"), "at+jwt"));
        assert!(typ_matches(Some("at+jwt"), "application/at+jwt"));
        assert!(!typ_matches(Some("JWT"), "at+jwt"));
        assert!(!typ_matches(None, "at+jwt"));
        let v = Validation {
            typ: Some("at+jwt".into()),
            ..Validation::default()
        };
        let c = Claims::from_json(br#"{"exp":1700000100}"#).unwrap();
        assert!(v.validate(&header(Some("JWT")), &c, NOW).is_err());
        assert!(
            v.validate(&header(Some("application/at+JWT")), &c, NOW)
                .is_ok()
        );
    }

    #[test]
    fn dotted_paths() {
        let c = Claims::from_json(br#"{"a":{"b":{"c":1}},"x.y":2}"#).unwrap();
        assert_eq!(c.path("a.b.c"), Some(&Value::from(1)));
        assert_eq!(c.path("x.y"), Some(&Value::from(2)));
        assert_eq!(c.path("a.z"), None);
    }

    proptest! {
        #[test]
        fn claims_round_trip(sub in ".{0,20}", exp in 0u32..u32::MAX, extra in proptest::collection::btree_map("[a-z]{1,8}", any::<i64>(), 0..5)) {
            let mut m = Map::new();
            m.insert("sub".into(), Value::from(sub.clone()));
            m.insert("exp".into(), Value::from(exp));
            for (k, v) in &extra {
                if k != "sub" && k != "exp" { m.insert(k.clone(), Value::from(*v)); }
            }
            let text = serde_json::to_vec(&m).unwrap();
            let c = Claims::from_json(&text).unwrap();
            prop_assert_eq!(c.subject(), Some(sub.as_str()));
            prop_assert_eq!(c.expires_at().unwrap(), Some(f64::from(exp)));
            prop_assert_eq!(c.members(), &m);
        }

        #[test]
        fn validate_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200), now in any::<i64>()) {
            if let Ok(c) = Claims::from_json(&bytes) {
                let _ = Validation::default().validate(&header(None), &c, now);
            }
        }
    }
}
