//! Vega compatibility: `ref:` links between sections, and the list of keys
//! a file sets that esr-ea does not use.
//!
//! Vega (the reference's framework) lets a section say `ref: nas.dataset`:
//! take a copy of that section and lay the sibling keys over it, mappings
//! merged key by key (`benchmark_Set5.dataset` keeps the referenced `test`
//! settings and replaces only its `root_HR`). Only the sections esr-ea reads
//! are resolved; the others (benchmarks, evaluators) stay as written and are
//! merely reported as ignored, so a broken link there is not an error.

use std::collections::HashSet;

use serde_yaml::{Mapping, Value};

use super::error::ConfigError;
use super::reader::show;

/// Where a `ref:` was resolved, and the keys written beside it.
#[derive(Debug, Clone)]
pub(crate) struct RefSite {
    /// Key path of the section that held the `ref:`.
    path: Vec<String>,
    /// The sibling keys of `ref:` as written (after resolving refs inside them).
    overlay: Value,
}

/// The document with links resolved in the sections esr-ea reads.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// The tree to read.
    pub tree: Value,
    /// Every `ref:` resolved in it, to tell inherited keys from written ones.
    pub sites: Vec<RefSite>,
}

/// Top-level keys that Vega uses and esr-ea ignores, or that appear inside
/// sections for Vega's plumbing; they are reported as ignored, never as
/// misspelt.
const VEGA_KEYS: &[&str] = &[
    "general",
    "pipeline",
    "pipe_step",
    "type",
    "codec",
    "callbacks",
    "cuda",
    "evaluator",
    "modules",
    "fixed_size",
    "models_folder",
    "params",
    "max_rgb",
];

/// Resolves the `ref:` links inside the top-level sections named in `read`.
pub(crate) fn resolve_refs(
    root: &Value,
    file: &str,
    read: &[&str],
) -> Result<Resolved, ConfigError> {
    let Some(map) = root.as_mapping() else {
        return Ok(Resolved {
            tree: root.clone(),
            sites: Vec::new(),
        });
    };
    let mut resolver = Resolver {
        root,
        file,
        sites: Vec::new(),
        stack: Vec::new(),
    };
    let mut tree = Mapping::new();
    for (key, value) in map {
        let name = key_name(key);
        let value = if read.contains(&name.as_str()) {
            resolver.resolve(value, &[name])?
        } else {
            value.clone()
        };
        tree.insert(key.clone(), value);
    }
    Ok(Resolved {
        tree: Value::Mapping(tree),
        sites: resolver.sites,
    })
}

struct Resolver<'a> {
    root: &'a Value,
    file: &'a str,
    sites: Vec<RefSite>,
    /// Links being followed, to detect cycles.
    stack: Vec<String>,
}

