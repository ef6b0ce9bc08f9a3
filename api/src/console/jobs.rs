//! `/console/workspaces/{id}/jobs`: a workspace's failed background jobs with their last error,
//! and a button to run one again (`retryJob`, recorded like any other retry).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::Visit;
use super::layout::{self, page, respond};
use super::sign_in::forged;

const FAILED_JOBS: &str = r#"query ConsoleFailedJobs($id: ID!) {
  failedJobs(workspaceId: $id, first: 100) {
    totalCount
    edges { node { id kind causedByEventId attempts maxAttempts dead lastError failedAt } }
  }
}"#;

const RETRY: &str = r#"mutation ConsoleRetryJob($id: ID!) { retryJob(id: $id) { position } }"#;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    id: String,
    kind: String,
    caused_by_event_id: String,
    attempts: i64,
    max_attempts: i64,
    dead: bool,
    last_error: Option<String>,
    failed_at: Option<DateTime<Utc>>,
}

/// `?retried=1` after a retry: say so on the page.
#[derive(Deserialize)]
pub struct Shown {
    retried: Option<String>,
}

/// The retry form as posted.
#[derive(Deserialize)]
pub struct RetryForm {
    csrf: String,
    job: String,
}

/// `GET /console/workspaces/{id}/jobs`.
pub async fn failed(visit: Visit, id: web::Path<String>, shown: web::Query<Shown>) -> HttpResponse {
    let id = id.into_inner();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Data {
        failed_jobs: Jobs,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Jobs {
        total_count: i64,
        edges: Vec<Edge>,
    }
    #[derive(Deserialize)]
    struct Edge {
        node: Job,
    }
    let jobs = match visit.run::<Data>(FAILED_JOBS, json!({ "id": id })).await {
        Ok(data) => data.failed_jobs,
        Err(refusal) => return visit.refusal(refusal),
    };
    let action = format!("/console/workspaces/{id}/jobs/retry");
    let body = html! {
        p { a href={ "/console/workspaces/" (id) "/audit" } { "Back to the audit history" } }
        @if shown.retried.is_some() {
            p.ok role="status" { "The job will run again now; its retry is in the audit history." }
        }
        @if jobs.edges.is_empty() {
            p.muted { "No background job of this workspace has failed." }
        } @else {
            p.muted { (jobs.total_count) " failed, oldest first." }
            table {
                thead { tr { th { "Job" } th { "Runs" } th { "Last error" } th { "" } } }
                tbody {
                    @for edge in &jobs.edges {
                        @let job = &edge.node;
                        tr {
                            td {
                                (job.kind)
                                @if job.dead { " " strong { "dead" } } @else { " " span.muted { "retrying" } }
                                br; span.muted { "caused by event " code { (job.caused_by_event_id) } }
                            }
                            td { (job.attempts) " of " (job.max_attempts) }
                            td {
                                @if let Some(error) = &job.last_error { (error) }
                                @if let Some(at) = job.failed_at { br; span.muted { (layout::time(at)) } }
                            }
                            td {
                                form method="post" action=(action) {
                                    input type="hidden" name="csrf" value=(visit.viewer.csrf);
                                    input type="hidden" name="job" value=(job.id);
                                    button type="submit" { "Retry now" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page("Failed background jobs", Some(&visit.header()), body),
    )
}

/// `POST /console/workspaces/{id}/jobs/retry`: runs a failed job again.
pub async fn retry(
    visit: Visit,
    id: web::Path<String>,
    posted: web::Form<RetryForm>,
) -> HttpResponse {
    if !visit.viewer.accepts(&posted.csrf) {
        return forged();
    }
    match visit
        .run::<serde::de::IgnoredAny>(RETRY, json!({ "id": posted.job }))
        .await
    {
        Ok(_) => {
            let id = id.into_inner();
            // Back to the page the form was on (ids are URL-safe; anything else goes home).
            if id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                layout::see_other(&format!("/console/workspaces/{id}/jobs?retried=1"))
            } else {
                layout::see_other("/console/workspaces")
            }
        }
        Err(refusal) => visit.refusal(refusal),
    }
}
