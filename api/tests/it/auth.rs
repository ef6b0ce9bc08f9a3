//! The auth module against a real database: passwords, log-in throttling, refresh-token
//! rotation and reuse detection, log-out, access-token verification, and several nodes sharing
//! one database.

use std::net::IpAddr;

use api::auth::{Auth, AuthError, AuthSettings, Session};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pgcluster::TestDatabase;
use serde_json::{Value, json};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery staple";
const SECRET: &str = "a test signing key that is long enough, really";

async fn setup(settings: AuthSettings) -> (TestDatabase, Auth) {
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let auth = Auth::new(db.pool().clone(), settings).await.unwrap();
    (db, auth)
}

/// Signs a user up the way the sign-up mutation does: user row and credentials in one
/// transaction.
async fn sign_up(db: &TestDatabase, auth: &Auth, email: &str) -> Uuid {
    let hash = auth.hash_password(PASSWORD).await.unwrap();
    let id = Uuid::now_v7();
    let mut tx = db.pool().begin().await.unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, email_normalized, display_name, referral_code,
                            created_at, updated_at, version)
         VALUES ($1, $2, lower($2), 'Test User', $3, now(), now(), 1)",
    )
    .bind(id)
    .bind(email)
    .bind(id.simple().to_string())
    .execute(&mut *tx)
    .await
    .unwrap();
    Auth::store_credentials(&mut tx, id, &hash).await.unwrap();
    tx.commit().await.unwrap();
    id
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

fn assert_invalid_token<T: std::fmt::Debug>(result: Result<T, AuthError>) {
    assert!(
        matches!(result, Err(AuthError::InvalidToken)),
        "expected InvalidToken, got {result:?}"
    );
}

// --- passwords ---------------------------------------------------------------------------

