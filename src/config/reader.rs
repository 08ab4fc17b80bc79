//! A typed reader over a YAML tree that remembers which keys it consumed
//! (so the rest can be reported as ignored) and words every error as
//! `file: key.path: what was found and what is allowed`.

use std::collections::HashSet;

use serde_yaml::Value;

use super::error::ConfigError;

/// Reading state: the file name for errors and the key paths consumed so far.
pub(crate) struct Reader {
    file: String,
    used: HashSet<String>,
}

/// A value in the tree together with its dotted key path.
#[derive(Debug, Clone)]
pub(crate) struct Node<'v> {
    /// The value.
    pub value: &'v Value,
    /// Its dotted key path (`nas.trainer.epochs`; empty for the document).
    pub path: String,
}

impl<'v> Node<'v> {
    /// The whole document.
    pub fn root(value: &'v Value) -> Node<'v> {
        Node {
            value,
            path: String::new(),
        }
    }

    /// The path of a key below this node.
    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

impl Reader {
    /// A reader for the text that came from `file`.
    pub fn new(file: impl Into<String>) -> Reader {
        Reader {
            file: file.into(),
            used: HashSet::new(),
        }
    }

    /// The key paths consumed so far.
    pub fn used(&self) -> &HashSet<String> {
        &self.used
    }

    /// The name of the file being read.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// An error about `path`.
    pub fn error(&self, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.clone(),
            key: if path.is_empty() {
                "(document)".to_string()
            } else {
                path.to_string()
            },
            message: message.into(),
        }
    }

    /// The value of `key` under `node`, marking it consumed. An absent key and
    /// an empty value (`key:` or `key: null`) both give `None`, meaning "use
    /// the default".
    pub fn get<'v>(&mut self, node: &Node<'v>, key: &str) -> Result<Option<Node<'v>>, ConfigError> {
        let map = self.mapping(node)?;
        let Some(value) = map.get(key) else {
            return Ok(None);
        };
        let path = node.key_path(key);
        self.used.insert(path.clone());
        Ok((!value.is_null()).then_some(Node { value, path }))
    }

    /// Like [`Reader::get`], but the key must be present.
    pub fn require<'v>(
        &mut self,
        node: &Node<'v>,
        key: &str,
        what: &str,
    ) -> Result<Node<'v>, ConfigError> {
        self.get(node, key)?
            .ok_or_else(|| self.error(&node.key_path(key), format!("missing: {what}")))
    }

    /// A section below `node`: must be a mapping when present.
    pub fn section<'v>(
        &mut self,
        node: &Node<'v>,
        key: &str,
    ) -> Result<Option<Node<'v>>, ConfigError> {
        let child = self.get(node, key)?;
        if let Some(c) = &child {
            self.mapping(c)?;
        }
        Ok(child)
    }

    fn mapping<'v>(&self, node: &Node<'v>) -> Result<&'v serde_yaml::Mapping, ConfigError> {
        node.value.as_mapping().ok_or_else(|| {
            self.error(
                &node.path,
                format!("expected a mapping of settings, found {}", show(node.value)),
            )
        })
    }

    /// A whole number of at least `min`.
    pub fn whole(&self, node: &Node, min: u64) -> Result<u64, ConfigError> {
        match node.value.as_u64() {
            Some(n) if n >= min => Ok(n),
            _ => Err(self.error(
                &node.path,
                format!(
                    "expected a whole number >= {min}, found {}",
                    show(node.value)
                ),
            )),
        }
    }

    /// A whole number of at least `min` that fits `usize`.
    pub fn count(&self, node: &Node, min: u64) -> Result<usize, ConfigError> {
        let n = self.whole(node, min)?;
        usize::try_from(n).map_err(|_| self.error(&node.path, format!("{n} is too large")))
    }

    /// A finite number (integers are accepted).
    pub fn number(&self, node: &Node) -> Result<f64, ConfigError> {
        match node.value.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(self.error(
                &node.path,
                format!("expected a number, found {}", show(node.value)),
            )),
        }
    }

    /// A finite number greater than zero.
    pub fn positive(&self, node: &Node) -> Result<f64, ConfigError> {
        let x = self.number(node)?;
        if x > 0.0 {
            Ok(x)
        } else {
            Err(self.error(
                &node.path,
                format!("expected a number > 0, found {}", show(node.value)),
            ))
        }
    }

    /// `true`/`false`; also PyYAML's YAML 1.1 spellings (`yes`, `no`, `on`,
    /// `off`), which a file written for the Python reference may use.
    pub fn boolean(&self, node: &Node) -> Result<bool, ConfigError> {
        if let Some(b) = node.value.as_bool() {
            return Ok(b);
        }
        let word = node.value.as_str().map(str::to_ascii_lowercase);
        match word.as_deref() {
            Some("yes" | "on" | "true") => Ok(true),
            Some("no" | "off" | "false") => Ok(false),
            _ => Err(self.error(
                &node.path,
                format!("expected true or false, found {}", show(node.value)),
            )),
        }
    }

    /// A string (numbers are not accepted: a path or name is expected).
    pub fn string(&self, node: &Node) -> Result<String, ConfigError> {
        node.value.as_str().map(str::to_string).ok_or_else(|| {
            self.error(
                &node.path,
                format!("expected a text value, found {}", show(node.value)),
            )
        })
    }

    /// One of a fixed set of words (compared case-insensitively).
    pub fn word(&self, node: &Node, allowed: &[&'static str]) -> Result<&'static str, ConfigError> {
        let text = self
            .string(node)
            .map_err(|_| self.not_allowed(node, allowed))?;
        allowed
            .iter()
            .find(|w| w.eq_ignore_ascii_case(text.trim()))
            .copied()
            .ok_or_else(|| self.not_allowed(node, allowed))
    }

    fn not_allowed(&self, node: &Node, allowed: &[&str]) -> ConfigError {
        self.error(
            &node.path,
            format!(
                "{} is not supported (supported: {})",
                show(node.value),
                allowed.join(", ")
            ),
        )
    }

    /// A list of any length, each item read by `item` (its path is `key[i]`).
    pub fn seq<'v, T>(
        &self,
        node: &Node<'v>,
        mut item: impl FnMut(&Node<'v>) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let Some(seq) = node.value.as_sequence() else {
            return Err(self.error(
                &node.path,
                format!("expected a list like [a, b], found {}", show(node.value)),
            ));
        };
        seq.iter()
            .enumerate()
            .map(|(i, value)| {
                item(&Node {
                    value,
                    path: format!("{}[{i}]", node.path),
                })
            })
            .collect()
    }

    /// A non-empty list with no value repeated, each item read by `item`.
    pub fn list<'v, T: PartialEq>(
        &self,
        node: &Node<'v>,
        item: impl FnMut(&Node<'v>) -> Result<T, ConfigError>,
    ) -> Result<Vec<T>, ConfigError> {
        let values = self.seq(node, item)?;
        if values.is_empty() {
            return Err(self.error(&node.path, "the list is empty: give at least one value"));
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                let raw = &node.value.as_sequence().expect("checked by seq")[i];
                return Err(self.error(
                    &node.path,
                    format!(
                        "{} appears twice in {}: list each value once",
                        show(raw),
                        show(node.value)
                    ),
                ));
            }
        }
        Ok(values)
    }
}

