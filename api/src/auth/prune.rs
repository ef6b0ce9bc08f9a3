//! Forgetting what authentication no longer needs: refresh tokens long expired, sessions long
//! ended, and throttle counters whose window or delay is over. Deletes run in small batches,
//! each its own short statement, so pruning never holds a long transaction (which would pin
//! the event log's read horizon) nor many locks at once.

use sqlx::PgPool;
use uuid::Uuid;

use super::{AuthError, AuthSettings, pg_interval};

/// What one pruning pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub refresh_tokens: u64,
    pub sessions: u64,
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
    let retention = pg_interval(retention)?;
    let limit = i64::from(batch.max(1));
    let mut pruned = Pruned::default();

    // Expired tokens, then their sessions if nothing is left of them.
    loop {
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
        pruned.refresh_tokens += families.len() as u64;
        pruned.sessions += delete_empty_sessions(pool, &families).await?;
        if (families.len() as i64) < limit {
            break;
        }
    }
    // Sessions ended long ago: their tokens, then them.
    loop {
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
        pruned.refresh_tokens += families.len() as u64;
        if (families.len() as i64) < limit {
            break;
        }
    }
    loop {
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
        .await?
        .rows_affected();
        pruned.sessions += deleted;
        if (deleted as i64) < limit {
            break;
        }
    }

    // Address windows that are over (and the per-account rows no longer written).
    let window = pg_interval(settings.address_window)?;
    loop {
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
        .await?
        .rows_affected();
        pruned.throttle_rows += deleted;
        if (deleted as i64) < limit {
            break;
        }
    }
    // Failures forgotten anyway (`backoff_reset`) whose delay is over.
    let reset = pg_interval(settings.backoff_reset)?;
    loop {
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
        .await?
        .rows_affected();
        pruned.throttle_rows += deleted;
        if (deleted as i64) < limit {
            break;
        }
    }
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