#[tokio::test]
async fn a_stored_password_logs_in_and_weak_passwords_are_refused() {
    let (db, auth) = setup(AuthSettings::default()).await;
    let user = sign_up(&db, &auth, "Ada@Example.com").await;

    let stored: String =
        sqlx::query_scalar("SELECT password_hash FROM user_credentials WHERE user_id = $1")
            .bind(user)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert!(stored.starts_with("$argon2id$"), "{stored}");
    assert!(!stored.contains(PASSWORD));

    // Case and surrounding spaces of the email do not matter.
    let session = auth
        .log_in("  ada@EXAMPLE.com ", PASSWORD, None)
        .await
        .unwrap();
    assert_eq!(session.user_id, user);
    let principal = auth.authenticate(&session.access_token).await.unwrap();
    assert_eq!(principal.user_id, user);

    let too_short = "password must be at least 8 characters";
    let too_long = "password must be at most 256 characters";
    // The bounds count characters, not bytes.
    for (weak, why) in [
        ("", too_short),
        ("short", too_short),
        ("7 chars", too_short),
        ("ééééééé", too_short),
        (&"x".repeat(257), too_long),
        (&"é".repeat(257), too_long),
    ] {
        let result = auth.hash_password(weak).await;
        assert!(
            matches!(&result, Err(AuthError::WeakPassword(message)) if message == why),
            "{weak:?}: {result:?}"
        );
    }
    for strong in ["éééééééé".to_owned(), "é".repeat(256)] {
        let hash = auth.hash_password(&strong).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_email_fail_alike() {
    let (db, auth) = setup(AuthSettings::default()).await;
    sign_up(&db, &auth, "ada@example.com").await;

    let wrong = auth
        .log_in("ada@example.com", "not the password", None)
        .await
        .err()
        .unwrap();
    let unknown = auth
        .log_in("nobody@example.com", PASSWORD, None)
        .await
        .err()
        .unwrap();
    assert!(matches!(wrong, AuthError::InvalidCredentials), "{wrong:?}");
    assert!(
        matches!(unknown, AuthError::InvalidCredentials),
        "{unknown:?}"
    );
    assert_eq!(wrong.to_string(), unknown.to_string());
}

// --- throttling --------------------------------------------------------------------------

/// Settings whose delays are long enough that no test outruns one by accident.
fn patient() -> AuthSettings {
    AuthSettings {
        backoff_base: chrono::Duration::hours(1),
        backoff_max: chrono::Duration::hours(10),
        ..AuthSettings::default()
    }
}

fn retry_after<T: std::fmt::Debug>(result: Result<T, AuthError>) -> u64 {
    match result {
        Err(AuthError::RateLimited {
            retry_after_secs, ..
        }) => retry_after_secs,
        other => panic!("expected RateLimited, got {other:?}"),
    }
}

/// Lets the pending delays of every (account, address) pair pass.
async fn delays_pass(db: &TestDatabase) {
    sqlx::query("UPDATE login_backoff SET next_attempt_at = now()")
        .execute(db.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn failures_from_one_address_delay_that_address_only_and_the_delays_grow() {
    let (db, auth) = setup(patient()).await;
    sign_up(&db, &auth, "ada@example.com").await;
    let attacker = ip("198.51.100.66");

    for attempt in 1..=5 {
        let result = auth.log_in("ada@example.com", "guess", attacker).await;
        assert!(
            matches!(result, Err(AuthError::InvalidCredentials)),
            "attempt {attempt}: {:?}",
            result.err()
        );
    }
    // Sixth attempt from there: delayed, even with the right password, whatever the email's
    // case.
    let first_delay = retry_after(auth.log_in("ADA@example.com", PASSWORD, attacker).await);
    assert!((3_000..=3_600).contains(&first_delay), "{first_delay}");

    // The owner, elsewhere, is not held back — nor is an address that has no account failures.
    auth.log_in("ada@example.com", PASSWORD, ip("203.0.113.9"))
        .await
        .unwrap();
    auth.log_in("ada@example.com", PASSWORD, None)
        .await
        .unwrap();

    // The delay passes: one more try, and the next delay is twice as long.
    delays_pass(&db).await;
    let result = auth.log_in("ada@example.com", "guess", attacker).await;
    assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    let second_delay = retry_after(auth.log_in("ada@example.com", "guess", attacker).await);
    assert!((6_000..=7_200).contains(&second_delay), "{second_delay}");

    // A success from that address (once its delay passed) forgets its failures.
    delays_pass(&db).await;
    auth.log_in("ada@example.com", PASSWORD, attacker)
        .await
        .unwrap();
    for _ in 1..=5 {
        let result = auth.log_in("ada@example.com", "guess", attacker).await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    }
    retry_after(auth.log_in("ada@example.com", "guess", attacker).await);
}

#[tokio::test]
async fn failures_are_forgotten_a_day_after_the_last_one() {
    let (db, auth) = setup(patient()).await;
    sign_up(&db, &auth, "ada@example.com").await;
    for _ in 1..=5 {
        let result = auth.log_in("ada@example.com", "guess", None).await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    }
    retry_after(auth.log_in("ada@example.com", PASSWORD, None).await);
    sqlx::query(
        "UPDATE login_backoff SET last_failure_at = last_failure_at - interval '25 hours',
                                  next_attempt_at = now()",
    )
    .execute(db.pool())
    .await
    .unwrap();
    // Five free failures again, not a doubled delay after the first.
    for _ in 1..=5 {
        let result = auth.log_in("ada@example.com", "guess", None).await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    }
}

#[tokio::test]
async fn unknown_emails_are_throttled_like_known_ones() {
    let settings = AuthSettings {
        free_failures: 2,
        ..patient()
    };
    let (_db, auth) = setup(settings).await;
    for _ in 0..2 {
        let result = auth.log_in("nobody@example.com", PASSWORD, None).await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    }
    retry_after(auth.log_in("nobody@example.com", PASSWORD, None).await);
}

#[tokio::test]
async fn an_address_is_limited_in_log_ins_across_accounts_successful_or_not() {
    let settings = AuthSettings {
        logins_per_address: 3,
        ..AuthSettings::default()
    };
    let (db, auth) = setup(settings).await;
    sign_up(&db, &auth, "ada@example.com").await;

    let client = ip("2001:db8:1:2::10");
    auth.log_in("ada@example.com", PASSWORD, client)
        .await
        .unwrap();
    for n in 0..2 {
        let email = format!("victim{n}@example.com");
        let result = auth.log_in(&email, "guess", client).await;
        assert!(matches!(result, Err(AuthError::InvalidCredentials)));
    }
    // Another address in the same IPv6 /64 is the same client, even with good credentials.
    let wait = retry_after(
        auth.log_in("ada@example.com", PASSWORD, ip("2001:db8:1:2::99"))
            .await,
    );
    assert!((1..=15 * 60).contains(&wait), "{wait}");
    // Elsewhere, the account logs in.
    auth.log_in("ada@example.com", PASSWORD, ip("2001:db8:1:3::10"))
        .await
        .unwrap();
    auth.log_in("ada@example.com", PASSWORD, ip("192.0.2.1"))
        .await
        .unwrap();

    // The window passes.
    sqlx::query("UPDATE login_throttle SET window_start = window_start - interval '16 minutes'")
        .execute(db.pool())
        .await
        .unwrap();
    auth.log_in("ada@example.com", PASSWORD, client)
        .await
        .unwrap();
}

#[tokio::test]
async fn sign_ups_are_limited_per_address() {
    let settings = AuthSettings {
        signups_per_address: 2,
        ..AuthSettings::default()
    };
    let (_db, auth) = setup(settings).await;
    let client = ip("198.51.100.1");
    auth.admit_sign_up(client).await.unwrap();
    auth.admit_sign_up(client).await.unwrap();
    retry_after(auth.admit_sign_up(client).await);
    auth.admit_sign_up(ip("198.51.100.2")).await.unwrap();
}

// --- refresh, reuse, log-out -------------------------------------------------------------

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_whole_session() {
    let (db, auth) = setup(AuthSettings::default()).await;
    let user = sign_up(&db, &auth, "ada@example.com").await;
    let first = auth
        .log_in("ada@example.com", PASSWORD, None)
        .await
        .unwrap();

    let second = auth.refresh(&first.refresh_token).await.unwrap();
    assert_eq!(second.user_id, user);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    let principal = auth.authenticate(&second.access_token).await.unwrap();
    let original = auth.authenticate(&first.access_token).await.unwrap();
    assert_eq!(principal, original, "rotation stays in the same session");

    let third = auth.refresh(&second.refresh_token).await.unwrap();
    auth.authenticate(&third.access_token).await.unwrap();

    // The first token comes back: it leaked.
    let reuse = auth.refresh(&first.refresh_token).await;
    assert!(
        matches!(reuse, Err(AuthError::TokenReused)),
        "{:?}",
        reuse.err()
    );
    // Everything of that session is dead, the newest tokens included.
    assert_invalid_token(auth.refresh(&third.refresh_token).await);
    assert_invalid_token(auth.authenticate(&third.access_token).await);
    assert_invalid_token(auth.authenticate(&first.access_token).await);
    // Other sessions of the same user are untouched.
    let other = auth
        .log_in("ada@example.com", PASSWORD, None)
        .await
        .unwrap();
    auth.authenticate(&other.access_token).await.unwrap();
    auth.refresh(&other.refresh_token).await.unwrap();
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let (db, auth) = setup(AuthSettings::default()).await;
    let session = auth.issue_session(Uuid::now_v7()).await.unwrap();
    let raw = URL_SAFE_NO_PAD.decode(&session.refresh_token).unwrap();
    assert_eq!(raw.len(), 32);
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_all(db.pool())
        .await
        .unwrap();
    use sha2::Digest;
    let expected = sha2::Sha256::digest(session.refresh_token.as_bytes()).to_vec();
    assert_eq!(stored, vec![expected]);
}

#[tokio::test]
async fn unknown_and_expired_refresh_tokens_are_invalid() {
    let settings = AuthSettings {
        jwt_secret: Some(SECRET.into()),
        refresh_ttl: chrono::Duration::minutes(-1),
        ..AuthSettings::default()
    };
    let (db, expired_issuer) = setup(settings).await;
    let auth = Auth::new(
        db.pool().clone(),
        AuthSettings {
            jwt_secret: Some(SECRET.into()),
            ..AuthSettings::default()
        },
    )
    .await
    .unwrap();

    assert_invalid_token(auth.refresh("").await);
    assert_invalid_token(auth.refresh("not-a-token").await);
    assert_invalid_token(auth.log_out("not-a-token").await);
    let session = expired_issuer.issue_session(Uuid::now_v7()).await.unwrap();
    assert_invalid_token(auth.refresh(&session.refresh_token).await);
}

#[tokio::test]
async fn log_out_ends_the_refresh_and_access_tokens() {
    let (_db, auth) = setup(AuthSettings::default()).await;
    let user = Uuid::now_v7();
    let session = auth.issue_session(user).await.unwrap();
    let other = auth.issue_session(user).await.unwrap();
    auth.authenticate(&session.access_token).await.unwrap();

    auth.log_out(&session.refresh_token).await.unwrap();
    assert_invalid_token(auth.authenticate(&session.access_token).await);
    assert_invalid_token(auth.refresh(&session.refresh_token).await);
    // Logging out twice is harmless; the user's other sessions go on.
    auth.log_out(&session.refresh_token).await.unwrap();
    auth.authenticate(&other.access_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_concurrent_refreshes_exactly_one_wins() {
    let (_db, auth) = setup(AuthSettings::default()).await;
    for _ in 0..5 {
        let session = auth.issue_session(Uuid::now_v7()).await.unwrap();
        let (a, b) = tokio::join!(
            tokio::spawn({
                let (auth, token) = (auth.clone(), session.refresh_token.clone());
                async move { auth.refresh(&token).await }
            }),
            tokio::spawn({
                let (auth, token) = (auth.clone(), session.refresh_token.clone());
                async move { auth.refresh(&token).await }
            }),
        );
        let results = [a.unwrap(), b.unwrap()];
        let winners: Vec<&Session> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        let reused = results
            .iter()
            .filter(|r| matches!(r, Err(AuthError::TokenReused)))
            .count();
        assert_eq!((winners.len(), reused), (1, 1));
        // The loser's reuse ended the session, the winner's new tokens included.
        assert_invalid_token(auth.authenticate(&winners[0].access_token).await);
        assert_invalid_token(auth.refresh(&winners[0].refresh_token).await);
    }
}

// --- access tokens -----------------------------------------------------------------------

/// Parts of a genuine token, to tamper with.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn sign(claims: &Value, alg: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(alg),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn access_tokens_must_be_genuine_current_and_for_us() {
    let settings = AuthSettings {
        jwt_secret: Some(SECRET.into()),
        ..AuthSettings::default()
    };
    let (_db, auth) = setup(settings).await;
    let session = auth.issue_session(Uuid::now_v7()).await.unwrap();
    let claims = claims_of(&session.access_token);
    for name in ["sub", "sid", "iat", "exp", "iss", "aud", "jti"] {
        assert!(claims.get(name).is_some(), "{name} missing in {claims}");
    }
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str()),
        (Some("chronicle"), Some("chronicle-api"))
    );

    // Control: re-signing the same claims the same way is accepted, so each refusal below is
    // caused by its one change.
    auth.authenticate(&sign(&claims, Algorithm::HS256, SECRET))
        .await
        .unwrap();

    let with = |name: &str, value: Value| {
        let mut changed = claims.clone();
        changed[name] = value;
        sign(&changed, Algorithm::HS256, SECRET)
    };
    let without = |name: &str| {
        let mut changed = claims.clone();
        changed.as_object_mut().unwrap().remove(name);
        sign(&changed, Algorithm::HS256, SECRET)
    };
    let now = chrono::Utc::now().timestamp();
    let refused = [
        ("expired", with("exp", json!(now - 120))),
        ("wrong audience", with("aud", json!("someone-else"))),
        ("wrong issuer", with("iss", json!("evil"))),
        ("other session", with("sid", json!(Uuid::now_v7()))),
        ("missing exp", without("exp")),
        ("missing sub", without("sub")),
        ("missing aud", without("aud")),
        ("missing iss", without("iss")),
        ("missing sid", without("sid")),
        (
            "other key",
            sign(
                &claims,
                Algorithm::HS256,
                "another key, just as long as ours",
            ),
        ),
        (
            "other HMAC algorithm",
            sign(&claims, Algorithm::HS512, SECRET),
        ),
        ("garbage", "not.a.jwt".to_string()),
        ("empty", String::new()),
    ];
    for (why, token) in refused {
        let result = auth.authenticate(&token).await;
        assert!(
            matches!(result, Err(AuthError::InvalidToken)),
            "{why}: {result:?}"
        );
    }

    // A changed payload under the original signature.
    let mut parts: Vec<String> = session.access_token.split('.').map(String::from).collect();
    let mut forged = claims.clone();
    forged["sub"] = json!(Uuid::now_v7());
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    assert_invalid_token(auth.authenticate(&parts.join(".")).await);

    // A flipped signature byte.
    let token = &session.access_token;
    let mut signature = URL_SAFE_NO_PAD
        .decode(token.rsplit('.').next().unwrap())
        .unwrap();
    signature[0] ^= 1;
    let head = &token[..token.rfind('.').unwrap()];
    let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(signature));
    assert_invalid_token(auth.authenticate(&flipped).await);

    // `alg: none`, hand-made, with an empty signature.
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "None", "typ": "JWT"}),
    ] {
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_invalid_token(auth.authenticate(&unsigned).await);
    }
}