/// A value as it appears in messages: text quoted, lists and mappings inline.
pub(crate) fn show(value: &Value) -> String {
    match value {
        Value::Null => "an empty value".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(items) => {
            let items: Vec<String> = items.iter().map(show_inline).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Mapping(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", show_inline(k), show_inline(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Tagged(t) => show(&t.value),
    }
}

/// Like [`show`], but an empty value inside a list or mapping reads `null`.
fn show_inline(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        other => show(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn getters_track_paths_and_word_errors() {
        let doc = yaml("a: {n: eight, x: 1.5, b: yes, l: [1, 2, 1], e: ~}");
        let mut r = Reader::new("f.yaml");
        let root = Node::root(&doc);
        let a = r.section(&root, "a").unwrap().unwrap();
        let n = r.get(&a, "n").unwrap().unwrap();
        assert_eq!(
            r.whole(&n, 1).unwrap_err().to_string(),
            r#"f.yaml: a.n: expected a whole number >= 1, found "eight""#
        );
        let x = r.get(&a, "x").unwrap().unwrap();
        assert_eq!(r.number(&x).unwrap(), 1.5);
        assert!(r.whole(&x, 0).is_err());
        let b = r.get(&a, "b").unwrap().unwrap();
        assert!(r.boolean(&b).unwrap());
        let l = r.get(&a, "l").unwrap().unwrap();
        let err = r.list(&l, |n| r.whole(n, 0)).unwrap_err().to_string();
        assert_eq!(
            err,
            "f.yaml: a.l: 1 appears twice in [1, 2, 1]: list each value once"
        );
        assert!(r.get(&a, "e").unwrap().is_none());
        assert!(r.get(&a, "missing").unwrap().is_none());
        let used: Vec<&str> = {
            let mut v: Vec<&str> = r.used().iter().map(String::as_str).collect();
            v.sort();
            v
        };
        assert_eq!(used, ["a", "a.b", "a.e", "a.l", "a.n", "a.x"]);
        assert!(r.section(&a, "n").is_err());
    }

    #[test]
    fn sections_must_be_mappings() {
        let doc = yaml("a: 3");
        let mut r = Reader::new("f.yaml");
        let err = r.section(&Node::root(&doc), "a").unwrap_err().to_string();
        assert_eq!(err, "f.yaml: a: expected a mapping of settings, found 3");
    }
}
