//! GraphiQL at `/graphiql` in development mode, with every asset served by the binary: GraphiQL
//! 3.9 and React 18 (their UMD builds and licences in `api/assets/graphiql/`), so the page
//! works on a machine without internet access. Send a token with the headers editor
//! (`{"Authorization": "Bearer <token>"}`).

use actix_web::{HttpResponse, web};
use maud::{DOCTYPE, html};

/// `GET /graphiql`.
pub async fn page() -> HttpResponse {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Chronicle · GraphiQL" }
                link rel="stylesheet" href="/graphiql/assets/graphiql.min.css";
                link rel="stylesheet" href="/graphiql/assets/page.css";
            }
            body {
                div #graphiql { "Loading GraphiQL…" }
                script src="/graphiql/assets/react.production.min.js" {}
                script src="/graphiql/assets/react-dom.production.min.js" {}
                script src="/graphiql/assets/graphiql.min.js" {}
                script src="/graphiql/assets/init.js" {}
            }
        }
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(markup.into_string())
}

/// `GET /graphiql/assets/{name}`.
pub async fn asset(name: web::Path<String>) -> HttpResponse {
    const JS: &str = "text/javascript; charset=utf-8";
    const CSS: &str = "text/css; charset=utf-8";
    let (content_type, body): (&str, &'static [u8]) = match name.as_str() {
        "graphiql.min.js" => (JS, include_bytes!("../assets/graphiql/graphiql.min.js")),
        "graphiql.min.css" => (CSS, include_bytes!("../assets/graphiql/graphiql.min.css")),
        "react.production.min.js" => (
            JS,
            include_bytes!("../assets/graphiql/react.production.min.js"),
        ),
        "react-dom.production.min.js" => (
            JS,
            include_bytes!("../assets/graphiql/react-dom.production.min.js"),
        ),
        "init.js" => (JS, include_bytes!("../assets/graphiql/init.js")),
        "page.css" => (CSS, b"body { margin: 0; } #graphiql { height: 100vh; }"),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "public, max-age=3600"))
        .body(body)
}
