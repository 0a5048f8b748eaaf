//! A cookie-keeping HTTP client that follows redirects like a browser would
//! (RFC 6265 cookies, minus what loopback tests do not need: no public-suffix
//! list, `Secure` cookies only over https), over [`crate::request`].

use crate::Response;

/// One stored cookie.
#[derive(Clone, Debug)]
pub struct Cookie {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// The host it was set by, or its `Domain`.
    pub domain: String,
    /// Whether `Domain` was given (then subdomains get it too).
    pub domain_attr: bool,
    /// `Path`.
    pub path: String,
    /// `Secure`.
    pub secure: bool,
    /// `HttpOnly`.
    pub http_only: bool,
    /// `SameSite`.
    pub same_site: Option<String>,
}

/// A client with a cookie jar.
#[derive(Clone, Debug, Default)]
pub struct Browser {
    /// The jar.
    pub cookies: Vec<Cookie>,
    /// Headers sent with every request (e.g. `Accept: text/html`).
    pub headers: Vec<(String, String)>,
    /// Every response seen, with its URL, in order.
    pub trail: Vec<(String, Response)>,
}

fn host_of(url: &str) -> (String, String) {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = authority
        .split(':')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let path = rest[end..].split('?').next().unwrap_or("/").to_owned();
    (
        host,
        if path.is_empty() {
            "/".to_owned()
        } else {
            path
        },
    )
}

impl Browser {
    /// A browser that asks for HTML, as a navigation does.
    pub fn navigating() -> Browser {
        Browser {
            headers: vec![
                (
                    "Accept".to_owned(),
                    "text/html,application/xhtml+xml".to_owned(),
                ),
                ("Sec-Fetch-Mode".to_owned(), "navigate".to_owned()),
            ],
            ..Browser::default()
        }
    }

    /// The `Cookie` header for `url`.
    pub fn cookie_header(&self, url: &str) -> Option<String> {
        let (host, path) = host_of(url);
        let https = url.starts_with("https://");
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|c| {
                let host_ok = if c.domain_attr {
                    host == c.domain || host.ends_with(&format!(".{}", c.domain))
                } else {
                    host == c.domain
                };
                host_ok && path.starts_with(&c.path) && (https || !c.secure)
            })
            .map(|c| format!("{}={}", c.name, c.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }

    /// The cookie named `name`, if the jar has it.
    pub fn cookie(&self, name: &str) -> Option<&Cookie> {
        self.cookies.iter().find(|c| c.name == name)
    }

    /// Stores the response's `Set-Cookie`s for `url`.
    pub fn store(&mut self, url: &str, response: &Response) {
        let (host, _) = host_of(url);
        for (_, v) in response.headers.iter().filter(|(n, _)| n == "set-cookie") {
            let mut parts = v.split(';');
            let Some((name, value)) = parts.next().and_then(|p| p.trim().split_once('=')) else {
                continue;
            };
            let mut c = Cookie {
                name: name.trim().to_owned(),
                value: value.trim().to_owned(),
                domain: host.clone(),
                domain_attr: false,
                path: "/".to_owned(),
                secure: false,
                http_only: false,
                same_site: None,
            };
            let mut expired = false;
            for attr in parts {
                let (k, v) = attr.trim().split_once('=').unwrap_or((attr.trim(), ""));
                match k.to_ascii_lowercase().as_str() {
                    "domain" => {
                        c.domain = v.trim_start_matches('.').to_ascii_lowercase();
                        c.domain_attr = true;
                    }
                    "path" => c.path = v.to_owned(),
                    "secure" => c.secure = true,
                    "httponly" => c.http_only = true,
                    "samesite" => c.same_site = Some(v.to_owned()),
                    "max-age" => expired = v.parse::<i64>().is_ok_and(|n| n <= 0),
                    _ => {}
                }
            }
            self.cookies
                .retain(|o| !(o.name == c.name && o.domain == c.domain && o.path == c.path));
            if !expired {
                self.cookies.push(c);
            }
        }
    }

    /// One request (no redirect followed), cookies sent and stored.
    pub fn send(
        &mut self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let cookie = self.cookie_header(url);
        let mut headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        headers.extend_from_slice(extra);
        if let Some(c) = &cookie {
            headers.push(("Cookie", c));
        }
        let r = crate::request(method, url, &headers, body);
        self.store(url, &r);
        self.trail.push((url.to_owned(), r.clone()));
        r
    }

    /// `GET url`, following up to 20 redirects; returns the last response and its URL.
    pub fn get(&mut self, url: &str) -> (String, Response) {
        let mut url = url.to_owned();
        for _ in 0..20 {
            let r = self.send("GET", &url, &[], "");
            if !matches!(r.status, 301 | 302 | 303 | 307 | 308) {
                return (url, r);
            }
            let location = r
                .header("location")
                .expect("redirect without Location")
                .to_owned();
            url = resolve(&url, &location);
        }
        panic!("too many redirects, last {url}");
    }
}

/// `location` resolved against `base` (absolute, or a path on base's origin).
pub fn resolve(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    let (scheme, rest) = base.split_once("://").unwrap();
    let origin = &rest[..rest.find('/').unwrap_or(rest.len())];
    format!("{scheme}://{origin}{location}")
}