#[tokio::test]
async fn an_access_token_past_its_expiry_is_refused() {
    let settings = AuthSettings {
        access_ttl: chrono::Duration::minutes(-5),
        ..AuthSettings::default()
    };
    let (_db, auth) = setup(settings).await;
    let session = auth.issue_session(Uuid::now_v7()).await.unwrap();
    assert!(session.access_expires_at < chrono::Utc::now());
    assert_invalid_token(auth.authenticate(&session.access_token).await);
    // The refresh token is still good for a new (here: again expired) access token.
    auth.refresh(&session.refresh_token).await.unwrap();
}

// --- key rotation ------------------------------------------------------------------------

const OLD_SECRET: &str = "the key we used until today, long enough";
const NEW_SECRET: &str = "the key we use from today on, long enough";

fn header_of(token: &str) -> Value {
    let header = token.split('.').next().unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
}

async fn auth_with(db: &TestDatabase, secret: &str, previous: Option<&str>) -> Auth {
    let settings = AuthSettings {
        jwt_secret: Some(secret.into()),
        jwt_previous_secret: previous.map(str::to_string),
        ..AuthSettings::default()
    };
    Auth::new(db.pool().clone(), settings).await.unwrap()
}

#[tokio::test]
async fn the_previous_key_is_accepted_while_configured_and_refused_after() {
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let before = auth_with(&db, OLD_SECRET, None).await;
    let old = before.issue_session(Uuid::now_v7()).await.unwrap();
    let old_kid = header_of(&old.access_token)["kid"].clone();
    assert!(old_kid.is_string(), "{}", header_of(&old.access_token));

    // Rotation: the new key signs, the old one still verifies.
    let rotating = auth_with(&db, NEW_SECRET, Some(OLD_SECRET)).await;
    rotating.authenticate(&old.access_token).await.unwrap();
    let new = rotating.issue_session(Uuid::now_v7()).await.unwrap();
    let new_kid = header_of(&new.access_token)["kid"].clone();
    assert!(
        new_kid.is_string() && new_kid != old_kid,
        "{new_kid} {old_kid}"
    );
    rotating.authenticate(&new.access_token).await.unwrap();
    // A node not rotated yet does not know the new key.
    assert_invalid_token(before.authenticate(&new.access_token).await);

    // The grace period is over: the old key is gone.
    let after = auth_with(&db, NEW_SECRET, None).await;
    assert_invalid_token(after.authenticate(&old.access_token).await);
    after.authenticate(&new.access_token).await.unwrap();
}

