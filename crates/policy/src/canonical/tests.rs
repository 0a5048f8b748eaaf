use super::*;

fn path(raw: &str) -> Result<String, InvalidTarget> {
    canonical_path(raw, EscapedSlashes::Reject).map(|p| p.into_owned())
}

fn ok(raw: &str) -> String {
    path(raw).unwrap_or_else(|e| panic!("{raw:?} was refused: {e}"))
}

#[test]
fn plain_paths_are_borrowed_unchanged() {
    for p in [
        "/",
        "/admin",
        "/admin/",
        "/a/b.c/d",
        "/api/v1:run@x",
        "/a.b/..c/c..",
        "/~u/",
    ] {
        assert!(
            matches!(canonical_path(p, EscapedSlashes::Reject), Ok(std::borrow::Cow::Borrowed(b)) if b == p),
            "{p}"
        );
    }
    assert_eq!(ok("/ok/path?q=1&x=/../y"), "/ok/path");
}

#[test]
fn dot_segments_are_removed_in_rfc_order() {
    assert_eq!(ok("/public/../admin/x"), "/admin/x");
    assert_eq!(ok("/public/%2e%2e/admin"), "/admin");
    assert_eq!(ok("/public/%2E%2e/admin"), "/admin");
    assert_eq!(ok("/a/./b"), "/a/b");
    assert_eq!(ok("/a/b/.."), "/a/");
    assert_eq!(ok("/a/."), "/a/");
    assert_eq!(ok("/../../"), "/");
    assert_eq!(ok("/.."), "/");
    assert_eq!(ok("/a/..//x"), "/x");
    assert_eq!(ok("/a//b/../x"), "/a/x");
}

#[test]
fn slashes_are_merged_after_dot_segments() {
    assert_eq!(ok("//admin"), "/admin");
    assert_eq!(ok("/admin//x///"), "/admin/x/");
    assert_eq!(ok("/%61dmin/"), "/admin/");
}

/// Issue 10, class 2: `/admin//../public/x` is `/admin/public/x` in RFC 3986 order
/// and `/public/x` to a proxy that merges slashes first: refused.
#[test]
fn regression_issue10_dot_segment_after_empty_segment_is_refused() {
    assert_eq!(
        path("/admin//../public/x"),
        Err(InvalidTarget::AmbiguousDotSegment)
    );
    assert_eq!(
        path("/admin//%2e%2e/public"),
        Err(InvalidTarget::AmbiguousDotSegment)
    );
    assert_eq!(path("//../admin"), Err(InvalidTarget::AmbiguousDotSegment));
}

/// Issue 10, class 1: an encoded slash or backslash is not an ordinary character.
#[test]
fn regression_issue10_escaped_slashes_are_refused_by_default() {
    for p in [
        "/public/..%2fadmin/x",
        "/public/..%2Fadmin/x",
        "/public/%2e%2e%2fadmin",
        "/x%2f..%2f..%2fadmin%2fx",
        "/public/..%5cadmin",
        "/public/..%5Cadmin",
    ] {
        assert!(
            matches!(path(p), Err(InvalidTarget::EscapedSlash { .. })),
            "{p}: {:?}",
            path(p)
        );
    }
    assert_eq!(path("/public/..\\admin"), Err(InvalidTarget::Backslash));
    assert_eq!(path("/public\\..\\admin"), Err(InvalidTarget::Backslash));
}

#[test]
fn escaped_slashes_decode_and_keep() {
    let decode = |p| canonical_path(p, EscapedSlashes::Decode).map(|c| c.into_owned());
    assert_eq!(decode("/public/..%2fadmin/x").as_deref(), Ok("/admin/x"));
    assert_eq!(decode("/a%2Fb").as_deref(), Ok("/a/b"));
    assert!(matches!(
        decode("/a%5Cb"),
        Err(InvalidTarget::EscapedSlash { .. })
    ));
    let keep = |p| canonical_path(p, EscapedSlashes::Keep).map(|c| c.into_owned());
    assert_eq!(keep("/a%2fb").as_deref(), Ok("/a%2Fb"));
    assert_eq!(keep("/a%5cb").as_deref(), Ok("/a%5Cb"));
    assert_eq!(
        keep("/public/..%2fadmin").as_deref(),
        Ok("/public/..%2Fadmin")
    );
    assert_eq!(keep("/a\\b"), Err(InvalidTarget::Backslash));
}

#[test]
fn other_escapes_are_kept_upper_case() {
    assert_eq!(ok("/a%20b"), "/a%20b");
    assert_eq!(ok("/a%3fb%3F"), "/a%3Fb%3F");
    assert_eq!(ok("/caf%c3%a9"), "/caf%C3%A9");
    assert_eq!(ok("/100%25"), "/100%25");
    assert_eq!(ok("/%25zz"), "/%25zz");
}

#[test]
fn ambiguous_escapes_are_refused() {
    assert_eq!(
        path("/a%00b"),
        Err(InvalidTarget::EncodedControl { byte: 0 })
    );
    assert_eq!(
        path("/a%0d%0a"),
        Err(InvalidTarget::EncodedControl { byte: 13 })
    );
    assert_eq!(
        path("/a%7f"),
        Err(InvalidTarget::EncodedControl { byte: 0x7f })
    );
    assert_eq!(
        path("/public/%252e%252e/admin"),
        Err(InvalidTarget::DoubleEncoded)
    );
    assert_eq!(path("/%c0%ae%c0%ae/admin"), Err(InvalidTarget::InvalidUtf8));
    assert_eq!(path("/%e9"), Err(InvalidTarget::InvalidUtf8));
    assert_eq!(path("/a%3bb"), Err(InvalidTarget::EncodedParameter));
    assert_eq!(
        path("/a%"),
        Err(InvalidTarget::InvalidPercentEncoding { at: 2 })
    );
    assert_eq!(
        path("/a%2"),
        Err(InvalidTarget::InvalidPercentEncoding { at: 2 })
    );
    assert_eq!(
        path("/a%zz"),
        Err(InvalidTarget::InvalidPercentEncoding { at: 2 })
    );
}