impl Resolver<'_> {
    fn error(&self, key: String, message: String) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_string(),
            key,
            message,
        }
    }

    fn resolve(&mut self, value: &Value, path: &[String]) -> Result<Value, ConfigError> {
        let Value::Mapping(map) = value else {
            return Ok(value.clone());
        };
        let mut overlay = Mapping::new();
        let mut link = None;
        for (key, child) in map {
            if key.as_str() == Some("ref") {
                link = Some(child);
                continue;
            }
            let mut child_path = path.to_vec();
            child_path.push(key_name(key));
            overlay.insert(key.clone(), self.resolve(child, &child_path)?);
        }
        let Some(link) = link else {
            return Ok(Value::Mapping(overlay));
        };
        let ref_key = format!("{}.ref", path.join("."));
        let Some(target) = link.as_str() else {
            return Err(self.error(
                ref_key,
                format!(
                    "expected the dotted path of another section, like nas.dataset, found {}",
                    show(link)
                ),
            ));
        };
        let base = self.follow(target.trim(), &ref_key)?;
        // Only links in the document as read matter for reporting; links
        // inside a copied section are reported where that section is written.
        if self.stack.is_empty() {
            self.sites.push(RefSite {
                path: path.to_vec(),
                overlay: Value::Mapping(overlay.clone()),
            });
        }
        if overlay.is_empty() {
            return Ok(base);
        }
        if !base.is_mapping() {
            return Err(self.error(
                ref_key,
                format!(
                    "{target:?} is {}, not a section, so the keys beside ref cannot be laid over it",
                    show(&base)
                ),
            ));
        }
        Ok(merge(base, Value::Mapping(overlay)))
    }

    /// The resolved copy of the section named by a dotted path.
    fn follow(&mut self, target: &str, ref_key: &str) -> Result<Value, ConfigError> {
        if self.stack.iter().any(|t| t == target) {
            let mut chain = self.stack.clone();
            chain.push(target.to_string());
            return Err(self.error(
                ref_key.to_string(),
                format!("ref links form a cycle: {}", chain.join(" -> ")),
            ));
        }
        let segments: Vec<String> = target.split('.').map(str::to_string).collect();
        let mut node = self.root;
        for (i, segment) in segments.iter().enumerate() {
            let next = node.as_mapping().and_then(|m| m.get(segment.as_str()));
            let Some(next) = next else {
                let under = if i == 0 {
                    "at the top level".to_string()
                } else {
                    format!("under {}", segments[..i].join("."))
                };
                return Err(self.error(
                    ref_key.to_string(),
                    format!(
                        "{target:?} does not name a section of this file (there is no key {segment:?} {under})"
                    ),
                ));
            };
            node = next;
        }
        self.stack.push(target.to_string());
        let resolved = self.resolve(node, &segments);
        self.stack.pop();
        resolved
    }
}

/// Lays `overlay` over `base`: mappings merge key by key, anything else replaces.
fn merge(base: Value, overlay: Value) -> Value {
    match (base, overlay) {
        (Value::Mapping(mut base), Value::Mapping(overlay)) => {
            for (key, value) in overlay {
                let merged = match base.remove(&key) {
                    Some(old) => merge(old, value),
                    None => value,
                };
                base.insert(key, merged);
            }
            Value::Mapping(base)
        }
        (_, overlay) => overlay,
    }
}

/// A mapping key as a path segment.
fn key_name(key: &Value) -> String {
    match key.as_str() {
        Some(s) => s.to_string(),
        None => show(key),
    }
}

/// Sections with more settings than this that esr-ea never looks into are
/// reported as `section.*` rather than key by key (a Vega benchmark section
/// would otherwise add a dozen entries).
const COLLAPSE_ABOVE: usize = 4;

/// The one warning about keys the file sets that were not used, or `None`
/// when every key was used. Keys a `ref:` copied are reported only where
/// they are written, not again at every copy.
pub(crate) fn ignored_keys_warning(resolved: &Resolved, used: &HashSet<String>) -> Option<String> {
    let mut leaves = Vec::new();
    collect_leaves(&resolved.tree, &mut Vec::new(), used, &mut leaves);
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for (leaf, whole) in leaves {
        let mut dotted = leaf.join(".");
        if used.contains(&dotted) || inherited(&leaf, &resolved.sites) {
            continue;
        }
        if whole {
            dotted.push_str(".*");
        }
        if is_vega_key(&leaf) {
            known.push(dotted);
        } else {
            unknown.push(dotted);
        }
    }
    let spelling = "not recognised, check the spelling";
    match (known.is_empty(), unknown.is_empty()) {
        (true, true) => None,
        (false, true) => Some(format!("ignored keys: {}", known.join(", "))),
        (true, false) => Some(format!("ignored keys ({spelling}): {}", unknown.join(", "))),
        (false, false) => Some(format!(
            "ignored keys: {}; {spelling}: {}",
            known.join(", "),
            unknown.join(", ")
        )),
    }
}

