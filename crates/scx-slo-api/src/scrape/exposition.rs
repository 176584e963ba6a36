// SPDX-License-Identifier: GPL-2.0-only
//! One histogram read out of a Prometheus text exposition as it streams in,
//! line by line: only the histogram's `_bucket` samples are kept (summed per
//! `le` bound), so memory is a line plus at most [`Limits::buckets`] bounds
//! and [`Limits::label_sets`] label-set hashes, whatever the page holds.
//! Every other line is counted against [`Limits::samples`] and dropped.
//!
//! The histogram's `# TYPE` line is not required: a sample named
//! `<histogram>_bucket` with an `le` label is one of its buckets.

use std::collections::{BTreeMap, HashSet};
use std::hash::{Hash, Hasher};
use std::io::BufRead;

use super::error::ScrapeError;

/// Cumulative buckets: (`le` in seconds, requests at or under it), sorted
/// by `le`, the last one `+Inf` when the service exposes it.
pub type Buckets = Vec<(f64, f64)>;

/// What one page may hold before the reading is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the body.
    pub bytes: u64,
    /// Bytes of one line.
    pub line_bytes: usize,
    /// Samples (lines that are neither comments nor blank), any metric.
    pub samples: u64,
    /// Distinct label sets (other than `le`) of the histogram.
    pub label_sets: usize,
    /// Distinct `le` bounds of the histogram, summed over its label sets.
    pub buckets: usize,
}

/// The limits of every scrape: a service's /metrics, not a dump. A classic
/// histogram has tens of bounds; the sample limit is Prometheus' common
/// `sample_limit` order of magnitude.
pub const LIMITS: Limits = Limits { bytes: 8 << 20, line_bytes: 64 << 10, samples: 200_000, label_sets: 1_024, buckets: 1_024 };

/// At most this many characters of a rejected line are quoted.
const QUOTE_CHARS: usize = 60;

fn quote(line: &str) -> String {
    line.chars().take(QUOTE_CHARS).collect()
}

fn bad(line_no: u64, line: &str, why: &'static str) -> ScrapeError {
    ScrapeError::BadSample { line: line_no, why, prefix: quote(line) }
}

/// A sample's labels: the `le` value and a hash of the others.
struct Labels<'a> {
    le: Option<&'a str>,
    others: u64,
}

/// Parses `{name="value",...}` at the start of `s`; returns the labels and
/// what follows the closing brace.
fn labels(s: &str) -> Result<(Labels<'_>, &str), &'static str> {
    let mut rest = s.strip_prefix('{').ok_or("no label set")?;
    let mut le = None;
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((Labels { le, others: hasher.finish() }, after));
        }
        let name_len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).ok_or("an unterminated label set")?;
        if name_len == 0 {
            return Err("a label without a name");
        }
        let (name, after) = rest.split_at(name_len);
        let after = after.trim_start().strip_prefix('=').ok_or("a label without =")?;
        let after = after.trim_start().strip_prefix('"').ok_or("a label value without quotes")?;
        // The value ends at the first quote not escaped by a backslash.
        let bytes = after.as_bytes();
        let mut i = 0;
        while i < bytes.len() && bytes[i] != b'"' {
            i += if bytes[i] == b'\\' { 2 } else { 1 };
        }
        if i >= bytes.len() {
            return Err("an unterminated label value");
        }
        let value = &after[..i];
        if name == "le" {
            le = Some(value);
        } else {
            name.hash(&mut hasher);
            value.hash(&mut hasher);
        }
        rest = &after[i + 1..];
    }
}

