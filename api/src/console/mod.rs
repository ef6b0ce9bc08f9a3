//! The support and analyst console at `/console` (SPEC §1, §8): server-rendered pages for the
//! people who read Chronicle's audit history, in a browser, with the accounts they already
//! have.
//!
//! - **Same rights, same data.** Pages read by running GraphQL documents against the API's own
//!   schema as the signed-in user ([`graphql`]): the same resolvers and the same authorization
//!   module ([`crate::authz`]) decide what a page may show, and a SUPPORT reader's reason is
//!   recorded exactly as the API records it. There is no second path to the data.
//! - **Sign-in** ([`sign_in`]) is a log-in with the same throttling; the browser holds an
//!   HttpOnly, `SameSite=Strict` cookie naming a server session that sign-out, log-out and
//!   revocation end on every node ([`session`]). Every state-changing form carries a CSRF
//!   token.
//! - **Safe pages.** Templates are checked at compile time and escape everything written into
//!   them (`maud`); assets are embedded in the binary; every answer carries a strict
//!   Content-Security-Policy (no inline script or style), `X-Frame-Options: DENY` and
//!   `Cache-Control: no-store` ([`security_headers`]).

mod graphql;
mod jobs;
mod layout;
mod log;
mod session;
mod sign_in;
mod timeline;
mod workspaces;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{self, Next};
use actix_web::{HttpRequest, HttpResponse, Scope, web};
use serde::Deserialize;

use crate::auth::Auth;
use crate::graphql::ChronicleSchema;

pub use session::Settings;

use graphql::Refusal;
use layout::Header;
use session::Viewer;

/// Every console answer's Content-Security-Policy: the console's own script and stylesheet,
/// nothing inline, nothing framed, forms posted only to itself.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The console's routes, under `/console`.
pub fn scope(
    settings: Settings,
) -> Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/console")
        .app_data(web::Data::new(settings))
        .wrap(middleware::from_fn(security_headers))
        .route("", web::get().to(home))
        .route("/", web::get().to(home))
        .route("/assets/{name}", web::get().to(asset))
        .route("/sign-in", web::get().to(sign_in::form))
        .route("/sign-in", web::post().to(sign_in::submit))
        .route("/sign-out", web::post().to(sign_in::sign_out))
        .route("/workspaces", web::get().to(workspaces::list))
        .route(
            "/workspaces/{id}/audit",
            web::get().to(timeline::workspace_timeline),
        )
        .route("/workspaces/{id}/verify", web::get().to(timeline::verify))
        .route("/workspaces/{id}/jobs", web::get().to(jobs::failed))
        .route("/workspaces/{id}/jobs/retry", web::post().to(jobs::retry))
        .route(
            "/workspaces/{id}/items/{item}",
            web::get().to(timeline::item_history),
        )
        .route(
            "/workspaces/{id}/members/{user}",
            web::get().to(timeline::member_history),
        )
        .route("/log", web::get().to(log::log))
        .route("/log.ndjson", web::get().to(log::download_ndjson))
        .route("/log.csv", web::get().to(log::download_csv))
        .route("/live", web::get().to(log::live))
}

/// Adds the console's security headers to every answer (pages, assets, redirects, errors).
async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let is_asset = request.path().starts_with("/console/assets/");
    let mut response = next.call(request).await?;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    // Pages name people and what they did: no cache keeps them. The assets hold nothing
    // personal.
    let caching = if is_asset {
        "public, max-age=3600"
    } else {
        "no-store"
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(caching));
    Ok(response)
}

/// `/console`: the workspaces page, or the sign-in page.
async fn home() -> HttpResponse {
    layout::see_other("/console/workspaces")
}

/// The console's embedded stylesheet and script.
async fn asset(name: web::Path<String>) -> HttpResponse {
    let (content_type, body): (&str, &'static [u8]) = match name.as_str() {
        "console.css" => (
            "text/css; charset=utf-8",
            include_bytes!("../../assets/console/console.css"),
        ),
        "console.js" => (
            "text/javascript; charset=utf-8",
            include_bytes!("../../assets/console/console.js"),
        ),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok().content_type(content_type).body(body)
}

/// What the signed-in user is, as every page needs it: for the header, and for who may use
/// the console at all.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Me {
    display_name: String,
    staff_roles: Vec<String>,
}

impl Me {
    fn is_support(&self) -> bool {
        self.staff_roles.iter().any(|r| r == "SUPPORT")
    }

    fn is_analyst(&self) -> bool {
        self.staff_roles.iter().any(|r| r == "ANALYST")
    }

    fn is_staff(&self) -> bool {
        !self.staff_roles.is_empty()
    }

    /// The staff roles, as the authorization module takes them.
    fn staff(&self) -> Vec<domain::StaffRole> {
        self.staff_roles
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect()
    }
}

/// A signed-in user's visit to a page: who they are, and how the page reads. As a handler's
/// argument it signs the visitor in first: a visitor who is not signed in is sent to the
/// sign-in page before the handler runs.
struct Visit {
    http: HttpRequest,
    schema: web::Data<ChronicleSchema>,
    viewer: Viewer,
    me: Me,
}

impl actix_web::FromRequest for Visit {
    type Error = actix_web::Error;
    type Future = futures::future::LocalBoxFuture<'static, Result<Visit, actix_web::Error>>;

    fn from_request(http: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let http = http.clone();
        Box::pin(async move {
            let data = |what| {
                actix_web::error::ErrorInternalServerError(format!("the console needs {what}"))
            };
            let schema = http
                .app_data::<web::Data<ChronicleSchema>>()
                .cloned()
                .ok_or_else(|| data("the schema"))?;
            let auth = http
                .app_data::<web::Data<Auth>>()
                .cloned()
                .ok_or_else(|| data("authentication"))?;
            Visit::start(http, schema, &auth).await.map_err(|response| {
                actix_web::error::InternalError::from_response("", response).into()
            })
        })
    }
}

impl Visit {
    /// The signed-in user's visit, or the answer to give instead (to the sign-in page).
    async fn start(
        http: HttpRequest,
        schema: web::Data<ChronicleSchema>,
        auth: &Auth,
    ) -> Result<Visit, HttpResponse> {
        let Some(viewer) = session::viewer(&http, auth).await else {
            return Err(layout::to_sign_in());
        };
        #[derive(Deserialize)]
        struct Data {
            me: Me,
        }
        let data: Data = graphql::run(
            &schema,
            &http,
            viewer.principal,
            "query ConsoleMe { me { displayName staffRoles } }",
            serde_json::json!({}),
        )
        .await
        .map_err(|refusal| layout::refusal(None, refusal))?;
        Ok(Visit {
            http,
            schema,
            viewer,
            me: data.me,
        })
    }

    fn header(&self) -> Header<'_> {
        Header {
            viewer: &self.viewer,
            display_name: &self.me.display_name,
        }
    }

    /// Runs a document as the signed-in user.
    async fn run<T: serde::de::DeserializeOwned>(
        &self,
        document: &str,
        variables: serde_json::Value,
    ) -> Result<T, Refusal> {
        graphql::run(
            &self.schema,
            &self.http,
            self.viewer.principal,
            document,
            variables,
        )
        .await
    }

    /// The page for a refused read, with this visit's header.
    fn refusal(&self, refusal: Refusal) -> HttpResponse {
        layout::refusal(Some(&self.header()), refusal)
    }
}
