//! Why an import failed.

use crate::Product;

/// An import that could not be done at all (as opposed to a [`crate::Warning`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// `--gateway-api` was asked for another product than ingress-nginx.
    #[error("--gateway-api is for --from ingress-nginx, not {product}")]
    GatewayApiUnsupported {
        /// The product asked for.
        product: Product,
    },
    /// A document is not what the product reads (a field of the wrong type, say).
    #[error("{file}: document {document}: {what}")]
    InvalidDocument {
        /// The source's name.
        file: String,
        /// The document's position in the file, from 1.
        document: usize,
        /// What is wrong.
        what: String,
    },
    /// A source is not YAML.
    #[error("{file}: not YAML: {source}")]
    InvalidYaml {
        /// The source's name.
        file: String,
        /// The parser's error.
        source: Box<serde_saphyr::Error>,
    },
    /// Nothing in the sources is something this product reads.
    #[error("nothing to import for {product}: {expected}")]
    NothingToImport {
        /// The product.
        product: Product,
        /// What was looked for.
        expected: &'static str,
    },
    /// The output could not be written as YAML.
    #[error("cannot write the config as YAML: {source}")]
    Serialize {
        /// The serializer's error.
        source: Box<serde_saphyr::SerializeError>,
    },
}
