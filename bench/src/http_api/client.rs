//! The load generator's GraphQL client: the few operations the benchmark sends, over one shared
//! pool of keep-alive HTTP/1.1 connections (one connection per concurrent client).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

const SIGN_UP: &str = "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }";
const CREATE_WORKSPACE: &str = "mutation($name: String!) {
  createWorkspace(input: {name: $name, region: EU}) { workspace { id } } }";
const CREATE_ITEM: &str = "mutation($input: CreateItemInput!) {
  createItem(input: $input) { item { id version } position } }";
const ITEMS: &str = "query($w: ID!) {
  items(workspaceId: $w, first: 20) { edges { node { id title tags status version } } } }";

/// How many items one `items` request asks for.
pub const PAGE: usize = 20;

/// An item body of about 300 characters, as a user would write one.
const BODY: &str = "Match every open invoice from the third quarter against its purchase order \
    and the goods receipt. Flag any gap over 50 EUR, any invoice without a purchase order, and \
    any vendor whose bank details changed since the last payment run. Attach the reconciliation \
    sheet and assign follow-ups before the books close.";

/// A user signed in to the workspace they created: one tenant.
#[derive(Clone)]
pub struct Tenant {
    pub token: Arc<str>,
    pub workspace_id: Arc<str>,
}

/// A client of the server's `/graphql` endpoint; clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: Arc<str>,
}

impl Client {
    pub fn new(address: SocketAddr) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Client {
            http,
            url: format!("http://{address}/graphql").into(),
        })
    }

    /// Signs up user number `n`, creates their workspace and returns them as a tenant.
    pub async fn tenant(&self, n: usize) -> anyhow::Result<Tenant> {
        let input = json!({
            "email": format!("bench-user-{n}@example.com"),
            "password": "correct horse battery staple",
            "displayName": format!("Bench user {n}"),
        });
        let data = self.call(None, SIGN_UP, json!({ "input": input })).await?;
        let token = data["signUp"]["accessToken"]
            .as_str()
            .context("signUp returned no access token")?;
        let name = format!("Bench workspace {n}");
        let data = self
            .call(Some(token), CREATE_WORKSPACE, json!({ "name": name }))
            .await?;
        let workspace_id = data["createWorkspace"]["workspace"]["id"]
            .as_str()
            .context("createWorkspace returned no id")?;
        Ok(Tenant {
            token: token.into(),
            workspace_id: workspace_id.into(),
        })
    }

    /// Creates item number `n` in the tenant's workspace.
    pub async fn create_item(&self, tenant: &Tenant, n: u64) -> anyhow::Result<()> {
        let input = json!({
            "workspaceId": &*tenant.workspace_id,
            "title": format!("Reconcile Q3 vendor invoices, batch {n}"),
            "body": BODY,
            "tags": ["finance", "q3"],
        });
        let data = self
            .call(Some(&tenant.token), CREATE_ITEM, json!({ "input": input }))
            .await?;
        ensure!(
            data["createItem"]["item"]["version"] == 1,
            "createItem answered {data}"
        );
        Ok(())
    }

    /// Reads the first page of the tenant's items, which must be full; returns whether the
    /// server answered from its response cache.
    pub async fn list_items(&self, tenant: &Tenant) -> anyhow::Result<bool> {
        self.list_items_as(tenant, ITEMS.to_string()).await
    }

    /// [`Client::list_items`] in a document told apart from the others by a comment naming
    /// `n`: a distinct cache entry for each `n`, the same answer.
    pub async fn list_items_tagged(&self, tenant: &Tenant, n: usize) -> anyhow::Result<bool> {
        self.list_items_as(tenant, format!("{ITEMS}\n# {n}")).await
    }

    async fn list_items_as(&self, tenant: &Tenant, query: String) -> anyhow::Result<bool> {
        let variables = json!({ "w": &*tenant.workspace_id });
        let (data, hit) = self
            .call_seeing_cache(Some(&tenant.token), &query, variables)
            .await?;
        let edges = data["items"]["edges"].as_array().map_or(0, Vec::len);
        ensure!(edges == PAGE, "items returned {edges} items, not {PAGE}");
        Ok(hit)
    }

    /// The raw answer to the tenant's first page, as the server sends it.
    pub async fn items_body(&self, tenant: &Tenant) -> anyhow::Result<actix_web::web::Bytes> {
        let response = self
            .post(
                Some(&tenant.token),
                ITEMS,
                json!({ "w": &*tenant.workspace_id }),
            )
            .send()
            .await
            .context("sending a GraphQL request")?;
        response.bytes().await.context("reading a GraphQL response")
    }

    /// POSTs one GraphQL request; its `data`, or an error if it has errors or failed.
    async fn call(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<Value> {
        Ok(self.call_seeing_cache(token, query, variables).await?.0)
    }

    /// [`Client::call`], also saying whether the answer came from the response cache.
    async fn call_seeing_cache(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> anyhow::Result<(Value, bool)> {
        let response = self
            .post(token, query, variables)
            .send()
            .await
            .context("sending a GraphQL request")?;
        let status = response.status();
        let hit = response
            .headers()
            .get("x-chronicle-cache")
            .is_some_and(|outcome| outcome == "hit");
        let mut body: Value = response
            .json()
            .await
            .with_context(|| format!("reading a GraphQL response ({status})"))?;
        if !status.is_success() || body.get("errors").is_some() {
            bail!("GraphQL request failed ({status}): {body}");
        }
        Ok((body["data"].take(), hit))
    }

    fn post(&self, token: Option<&str>, query: &str, variables: Value) -> reqwest::RequestBuilder {
        let request = self
            .http
            .post(&*self.url)
            .json(&json!({ "query": query, "variables": variables }));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

/// The length of every created item's body, in characters.
pub fn body_chars() -> usize {
    BODY.chars().count()
}
