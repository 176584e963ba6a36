// SPDX-License-Identifier: GPL-2.0-only
//! What serde_json's `Value` hides: a key given twice in one
//! object (the last one silently wins), and arrays where the schema has
//! objects (serde's derived structs accept a sequence of their fields in
//! order, so `"admission": [1001, 2]` read as 1,001 CPUs at overcommit 2).
//! The config schema has no arrays at all, so any array is refused, named
//! by its JSON path, and so is every duplicate key.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::JsonPath;

/// Walks one JSON value, recording problems with their paths.
struct Walk<'a> {
    path: JsonPath,
    problems: &'a mut Vec<(JsonPath, String)>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let message = if self.path == JsonPath::root().key("targets") {
            "targets is an object keyed by unit name or cgroup path, not a list"
        } else {
            "an array, but no field of a config is a list: write an object (or a single value)"
        };
        self.problems.push((self.path, message.into()));
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = std::collections::BTreeSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = self.path.key(key.as_str());
            if !seen.insert(key) {
                self.problems.push((path.clone(), "given twice in the same object: say it once (JSON parsers disagree on which one wins)".into()));
            }
            map.next_value_seed(Walk { path, problems: &mut *self.problems })?;
        }
        Ok(())
    }
}

/// Duplicate keys and arrays anywhere in `text`, with their paths. Text that
/// is not JSON gives no problems here: the parser reports it.
pub fn shape_problems(text: &str) -> Vec<(JsonPath, String)> {
    let mut problems = Vec::new();
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = Walk { path: JsonPath::root(), problems: &mut problems }.deserialize(&mut de);
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(text: &str) -> Vec<String> {
        shape_problems(text).into_iter().map(|(p, _)| p.to_string()).collect()
    }

    #[test]
    fn finds_duplicates_at_any_depth_and_arrays() {
        assert!(paths(r#"{"version":1,"targets":{}}"#).is_empty());
        let found = paths(r#"{"version":1,"version":1,"targets":{"a.service":{"class":"batch","class":"latency"}},"admission":[1001,2]}"#);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found[0].contains("version"), "{found:?}");
        assert!(found[1].contains("a.service") && found[1].contains("class"), "{found:?}");
        assert!(found[2].contains("admission"), "{found:?}");
    }

    #[test]
    fn the_red_team_cases_are_rejected_by_the_loader() {
        // 2,002 CPUs admitted from an array; a budget doubled by a repeated key.
        let e = crate::load_str(r#"{"version":1,"admission":[1001,2],"targets":{}}"#, None).unwrap_err().to_string();
        assert!(e.contains("admission") && e.contains("array"), "{e}");
        let dup = r#"{"version":1,"targets":{"a.service":{"class":"latency","budget":{"runtime":"1ms","period":"10ms"},"budget":{"runtime":"9ms","period":"10ms"}}}}"#;
        let e = crate::load_str(dup, None).unwrap_err().to_string();
        assert!(e.contains("budget") && e.contains("twice"), "{e}");
    }

    #[test]
    fn not_json_is_left_to_the_parser() {
        assert!(paths("{").is_empty());
    }
}
