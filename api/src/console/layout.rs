//! The console's page shell and the pieces every page shares: the header with the signed-in
//! user and the sign-out form, times, and the pages that say why something is not shown.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header;
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::graphql::Refusal;
use super::session::Viewer;

/// Who the header names.
pub struct Header<'a> {
    pub viewer: &'a Viewer,
    pub display_name: &'a str,
}

/// A whole page: `title`, the header (when signed in) and `body`.
pub fn page(title: &str, header: Option<&Header<'_>>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Chronicle console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/console/workspaces" { "Chronicle console" }
                    @if let Some(header) = header {
                        nav {
                            a href="/console/workspaces" { "Workspaces" }
                            a href="/console/log" { "Log" }
                        }
                        form.sign-out method="post" action="/console/sign-out" {
                            span.who { (header.display_name) }
                            input type="hidden" name="csrf" value=(header.viewer.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A time, in UTC for readers without JavaScript; the console's script shows it in the
/// reader's time zone.
pub fn time(at: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339()) { (at.format("%Y-%m-%d %H:%M:%S UTC")) }
    }
}

/// An HTML answer with `status`.
pub fn respond(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// A redirect after a form (303: the browser follows with GET).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location.to_string()))
        .finish()
}

/// Sends a signed-out browser to the sign-in page.
pub fn to_sign_in() -> HttpResponse {
    see_other("/console/sign-in")
}

/// The page for a refused read.
pub fn refusal(header: Option<&Header<'_>>, refusal: Refusal) -> HttpResponse {
    let (status, title, text) = match refusal {
        Refusal::SignedOut => return to_sign_in(),
        Refusal::NotFound => (
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing here, or nothing you may see.".to_string(),
        ),
        Refusal::Forbidden(why) => (StatusCode::FORBIDDEN, "No access", why),
        Refusal::Refused(why) => (StatusCode::BAD_REQUEST, "Not possible", why),
        Refusal::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The server could not build this page; it has been logged.".to_string(),
        ),
    };
    respond(status, page(title, header, html! { p.notice { (text) } }))
}

/// The page for a signed-in user who may not use the console.
pub fn no_access(header: &Header<'_>) -> HttpResponse {
    let body = html! {
        p.notice {
            "The console is for support and analyst staff, and for owners and admins of a \
             workspace. Your account is none of these, so there is nothing for you here."
        }
    };
    respond(StatusCode::FORBIDDEN, page("No access", Some(header), body))
}
