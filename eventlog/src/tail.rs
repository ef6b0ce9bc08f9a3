//! Following the log live: notifications between nodes and a reader that waits for them.

use std::collections::VecDeque;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{mpsc, watch};

use crate::{CHANNEL, Error, EventFilter, EventLog, NOTICES, Position, RecordedEvent};

/// How long a tail waits for a notification before looking anyway.
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How soon a tail looks again while an open transaction holds events back.
const HELD_BACK_RETRY: Duration = Duration::from_millis(10);
/// Events fetched per read.
const BATCH: usize = 512;

/// Reads the log from a position onwards: first what is there, then each new event as it is
/// appended on any node. Every event is returned exactly once, in log order. History and live
/// events come from the same reads below the read horizon, so there is no seam between them
/// where an event could be skipped or repeated.
pub struct Tail {
    log: EventLog,
    after: Position,
    /// Only events matching this, if set.
    filter: Option<EventFilter>,
    buffer: VecDeque<RecordedEvent>,
    /// The last read returned less than a full page: it reached the end of what was readable.
    read_to_end: bool,
    wake: watch::Receiver<u64>,
    poll_interval: Duration,
    /// See [`Tail::parked`].
    parked: watch::Sender<Option<u64>>,
}

impl EventLog {
    /// A tail that returns the events after `after`.
    pub fn tail(&self, after: Position) -> Tail {
        Tail {
            log: self.clone(),
            after,
            filter: None,
            buffer: VecDeque::new(),
            read_to_end: false,
            wake: self.inner.wake.subscribe(),
            poll_interval: POLL_INTERVAL,
            parked: watch::Sender::new(None),
        }
    }
}

impl Tail {
    /// Sets how long to wait without a notification before polling (the fallback).
    pub fn with_poll_interval(mut self, interval: Duration) -> Tail {
        self.poll_interval = interval;
        self
    }

    /// Returns only the events matching `filter` (read with it, not filtered here). A filter's
    /// `up_to` is ignored: a tail never ends.
    pub fn with_filter(mut self, filter: EventFilter) -> Tail {
        self.filter = Some(EventFilter {
            up_to: None,
            ..filter
        });
        self
    }

    /// The position of the last event returned (or the starting point).
    pub fn position(&self) -> Position {
        self.after
    }

    /// True when every event the last read found has been returned and that read reached the
    /// end of what was readable then: a caller gathering a batch stops here rather than read
    /// again, so a trickle of new events cannot keep a batch growing (and its first event
    /// waiting) for as long as it lasts.
    pub fn at_end_of_read(&self) -> bool {
        self.buffer.is_empty() && self.read_to_end
    }

    /// Test support (the reason it exists): `Some(n)` while [`Tail::next`] sleeps having
    /// found nothing to read after the announcements up to `n` (the value of
    /// [`EventLog::announcements`] it had seen), so that only a notification or the poll
    /// interval wakes it; `None` otherwise. A test of wake-ups appends once the tail is
    /// parked: an event appended while it reads would be found without any wake-up.
    #[doc(hidden)]
    pub fn parked(&self) -> watch::Receiver<Option<u64>> {
        self.parked.subscribe()
    }

    /// The next event, waiting for one to be appended if need be.
    pub async fn next(&mut self) -> Result<RecordedEvent, Error> {
        let mut held_back_delay = HELD_BACK_RETRY;
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = event.position;
                return Ok(event);
            }
            // Mark notifications seen *before* reading, so one arriving during the read wakes us.
            let seen = *self.wake.borrow_and_update();
            let batch = self.read().await?;
            if !batch.is_empty() {
                self.buffer.extend(batch);
                continue;
            }
            let delay = if self.log.has_held_back_events(self.after).await? {
                // An open transaction holds events back; its commit may not be announced
                // (it may not be an append at all), so look again soon.
                let delay = held_back_delay;
                held_back_delay = (held_back_delay * 2).min(self.poll_interval);
                delay
            } else {
                held_back_delay = HELD_BACK_RETRY;
                self.parked.send_replace(Some(seen));
                self.poll_interval
            };
            tokio::select! {
                changed = self.wake.changed() => {
                    if changed.is_err() {
                        // The log handle is gone; keep polling.
                        tokio::time::sleep(delay).await;
                    }
                }
                _ = tokio::time::sleep(delay) => {}
            }
            self.parked.send_replace(None);
        }
    }

    /// The next event if one is readable now, without waiting.
    pub async fn try_next(&mut self) -> Result<Option<RecordedEvent>, Error> {
        if self.buffer.is_empty() {
            let batch = self.read().await?;
            self.buffer.extend(batch);
        }
        Ok(self
            .buffer
            .pop_front()
            .inspect(|event| self.after = event.position))
    }

    async fn read(&mut self) -> Result<Vec<RecordedEvent>, Error> {
        let page = match &self.filter {
            None => self.log.read_all(self.after, BATCH).await?,
            Some(filter) => {
                self.log
                    .read_filtered(filter, Some(self.after), false, BATCH)
                    .await?
            }
        };
        self.read_to_end = page.len() < BATCH;
        Ok(page)
    }
}

