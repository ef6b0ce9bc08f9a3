//! `/console/workspaces`: the workspaces a reader may open. Owners and admins see their own;
//! staff also find any workspace by name, id or a member's email.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use maud::html;
use serde::Deserialize;

use super::Visit;
use super::graphql::Refusal;
use super::layout::{self, page, respond};
use crate::authz::{self, Read};
use domain::Role;

const OWN: &str = r#"query ConsoleWorkspaces {
  workspaces(first: 100) { edges { node { id name plan viewerRole } } pageInfo { hasNextPage } }
}"#;

const FIND: &str = r#"query ConsoleFindWorkspaces($search: String!) {
  workspaceDirectory(search: $search, first: 50) {
    edges { node { id name plan createdAt memberCount } }
    pageInfo { hasNextPage }
  }
}"#;

#[derive(Deserialize)]
pub struct Search {
    q: Option<String>,
}

#[derive(Deserialize)]
struct Edges<N> {
    edges: Vec<Edge<N>>,
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
}

#[derive(Deserialize)]
struct Edge<N> {
    node: N,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Own {
    id: String,
    name: String,
    plan: String,
    viewer_role: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Found {
    id: String,
    name: String,
    plan: String,
    created_at: chrono::DateTime<chrono::Utc>,
    member_count: i64,
}

/// `GET /console/workspaces[?q=…]`.
pub async fn list(visit: Visit, search: web::Query<Search>) -> HttpResponse {
    #[derive(Deserialize)]
    struct OwnData {
        workspaces: Edges<Own>,
    }
    let own: OwnData = match visit.run(OWN, serde_json::json!({})).await {
        Ok(own) => own,
        Err(refusal) => return visit.refusal(refusal),
    };
    // The reader's role in each of their workspaces; authz decides who may use the console,
    // and which of them the reader may open as a member.
    let mine: Vec<(&Own, Role)> = own
        .workspaces
        .edges
        .iter()
        .filter_map(|e| Some((&e.node, e.node.viewer_role.parse::<Role>().ok()?)))
        .collect();
    let roles: Vec<Role> = mine.iter().map(|(_, role)| *role).collect();
    let managed: Vec<&(&Own, Role)> = mine
        .iter()
        .filter(|(_, role)| authz::member_may(*role, Read::AuditLog))
        .collect();
    if !authz::may_use_console(&visit.me.staff(), &roles) {
        return layout::no_access(&visit.header());
    }

    let query = search.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let mut refused = None;
    let found = match query {
        Some(q) if visit.me.is_staff() => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct FindData {
                workspace_directory: Edges<Found>,
            }
            match visit
                .run::<FindData>(FIND, serde_json::json!({ "search": q }))
                .await
            {
                Ok(data) => Some(data.workspace_directory),
                Err(Refusal::Refused(why)) => {
                    refused = Some(why);
                    None
                }
                Err(refusal) => return visit.refusal(refusal),
            }
        }
        _ => None,
    };

    let body = html! {
        @if visit.me.is_staff() {
            form.filters method="get" action="/console/workspaces" role="search" {
                label {
                    "Find a workspace by name, id or a member's email"
                    input type="search" name="q" value=[query] maxlength="200" autofocus;
                }
                button type="submit" { "Find" }
            }
            @if let Some(why) = &refused {
                p.error role="alert" { (why) }
            }
            @if let Some(found) = &found {
                h2 { "Found" }
                @if found.edges.is_empty() {
                    p.muted { "No workspace matches." }
                } @else {
                    table {
                        thead { tr { th { "Workspace" } th { "Plan" } th { "Members" } th { "Created" } } }
                        tbody {
                            @for edge in &found.edges {
                                tr {
                                    td { a href={ "/console/workspaces/" (edge.node.id) "/audit" } { (edge.node.name) } }
                                    td { (edge.node.plan) }
                                    td { (edge.node.member_count) }
                                    td { (layout::time(edge.node.created_at)) }
                                }
                            }
                        }
                    }
                    @if found.page_info.has_next_page {
                        p.muted { "More match: narrow the search." }
                    }
                }
            }
        }
        h2 { "Your workspaces" }
        @if managed.is_empty() {
            p.muted { "You own or administer no workspace." }
        } @else {
            table {
                thead { tr { th { "Workspace" } th { "Your role" } th { "Plan" } } }
                tbody {
                    @for (workspace, _) in managed.iter().copied() {
                        tr {
                            td { a href={ "/console/workspaces/" (workspace.id) "/audit" } { (workspace.name) } }
                            td { (workspace.viewer_role) }
                            td { (workspace.plan) }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page("Workspaces", Some(&visit.header()), body),
    )
}
