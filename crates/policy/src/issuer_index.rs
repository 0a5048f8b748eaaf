//! Which providers may have issued a token, by its claimed `iss`: hash lookups,
//! never a scan over the providers. Exact issuers are one map; issuer templates
//! are a map keyed by their literal prefix (looked up once per distinct prefix
//! length); providers without an issuer accept any.

use std::collections::HashMap;

use crate::config::ProviderConfig;

/// Providers by issuer.
#[derive(Debug, Default)]
pub(crate) struct IssuerIndex {
    exact: HashMap<Box<str>, Vec<usize>>,
    by_prefix: HashMap<Box<str>, Vec<usize>>,
    /// The distinct literal-prefix lengths of the templates, longest first.
    prefix_lens: Vec<usize>,
    /// Providers with no issuer at all.
    any: Vec<usize>,
}

impl IssuerIndex {
    /// Indexes `providers` (their positions are the indexes returned).
    pub(crate) fn new(providers: &[&ProviderConfig]) -> IssuerIndex {
        let mut index = IssuerIndex::default();
        for (i, p) in providers.iter().enumerate() {
            match (&p.issuer_template, &p.issuer) {
                (Some(t), _) => {
                    let prefix = t.literal_prefix();
                    index
                        .by_prefix
                        .entry(Box::from(prefix))
                        .or_default()
                        .push(i);
                    if !index.prefix_lens.contains(&prefix.len()) {
                        index.prefix_lens.push(prefix.len());
                    }
                }
                (None, Some(iss)) => index
                    .exact
                    .entry(Box::from(iss.as_str()))
                    .or_default()
                    .push(i),
                (None, None) => index.any.push(i),
            }
        }
        index.prefix_lens.sort_unstable_by(|a, b| b.cmp(a));
        index
    }

    /// The providers among `candidates` to try for a token claiming `iss`, in
    /// order: exact issuers, then templates whose prefix `iss` starts with, then
    /// providers without an issuer.
    pub(crate) fn order(&self, iss: Option<&str>, candidates: &[usize]) -> Vec<usize> {
        let mut out = Vec::new();
        let mut take = |list: &[usize]| {
            out.extend(list.iter().copied().filter(|i| candidates.contains(i)));
        };
        if let Some(iss) = iss {
            if let Some(list) = self.exact.get(iss) {
                take(list);
            }
            for &len in &self.prefix_lens {
                if let Some(list) = iss.get(..len).and_then(|p| self.by_prefix.get(p)) {
                    take(list);
                }
            }
        }
        take(&self.any);
        out
    }
}
