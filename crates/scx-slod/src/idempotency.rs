// SPDX-License-Identifier: GPL-2.0-only
//! Idempotency keys for mutating calls: a replay within the TTL returns the
//! first result; the same key with other arguments is refused. Bounded: past
//! `capacity` keys the oldest is forgotten.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

/// What a key means for a new call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup<V> {
    /// Not seen (or expired): do the work, then `record`.
    New,
    /// Seen with the same arguments: return this, do nothing.
    Replay(V),
    /// Seen with different arguments: refuse.
    Conflict,
}

#[derive(Debug)]
struct Entry<V> {
    args: String,
    result: V,
    at: Duration,
}

/// The store. `now` is any monotonic clock reading.
#[derive(Debug)]
pub struct IdempotencyStore<V> {
    ttl: Duration,
    capacity: usize,
    entries: HashMap<String, Entry<V>>,
    order: VecDeque<(String, Duration)>,
}

impl<V: Clone> IdempotencyStore<V> {
    /// A store remembering keys for `ttl`, at most `capacity` of them.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        IdempotencyStore { ttl, capacity: capacity.max(1), entries: HashMap::new(), order: VecDeque::new() }
    }

    fn expire(&mut self, now: Duration) {
        while let Some((key, at)) = self.order.front().cloned() {
            if now.saturating_sub(at) <= self.ttl && self.order.len() <= self.capacity {
                break;
            }
            self.order.pop_front();
            if self.entries.get(&key).is_some_and(|e| e.at == at) {
                self.entries.remove(&key);
            }
        }
    }

    /// Looks `key` up for a call with `args` (any canonical rendering).
    pub fn check(&mut self, key: &str, args: &str, now: Duration) -> Lookup<V> {
        self.expire(now);
        match self.entries.get(key) {
            None => Lookup::New,
            Some(e) if e.args == args => Lookup::Replay(e.result.clone()),
            Some(_) => Lookup::Conflict,
        }
    }

    /// Remembers the result of a call.
    pub fn record(&mut self, key: &str, args: &str, result: V, now: Duration) {
        self.entries.insert(key.to_string(), Entry { args: args.to_string(), result, at: now });
        self.order.push_back((key.to_string(), now));
        self.expire(now);
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn replays_conflicts_and_expiry() {
        let mut s = IdempotencyStore::new(HOUR, 100);
        let t0 = Duration::ZERO;
        assert_eq!(s.check("k", "a=1", t0), Lookup::New);
        s.record("k", "a=1", 7u32, t0);
        assert_eq!(s.check("k", "a=1", t0 + Duration::from_secs(10)), Lookup::Replay(7));
        assert_eq!(s.check("k", "a=2", t0 + Duration::from_secs(10)), Lookup::Conflict);
        assert_eq!(s.check("k", "a=1", t0 + HOUR + Duration::from_secs(1)), Lookup::New, "forgotten after an hour");
    }

    #[test]
    fn bounded_by_capacity() {
        let mut s = IdempotencyStore::new(HOUR, 3);
        for i in 0..10u32 {
            s.record(&format!("k{i}"), "", i, Duration::from_secs(u64::from(i)));
        }
        assert_eq!(s.len(), 3);
        assert_eq!(s.check("k0", "", Duration::from_secs(11)), Lookup::New);
        assert_eq!(s.check("k9", "", Duration::from_secs(11)), Lookup::Replay(9));
    }
}