#[test]
fn raw_characters_that_read_two_ways_are_refused() {
    assert_eq!(path("/public/..;/admin"), Err(InvalidTarget::Parameter));
    assert_eq!(path("/admin;x/y"), Err(InvalidTarget::Parameter));
    assert_eq!(path("/public#/../admin"), Err(InvalidTarget::Fragment));
    assert_eq!(path("/public?x#y"), Err(InvalidTarget::Fragment));
    assert!(matches!(
        path("/a b"),
        Err(InvalidTarget::InvalidCharacter { byte: b' ', .. })
    ));
    assert!(matches!(
        path("/a\tb"),
        Err(InvalidTarget::InvalidCharacter { byte: b'\t', .. })
    ));
    assert!(matches!(
        path("/é"),
        Err(InvalidTarget::InvalidCharacter { byte: 0xc3, .. })
    ));
    assert!(matches!(
        path("/a?b c"),
        Err(InvalidTarget::InvalidCharacter { byte: b' ', .. })
    ));
    assert_eq!(path(""), Err(InvalidTarget::NotOriginForm));
    assert_eq!(path("admin/x"), Err(InvalidTarget::NotOriginForm));
    assert_eq!(path("*"), Err(InvalidTarget::NotOriginForm));
    assert_eq!(path("http://a/admin"), Err(InvalidTarget::NotOriginForm));
}

/// Issue 10, class 4: `ops.test.` is `ops.test`.
#[test]
fn regression_issue10_trailing_dot_host_is_the_same_host() {
    assert_eq!(canonical_host("ops.test.").as_deref(), Ok("ops.test"));
    assert_eq!(canonical_host("OPS.Test.:8443").as_deref(), Ok("ops.test"));
    assert_eq!(
        canonical_host("ops.test..").as_deref(),
        Err(&InvalidHost::EmptyLabel)
    );
}

#[test]
fn hosts() {
    assert_eq!(
        canonical_host("api.example.com").as_deref(),
        Ok("api.example.com")
    );
    assert_eq!(
        canonical_host("API.example.com:80").as_deref(),
        Ok("api.example.com")
    );
    assert_eq!(canonical_host("127.0.0.1:8080").as_deref(), Ok("127.0.0.1"));
    assert_eq!(canonical_host("[::1]:8080").as_deref(), Ok("[::1]"));
    assert_eq!(
        canonical_host("[::FFFF:1.2.3.4]").as_deref(),
        Ok("[::ffff:1.2.3.4]")
    );
    assert_eq!(canonical_host("").as_deref(), Ok(""));
    assert_eq!(
        canonical_host("a_b.internal").as_deref(),
        Ok("a_b.internal")
    );
}

/// Issue 10, class 3: hosts that cannot be read are refused, never defaulted.
#[test]
fn regression_issue10_unreadable_hosts_are_refused() {
    assert_eq!(canonical_host("a:80:80"), Err(InvalidHost::Port));
    assert_eq!(canonical_host("a:"), Err(InvalidHost::Port));
    assert_eq!(canonical_host("a:99999"), Err(InvalidHost::Port));
    assert_eq!(canonical_host("a:8x"), Err(InvalidHost::Port));
    assert_eq!(canonical_host(":80"), Err(InvalidHost::Empty));
    assert_eq!(canonical_host("."), Err(InvalidHost::EmptyLabel));
    assert_eq!(canonical_host(".a"), Err(InvalidHost::EmptyLabel));
    assert_eq!(
        canonical_host("a b"),
        Err(InvalidHost::Character { byte: b' ' })
    );
    assert_eq!(
        canonical_host("a%2eb"),
        Err(InvalidHost::Character { byte: b'%' })
    );
    assert_eq!(
        canonical_host("user@a"),
        Err(InvalidHost::Character { byte: b'@' })
    );
    assert_eq!(
        canonical_host("a/b"),
        Err(InvalidHost::Character { byte: b'/' })
    );
    assert_eq!(canonical_host("[::1"), Err(InvalidHost::Ipv6Literal));
    assert_eq!(
        canonical_host("[fe80::1%25eth0]"),
        Err(InvalidHost::Ipv6Literal)
    );
    assert_eq!(canonical_host("[::1]x"), Err(InvalidHost::Port));
}

#[test]
fn absolute_urls() {
    let split = |u| split_absolute_url(u).map(|(h, t)| (h.into_owned(), t.to_owned()));
    assert_eq!(
        split("http://API.test/admin?x=1"),
        Ok(("api.test".into(), "/admin?x=1".into()))
    );
    assert_eq!(
        split("HTTPS://api.test.:443"),
        Ok(("api.test".into(), "/".into()))
    );
    assert_eq!(
        split("http:///admin"),
        Err(InvalidTarget::Host(InvalidHost::Empty))
    );
    assert_eq!(
        split("http://a:80:80/admin"),
        Err(InvalidTarget::Host(InvalidHost::Port))
    );
    assert_eq!(
        split("http://evil@api.test/admin"),
        Err(InvalidTarget::UserInfo)
    );
    assert_eq!(split("ftp://api.test/"), Err(InvalidTarget::NotOriginForm));
    assert_eq!(split("/admin"), Err(InvalidTarget::NotOriginForm));
    assert_eq!(split("http://a#/x"), Err(InvalidTarget::Fragment));
    assert_eq!(split("http://a?x"), Err(InvalidTarget::NotOriginForm));
}
