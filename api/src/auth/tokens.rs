//! Access tokens: short-lived HS256 JWTs naming the user (`sub`) and the session (`sid`, the
//! refresh-token family), signed with a key every node shares.
//!
//! Keys rotate: each token names its key in the `kid` header (derived from the key itself, so
//! every node agrees without configuring names). A node signs with the current key and also
//! verifies with the previous one while it is configured; a token naming any other key is
//! refused. Tokens without a `kid` (issued before key ids existed) are checked against the
//! current key only.

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{AuthError, AuthSettings};

/// The `server_secrets` row holding the generated signing key.
const SECRET_NAME: &str = "jwt_hs256";
/// Length of a generated signing key, and the least accepted for a configured one.
const SECRET_BYTES: usize = 32;
/// Clock skew tolerated between nodes when checking `exp`.
const LEEWAY_SECS: u64 = 5;

/// What an access token says.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Claims {
    pub sub: Uuid,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    pub jti: Uuid,
}

/// One signing key, with its id.
struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Key {
    fn new(secret: &[u8]) -> Key {
        Key {
            kid: key_id(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// A key's public name: 16 hex digits of a domain-separated sha256 of it. Says nothing usable
/// about a key of at least [`SECRET_BYTES`] bytes.
fn key_id(secret: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"chronicle access token key id\0")
        .chain_update(secret)
        .finalize();
    hex::encode(&digest[..8])
}

/// Signs and verifies access tokens.
pub(super) struct AccessTokens {
    current: Key,
    /// Accepted for verification only, during a rotation.
    previous: Option<Key>,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: chrono::Duration,
}

impl AccessTokens {
    /// Signs with `secret`; verifies with it and with `previous`.
    pub fn new(secret: &[u8], previous: Option<&[u8]>, settings: &AuthSettings) -> AccessTokens {
        // Only HS256: a token naming any other algorithm (or `none`) is refused before its
        // signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.validate_exp = true;
        validation.leeway = LEEWAY_SECS;
        AccessTokens {
            current: Key::new(secret),
            previous: previous.map(Key::new),
            validation,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
            ttl: settings.access_ttl,
        }
    }

    /// A token for `user_id` in session `session_id`, and when it expires.
    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        let now = Utc::now();
        let expires_at = now
            .checked_add_signed(self.ttl)
            .and_then(|at| DateTime::from_timestamp(at.timestamp(), 0))
            .context("access token expiry out of range")?;
        let claims = Claims {
            sub: user_id,
            sid: session_id,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::new_v4(),
        };
        let header = Header {
            kid: Some(self.current.kid.clone()),
            ..Header::new(Algorithm::HS256)
        };
        let token = jsonwebtoken::encode(&header, &claims, &self.current.encoding)
            .context("cannot sign an access token")?;
        Ok((token, expires_at))
    }

    /// The claims of a genuine, unexpired token of this issuer for this audience, signed with
    /// the key its `kid` names (the current or the previous one).
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let refused = |err: jsonwebtoken::errors::Error| {
            tracing::debug!(%err, "access token refused");
            AuthError::InvalidToken
        };
        let header = jsonwebtoken::decode_header(token).map_err(refused)?;
        let key = match header.kid.as_deref() {
            None => &self.current,
            Some(kid) => [Some(&self.current), self.previous.as_ref()]
                .into_iter()
                .flatten()
                .find(|key| key.kid == kid)
                .ok_or_else(|| {
                    tracing::debug!(kid, "access token of an unknown key refused");
                    AuthError::InvalidToken
                })?,
        };
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(refused)
    }
}

/// The previous signing key, if configured (at least [`SECRET_BYTES`], not the current one).
pub(super) fn previous_secret(settings: &AuthSettings) -> anyhow::Result<Option<Vec<u8>>> {
    let Some(previous) = settings.jwt_previous_secret.as_deref() else {
        return Ok(None);
    };
    if settings.jwt_secret.is_none() {
        bail!("CHRONICLE_JWT_PREVIOUS_SECRET is set but CHRONICLE_JWT_SECRET is not");
    }
    if previous.len() < SECRET_BYTES {
        bail!("the previous JWT secret must be at least {SECRET_BYTES} bytes long");
    }
    if settings.jwt_secret.as_deref() == Some(previous) {
        bail!("the previous JWT secret is the current one");
    }
    Ok(Some(previous.as_bytes().to_vec()))
}

/// The signing key: the configured one, or else the one stored in `server_secrets`, generated by
/// whichever node needs it first (every node on the database then reads the same key).
pub(super) async fn signing_secret(
    pool: &PgPool,
    configured: Option<&str>,
) -> anyhow::Result<Vec<u8>> {
    if let Some(secret) = configured {
        if secret.len() < SECRET_BYTES {
            bail!("the JWT secret must be at least {SECRET_BYTES} bytes long");
        }
        return Ok(secret.as_bytes().to_vec());
    }
    let secret = crate::secrets::shared_secret(pool, SECRET_NAME)
        .await
        .context("cannot read or store the JWT signing key")?;
    if secret.len() < SECRET_BYTES {
        bail!("the stored JWT signing key is too short");
    }
    Ok(secret)
}