/// A sample value as the text format writes it (`+Inf`, `NaN`, decimals).
fn number(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// The cumulative buckets of `histogram` in the exposition `reader` holds,
/// summed over its label sets, read within `limits`.
pub fn read_histogram(reader: &mut impl BufRead, histogram: &str, limits: &Limits) -> Result<Buckets, ScrapeError> {
    let bucket_name = format!("{histogram}_bucket");
    let mut sums: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let mut label_sets: HashSet<u64> = HashSet::new();
    let (mut bytes, mut samples, mut line_no) = (0u64, 0u64, 0u64);
    let mut found = false;
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        let n = std::io::Read::take(&mut *reader, limits.line_bytes as u64 + 1).read_until(b'\n', &mut buf).map_err(ScrapeError::Read)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        bytes += n as u64;
        if bytes > limits.bytes {
            return Err(ScrapeError::TooLarge { limit: limits.bytes });
        }
        if n > limits.line_bytes && buf.last() != Some(&b'\n') {
            return Err(ScrapeError::LineTooLong { line: line_no, limit: limits.line_bytes });
        }
        let text = String::from_utf8_lossy(&buf);
        let line = text.trim_end_matches(['\n', '\r']).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        samples += 1;
        if samples > limits.samples {
            return Err(ScrapeError::TooManySamples { limit: limits.samples });
        }
        let name_end = line.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(line.len());
        if line[..name_end] != *bucket_name {
            continue;
        }
        let (labels, after) = labels(&line[name_end..]).map_err(|why| bad(line_no, line, why))?;
        let le = labels.le.ok_or_else(|| bad(line_no, line, "a bucket without an le label"))?;
        let le = number(le).ok_or_else(|| bad(line_no, line, "an le that is not a number"))?;
        if le.is_nan() || le < 0.0 {
            return Err(bad(line_no, line, "an le bound that is NaN or negative"));
        }
        // -0 and 0 are one bound.
        let le = le + 0.0;
        let value = after.split_whitespace().next().ok_or_else(|| bad(line_no, line, "a bucket without a value"))?;
        let count = number(value).ok_or_else(|| bad(line_no, line, "a bucket count that is not a number"))?;
        if !count.is_finite() || count < 0.0 {
            return Err(bad(line_no, line, "a bucket count that is NaN, infinite or negative"));
        }
        found = true;
        if !label_sets.contains(&labels.others) {
            if label_sets.len() >= limits.label_sets {
                return Err(ScrapeError::TooManyLabelSets { histogram: histogram.to_string(), limit: limits.label_sets });
            }
            label_sets.insert(labels.others);
        }
        // Non-negative floats order as their bits do, so the map is sorted by le.
        let key = le.to_bits();
        if !sums.contains_key(&key) && sums.len() >= limits.buckets {
            return Err(ScrapeError::TooManyBuckets { histogram: histogram.to_string(), limit: limits.buckets });
        }
        let e = sums.entry(key).or_insert((le, 0.0));
        e.1 += count;
        if !e.1.is_finite() {
            return Err(bad(line_no, line, "bucket counts that overflow when summed"));
        }
    }
    if !found {
        return Err(ScrapeError::NotFound(histogram.to_string()));
    }
    Ok(sums.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, limits: &Limits) -> Result<Buckets, ScrapeError> {
        read_histogram(&mut text.as_bytes(), "h", limits)
    }

    #[test]
    fn buckets_are_summed_over_label_sets_and_sorted() {
        let text = "# TYPE h histogram\n\
                    h_bucket{path=\"/a\",le=\"0.5\"} 2\n\
                    h_bucket{path=\"/a\",le=\"+Inf\"} 3\n\
                    h_bucket{le=\"0.1\",path=\"/b \\\"q\\\" }\"} 1 1700000000\n\
                    h_bucket{path=\"/b \\\"q\\\" }\",le=\"+Inf\"} 4\n\
                    other_bucket{le=\"1\"} 99\n\
                    h_sum 3\nh_count 7\n";
        let b = read(text, &LIMITS).unwrap();
        assert_eq!(b, vec![(0.1, 1.0), (0.5, 2.0), (f64::INFINITY, 7.0)]);
    }

    #[test]
    fn hostile_values_are_refused_naming_the_line() {
        for (line, why) in [
            ("h_bucket{le=\"NaN\"} 1", "NaN or negative"),
            ("h_bucket{le=\"-1\"} 1", "NaN or negative"),
            ("h_bucket{le=\"-Inf\"} 1", "NaN or negative"),
            ("h_bucket{le=\"1\"} NaN", "NaN, infinite or negative"),
            ("h_bucket{le=\"1\"} -5", "NaN, infinite or negative"),
            ("h_bucket{le=\"1\"} +Inf", "NaN, infinite or negative"),
            ("h_bucket{le=\"x\"} 1", "not a number"),
            ("h_bucket{path=\"a\"} 1", "without an le"),
            ("h_bucket{le=\"1} 1", "unterminated"),
        ] {
            let e = read(&format!("{line}\n"), &LIMITS).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("line 1"), "{line}: {e}");
        }
        let e = read(&format!("h_bucket{{le=\"1\",x=\"{}\"}} NaN\n", "a".repeat(1000)), &LIMITS).unwrap_err().to_string();
        assert!(e.len() < 200, "an error quotes only a prefix: {e}");
    }

    #[test]
    fn samples_label_sets_bounds_lines_and_bytes_are_limited() {
        let small = Limits { bytes: 1 << 20, line_bytes: 100, samples: 10, label_sets: 2, buckets: 3 };
        let e = read(&"a 1\n".repeat(11), &small).unwrap_err();
        assert!(matches!(e, ScrapeError::TooManySamples { limit: 10 }), "{e}");
        let sets: String = (0..3).map(|i| format!("h_bucket{{x=\"{i}\",le=\"1\"}} 1\n")).collect();
        assert!(matches!(read(&sets, &small).unwrap_err(), ScrapeError::TooManyLabelSets { .. }));
        let bounds: String = (0..4).map(|i| format!("h_bucket{{le=\"{i}\"}} 1\n")).collect();
        assert!(matches!(read(&bounds, &small).unwrap_err(), ScrapeError::TooManyBuckets { .. }));
        let long = format!("# {}\n", "x".repeat(200));
        assert!(matches!(read(&long, &small).unwrap_err(), ScrapeError::LineTooLong { line: 1, .. }));
        let big = Limits { bytes: 100, ..small };
        assert!(matches!(read(&"# c\n".repeat(30), &big).unwrap_err(), ScrapeError::TooLarge { .. }));
        assert!(matches!(read("h_sum 1\n", &LIMITS).unwrap_err(), ScrapeError::NotFound(_)));
    }
}
