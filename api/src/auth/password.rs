//! Password rules and argon2id hashing. Hashing is CPU- and memory-heavy by design, so it runs on
//! the blocking pool, a bounded number at a time, in two lanes: sign-ups and log-ins each have
//! their own workers and their own bounded queue, so a flood of sign-ups cannot starve log-ins
//! (nor the other way round). A full queue refuses at once ([`AuthError::RateLimited`]) instead
//! of letting waiters (and their memory) pile up.

use anyhow::{Context, anyhow};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::AuthError;

/// Shortest accepted password, in characters.
pub const MIN_CHARS: usize = 8;
/// Longest accepted password, in characters.
pub const MAX_CHARS: usize = 256;

/// Refuses passwords outside `MIN_CHARS..=MAX_CHARS` characters, with a message safe to show.
pub(super) fn check_strength(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(AuthError::WeakPassword(format!(
            "password must be at least {MIN_CHARS} characters"
        )));
    }
    if chars > MAX_CHARS {
        return Err(AuthError::WeakPassword(format!(
            "password must be at most {MAX_CHARS} characters"
        )));
    }
    Ok(())
}

/// Who a hash is computed for: each has its own capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// New passwords (sign-up).
    SignUp,
    /// Verifications (log-in).
    LogIn,
}

/// One lane: at most `workers` hashes at once, and at most `queue` more waiting.
struct Capacity {
    /// Held from admission to the end of the hash: `workers + queue` of them.
    admitted: Semaphore,
    /// Held while hashing: `workers` of them.
    running: Semaphore,
}

impl Capacity {
    fn new(workers: usize, queue: usize) -> Capacity {
        Capacity {
            admitted: Semaphore::new(workers + queue),
            running: Semaphore::new(workers),
        }
    }
}

/// Hashes and verifies passwords off the async threads, a bounded number at a time.
pub(super) struct Passwords {
    sign_up: Capacity,
    log_in: Capacity,
}

impl Passwords {
    /// Log-ins get one worker per CPU, sign-ups half as many (at least one); each lane lets
    /// `queue` more wait.
    pub(super) fn new(queue: usize) -> Passwords {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Passwords::with_workers(cpus.div_ceil(2), cpus, queue)
    }

    fn with_workers(sign_up: usize, log_in: usize, queue: usize) -> Passwords {
        Passwords {
            sign_up: Capacity::new(sign_up.max(1), queue),
            log_in: Capacity::new(log_in.max(1), queue),
        }
    }

    /// A place in `lane`'s queue, or [`AuthError::RateLimited`] at once when it is full. Take
    /// it before doing anything else for the request, so a refusal costs nothing and counts
    /// for nothing.
    pub(super) fn admit(&self, lane: Lane) -> Result<Admitted<'_>, AuthError> {
        let capacity = match lane {
            Lane::SignUp => &self.sign_up,
            Lane::LogIn => &self.log_in,
        };
        match capacity.admitted.try_acquire() {
            Ok(place) => Ok(Admitted {
                running: &capacity.running,
                _place: place,
            }),
            Err(_) => {
                tracing::warn!(?lane, "password hashing queue full: refused");
                Err(AuthError::RateLimited {
                    reason: "the server is busy",
                    retry_after_secs: 1,
                })
            }
        }
    }

    /// An argon2id PHC string for `password`, in `lane`.
    pub(super) async fn hash(&self, password: &str, lane: Lane) -> Result<String, AuthError> {
        self.admit(lane)?.hash(password).await
    }

    /// Whether `password` matches `hash`, in the log-in lane.
    #[cfg(test)]
    async fn verify(&self, password: &str, hash: String) -> Result<bool, AuthError> {
        self.admit(Lane::LogIn)?.verify(password, hash).await
    }
}

/// A place in a lane's queue: one hash or verification may be run with it.
pub(super) struct Admitted<'a> {
    running: &'a Semaphore,
    _place: SemaphorePermit<'a>,
}

impl Admitted<'_> {
    /// An argon2id PHC string for `password` (argon2's default, OWASP-recommended parameters).
    pub(super) async fn hash(self, password: &str) -> Result<String, AuthError> {
        let password = password.to_owned();
        self.blocking(move || {
            let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
                .map_err(|err| anyhow!("cannot encode a salt: {err}"))?;
            let hash = Argon2::default()
                .hash_password(password.as_bytes(), &salt)
                .map_err(|err| anyhow!("cannot hash a password: {err}"))?;
            Ok(hash.to_string())
        })
        .await
    }

    /// Whether `password` matches `hash` (a PHC string; its own parameters are used).
    pub(super) async fn verify(self, password: &str, hash: String) -> Result<bool, AuthError> {
        let password = password.to_owned();
        self.blocking(move || {
            let parsed = PasswordHash::new(&hash)
                .map_err(|err| anyhow!("unreadable password hash: {err}"))?;
            match Argon2::default().verify_password(password.as_bytes(), &parsed) {
                Ok(()) => Ok(true),
                Err(argon2::password_hash::Error::Password) => Ok(false),
                Err(err) => Err(anyhow!("cannot verify a password: {err}")),
            }
        })
        .await
    }

    /// Waits for a worker, then runs `work` on the blocking pool.
    async fn blocking<T: Send + 'static>(
        self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, AuthError> {
        let _running = self
            .running
            .acquire()
            .await
            .context("password hashing is shut down")?;
        Ok(tokio::task::spawn_blocking(work)
            .await
            .context("password hashing task failed")??)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_sign_up_lane_refuses_at_once_and_leaves_log_ins_alone() {
        let passwords = Passwords::with_workers(1, 1, 2);
        let hash = passwords
            .hash("a good password", Lane::SignUp)
            .await
            .unwrap();
        // A flood of sign-ups has taken every place of its lane (1 hashing + 2 waiting).
        let flood = passwords.sign_up.admitted.try_acquire_many(3).unwrap();
        let refused = passwords.hash("another password", Lane::SignUp).await;
        assert!(
            matches!(refused, Err(AuthError::RateLimited { .. })),
            "{refused:?}"
        );
        // Log-ins have their own lane.
        assert!(
            passwords
                .verify("a good password", hash.clone())
                .await
                .unwrap()
        );
        drop(flood);
        passwords
            .hash("another password", Lane::SignUp)
            .await
            .unwrap();
        // And a flood of log-ins does not stop sign-ups either.
        let _flood = passwords.log_in.admitted.try_acquire_many(3).unwrap();
        assert!(matches!(
            passwords.verify("a good password", hash).await,
            Err(AuthError::RateLimited { .. })
        ));
        passwords
            .hash("a third password", Lane::SignUp)
            .await
            .unwrap();
    }
}
