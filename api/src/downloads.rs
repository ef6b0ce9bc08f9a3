//! `GET /exports/{id}`: an export's file, streamed chunk by chunk from PostgreSQL (any node
//! serves it; memory stays one chunk however big the file).
//!
//! | request | answer |
//! |---|---|
//! | no or bad bearer token | 401 `UNAUTHENTICATED` |
//! | not a member of the export's workspace, or no such export | 404 `NOT_FOUND` (the same: nothing is revealed about exports of other workspaces) |
//! | still being produced, or failed | 409 `CONFLICT`, saying which (poll `exports` until `COMPLETED`) |
//! | completed more than 24 hours ago | 410 Gone (`extensions.code` `NOT_FOUND`): request a new export |
//! | completed | 200, `text/csv; charset=utf-8` or `application/pdf`, `Content-Length`, and `Content-Disposition: attachment; filename="<workspace>-export-<date>.<ext>"` |
//!
//! Every member may download (`authz::Read::Content`), viewers included: an export holds
//! nothing a member cannot already read.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::ID;
use projections::queries;
use uuid::Uuid;

use crate::auth::Auth;
use crate::authz;
use crate::error::{ApiError, Code};
use crate::graphql::ids::{self, Kind};
use crate::http::{bearer_token, refusal, refuse};
use crate::writes::Writes;

/// The longest workspace name a file name keeps.
const MAX_NAME_CHARS: usize = 60;

/// `GET /exports/{id}`: see the module docs.
pub async fn export(
    writes: web::Data<Writes>,
    auth: web::Data<Auth>,
    id: web::Path<String>,
    http: HttpRequest,
) -> HttpResponse {
    match serve(&writes, &auth, &id, &http).await {
        Ok(response) => response,
        Err(Refused::Api(err)) => refusal(&http, err),
        Err(Refused::Expired) => refuse(
            &http,
            StatusCode::GONE,
            Code::NotFound,
            "this export expired 24 hours after it completed: request a new one",
        ),
    }
}

enum Refused {
    Api(ApiError),
    /// Completed, but no longer downloadable.
    Expired,
}

impl From<ApiError> for Refused {
    fn from(err: ApiError) -> Refused {
        Refused::Api(err)
    }
}

async fn serve(
    writes: &Writes,
    auth: &Auth,
    id: &str,
    http: &HttpRequest,
) -> Result<HttpResponse, Refused> {
    let token = bearer_token(http).ok_or(ApiError::Unauthenticated("send an access token"))?;
    let user_id = auth
        .authenticate(token)
        .await
        .map_err(ApiError::from)?
        .user_id;
    // A malformed id names no export either.
    let export_id =
        ids::decode(Kind::Export, &ID(id.to_string())).map_err(|_| ApiError::NotFound("export"))?;
    let pool = writes.log().pool();
    let export = queries::export(pool, export_id)
        .await
        .map_err(ApiError::from)?
        .ok_or(ApiError::NotFound("export"))?;
    // A download is rare: its rights are read from the database, never remembered.
    let rights = authz::Rights::new(pool.clone());
    authz::content_of(&rights, user_id, export.workspace_id, "export").await?;
    let (Some(file_id), Some(expires_at), Some(completed_at)) =
        (export.file_id, export.expires_at, export.completed_at)
    else {
        let message = match export.status.as_str() {
            "FAILED" => "this export failed: see its error in `exports`",
            _ => "this export is not ready yet: poll `exports` until it is COMPLETED",
        };
        return Err(ApiError::Domain(domain::DomainError::conflict(message)).into());
    };
    if writes.now() >= expires_at {
        return Err(Refused::Expired);
    }
    let workspace = queries::workspace(pool, export.workspace_id, user_id)
        .await
        .map_err(ApiError::from)?
        .map(|w| w.name)
        .unwrap_or_default();
    let (content_type, extension) = match export.format.as_str() {
        "PDF" => ("application/pdf", "pdf"),
        _ => ("text/csv; charset=utf-8", "csv"),
    };
    let file_name = format!(
        "{}-export-{}.{extension}",
        file_name_part(&workspace),
        completed_at.format("%Y-%m-%d")
    );
    let chunks = chunks(pool.clone(), export_id, file_id);
    let size = u64::try_from(export.size_bytes.unwrap_or(0)).unwrap_or(0);
    Ok(HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "private, no-store"))
        .no_chunking(size)
        .streaming(chunks))
}

/// The chunks of file `file_id` of export `export_id`, in order, each read when the client
/// is ready for it.
fn chunks(
    pool: sqlx::PgPool,
    export_id: Uuid,
    file_id: Uuid,
) -> impl futures::Stream<Item = Result<web::Bytes, actix_web::Error>> {
    futures::stream::unfold(Some(0), move |next| {
        let pool = pool.clone();
        async move {
            let chunk_no = next?;
            match jobs::export::chunk(&pool, export_id, file_id, chunk_no).await {
                Ok(Some(bytes)) => Some((Ok(web::Bytes::from(bytes)), Some(chunk_no + 1))),
                Ok(None) => None,
                Err(err) => {
                    tracing::error!(error = %err, %export_id, chunk_no, "export download cut");
                    Some((
                        Err(actix_web::error::ErrorInternalServerError("download cut")),
                        None,
                    ))
                }
            }
        }
    })
}

/// `name` as part of a file name: ASCII letters, digits, `-` and `_`, other runs of characters
/// made one `-`, at most [`MAX_NAME_CHARS`]; `workspace` when nothing is left.
fn file_name_part(name: &str) -> String {
    let mut part = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            part.push(c);
        } else if !part.ends_with('-') {
            part.push('-');
        }
        if part.len() >= MAX_NAME_CHARS {
            break;
        }
    }
    let part = part.trim_matches('-');
    if part.is_empty() {
        "workspace".into()
    } else {
        part.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::file_name_part;

    #[test]
    fn file_names_keep_only_safe_characters() {
        assert_eq!(file_name_part("Acme Corp"), "Acme-Corp");
        assert_eq!(file_name_part("a\"b\\c/d\r\ne;f"), "a-b-c-d-e-f");
        assert_eq!(file_name_part("../../etc/passwd"), "etc-passwd");
        assert_eq!(file_name_part("Привет"), "workspace");
        assert_eq!(file_name_part("Grüße 2026"), "Gr-e-2026");
        assert_eq!(
            file_name_part(&"x".repeat(500)).len(),
            super::MAX_NAME_CHARS
        );
    }
}
