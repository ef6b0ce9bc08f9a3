//! Facts read from the database that a node answers from memory while it is sure to hear of
//! anything that could end them: a session still going, a member's role in a workspace.
//!
//! Whatever ends such a fact tells every node in the same transaction (a notice on the log's
//! notification connection, [`eventlog::EventLog::notify_nodes`]). A node remembers facts only
//! while its notification connection is up; the notice, every change of the connection (a
//! notice may have been lost while it was down) and a lagging receiver forget everything
//! remembered (a new generation), and what a read started before that is not remembered. A
//! fact is therefore served from memory only when nothing that could end it can have been
//! missed since it was read; the window in which a node still serves it after the ending
//! transaction committed is the notice's delivery time.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventlog::EventLog;
use tokio::sync::{broadcast, watch};

/// Facts of type `V` by key `K` (see the module docs).
pub struct Remembered<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for Remembered<K, V> {
    fn clone(&self) -> Self {
        Remembered {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K, V> {
    /// Each fact with the generation it was read in.
    facts: moka::future::Cache<K, (u64, V)>,
    /// Moves on whenever something may have ended a remembered fact.
    generation: AtomicU64,
    listening: watch::Receiver<bool>,
}

impl<K, V> Remembered<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// Remembers at most `capacity` facts (the least recently used are forgotten first), each
    /// for at most `lifetime`, forgetting them all whenever `log` brings the notice `ending`.
    pub fn follow(
        log: &EventLog,
        ending: &'static str,
        capacity: u64,
        lifetime: Duration,
    ) -> Remembered<K, V> {
        let remembered = Remembered {
            inner: Arc::new(Inner {
                facts: moka::future::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(lifetime)
                    .build(),
                generation: AtomicU64::new(0),
                listening: log.listening(),
            }),
        };
        tokio::spawn(forget_on_notice(
            Arc::downgrade(&remembered.inner),
            ending,
            log.notices(),
            log.listening(),
        ));
        remembered
    }

    /// The fact for `key`, from memory when it is known, else from `read` (and then
    /// remembered unless something may have ended it meanwhile, or there is none).
    pub async fn get_or_read<E>(
        &self,
        key: K,
        read: impl Future<Output = Result<Option<V>, E>>,
    ) -> Result<Option<V>, E> {
        if let Some(fact) = self.get(&key).await {
            return Ok(Some(fact));
        }
        let generation = self.generation();
        let fact = read.await?;
        if let Some(fact) = &fact {
            self.remember(key, fact.clone(), generation).await;
        }
        Ok(fact)
    }

    /// Forgets every fact remembered (a new generation): this node just ended one, and need
    /// not wait for its own notice to come back.
    pub fn forget_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    async fn get(&self, key: &K) -> Option<V> {
        if !*self.inner.listening.borrow() {
            return None;
        }
        let (generation, fact) = self.inner.facts.get(key).await?;
        (generation == self.generation()).then_some(fact)
    }

    async fn remember(&self, key: K, fact: V, generation: u64) {
        if *self.inner.listening.borrow() && self.generation() == generation {
            self.inner.facts.insert(key, (generation, fact)).await;
        }
    }
}

/// Moves the generation on at every `ending` notice, every change of the notification
/// connection and every lost notice, until the facts are dropped.
async fn forget_on_notice<K, V>(
    inner: std::sync::Weak<Inner<K, V>>,
    ending: &'static str,
    mut notices: broadcast::Receiver<String>,
    mut listening: watch::Receiver<bool>,
) {
    loop {
        let forget = tokio::select! {
            notice = notices.recv() => match notice {
                Ok(notice) => notice == ending,
                Err(broadcast::error::RecvError::Lagged(_)) => true,
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = listening.changed() => {
                if changed.is_err() {
                    return;
                }
                true
            }
        };
        let Some(inner) = inner.upgrade() else { return };
        if forget {
            inner.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}