/// Key paths of every setting: values that are not mappings, and empty
/// mappings; `true` marks a large section that was never read, reported whole.
fn collect_leaves(
    value: &Value,
    path: &mut Vec<String>,
    used: &HashSet<String>,
    out: &mut Vec<(Vec<String>, bool)>,
) {
    match value {
        Value::Mapping(map) if !map.is_empty() => {
            if !path.is_empty() && count_leaves(value) > COLLAPSE_ABOVE && !looked_into(path, used)
            {
                out.push((path.clone(), true));
                return;
            }
            for (key, child) in map {
                path.push(key_name(key));
                collect_leaves(child, path, used, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => out.push((path.clone(), false)),
        _ => {}
    }
}

fn count_leaves(value: &Value) -> usize {
    match value {
        Value::Mapping(map) if !map.is_empty() => map.values().map(count_leaves).sum(),
        _ => 1,
    }
}

/// True when the reader consumed this path or anything below it.
fn looked_into(path: &[String], used: &HashSet<String>) -> bool {
    let dotted = path.join(".");
    used.iter().any(|u| {
        u == &dotted || (u.starts_with(&dotted) && u[dotted.len()..].starts_with(['.', '[']))
    })
}

/// True when the key came from a `ref:` target rather than from the keys
/// written beside the link.
fn inherited(leaf: &[String], sites: &[RefSite]) -> bool {
    sites.iter().any(|site| {
        leaf.starts_with(&site.path) && !contains_path(&site.overlay, &leaf[site.path.len()..])
    })
}

fn contains_path(value: &Value, path: &[String]) -> bool {
    match path.split_first() {
        None => true,
        Some((first, rest)) => value
            .as_mapping()
            .and_then(|m| m.get(first.as_str()))
            .is_some_and(|child| contains_path(child, rest)),
    }
}

fn is_vega_key(path: &[String]) -> bool {
    path.first()
        .is_some_and(|top| top.starts_with("benchmark_"))
        || path
            .iter()
            .any(|segment| VEGA_KEYS.contains(&segment.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn ref_copies_and_overlays_deeply() {
        let doc = yaml(
            "a: {d: {train: {x: 1, y: 2}, test: {x: 3}}}\n\
             b: {d: {ref: a.d, test: {x: 4}}}\n",
        );
        let r = resolve_refs(&doc, "f", &["a", "b"]).unwrap();
        assert_eq!(
            r.tree["b"]["d"],
            yaml("{train: {x: 1, y: 2}, test: {x: 4}}")
        );
        assert_eq!(r.sites.len(), 1);
    }

    #[test]
    fn refs_chain_and_cycles_are_errors() {
        let doc = yaml("a: {ref: b}\nb: {ref: c, k: 1}\nc: {j: 2}\n");
        let r = resolve_refs(&doc, "f", &["a"]).unwrap();
        assert_eq!(r.tree["a"], yaml("{j: 2, k: 1}"));
        let doc = yaml("a: {ref: b}\nb: {ref: a}\n");
        let err = resolve_refs(&doc, "f", &["a"]).unwrap_err().to_string();
        assert!(err.contains("cycle: b -> a -> b"), "{err}");
    }

    #[test]
    fn missing_target_names_the_link() {
        let doc = yaml("nas: {dataset: {x: 1}}\nfully_train: {dataset: {ref: nas.datset}}\n");
        let err = resolve_refs(&doc, "f.yaml", &["nas", "fully_train"])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "f.yaml: fully_train.dataset.ref: \"nas.datset\" does not name a section of this file \
             (there is no key \"datset\" under nas)"
        );
        // The same link in a section esr-ea does not read is left alone.
        let doc = yaml("benchmark_X: {dataset: {ref: nope}}\n");
        assert!(resolve_refs(&doc, "f", &["nas"]).is_ok());
    }

    #[test]
    fn warning_lists_unused_keys_once() {
        let doc = yaml(
            "general: {backend: pytorch}\n\
             nas: {d: {x: 1, fixed_size: true}, p: {num_individuals: 3}}\n\
             fully_train: {d: {ref: nas.d, z: 2}}\n",
        );
        let r = resolve_refs(&doc, "f", &["nas", "fully_train"]).unwrap();
        let used: HashSet<String> = ["nas.d.x", "fully_train.d.x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            ignored_keys_warning(&r, &used).unwrap(),
            "ignored keys: general.backend, nas.d.fixed_size; not recognised, check the spelling: \
             nas.p.num_individuals, fully_train.d.z"
        );
    }
}