/// Announces appends to every node, coalescing a burst of appends into one notification.
pub(crate) async fn notify_other_nodes(pool: PgPool, mut announcements: mpsc::Receiver<()>) {
    while announcements.recv().await.is_some() {
        if let Err(err) = sqlx::query!("SELECT pg_notify($1, '')", CHANNEL)
            .execute(&pool)
            .await
        {
            tracing::warn!(error = %err, "could not announce an append; other nodes will poll");
        }
    }
}

/// Who hears what the listener receives.
pub(crate) struct Listeners {
    /// Bumped for every append announced (and whenever the connection comes or goes).
    pub wake: watch::Sender<u64>,
    /// True exactly while the notification connection is up.
    pub listening: watch::Sender<bool>,
    /// Every notice's payload.
    pub notices: tokio::sync::broadcast::Sender<String>,
}

/// Wakes this node's tails whenever any node announces an append, passes notices on, and keeps
/// `listening` true exactly while the notification connection is up. Reconnects when the
/// connection drops, waking every tail after reconnecting (it may have missed notifications).
pub(crate) async fn listen(pool: PgPool, to: Listeners, mut shutdown: watch::Receiver<()>) {
    let Listeners {
        wake,
        listening,
        notices,
    } = to;
    let bump = || wake.send_modify(|n| *n = n.wrapping_add(1));
    let mut backoff = Duration::from_millis(100);
    loop {
        let connected = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            // Reconnecting is ours to do (below), so that `listening` is never true while the
            // connection is down.
            listener.eager_reconnect(false);
            listener.listen_all([CHANNEL, NOTICES]).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = tokio::select! {
            _ = shutdown.changed() => return,
            connected = connected => match connected {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "event listener cannot connect; retrying");
                    tokio::select! {
                        _ = shutdown.changed() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        backoff = Duration::from_millis(100);
        listening.send_replace(true);
        bump();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                received = listener.try_recv() => match received {
                    Ok(Some(notification)) if notification.channel() == NOTICES => {
                        // Nobody listening is not an error.
                        let _ = notices.send(notification.payload().to_string());
                    }
                    Ok(Some(_)) => bump(),
                    Ok(None) => {
                        tracing::warn!("event listener connection lost; reconnecting");
                        break;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "event listener failed; reconnecting");
                        break;
                    }
                },
            }
        }
        listening.send_replace(false);
        bump();
    }
}

impl EventLog {
    /// Waits, up to `timeout`, until the event at `position` is committed and visible here.
    /// Returns whether it is. This is what a consistency token (`minPosition`) asks of the
    /// inline read models, which are written in the same transaction as the event.
    pub async fn wait_until_visible(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<bool, Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut wake = self.inner.wake.subscribe();
        loop {
            wake.borrow_and_update();
            let visible = sqlx::query_scalar!(
                r#"SELECT EXISTS (SELECT 1 FROM events WHERE tx_id = $1 AND seq = $2) AS "visible!""#,
                position.tx_id(),
                position.seq()
            )
            .fetch_one(self.pool())
            .await?;
            if visible {
                return Ok(true);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            // A notification usually wakes us; the short poll covers a missed one.
            let nap = (deadline - now).min(Duration::from_millis(100));
            tokio::select! {
                _ = wake.changed() => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }
}
