// SPDX-License-Identifier: GPL-2.0-only
//! Config errors that name the JSON path of what is wrong.

use std::fmt;

use serde::Serialize;

/// A location in config.json, printed as `targets."api.service".budget.runtime`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonPath(Vec<String>);

impl JsonPath {
    /// The document root.
    pub fn root() -> Self {
        JsonPath(Vec::new())
    }

    /// This path with one more key.
    pub fn key(&self, key: impl Into<String>) -> Self {
        let mut segments = self.0.clone();
        segments.push(key.into());
        JsonPath(segments)
    }

    /// The keys from the root down.
    pub fn segments(&self) -> &[String] {
        &self.0
    }

    /// This path extended by a path that serde_path_to_error reported.
    pub fn join_serde(&self, inner: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let mut path = self.clone();
        for segment in inner.iter() {
            path = match segment {
                Segment::Seq { index } => path.key(index.to_string()),
                Segment::Map { key } => path.key(key.clone()),
                Segment::Enum { variant } => path.key(variant.clone()),
                Segment::Unknown => path,
            };
        }
        path
    }
}

fn is_plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, key) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            if is_plain_key(key) {
                f.write_str(key)?;
            } else {
                write!(f, "{key:?}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for JsonPath {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One thing wrong with a config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Where it is.
    pub path: JsonPath,
    /// What is wrong, in a sentence fragment that starts lowercase.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a config; a config with any is rejected whole.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct ConfigErrors {
    /// In document order where the order is known.
    pub problems: Vec<Problem>,
}

impl ConfigErrors {
    /// Records one problem.
    pub fn push(&mut self, path: JsonPath, message: impl Into<String>) {
        self.problems.push(Problem {
            path,
            message: message.into(),
        });
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty()
    }

    /// The paths of all problems, as printed; handy in tests and logs.
    pub fn paths(&self) -> Vec<String> {
        self.problems.iter().map(|p| p.path.to_string()).collect()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Records a problem at `path` when `value` is outside `lo..=hi`; returns
/// `value` either way (validation goes on, to report every problem).
pub(crate) fn in_range(errors: &mut ConfigErrors, path: JsonPath, value: crate::duration::Duration, (lo, hi): (crate::duration::Duration, crate::duration::Duration)) -> crate::duration::Duration {
    if value < lo || value > hi {
        errors.push(path, format!("{value} is outside {lo}..={hi}"));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_keys_that_are_not_identifiers() {
        let p = JsonPath::root()
            .key("targets")
            .key("api.service")
            .key("budget")
            .key("runtime");
        assert_eq!(p.to_string(), r#"targets."api.service".budget.runtime"#);
    }
}