#[tokio::test]
async fn a_token_naming_an_unknown_or_wrong_key_is_refused() {
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    let auth = auth_with(&db, NEW_SECRET, Some(OLD_SECRET)).await;
    let session = auth.issue_session(Uuid::now_v7()).await.unwrap();
    let claims = claims_of(&session.access_token);
    let new_kid = header_of(&session.access_token)["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let old_kid = header_of(
        &auth_with(&db, OLD_SECRET, None)
            .await
            .issue_session(Uuid::now_v7())
            .await
            .unwrap()
            .access_token,
    )["kid"]
        .as_str()
        .unwrap()
        .to_string();
    let signed = |kid: Option<&str>, secret: &str| {
        let header = Header {
            kid: kid.map(str::to_string),
            ..Header::new(Algorithm::HS256)
        };
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    // Controls: each key under its own id is accepted, and so is the current key with no id
    // (tokens issued before key ids).
    auth.authenticate(&signed(Some(&new_kid), NEW_SECRET))
        .await
        .unwrap();
    auth.authenticate(&signed(Some(&old_kid), OLD_SECRET))
        .await
        .unwrap();
    auth.authenticate(&signed(None, NEW_SECRET)).await.unwrap();

    for (why, token) in [
        ("unknown kid", signed(Some("0123456789abcdef"), NEW_SECRET)),
        ("empty kid", signed(Some(""), NEW_SECRET)),
        ("new kid, old key", signed(Some(&new_kid), OLD_SECRET)),
        ("old kid, new key", signed(Some(&old_kid), NEW_SECRET)),
        ("no kid, old key", signed(None, OLD_SECRET)),
    ] {
        let result = auth.authenticate(&token).await;
        assert!(
            matches!(result, Err(AuthError::InvalidToken)),
            "{why}: {result:?}"
        );
    }
}

#[test]
fn production_without_a_jwt_secret_refuses_to_start() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chronicle"))
        .arg("serve")
        .env("CHRONICLE_ENV", "production")
        .env_remove("CHRONICLE_JWT_SECRET")
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/never")
        .env("CHRONICLE_DATA_DIR", "/tmp/chronicle-never-created")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("CHRONICLE_JWT_SECRET") && stderr.contains("required in production"),
        "{stderr}"
    );
}

