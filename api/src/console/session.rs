//! Who is signed in to the console, and proof that a form came from its own pages.
//!
//! - The sign-in cookie holds a random token ([`crate::auth::Auth::console_sign_in`]): HttpOnly,
//!   `SameSite=Strict`, `Path=/console`, `Secure` when the app is reached over HTTPS
//!   (`CHRONICLE_PUBLIC_URL`), and no longer-lived than the sign-in.
//! - Every form that changes state carries a CSRF token: an HMAC of the sign-in token, so it
//!   needs no storage, differs per sign-in and cannot be made without the cookie. The sign-in
//!   form itself, before any sign-in exists, uses a double-submit token: a random value both in
//!   a cookie of its own and in the form.

use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite, time};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::auth::{Auth, Principal};

/// The sign-in cookie.
const SIGN_IN_COOKIE: &str = "chronicle_console";
/// The sign-in form's double-submit cookie.
const FORM_COOKIE: &str = "chronicle_console_form";
/// Where the console's cookies are sent.
const PATH: &str = "/console";
/// The longest cookie value looked at (tokens are 43 characters).
const MAX_TOKEN: usize = 64;

/// How the console's cookies are set.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mark cookies `Secure` (the app is reached over HTTPS).
    pub secure: bool,
    /// How long a sign-in lasts.
    pub sign_in_ttl: chrono::Duration,
}

impl Settings {
    /// Cookies are `Secure` when users reach the app at an `https://` address.
    pub fn for_public_url(public_url: &str) -> Settings {
        Settings {
            secure: public_url.starts_with("https://"),
            sign_in_ttl: chrono::Duration::hours(12),
        }
    }
}

/// A signed-in console user, and the CSRF token their forms carry.
pub struct Viewer {
    pub principal: Principal,
    pub csrf: String,
}

impl Viewer {
    /// Whether a form's `csrf` field is this sign-in's (in constant time).
    pub fn accepts(&self, csrf: &str) -> bool {
        same(&self.csrf, csrf)
    }
}

/// The signed-in user of `http`, if its cookie names a sign-in whose session is still going.
pub async fn viewer(http: &HttpRequest, auth: &Auth) -> Option<Viewer> {
    let token = cookie_value(http, SIGN_IN_COOKIE)?;
    match auth.console_principal(&token).await {
        Ok(principal) => Some(Viewer {
            principal,
            csrf: csrf_of(&token),
        }),
        Err(crate::auth::AuthError::Internal(err)) => {
            tracing::error!(error = ?err, "cannot check a console sign-in");
            None
        }
        Err(_) => None,
    }
}

/// The cookie that signs a browser in with `token` until `expires_at`.
pub fn sign_in_cookie(
    settings: &Settings,
    token: &str,
    expires_at: chrono::DateTime<chrono::Utc>,
) -> Cookie<'static> {
    let lifetime = (expires_at - chrono::Utc::now()).num_seconds().max(0);
    cookie(settings, SIGN_IN_COOKIE, token.to_string(), lifetime)
}

/// The cookie that signs a browser out (it expires at once).
pub fn sign_out_cookie(settings: &Settings) -> Cookie<'static> {
    cookie(settings, SIGN_IN_COOKIE, String::new(), 0)
}

/// The sign-in form's token: the one the browser already holds, or a new one with the cookie
/// that must come back with the form.
pub fn form_token(http: &HttpRequest, settings: &Settings) -> (String, Option<Cookie<'static>>) {
    if let Some(token) = cookie_value(http, FORM_COOKIE) {
        return (token, None);
    }
    let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
    let set = cookie(settings, FORM_COOKIE, token.clone(), 60 * 60);
    (token, Some(set))
}

/// Whether a posted sign-in form's token matches the browser's form cookie.
pub fn form_token_matches(http: &HttpRequest, posted: &str) -> bool {
    cookie_value(http, FORM_COOKIE).is_some_and(|token| same(&token, posted))
}

fn cookie(settings: &Settings, name: &'static str, value: String, seconds: i64) -> Cookie<'static> {
    Cookie::build(name, value)
        .path(PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(settings.secure)
        .max_age(time::Duration::seconds(seconds))
        .finish()
}

/// A cookie's value, when present and of a plausible length.
fn cookie_value(http: &HttpRequest, name: &str) -> Option<String> {
    http.cookie(name)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty() && v.len() <= MAX_TOKEN)
}

/// The CSRF token of the sign-in whose cookie holds `token`.
fn csrf_of(token: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(token.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(b"chronicle console form");
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csrf_token_belongs_to_one_sign_in() {
        let a = csrf_of("token-a");
        assert_eq!(a, csrf_of("token-a"));
        assert_ne!(a, csrf_of("token-b"));
        assert!(same(&a, &csrf_of("token-a")));
        assert!(!same(&a, ""));
        assert!(!same(&a, &a[1..]));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_https() {
        let https = Settings::for_public_url("https://chronicle.example");
        let c = sign_in_cookie(&https, "t", chrono::Utc::now() + chrono::Duration::hours(1));
        assert_eq!(c.http_only(), Some(true));
        assert_eq!(c.same_site(), Some(SameSite::Strict));
        assert_eq!(c.secure(), Some(true));
        assert_eq!(c.path(), Some("/console"));
        let http = Settings::for_public_url("http://localhost:8080");
        assert_eq!(sign_out_cookie(&http).secure(), Some(false));
    }
}
