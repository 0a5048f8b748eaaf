//! Which rules can match a path, found without trying every rule (issue 17, target
//! 3: many tenants, each with its own rule, must not make every request pay for all
//! of them).
//!
//! Rules are still decided the one way: in config order, the first that matches
//! wins, by the same `matches` test. The index only leaves out rules that cannot
//! match: a rule whose every path pattern begins with a literal first segment
//! (`/t042/**`, `/api/v1/*`) can match only a path with one of those first
//! segments; any other rule (no `paths`, or a pattern beginning with `*` or `**`)
//! is always tried. The candidates of a path are then the rules filed under its
//! first segment merged with the always-tried ones, in config order.

use std::collections::HashMap;

use crate::config::RuleConfig;

/// Below this many rules a scan is as cheap as a lookup.
const INDEX_FROM: usize = 8;

/// The rule index of one engine.
#[derive(Debug, Default)]
pub(crate) struct RuleIndex {
    /// Rule positions (ascending) by the literal first path segment they need.
    by_first_segment: HashMap<Box<str>, Vec<u32>>,
    /// Rule positions (ascending) that any path may match.
    always: Vec<u32>,
    /// Whether to use it at all (few rules: scan them).
    enabled: bool,
}

impl RuleIndex {
    /// Files `rules` by the first path segment they need.
    pub(crate) fn new<'a>(rules: impl ExactSizeIterator<Item = &'a RuleConfig>) -> RuleIndex {
        let enabled = rules.len() >= INDEX_FROM;
        let mut index = RuleIndex {
            enabled,
            ..RuleIndex::default()
        };
        for (position, rule) in rules.enumerate() {
            let Ok(position) = u32::try_from(position) else {
                // Never in practice; a rule that cannot be filed is always tried.
                index.enabled = false;
                break;
            };
            let firsts: Option<Vec<&str>> = (!rule.paths.is_empty())
                .then(|| {
                    rule.paths
                        .iter()
                        .map(|p| p.literal_first_segment())
                        .collect()
                })
                .flatten();
            match firsts {
                Some(mut firsts) => {
                    firsts.sort_unstable();
                    firsts.dedup();
                    for first in firsts {
                        index
                            .by_first_segment
                            .entry(Box::from(first))
                            .or_default()
                            .push(position);
                    }
                }
                None => index.always.push(position),
            }
        }
        index
    }

    /// Whether lookups go through the index (else: try every rule).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// The positions of the rules that can match the canonical `path`, ascending.
    pub(crate) fn candidates<'a>(&'a self, path: &str) -> Candidates<'a> {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let first = rest.split_once('/').map_or(rest, |(first, _)| first);
        let filed = self
            .by_first_segment
            .get(first)
            .map_or(&[][..], |v| v.as_slice());
        Candidates {
            filed,
            always: &self.always,
        }
    }
}

/// Two ascending lists merged, in ascending order.
#[derive(Debug)]
pub(crate) struct Candidates<'a> {
    filed: &'a [u32],
    always: &'a [u32],
}

impl Iterator for Candidates<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let next = match (self.filed.first(), self.always.first()) {
            (Some(&f), Some(&a)) if f < a => {
                self.filed = &self.filed[1..];
                f
            }
            (_, Some(&a)) => {
                self.always = &self.always[1..];
                a
            }
            (Some(&f), None) => {
                self.filed = &self.filed[1..];
                f
            }
            (None, None) => return None,
        };
        usize::try_from(next).ok()
    }
}

#[cfg(test)]
mod tests;