// --- several nodes -----------------------------------------------------------------------

#[tokio::test]
async fn nodes_on_one_database_accept_each_others_tokens() {
    let db = TestDatabase::create(&eventlog::MIGRATOR).await;
    // Both start at once on a database with no key yet: they must still agree on one.
    let (a, b) = tokio::join!(
        Auth::new(db.pool().clone(), AuthSettings::default()),
        Auth::new(db.pool().clone(), AuthSettings::default()),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM server_secrets")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(keys, 1);

    sign_up(&db, &a, "ada@example.com").await;
    let on_a = a.log_in("ada@example.com", PASSWORD, None).await.unwrap();
    let principal = b.authenticate(&on_a.access_token).await.unwrap();
    let on_b = b.refresh(&on_a.refresh_token).await.unwrap();
    let refreshed = a.authenticate(&on_b.access_token).await.unwrap();
    assert_eq!(
        (refreshed.user_id, refreshed.session_id),
        (principal.user_id, principal.session_id),
        "the same user in the same session"
    );

    // A node that joins later reads the same key.
    let c = Auth::new(db.pool().clone(), AuthSettings::default())
        .await
        .unwrap();
    c.authenticate(&on_b.access_token).await.unwrap();
    c.log_out(&on_b.refresh_token).await.unwrap();
    assert_invalid_token(a.authenticate(&on_b.access_token).await);
}

// --- pruning -----------------------------------------------------------------------------

async fn sql(db: &TestDatabase, statement: &'static str) {
    sqlx::query(statement).execute(db.pool()).await.unwrap();
}

async fn family_of(db: &TestDatabase, session: &Session) -> Uuid {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(session.refresh_token.as_bytes()).to_vec();
    sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
        .bind(hash)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn strings(db: &TestDatabase, query: &'static str) -> Vec<String> {
    sqlx::query_scalar(query)
        .fetch_all(db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn pruning_deletes_old_rows_and_keeps_recent_ones() {
    let (db, auth) = setup(AuthSettings::default()).await;
    let user = Uuid::now_v7();
    let mut names = std::collections::HashMap::new();
    let mut sessions = Vec::new();
    for name in [
        "live",
        "expired long ago",
        "ended long ago",
        "ended recently",
        "expired recently",
        "rotated",
    ] {
        let session = auth.issue_session(user).await.unwrap();
        let family = family_of(&db, &session).await;
        names.insert(family, name);
        sessions.push((session, family));
    }
    let [
        live,
        expired_long_ago,
        ended_long_ago,
        ended_recently,
        expired_recently,
        rotated,
    ] = <[(Session, Uuid); 6]>::try_from(sessions).unwrap();
    let expire = async |family: Uuid, age: &str| {
        sqlx::query(
            "UPDATE refresh_tokens SET expires_at = now() - $2::interval WHERE family_id = $1",
        )
        .bind(family)
        .bind(age)
        .execute(db.pool())
        .await
        .unwrap();
    };
    expire(expired_long_ago.1, "8 days").await;
    expire(expired_recently.1, "1 day").await;
    for ((session, family), age) in [(&ended_long_ago, "8 days"), (&ended_recently, "1 day")] {
        auth.log_out(&session.refresh_token).await.unwrap();
        sqlx::query(
            "UPDATE refresh_token_families SET revoked_at = now() - $2::interval WHERE id = $1",
        )
        .bind(family)
        .bind(age)
        .execute(db.pool())
        .await
        .unwrap();
    }
    // A session refreshed: its first token, used, expired long ago; its current one is live.
    let next = auth.refresh(&rotated.0.refresh_token).await.unwrap();
    sqlx::query(
        "UPDATE refresh_tokens SET expires_at = now() - interval '8 days'
          WHERE family_id = $1 AND used_at IS NOT NULL",
    )
    .bind(rotated.1)
    .execute(db.pool())
    .await
    .unwrap();

    sql(
        &db,
        "INSERT INTO login_throttle (kind, subject, failures, window_start) VALUES
             ('ip', 'window over', 3, now() - interval '20 minutes'),
             ('account', 'no longer written', 5, now() - interval '1 hour'),
             ('signup', 'window going on', 1, now() - interval '5 minutes')",
    )
    .await;
    sql(
        &db,
        "INSERT INTO login_backoff (account, address, failures, last_failure_at, next_attempt_at)
         VALUES ('forgotten', '', 9, now() - interval '2 days', now() - interval '2 days'),
                ('failing', '', 9, now() - interval '1 hour', now() + interval '10 minutes'),
                ('still waiting', '', 40, now() - interval '2 days', now() + interval '1 hour')",
    )
    .await;
    sql(
        &db,
        "INSERT INTO idempotency_keys (scope, key, request_hash, response, created_at)
         SELECT 'anonymous', 'old-' || n, '\\x00'::bytea, 'null'::jsonb,
                now() - interval '25 hours'
           FROM generate_series(1, 5) n
         UNION ALL
         SELECT 'anonymous', 'recent', '\\x00'::bytea, 'null'::jsonb,
                now() - interval '23 hours'",
    )
    .await;

    let pruning = api::config::Pruning {
        batch: 2,
        ..api::config::Pruning::default()
    };
    let report = api::pruning::prune(&auth, db.pool(), &pruning)
        .await
        .unwrap();
    assert_eq!(report.idempotency_keys, 5, "{report:?}");

    let families: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM refresh_token_families")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let mut kept: Vec<&str> = families.iter().map(|id| names[id]).collect();
    kept.sort();
    assert_eq!(
        kept,
        ["ended recently", "expired recently", "live", "rotated"]
    );
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(tokens, 4, "one each, the rotated session's first one gone");
    assert_eq!(
        strings(&db, "SELECT subject FROM login_throttle").await,
        ["window going on"]
    );
    assert_eq!(
        strings(&db, "SELECT account FROM login_backoff ORDER BY account").await,
        ["failing", "still waiting"]
    );
    assert_eq!(
        strings(&db, "SELECT key FROM idempotency_keys").await,
        ["recent"]
    );
    // What is kept still works.
    auth.authenticate(&live.0.access_token).await.unwrap();
    auth.refresh(&next.refresh_token).await.unwrap();
    auth.refresh(&live.0.refresh_token).await.unwrap();
}

#[tokio::test]
async fn the_server_prunes_on_a_schedule() {
    let db = std::sync::Arc::new(TestDatabase::create(&eventlog::MIGRATOR).await);
    sql(
        &db,
        "INSERT INTO idempotency_keys (scope, key, request_hash, response, created_at) VALUES
             ('anonymous', 'old', '\\x00', 'null', now() - interval '25 hours'),
             ('anonymous', 'recent', '\\x00', 'null', now())",
    )
    .await;
    let _app = crate::TestApp::spawn_configured(&db, |config| {
        config.pruning.interval = std::time::Duration::from_millis(50);
    })
    .await;
    let started = std::time::Instant::now();
    while strings(&db, "SELECT key FROM idempotency_keys ORDER BY key").await != ["recent"] {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the old key was never pruned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
