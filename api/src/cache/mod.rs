//! The response cache (SPEC §6): each node keeps whole GraphQL answers in memory (moka), looked
//! up in the HTTP handler before the request is parsed, so a hit costs neither parsing,
//! validation, execution nor serialisation.
//!
//! An entry's key is everything that can change the answer: the caller, the document, the
//! operation name, the variables (canonically: object keys sorted), the response's content type
//! and the schema build. Its value is the answer's bytes and what they depend on: the position
//! of every workspace and user it read ([`reads`]) as this node knew it, and the instant a
//! clock-dependent value in it changes. An entry is served only while all those positions are
//! still the newest this node knows ([`Freshness`]), while the node vouches that it knows the
//! log's head, and before that instant. Rights are in the log (a membership or role change
//! moves the workspace's position, a staff role the user's), so a removed member never gets a
//! cached answer.
//!
//! Only queries whose root fields are all cacheable ([`reads::CACHEABLE_ROOTS`]) and answers
//! without errors are stored. Concurrent misses on one key run once: one request executes
//! (spawned, so that its client going away cannot stall the others) and the others wait for its
//! answer. The cache is bounded by bytes (`CHRONICLE_CACHE_MB`).

pub mod freshness;
pub mod reads;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::web::Bytes;
use async_graphql::Request;
use chrono::{DateTime, Utc};
use eventlog::Position;
use moka::notification::RemovalCause;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::read_side::ReadSide;
use crate::writes::Clock;
pub use freshness::{Freshness, Scope};
pub use reads::{Reads, Recorded, check_root_fields};

/// How often evictions and expiries are processed in the background.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

/// What identifies an answer: a SHA-256 of everything that can change it.
pub type Key = [u8; 32];

/// An answer ready to be sent again.
#[derive(Debug)]
pub struct Entry {
    /// The serialised response.
    pub body: Bytes,
    /// Its content type (`application/json` or `application/graphql-response+json`).
    pub content_type: &'static str,
    /// Every scope the answer read, at the position this node knew when it was computed.
    seen: Vec<(Scope, Position)>,
    /// The answer changes by itself at this instant.
    until: Option<DateTime<Utc>>,
}

/// Where an operation started, as the cache needs to know it to stamp the answer.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// How far this node had read the log.
    pub applied: Position,
    /// How far its search index had got.
    pub search: Position,
}

/// The cache's counters since the node started.
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    /// Entries removed to stay within the size bound.
    pub evictions: AtomicU64,
}

/// This node's response cache.
#[derive(Clone)]
pub struct ResponseCache {
    entries: moka::future::Cache<Key, Arc<Entry>>,
    freshness: Freshness,
    read_side: ReadSide,
    clock: Clock,
    /// Identifies the schema this binary serves, so no entry outlives a schema change.
    build: [u8; 32],
    stats: Arc<Stats>,
}

impl ResponseCache {
    /// A cache of at most `max_bytes` of answers (keys and bookkeeping included), checked
    /// against `freshness` (and, for search answers, `read_side`'s index) and `clock`, for the
    /// schema whose SDL is `sdl`.
    pub fn new(
        max_bytes: u64,
        freshness: Freshness,
        read_side: ReadSide,
        clock: Clock,
        sdl: &str,
    ) -> ResponseCache {
        let stats = Arc::new(Stats::default());
        let evicted = stats.clone();
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &Key, entry: &Arc<Entry>| entry.weight())
            .eviction_listener(move |_key, _entry, cause| {
                if cause == RemovalCause::Size {
                    evicted.evictions.fetch_add(1, Ordering::Relaxed);
                }
            })
            .build();
        let housekeeping = entries.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HOUSEKEEPING);
            loop {
                ticks.tick().await;
                housekeeping.run_pending_tasks().await;
            }
        });
        ResponseCache {
            entries,
            freshness,
            read_side,
            clock,
            build: Sha256::digest(sdl.as_bytes()).into(),
            stats,
        }
    }

    /// What this node knows of the log.
    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    /// The cache's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Processes pending evictions and expiries now (a timer does it every second).
    pub async fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks().await;
    }

    /// The bytes the cache holds (as weighed for its bound) and its number of entries.
    pub fn size(&self) -> (u64, u64) {
        (self.entries.weighted_size(), self.entries.entry_count())
    }

    /// The key of `request` asked by `caller`, answered as `content_type`.
    pub fn key(&self, caller: Option<Uuid>, request: &Request, content_type: &str) -> Key {
        let mut hash = Sha256::new();
        hash.update(self.build);
        match caller {
            Some(user_id) => {
                hash.update([1]);
                hash.update(user_id.as_bytes());
            }
            None => hash.update([0]),
        }
        field(&mut hash, request.query.as_bytes());
        match &request.operation_name {
            Some(name) => {
                hash.update([1]);
                field(&mut hash, name.as_bytes());
            }
            None => hash.update([0]),
        }
        field(&mut hash, content_type.as_bytes());
        canonical(
            &mut hash,
            &request
                .variables
                .clone()
                .into_value()
                .into_json()
                .unwrap_or_default(),
        );
        hash.finalize().into()
    }

    /// The entry for `key`, if there is one this node can vouch is still the answer.
    pub async fn fresh(&self, key: &Key) -> Option<Arc<Entry>> {
        let entry = self.entries.get(key).await?;
        let fresh = self.freshness.vouches()
            && entry.until.is_none_or(|until| self.clock.now() < until)
            && self.freshness.unchanged(&entry.seen);
        if fresh {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            Some(entry)
        } else {
            self.entries.invalidate(key).await;
            None
        }
    }

    /// Where an operation starting now starts.
    pub fn start(&self) -> Start {
        Start {
            applied: self.freshness.applied(),
            search: self.read_side.search_position(),
        }
    }

    /// The answer for `key`, computed by `compute` unless a concurrent request for the same
    /// key is computing it already (then its answer). `compute` runs in a task of its own.
    /// A cacheable answer is stored.
    pub async fn get_or_compute<F>(&self, key: Key, compute: F) -> Answer
    where
        F: Future<Output = Answer> + Send + 'static,
    {
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let task = tokio::spawn(compute);
        let computed = self
            .entries
            .try_get_with(key, async move {
                match task.await {
                    Ok(Answer::Cacheable(entry)) => Ok(entry),
                    Ok(answer) => Err(answer),
                    Err(err) => Err(Answer::Failed(err.to_string())),
                }
            })
            .await;
        match computed {
            Ok(entry) => Answer::Cacheable(entry),
            Err(answer) => Answer::clone(&answer),
        }
    }

    /// Turns an executed answer into an entry, if it may be cached: `recorded` is what the
    /// operation read (the caller's own scope is added), `start` where it started. An answer
    /// that read a scope this node learnt of a change to after the start may show data older
    /// than that change, or newer; either way it is not stored.
    pub fn stamp(
        &self,
        body: Bytes,
        content_type: &'static str,
        recorded: Recorded,
        caller: Option<Uuid>,
        start: Start,
    ) -> Answer {
        if recorded.uncacheable.is_some() {
            return Answer::Uncacheable(body, content_type);
        }
        let mut scopes = recorded.scopes;
        if let Some(user_id) = caller {
            scopes.insert(Scope::User(user_id));
        }
        let seen: Vec<(Scope, Position)> = scopes
            .into_iter()
            .map(|scope| (scope, self.freshness.newest(scope)))
            .collect();
        let changed_since_start = seen.iter().any(|(_, position)| *position > start.applied);
        let index_behind = recorded.search_index
            && seen.iter().any(|(scope, position)| {
                matches!(scope, Scope::Workspace(_)) && *position > start.search
            });
        if changed_since_start || index_behind {
            return Answer::Uncacheable(body, content_type);
        }
        Answer::Cacheable(Arc::new(Entry {
            body,
            content_type,
            seen,
            until: recorded.until,
        }))
    }
}

