//! The load generator's GraphQL client: the few operations the benchmark sends, over one shared
//! pool of keep-alive HTTP/1.1 connections (one connection per concurrent client).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use base64::Engine as _;
use serde_json::{Value, json};
use uuid::Uuid;

const SIGN_UP: &str = "mutation($input: SignUpInput!) { signUp(input: $input) { accessToken } }";
const CREATE_WORKSPACE: &str = "mutation($name: String!) {
  createWorkspace(input: {name: $name, region: EU}) { workspace { id } } }";
const CREATE_ITEM: &str = "mutation($input: CreateItemInput!) {
  createItem(input: $input) { item { id version } position } }";
const ITEMS: &str = "query($w: ID!) {
  items(workspaceId: $w, first: 20) { edges { node { id title tags status version } } } }";
/// The same page from PostGraphile's generated API over the `items` table: the same fields,
/// newest first with the same tie-break as Chronicle's (`created_at DESC, id DESC`).
const POSTGRAPHILE_ITEMS: &str = "query($w: UUID!) {
  allItems(first: 20, orderBy: [CREATED_AT_DESC, ID_DESC], condition: {workspaceId: $w}) {
    nodes { id title tags status version } } }";

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
    /// The workspace's global id, as Chronicle's API takes it.
    pub workspace_id: Arc<str>,
    /// The workspace's row id (for servers reading the tables directly).
    pub workspace_uuid: Uuid,
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
            workspace_uuid: uuid_of(workspace_id)?,
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
        full_page(&data["items"]["edges"])?;
        Ok(hit)
    }

    /// The ids of the tenant's first page of items, newest first.
    pub async fn first_page(&self, tenant: &Tenant) -> anyhow::Result<Vec<Uuid>> {
        let variables = json!({ "w": &*tenant.workspace_id });
        let data = self.call(Some(&tenant.token), ITEMS, variables).await?;
        full_page(&data["items"]["edges"])?
            .iter()
            .map(|edge| uuid_of(edge["node"]["id"].as_str().context("an item without id")?))
            .collect()
    }

    /// [`Client::list_items`] asked of PostGraphile: no token (it checks none), the workspace
    /// by its row id.
    pub async fn list_items_postgraphile(&self, tenant: &Tenant) -> anyhow::Result<()> {
        let data = self.postgraphile_items(tenant).await?;
        full_page(&data["allItems"]["nodes"]).map(drop)
    }

    /// [`Client::first_page`] as PostGraphile answers it.
    pub async fn first_page_postgraphile(&self, tenant: &Tenant) -> anyhow::Result<Vec<Uuid>> {
        let data = self.postgraphile_items(tenant).await?;
        full_page(&data["allItems"]["nodes"])?
            .iter()
            .map(|node| {
                let id = node["id"].as_str().context("an item without id")?;
                Uuid::parse_str(id).with_context(|| format!("`{id}` is not a uuid"))
            })
            .collect()
    }

    async fn postgraphile_items(&self, tenant: &Tenant) -> anyhow::Result<Value> {
        let variables = json!({ "w": tenant.workspace_uuid });
        self.call(None, POSTGRAPHILE_ITEMS, variables).await
    }

    /// Asks for `__typename`: succeeds once the server answers GraphQL at all.
    pub async fn typename(&self) -> anyhow::Result<()> {
        let data = self.call(None, "{ __typename }", json!({})).await?;
        ensure!(data["__typename"].is_string(), "no __typename in {data}");
        Ok(())
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
    pub async fn call(
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

/// A page of items (`edges` or `nodes`), which must hold [`PAGE`] of them.
fn full_page(page: &Value) -> anyhow::Result<&[Value]> {
    let items = page.as_array().map_or(&[][..], Vec::as_slice);
    ensure!(
        items.len() == PAGE,
        "the page held {} items, not {PAGE}",
        items.len()
    );
    Ok(items)
}

/// The uuid inside one of Chronicle's global ids (base64 of `Kind:uuid`).
pub fn uuid_of(global_id: &str) -> anyhow::Result<Uuid> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(global_id)
        .with_context(|| format!("`{global_id}` is not a global id"))?;
    let text = String::from_utf8(bytes).context("a global id that is not UTF-8")?;
    let (_, uuid) = text
        .split_once(':')
        .with_context(|| format!("`{text}` is not a global id"))?;
    Uuid::parse_str(uuid).with_context(|| format!("`{uuid}` is not a uuid"))
}

/// The length of every created item's body, in characters.
pub fn body_chars() -> usize {
    BODY.chars().count()
}
