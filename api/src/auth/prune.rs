//! Forgetting what authentication no longer needs: refresh tokens long expired, sessions long
//! ended, console sign-ins long expired, and throttle counters whose window or delay is over, in short batches
//! ([`in_batches`]; see [`crate::pruning`]).

use sqlx::PgPool;
use uuid::Uuid;

use super::{AuthError, AuthSettings, pg_interval};
use crate::pruning::in_batches;

/// What one pruning pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub console_sessions: u64,
    pub throttle_rows: u64,
}

/// Deletes refresh tokens expired, and sessions ended, more than `retention` ago (a session
/// whose tokens have all gone is over too), and throttle rows past their window or delay;
/// `batch` rows per statement at most.
pub(super) async fn prune(
    pool: &PgPool,
    settings: &AuthSettings,
    retention: chrono::Duration,
    batch: u32,
) -> Result<Pruned, AuthError> {
    let retention = &pg_interval(retention)?;
    let limit = i64::from(batch.max(1));
    let mut pruned = Pruned::default();
    let sessions = &std::sync::atomic::AtomicU64::new(0);

    // Expired tokens, then their sessions if nothing is left of them.
    pruned.refresh_tokens += in_batches(limit, move || async move {
        let families = sqlx::query_scalar!(
            r#"
            DELETE FROM refresh_tokens WHERE token_hash IN (
                SELECT token_hash FROM refresh_tokens
                 WHERE expires_at < now() - $1::interval LIMIT $2)
            RETURNING family_id
            "#,
            retention,
            limit
        )
        .fetch_all(pool)
        .await?;
        let emptied = delete_empty_sessions(pool, &families).await?;
        sessions.fetch_add(emptied, std::sync::atomic::Ordering::Relaxed);
        Ok::<_, AuthError>(families.len() as u64)
    })
    .await?;
    // Sessions ended long ago: their tokens, then them.
    pruned.refresh_tokens += in_batches(limit, move || async move {
        let families = sqlx::query_scalar!(
            r#"
            DELETE FROM refresh_tokens WHERE token_hash IN (
                SELECT t.token_hash
                  FROM refresh_token_families f JOIN refresh_tokens t ON t.family_id = f.id
                 WHERE f.revoked_at < now() - $1::interval LIMIT $2)
            RETURNING family_id
            "#,
            retention,
            limit
        )
        .fetch_all(pool)
        .await?;
        Ok::<_, AuthError>(families.len() as u64)
    })
    .await?;
    pruned.sessions += in_batches(limit, move || async move {
        let deleted = sqlx::query!(
            r#"
            DELETE FROM refresh_token_families WHERE id IN (
                SELECT id FROM refresh_token_families f
                 WHERE revoked_at < now() - $1::interval
                   AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)
                 LIMIT $2)
            "#,
            retention,
            limit
        )
        .execute(pool)
        .await?;
        Ok::<_, AuthError>(deleted.rows_affected())
    })
    .await?;

    // Console sign-ins expired long ago.
    pruned.console_sessions += in_batches(limit, move || async move {
        let deleted = sqlx::query!(
            r#"
            DELETE FROM console_sessions WHERE token_hash IN (
                SELECT token_hash FROM console_sessions
                 WHERE expires_at < now() - $1::interval LIMIT $2)
            "#,
            retention,
            limit
        )
        .execute(pool)
        .await?;
        Ok::<_, AuthError>(deleted.rows_affected())
    })
    .await?;

    // Address windows that are over (and the per-account rows no longer written).
    let window = &pg_interval(settings.address_window)?;
    pruned.throttle_rows += in_batches(limit, move || async move {
        let deleted = sqlx::query!(
            r#"
            DELETE FROM login_throttle l
             WHERE l.window_start < now() - $1::interval
               AND (l.kind, l.subject) IN (
                   SELECT kind, subject FROM login_throttle
                    WHERE window_start < now() - $1::interval LIMIT $2)
            "#,
            window,
            limit
        )
        .execute(pool)
        .await?;
        Ok::<_, AuthError>(deleted.rows_affected())
    })
    .await?;
    // Failures forgotten anyway (`backoff_reset`) whose delay is over.
    let reset = &pg_interval(settings.backoff_reset)?;
    pruned.throttle_rows += in_batches(limit, move || async move {
        let deleted = sqlx::query!(
            r#"
            DELETE FROM login_backoff b
             WHERE b.last_failure_at < now() - $1::interval AND b.next_attempt_at < now()
               AND (b.account, b.address) IN (
                   SELECT account, address FROM login_backoff
                    WHERE last_failure_at < now() - $1::interval AND next_attempt_at < now()
                    LIMIT $2)
            "#,
            reset,
            limit
        )
        .execute(pool)
        .await?;
        Ok::<_, AuthError>(deleted.rows_affected())
    })
    .await?;
    pruned.sessions += sessions.load(std::sync::atomic::Ordering::Relaxed);
    Ok(pruned)
}

/// Deletes those of `families` that have no refresh token left.
async fn delete_empty_sessions(pool: &PgPool, families: &[Uuid]) -> Result<u64, AuthError> {
    if families.is_empty() {
        return Ok(0);
    }
    let deleted = sqlx::query!(
        r#"
        DELETE FROM refresh_token_families f
         WHERE f.id = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.family_id = f.id)
        "#,
        families
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(deleted)
}
