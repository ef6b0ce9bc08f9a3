//! Refresh tokens and the sessions (token families) they belong to. A client only ever holds the
//! token itself (32 random bytes, base64url); the database holds its sha256. Each token is
//! exchanged once: the exchange marks it used and adds its successor to the family, and a used
//! token presented again means it leaked, so the whole family is revoked.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{AuthError, pg_interval};

/// A new refresh token: what the client gets, and what is stored.
pub(super) struct NewToken {
    pub token: String,
    pub hash: [u8; 32],
}

impl NewToken {
    pub fn generate() -> NewToken {
        let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let hash = digest(&token);
        NewToken { token, hash }
    }
}

/// The stored form of a presented token.
pub(super) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A refresh token now in the database.
pub(super) struct Issued {
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

/// Starts a session for `user_id`: a new family holding its first token.
pub(super) async fn start_family(
    pool: &PgPool,
    user_id: Uuid,
    ttl: chrono::Duration,
) -> Result<Issued, AuthError> {
    let family_id = Uuid::now_v7();
    let new = NewToken::generate();
    let expires_at = sqlx::query_scalar!(
        r#"
        WITH family AS (
            INSERT INTO refresh_token_families (id, user_id) VALUES ($1, $2) RETURNING id
        )
        INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
        SELECT $3, id, now() + $4::interval FROM family
        RETURNING expires_at
        "#,
        family_id,
        user_id,
        &new.hash[..],
        pg_interval(ttl)?,
    )
    .fetch_one(pool)
    .await?;
    Ok(Issued {
        user_id,
        family_id,
        token: new.token,
        expires_at,
    })
}

/// Exchanges `token` for its successor in the same family.
///
/// The exchange is one conditional `UPDATE` (unused, unexpired, family not revoked): of two
/// concurrent exchanges of one token, the second waits for the first and then finds it used,
/// which is reuse.
pub(super) async fn rotate(
    pool: &PgPool,
    token: &str,
    ttl: chrono::Duration,
) -> Result<Issued, AuthError> {
    let hash = digest(token);
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query!(
        r#"
        UPDATE refresh_tokens t SET used_at = now()
          FROM refresh_token_families f
         WHERE t.token_hash = $1
           AND f.id = t.family_id
           AND t.used_at IS NULL
           AND t.expires_at > now()
           AND f.revoked_at IS NULL
        RETURNING t.family_id, f.user_id
        "#,
        &hash[..]
    )
    .fetch_optional(&mut *tx)
    .await?;

    let Some(claimed) = claimed else {
        let found = sqlx::query!(
            r#"
            SELECT t.family_id,
                   t.used_at IS NOT NULL AS "used!",
                   f.revoked_at IS NOT NULL AS "revoked!"
              FROM refresh_tokens t JOIN refresh_token_families f ON f.id = t.family_id
             WHERE t.token_hash = $1
            "#,
            &hash[..]
        )
        .fetch_optional(&mut *tx)
        .await?;
        return match found {
            Some(found) if found.used && !found.revoked => {
                revoke(&mut tx, found.family_id).await?;
                super::sessions::ended(&mut tx).await?;
                tx.commit().await?;
                tracing::warn!(family_id = %found.family_id, "refresh token reused: session revoked");
                Err(AuthError::TokenReused)
            }
            // Unknown, expired, or of a session already ended.
            _ => Err(AuthError::InvalidToken),
        };
    };

    let new = NewToken::generate();
    let expires_at = sqlx::query_scalar!(
        r#"
        INSERT INTO refresh_tokens (token_hash, family_id, expires_at)
        VALUES ($1, $2, now() + $3::interval)
        RETURNING expires_at
        "#,
        &new.hash[..],
        claimed.family_id,
        pg_interval(ttl)?,
    )
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Issued {
        user_id: claimed.user_id,
        family_id: claimed.family_id,
        token: new.token,
        expires_at,
    })
}

/// Ends the session `token` belongs to (used or not). Ending an ended session is not an error.
pub(super) async fn end_family(pool: &PgPool, token: &str) -> Result<Uuid, AuthError> {
    let hash = digest(token);
    let family_id = sqlx::query_scalar!(
        r#"SELECT family_id FROM refresh_tokens WHERE token_hash = $1"#,
        &hash[..]
    )
    .fetch_optional(pool)
    .await?
    .ok_or(AuthError::InvalidToken)?;
    end_session(pool, family_id).await?;
    Ok(family_id)
}

/// Ends session `family_id`, telling every node in the same transaction. Ending an ended
/// session is not an error.
pub(super) async fn end_session(pool: &PgPool, family_id: Uuid) -> Result<(), AuthError> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        r#"UPDATE refresh_token_families SET revoked_at = COALESCE(revoked_at, now())
            WHERE id = $1"#,
        family_id
    )
    .execute(&mut *tx)
    .await?;
    super::sessions::ended(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether session `family_id` of `user_id` exists and has not been revoked.
pub(super) async fn is_active(
    pool: &PgPool,
    family_id: Uuid,
    user_id: Uuid,
) -> Result<bool, AuthError> {
    let active = sqlx::query_scalar!(
        r#"
        SELECT revoked_at IS NULL AS "active!"
          FROM refresh_token_families WHERE id = $1 AND user_id = $2
        "#,
        family_id,
        user_id
    )
    .fetch_optional(pool)
    .await?;
    Ok(active == Some(true))
}

async fn revoke(conn: &mut sqlx::PgConnection, family_id: Uuid) -> Result<(), AuthError> {
    sqlx::query!(
        r#"UPDATE refresh_token_families SET revoked_at = now()
           WHERE id = $1 AND revoked_at IS NULL"#,
        family_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