/// Whether `document` may hold a mutation or a subscription: it names either keyword anywhere
/// (in a string or a comment too). Such requests bypass the cache altogether, since two
/// identical mutations at once are two intents, not one answer to share. Linear, and cheaper
/// than parsing.
pub fn may_not_be_a_query(document: &str) -> bool {
    document.contains("mutation") || document.contains("subscription")
}

/// What a request is answered with.
#[derive(Debug, Clone)]
pub enum Answer {
    /// An answer the cache holds (or now stores).
    Cacheable(Arc<Entry>),
    /// An answer without errors to send but not to store.
    Uncacheable(Bytes, &'static str),
    /// An executed answer with errors: sent, never stored.
    Errors(Bytes, &'static str),
    /// A request refused before execution (its document, variables or operation): sent
    /// without `data` (see [`crate::http`]), never stored.
    Rejected(Bytes, &'static str),
    /// The request ran out of time.
    TimedOut,
    /// Executing the request failed (a panic): the message, for the logs.
    Failed(String),
}

impl Entry {
    fn weight(&self) -> u32 {
        let bytes = self.body.len()
            + self.seen.len() * std::mem::size_of::<(Scope, Position)>()
            + std::mem::size_of::<Entry>()
            + std::mem::size_of::<Key>();
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }
}

/// Hashes `bytes` so that two fields can never run into each other.
fn field(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

/// Hashes a JSON value canonically: object keys in sorted order, whatever order they came in.
fn canonical(hash: &mut Sha256, value: &serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Null => hash.update([0]),
        Value::Bool(b) => hash.update([1, u8::from(*b)]),
        Value::Number(n) => {
            hash.update([2]);
            field(hash, n.to_string().as_bytes());
        }
        Value::String(s) => {
            hash.update([3]);
            field(hash, s.as_bytes());
        }
        Value::Array(items) => {
            hash.update([4]);
            hash.update((items.len() as u64).to_le_bytes());
            for item in items {
                canonical(hash, item);
            }
        }
        Value::Object(map) => {
            hash.update([5]);
            hash.update((map.len() as u64).to_le_bytes());
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            for key in keys {
                field(hash, key.as_bytes());
                canonical(hash, &map[key]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(value: serde_json::Value) -> [u8; 32] {
        let mut hash = Sha256::new();
        canonical(&mut hash, &value);
        hash.finalize().into()
    }

    #[test]
    fn object_keys_in_any_order_hash_alike() {
        let a = serde_json::json!({"first": 20, "filter": {"status": "ACTIVE", "tags": ["a"]}});
        let b = serde_json::json!({"filter": {"tags": ["a"], "status": "ACTIVE"}, "first": 20});
        assert_eq!(key_of(a), key_of(b));
    }

    #[test]
    fn different_values_hash_apart() {
        let base = serde_json::json!({"first": 20, "tags": ["a", "b"]});
        for other in [
            serde_json::json!({"first": 21, "tags": ["a", "b"]}),
            serde_json::json!({"first": 20, "tags": ["b", "a"]}),
            serde_json::json!({"first": "20", "tags": ["a", "b"]}),
            serde_json::json!({"first": 20, "tags": ["ab"]}),
            serde_json::json!({"first": 20, "tags": ["a", "b"], "x": null}),
        ] {
            assert_ne!(key_of(base.clone()), key_of(other));
        }
    }
}
