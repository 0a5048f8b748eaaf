//! Reads the auth configuration of other products and writes the equivalent
//! Portcullis config: Istio `RequestAuthentication` + `AuthorizationPolicy`,
//! Ambassador/Edge Stack JWT `Filter` + `FilterPolicy`, nginx-subrequest-auth-jwt's
//! `config.yaml`, and ingress-nginx `Ingress` objects with `auth-url` annotations.
//!
//! Pure: the caller reads the files and hands their text in; nothing here touches
//! the file system or the network. What cannot be carried over exactly is never
//! dropped silently: each such thing is one [`Warning`]. When a rule cannot be
//! carried over exactly, the importer errs on the side of refusing (a rule it
//! cannot express becomes `allow: deny`, an `OR` it cannot express keeps only
//! its first branch) and says so.
//!
//! ```
//! use portcullis_import::{Product, Source, import};
//!
//! let yaml = r#"
//! apiVersion: security.istio.io/v1
//! kind: RequestAuthentication
//! metadata: {name: jwt-example, namespace: istio-system}
//! spec:
//!   jwtRules:
//!     - issuer: testing@secure.istio.io
//!       jwksUri: https://example.com/jwks.json
//! "#;
//! let out = import(Product::Istio, &[Source::new("ra.yaml", yaml)])?;
//! assert!(out.config.contains("issuer: testing@secure.istio.io"));
//! assert!(out.warnings.iter().any(|w| w.message.contains("exp")));
//! Ok::<(), portcullis_import::ImportError>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ambassador;
mod doc;
mod error;
mod gateway_api;
mod ingress_nginx;
mod istio;
mod model;
mod subrequest;

pub use error::ImportError;
pub use model::{ClaimHeader, Config, Jwks, Location, Match, Provider, Rule};

use std::fmt;

/// The product whose configuration is read.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Product {
    /// Ambassador / Edge Stack `Filter` (JWT) and `FilterPolicy`.
    Ambassador,
    /// ingress-nginx `Ingress` objects with `nginx.ingress.kubernetes.io/auth-url`.
    IngressNginx,
    /// Istio `RequestAuthentication` and `AuthorizationPolicy`.
    Istio,
    /// nginx-subrequest-auth-jwt's `config.yaml`.
    NginxSubrequestAuthJwt,
}

impl Product {
    /// Every product, in the order of their command-line names.
    pub const ALL: [Product; 4] = [
        Product::Istio,
        Product::Ambassador,
        Product::NginxSubrequestAuthJwt,
        Product::IngressNginx,
    ];

    /// The command-line name (`--from NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Product::Ambassador => "ambassador",
            Product::IngressNginx => "ingress-nginx",
            Product::Istio => "istio",
            Product::NginxSubrequestAuthJwt => "nginx-subrequest-auth-jwt",
        }
    }

    /// The product named `name` on the command line.
    pub fn from_name(name: &str) -> Option<Product> {
        Product::ALL.into_iter().find(|p| p.name() == name)
    }
}

// === impl Product ===

impl fmt::Display for Product {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One input file: its name (for messages) and its text.
#[derive(Clone, Debug)]
pub struct Source {
    /// How messages name it (usually its path).
    pub name: String,
    /// Its YAML text (one or more documents).
    pub text: String,
}

impl Source {
    /// A source named `name` holding `text`.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Source {
        Source {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// Something the importer could not carry over exactly.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Warning {
    /// Where: `FILE: KIND NAMESPACE/NAME` (or `FILE` for a plain config file).
    pub origin: String,
    /// What was not carried over, and why.
    pub message: String,
}

// === impl Warning ===

impl fmt::Display for Warning {
    /// One line: `warning: ORIGIN: MESSAGE` (newlines in the message become spaces).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message.replace(['\n', '\r'], " ");
        write!(f, "warning: {}: {}", self.origin, message)
    }
}

/// An extra manifest the importer wrote (`--gateway-api`): a file name and its YAML.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Manifest {
    /// A file name without folders (`httproute-shop.yaml`).
    pub file_name: String,
    /// Its YAML text.
    pub text: String,
}

/// What [`import`] produced.
#[derive(Clone, Debug)]
pub struct Imported {
    /// The Portcullis config (YAML, without a `listen:` block).
    pub config: String,
    /// The same, as a model.
    pub model: Config,
    /// What could not be carried over, one entry each.
    pub warnings: Vec<Warning>,
    /// Gateway API manifests (`HTTPRoute` + Envoy Gateway `SecurityPolicy`), for
    /// ingress-nginx only; empty otherwise.
    pub gateway_api: Vec<Manifest>,
}

/// Options of [`import_with`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Also build Gateway API manifests (ingress-nginx only).
    pub gateway_api: bool,
}

/// Reads `sources` as `product`'s configuration and builds the Portcullis config.
///
/// # Errors
///
/// [`ImportError`] when a source is not YAML, holds nothing this product reads,
/// or the result cannot be written.
pub fn import(product: Product, sources: &[Source]) -> Result<Imported, ImportError> {
    import_with(product, sources, &Options::default())
}

/// As [`import`], with [`Options`].
///
/// # Errors
///
/// As [`import`]; also [`ImportError::GatewayApiUnsupported`] when
/// `options.gateway_api` is set for another product than ingress-nginx.
pub fn import_with(
    product: Product,
    sources: &[Source],
    options: &Options,
) -> Result<Imported, ImportError> {
    if options.gateway_api && product != Product::IngressNginx {
        return Err(ImportError::GatewayApiUnsupported { product });
    }
    let mut warnings = Vec::new();
    let mut gateway_api = Vec::new();
    let mut model = match product {
        Product::Ambassador => ambassador::import(&doc::read_all(sources, true)?, &mut warnings)?,
        Product::IngressNginx => {
            let docs = doc::read_all(sources, true)?;
            let model = ingress_nginx::import(&docs, &mut warnings)?;
            if options.gateway_api {
                gateway_api = gateway_api::manifests(&docs, &mut warnings)?;
            }
            model
        }
        Product::Istio => istio::import(&doc::read_all(sources, true)?, &mut warnings)?,
        Product::NginxSubrequestAuthJwt => {
            subrequest::import(&doc::read_all(sources, false)?, &mut warnings)?
        }
    };
    let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
    if model.rules.is_empty() {
        // Nothing the source allows was carried over, so the import allows nothing. Said
        // with an explicit rule: `check` and `serve` refuse a config without rules (an
        // empty `rules:` is the classic truncated file), and `rule_denied` names why.
        let name = model.unique_rule_name("nothing-carried-over");
        model.rules.push(model::Rule {
            name,
            match_: model::Match::default(),
            allow: Some("deny".to_owned()),
            providers: Vec::new(),
            claims: std::collections::BTreeMap::new(),
            scopes: Vec::new(),
            headers: std::collections::BTreeMap::new(),
        });
        warnings.push(Warning {
            origin: names.join(", "),
            message: "no rule was carried over: the imported config denies every request \
                      (rule `nothing-carried-over`, reason rule_denied); add the rules you need"
                .to_owned(),
        });
    }
    let config = model.to_yaml(&format!(
        "Imported by `portcullis import --from {product}` from {}.\n\
         Add a `listen:` block (or run it with the deploy/ manifests, which mount one),\n\
         then check it: portcullis check --config FILE",
        names.join(", ")
    ))?;
    Ok(Imported {
        config,
        model,
        warnings,
        gateway_api,
    })
}
