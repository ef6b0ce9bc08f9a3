//! How a failing job is retried: exponential backoff with jitter, stored in the job's row
//! (`run_at`), so a retry waits in the database, not in a worker, and survives restarts.
//!
//! apalis-postgres fetches a `Failed` job again as soon as its `run_at` has passed while its
//! `attempts` are below its `max_attempts`, and never after that: such a job is dead. So every
//! job is enqueued with `max_attempts` = [`RetryPolicy::max_attempts`], and a handler that fails
//! moves `run_at` to now + [`RetryPolicy::delay`] before returning its error.

use std::time::Duration;

use rand::Rng;
use sqlx::PgPool;

/// When to run a failed job again, and when to give up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Runs of a job, the first included, before it is dead.
    pub max_attempts: u32,
    /// The delay ceiling after the first failure; it doubles with each further failure.
    pub base: Duration,
    /// The most any delay may be.
    pub max: Duration,
}

impl Default for RetryPolicy {
    /// 8 runs over about 4 minutes (1 s, 2 s, … 64 s ceilings).
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_secs(1),
            max: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the delay after the `attempt`-th run (1-based) failed: `base · 2^(attempt-1)`,
    /// at most `max`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before the run after the `attempt`-th: uniformly random between half the
    /// ceiling and the ceiling ("equal jitter"), so jobs that failed together do not come back
    /// together, and none comes back at once.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    /// Whether a job that has run `attempt` times may run again.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

/// Moves the next run of job `job_id` to `delay` from now.
pub async fn schedule(pool: &PgPool, job_id: &str, delay: Duration) -> Result<(), sqlx::Error> {
    let millis = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
    sqlx::query!(
        "UPDATE apalis.jobs SET run_at = now() + $2 * interval '1 millisecond' WHERE id = $1",
        job_id,
        millis as f64
    )
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_maximum() {
        let policy = RetryPolicy {
            max_attempts: 40,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        let ceilings: Vec<_> = (1..=6).map(|a| policy.ceiling(a).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.ceiling(40), Duration::from_secs(1));
    }

    #[test]
    fn delays_are_jittered_below_the_ceiling() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (0..50).map(|_| policy.delay(3)).collect();
        assert!(
            delays
                .iter()
                .all(|d| *d <= policy.ceiling(3) && *d >= policy.ceiling(3) / 2)
        );
        assert!(delays.iter().any(|d| *d != delays[0]), "{delays:?}");
    }

    #[test]
    fn the_last_attempt_is_not_retried() {
        let policy = RetryPolicy {
            max_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(policy.may_retry(2));
        assert!(!policy.may_retry(3));
    }
}
