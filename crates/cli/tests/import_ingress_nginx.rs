//! `portcullis import --from ingress-nginx` on Ingresses with `auth-url` annotations
//! (`crates/import/tests/fixtures/ingress-nginx.yaml`), its `--gateway-api` output
//! (HTTPRoute checked structurally against the Gateway API v1 shape, SecurityPolicy's
//! extAuth), then END TO END: the imported config (its placeholder provider replaced by
//! the test issuer) behind the real NGINX server written as ingress-nginx generates it
//! for `auth-url` (`examples/nginx/nginx.conf`, X-Original-URL), one Host per Ingress.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "deploy_common.rs"]
mod deploy_common;
#[path = "import_common.rs"]
mod import_common;

use std::time::Duration;

use deploy_common::assert_httproute;
use import_common::{Case, Nginx, fixture, import, run_cases};
use portcullis_jose::Algorithm;
use portcullis_test_util::{EchoUpstream, Issuer, JwksServer, Portcullis, TempDir};
use serde_json::{Value, json};

const ISSUER: &str = "https://issuer.test";

#[test]
fn imports_ingresses_and_writes_gateway_api() {
    let dir = TempDir::new("import-ingress-gw");
    let gw = dir.path().join("gateway-api");
    let path = fixture("ingress-nginx.yaml");
    let out = import(&[
        "--from",
        "ingress-nginx",
        "--gateway-api",
        gw.to_str().unwrap(),
        path.to_str().unwrap(),
    ]);
    let c = &out.config;
    for want in [
        "- shop.example.com",
        "- /api/**",
        "- /version",
        "- developers",
        "- admins",
        "header: x-user",
        "claim: sub",
    ] {
        assert!(c.contains(want), "`{want}` missing:\n{c}");
    }
    assert!(!c.contains("status.example.com"), "{c}");
    out.assert_warns(&["auth-signin"]);
    out.assert_warns(&["X-Tenant"]);
    out.assert_warns(&["placeholder"]);
    out.assert_warns(&["status", "no auth-url"]);

    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(gw.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        serde_saphyr::from_str(&text).unwrap()
    };
    for route in ["shop-api", "admin"] {
        let r = read(&format!("httproute-{route}.yaml"));
        assert_httproute(&r);
        let p = read(&format!("securitypolicy-{route}.yaml"));
        assert_eq!(p["apiVersion"], "gateway.envoyproxy.io/v1alpha1");
        assert_eq!(p["kind"], "SecurityPolicy");
        assert_eq!(p["spec"]["targetRefs"][0]["kind"], "HTTPRoute");
        assert_eq!(p["spec"]["targetRefs"][0]["name"], route);
        assert_eq!(p["spec"]["extAuth"]["failOpen"], false);
        let http = &p["spec"]["extAuth"]["http"];
        assert_eq!(http["path"], "/verify");
        assert_eq!(
            http["backendRefs"][0],
            json!({"name": "portcullis", "namespace": "portcullis", "port": 8080})
        );
    }
    let shop = read("httproute-shop-api.yaml");
    assert_eq!(shop["spec"]["hostnames"], json!(["shop.example.com"]));
    assert_eq!(
        shop["spec"]["rules"][0]["matches"][0]["path"],
        json!({"type": "PathPrefix", "value": "/api"})
    );
    assert_eq!(
        shop["spec"]["rules"][1]["matches"][0]["path"],
        json!({"type": "Exact", "value": "/version"})
    );
    let grant = read("referencegrant-portcullis-from-shop.yaml");
    assert_eq!(grant["spec"]["from"][0]["kind"], "SecurityPolicy");

    // --gateway-api is for ingress-nginx only: exit 2.
    let r = std::process::Command::new(import_common::BIN)
        .args(["import", "--from", "istio", "--gateway-api"])
        .arg(&gw)
        .arg(fixture("istio.yaml"))
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
}

#[test]
fn imported_ingress_config_behind_nginx_auth_url() {
    let path = fixture("ingress-nginx.yaml");
    let out = import(&["--from", "ingress-nginx", path.to_str().unwrap()]);
    let issuer = Issuer::new(Algorithm::ES256, "k1", ISSUER);
    let jwks = JwksServer::start(&issuer.jwks(), None);
    let config = out.replaced(
        "issuer: https://idp.example.com\n",
        &format!("issuer: {ISSUER}\n"),
    );
    let config = config.replace(
        "uri: https://idp.example.com/.well-known/jwks.json",
        &format!("uri: {}", jwks.url()),
    );
    import_common::assert_check_passes(&config);
    let portcullis = Portcullis::start(import_common::BIN, &config);
    portcullis.wait_ready(Duration::from_secs(10));
    let upstream = EchoUpstream::start();
    let nginx = Nginx::start(portcullis.http, upstream.port);

    let now = Issuer::now();
    let dev = issuer.mint(json!({"sub": "alice", "group": "developers"}));
    let admin = issuer.mint(json!({"sub": "root", "group": ["admins"]}));
    let expired = issuer
        .mint(json!({"sub": "alice", "group": "developers", "iat": now - 7200, "exp": now - 3600}));
    let foreign = Issuer::new(Algorithm::ES256, "k1", "https://elsewhere.test")
        .mint(json!({"group": "developers"}));
    let shop = ("Host", "shop.example.com");
    let adm = ("Host", "admin.example.com");
    let cases = vec![
        Case::new("developer on the shop API", "GET", "/api/orders", 200)
            .header(shop.0, shop.1)
            .bearer(&dev),
        Case::new("developer on /api itself", "GET", "/api", 200)
            .header(shop.0, shop.1)
            .bearer(&dev),
        Case::new("developer on the Exact path", "GET", "/version", 200)
            .header(shop.0, shop.1)
            .bearer(&dev),
        Case::new("Exact path is exact", "GET", "/version/x", 403)
            .header(shop.0, shop.1)
            .bearer(&dev),
        Case::new("no token on the shop API", "GET", "/api/orders", 401).header(shop.0, shop.1),
        Case::new(
            "admin on the shop API (needs developers)",
            "GET",
            "/api/orders",
            403,
        )
        .header(shop.0, shop.1)
        .bearer(&admin),
        Case::new("expired", "GET", "/api/orders", 401)
            .header(shop.0, shop.1)
            .bearer(&expired),
        Case::new("another issuer", "GET", "/api/orders", 401)
            .header(shop.0, shop.1)
            .bearer(&foreign),
        Case::new("admin on the admin site", "GET", "/users", 200)
            .header(adm.0, adm.1)
            .bearer(&admin),
        Case::new("developer on the admin site", "GET", "/users", 403)
            .header(adm.0, adm.1)
            .bearer(&dev),
        Case::new("no token on the admin site", "GET", "/", 401).header(adm.0, adm.1),
        Case::new("a host no Ingress names", "GET", "/api/orders", 403)
            .header("Host", "other.example.com")
            .bearer(&dev),
    ];
    run_cases(
        &format!("http://127.0.0.1:{}", nginx.ingress),
        &cases,
        &|case, r| {
            let want = if case.headers.iter().any(|(_, v)| v == "admin.example.com") {
                "root"
            } else {
                "alice"
            };
            let seen = r.json()["headers"]["x-user"].clone();
            (seen != want).then(|| format!("upstream saw x-user {seen}, want {want}"))
        },
        &|| {
            format!(
                "portcullis:\n{}\nnginx:\n{}",
                portcullis.log(),
                nginx.logs()
            )
        },
    );
}
