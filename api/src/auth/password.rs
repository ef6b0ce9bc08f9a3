//! Password rules and argon2id hashing. Hashing is CPU- and memory-heavy by design, so it runs on
//! the blocking pool, at most one hash per CPU at a time: a burst of log-ins queues instead of
//! exhausting memory.

use anyhow::{Context, anyhow};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use tokio::sync::Semaphore;

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

/// Hashes and verifies passwords off the async threads, a bounded number at a time.
pub(super) struct Passwords {
    permits: Semaphore,
}

impl Passwords {
    pub(super) fn new() -> Passwords {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        Passwords {
            permits: Semaphore::new(cpus),
        }
    }

    /// An argon2id PHC string for `password` (argon2's default, OWASP-recommended parameters).
    pub(super) async fn hash(&self, password: &str) -> anyhow::Result<String> {
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
    pub(super) async fn verify(&self, password: &str, hash: String) -> anyhow::Result<bool> {
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

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("password hashing is shut down")?;
        tokio::task::spawn_blocking(work)
            .await
            .context("password hashing task failed")?
    }
}
