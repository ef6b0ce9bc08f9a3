//! Signing in to the console and out of it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, page, respond};
use super::session::{self, Settings};
use crate::auth::{Auth, AuthError, PASSWORD_MAX_CHARS};
use crate::request;

/// The longest email address looked at (RFC 5321's limit).
const MAX_EMAIL: usize = 320;

/// The sign-in form as posted.
#[derive(Deserialize)]
pub struct SignInForm {
    email: String,
    password: String,
    /// The double-submit token (see [`session::form_token`]).
    form_token: String,
}

/// A form that only carries its CSRF token.
#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// `GET /console/sign-in`.
pub async fn form(
    http: HttpRequest,
    settings: web::Data<Settings>,
    auth: web::Data<Auth>,
) -> HttpResponse {
    if session::viewer(&http, &auth).await.is_some() {
        return layout::see_other("/console/workspaces");
    }
    sign_in_page(&http, &settings, StatusCode::OK, None, "")
}

/// `POST /console/sign-in`: a log-in; on success the browser gets the sign-in cookie.
pub async fn submit(
    http: HttpRequest,
    settings: web::Data<Settings>,
    auth: web::Data<Auth>,
    posted: web::Form<SignInForm>,
) -> HttpResponse {
    if !session::form_token_matches(&http, &posted.form_token) {
        let why = "This form has expired or did not come from this site. Please try again.";
        return sign_in_page(&http, &settings, StatusCode::FORBIDDEN, Some(why), "");
    }
    if posted.email.len() > MAX_EMAIL || posted.password.chars().count() > PASSWORD_MAX_CHARS {
        let why = "Invalid email or password.";
        return sign_in_page(&http, &settings, StatusCode::UNAUTHORIZED, Some(why), "");
    }
    let client_ip = request::origin(&http).client_ip;
    let signed_in = auth
        .console_sign_in(
            &posted.email,
            &posted.password,
            client_ip,
            settings.sign_in_ttl,
        )
        .await;
    match signed_in {
        Ok(signed_in) => {
            let mut response = layout::see_other("/console/workspaces");
            let cookie = session::sign_in_cookie(&settings, &signed_in.token, signed_in.expires_at);
            if let Err(err) = response.add_cookie(&cookie) {
                tracing::error!(error = %err, "cannot set the console cookie");
                return HttpResponse::InternalServerError().finish();
            }
            response
        }
        Err(err) => {
            let (status, why) = match &err {
                AuthError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, format!("{err}.")),
                AuthError::Internal(source) => {
                    tracing::error!(error = ?source, "console sign-in failed");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "The server could not sign you in; it has been logged.".to_string(),
                    )
                }
                _ => (
                    StatusCode::UNAUTHORIZED,
                    "Invalid email or password.".to_string(),
                ),
            };
            sign_in_page(&http, &settings, status, Some(&why), &posted.email)
        }
    }
}

/// `POST /console/sign-out`: ends the session on every node, and drops the cookie.
pub async fn sign_out(
    http: HttpRequest,
    settings: web::Data<Settings>,
    auth: web::Data<Auth>,
    posted: web::Form<CsrfForm>,
) -> HttpResponse {
    let Some(viewer) = session::viewer(&http, &auth).await else {
        return layout::to_sign_in();
    };
    if !viewer.accepts(&posted.csrf) {
        return forged();
    }
    if let Err(err) = auth.end_session(&viewer.principal).await {
        tracing::error!(error = ?err, "console sign-out failed");
        return HttpResponse::InternalServerError().finish();
    }
    let mut response = layout::to_sign_in();
    if let Err(err) = response.add_cookie(&session::sign_out_cookie(&settings)) {
        tracing::error!(error = %err, "cannot clear the console cookie");
    }
    response
}

/// The answer to a state-changing form without this sign-in's CSRF token.
pub fn forged() -> HttpResponse {
    let body = html! {
        p.error { "This form did not come from your console session, so nothing was done." }
    };
    respond(StatusCode::FORBIDDEN, page("Refused", None, body))
}

fn sign_in_page(
    http: &HttpRequest,
    settings: &Settings,
    status: StatusCode,
    error: Option<&str>,
    email: &str,
) -> HttpResponse {
    let (token, cookie) = session::form_token(http, settings);
    let mut response = respond(
        status,
        page("Sign in", None, sign_in_body(&token, error, email)),
    );
    if let Some(cookie) = cookie
        && let Err(err) = response.add_cookie(&cookie)
    {
        tracing::error!(error = %err, "cannot set the sign-in form cookie");
    }
    response
}

fn sign_in_body(token: &str, error: Option<&str>, email: &str) -> Markup {
    html! {
        p.muted {
            "For support and analyst staff, and for owners and admins of a workspace. \
             Use your Chronicle account."
        }
        @if let Some(error) = error {
            p.error role="alert" { (error) }
        }
        form.stack method="post" action="/console/sign-in" {
            input type="hidden" name="form_token" value=(token);
            label {
                "Email"
                input type="email" name="email" value=(email) required autocomplete="username"
                    autofocus maxlength=(MAX_EMAIL);
            }
            label {
                "Password"
                input type="password" name="password" required
                    autocomplete="current-password" maxlength=(PASSWORD_MAX_CHARS);
            }
            button type="submit" { "Sign in" }
        }
    }
}
