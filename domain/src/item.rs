//! The item aggregate: the content users create and search, with its lifecycle
//! (draft → active → archived → restored, or deleted).
//!
//! An item's permissions depend on the actor's role in the item's workspace, which lives in
//! another aggregate. The caller therefore passes it in the command as an [`Access`], obtained
//! from [`crate::Workspace::access_of`]: an [`ItemCommand`] is an `access` plus an
//! [`ItemAction`]. `decide` checks that the access belongs to the acting user (`ctx.actor`) and
//! to the item's workspace, so a mixed-up access is refused rather than trusted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregate, DomainEvent};
use crate::context::Context;
use crate::error::{DomainError, ValidationError};
use crate::ids::{ItemId, UserId, WorkspaceId};
use crate::values::{ItemBody, ItemStatus, ItemTitle, Role, Tags};

/// Who acts on an item: a member of a workspace and their role there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// The workspace the role is held in.
    pub workspace_id: WorkspaceId,
    /// The member (must be `ctx.actor`).
    pub user_id: UserId,
    /// Their role in the workspace.
    pub role: Role,
}

/// A command on an item: who acts, with which role, and what they ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemCommand {
    /// The actor's membership in the item's workspace.
    pub access: Access,
    /// What is asked.
    pub action: ItemAction,
}

impl ItemCommand {
    /// Pairs an access with an action.
    pub fn new(access: Access, action: ItemAction) -> Self {
        Self { access, action }
    }
}

/// What may be asked of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemAction {
    /// Creates the item in `access.workspace_id` (owner, admin, member), authored by the actor.
    Create {
        /// The new item's id.
        item_id: ItemId,
        /// Its title.
        title: ItemTitle,
        /// Its body.
        body: ItemBody,
        /// Its tags.
        tags: Tags,
        /// `DRAFT` or `ACTIVE` (not `ARCHIVED`).
        status: ItemStatus,
    },
    /// Changes the given fields; absent or unchanged fields emit nothing.
    Update {
        /// The new title, if changing.
        title: Option<ItemTitle>,
        /// The new body, if changing.
        body: Option<ItemBody>,
        /// The new tags, if changing.
        tags: Option<Tags>,
    },
    /// `DRAFT` → `ACTIVE`.
    Publish,
    /// `DRAFT` or `ACTIVE` → `ARCHIVED`.
    Archive,
    /// `ARCHIVED` → the status it had before archiving.
    Restore,
    /// Deletes the item, whatever its status.
    Delete,
}

/// What happened to an item. Every change carries the old and new values and its time (`at`),
/// which becomes the item's `updated_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ItemEvent {
    /// An item was created.
    ItemCreated {
        /// The item's id.
        item_id: ItemId,
        /// Its workspace.
        workspace_id: WorkspaceId,
        /// Its title.
        title: ItemTitle,
        /// Its body.
        body: ItemBody,
        /// Its tags.
        tags: Tags,
        /// Its initial status.
        status: ItemStatus,
        /// Who created it.
        author: UserId,
        /// When.
        created_at: DateTime<Utc>,
    },
    /// The title changed.
    ItemRetitled {
        /// The previous title.
        from: ItemTitle,
        /// The new title.
        to: ItemTitle,
        /// When.
        at: DateTime<Utc>,
    },
    /// The body changed.
    ItemBodyEdited {
        /// The previous body.
        from: ItemBody,
        /// The new body.
        to: ItemBody,
        /// When.
        at: DateTime<Utc>,
    },
    /// The tags changed.
    ItemRetagged {
        /// The previous tags.
        from: Tags,
        /// The new tags.
        to: Tags,
        /// When.
        at: DateTime<Utc>,
    },
    /// A draft was published (`DRAFT` → `ACTIVE`).
    ItemPublished {
        /// When.
        at: DateTime<Utc>,
    },
    /// The item was archived.
    ItemArchived {
        /// The status before archiving.
        from: ItemStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// The item was restored from the archive.
    ItemRestored {
        /// The status it returned to.
        to: ItemStatus,
        /// When.
        at: DateTime<Utc>,
    },
    /// The item was deleted.
    ItemDeleted {
        /// Its title at deletion, for the audit trail.
        title: ItemTitle,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ItemEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::ItemCreated { .. } => "ItemCreated",
            Self::ItemRetitled { .. } => "ItemRetitled",
            Self::ItemBodyEdited { .. } => "ItemBodyEdited",
            Self::ItemRetagged { .. } => "ItemRetagged",
            Self::ItemPublished { .. } => "ItemPublished",
            Self::ItemArchived { .. } => "ItemArchived",
            Self::ItemRestored { .. } => "ItemRestored",
            Self::ItemDeleted { .. } => "ItemDeleted",
        }
    }
}

/// The fields of a created item.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Content {
    id: ItemId,
    workspace_id: WorkspaceId,
    title: ItemTitle,
    body: ItemBody,
    tags: Tags,
    status: ItemStatus,
    author: UserId,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    status_before_archive: Option<ItemStatus>,
}

/// An item's state, folded from its events. The default value is an item that does not exist.
/// A deleted item keeps its last content (for time travel) but refuses every command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Item {
    content: Option<Content>,
    deleted: bool,
    version: i64,
}

impl Item {
    /// Whether the item was created and is not deleted.
    pub fn exists(&self) -> bool {
        self.content.is_some() && !self.deleted
    }

    /// Whether the item was deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// The item's id, once created.
    pub fn id(&self) -> Option<ItemId> {
        self.content.as_ref().map(|c| c.id)
    }

    /// The item's workspace, once created.
    pub fn workspace_id(&self) -> Option<WorkspaceId> {
        self.content.as_ref().map(|c| c.workspace_id)
    }

    /// The item's title, once created.
    pub fn title(&self) -> Option<&ItemTitle> {
        self.content.as_ref().map(|c| &c.title)
    }

    /// The item's body, once created.
    pub fn body(&self) -> Option<&ItemBody> {
        self.content.as_ref().map(|c| &c.body)
    }

    /// The item's tags, once created.
    pub fn tags(&self) -> Option<&Tags> {
        self.content.as_ref().map(|c| &c.tags)
    }

    /// The item's status, once created.
    pub fn status(&self) -> Option<ItemStatus> {
        self.content.as_ref().map(|c| c.status)
    }

    /// Who created the item.
    pub fn author(&self) -> Option<UserId> {
        self.content.as_ref().map(|c| c.author)
    }

    /// When the item was created.
    pub fn created_at(&self) -> Option<DateTime<Utc>> {
        self.content.as_ref().map(|c| c.created_at)
    }

    /// When the item last changed.
    pub fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.content.as_ref().map(|c| c.updated_at)
    }

    /// The status an archived item returns to when restored.
    pub fn status_before_archive(&self) -> Option<ItemStatus> {
        self.content.as_ref().and_then(|c| c.status_before_archive)
    }

    /// The number of events folded into this state (the stream version).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The content of a live item in `access`'s workspace. Anything else is "not found".
    fn live(&self, access: &Access) -> Result<&Content, DomainError> {
        self.content
            .as_ref()
            .filter(|c| !self.deleted && c.workspace_id == access.workspace_id)
            .ok_or(DomainError::not_found("item"))
    }

    /// The content of a live item that `access` may change.
    fn editable(&self, access: &Access) -> Result<&Content, DomainError> {
        let content = self.live(access)?;
        check_can_edit(access, content)?;
        Ok(content)
    }
}

/// Checks the access belongs to the acting user.
fn check_actor(access: &Access, ctx: &Context) -> Result<(), DomainError> {
    if ctx.actor.user_id() == Some(access.user_id) {
        Ok(())
    } else {
        Err(DomainError::forbidden(
            "items can only be changed by a member acting for themself",
        ))
    }
}

/// Who may change an existing item: owners and admins any, members their own, viewers none.
fn check_can_edit(access: &Access, content: &Content) -> Result<(), DomainError> {
    match access.role {
        Role::Owner | Role::Admin => Ok(()),
        Role::Member if content.author == access.user_id => Ok(()),
        Role::Member => Err(DomainError::forbidden(
            "the MEMBER role can only change items they created",
        )),
        Role::Viewer => Err(DomainError::forbidden(
            "the VIEWER role cannot change items",
        )),
    }
}

fn invalid(from: ItemStatus, action: &'static str) -> DomainError {
    DomainError::InvalidTransition { from, action }
}

fn update(
    content: &Content,
    title: Option<ItemTitle>,
    body: Option<ItemBody>,
    tags: Option<Tags>,
    at: DateTime<Utc>,
) -> Result<Vec<ItemEvent>, DomainError> {
    if content.status == ItemStatus::Archived {
        return Err(invalid(content.status, "edit"));
    }
    let mut events = Vec::new();
    if let Some(to) = title.filter(|t| *t != content.title) {
        events.push(ItemEvent::ItemRetitled {
            from: content.title.clone(),
            to,
            at,
        });
    }
    if let Some(to) = body.filter(|b| *b != content.body) {
        events.push(ItemEvent::ItemBodyEdited {
            from: content.body.clone(),
            to,
            at,
        });
    }
    if let Some(to) = tags.filter(|t| *t != content.tags) {
        events.push(ItemEvent::ItemRetagged {
            from: content.tags.clone(),
            to,
            at,
        });
    }
    Ok(events)
}

impl Aggregate for Item {
    const STREAM_TYPE: &'static str = "item";
    type Command = ItemCommand;
    type Event = ItemEvent;

    fn decide(&self, command: ItemCommand, ctx: &Context) -> Result<Vec<ItemEvent>, DomainError> {
        let ItemCommand { access, action } = command;
        check_actor(&access, ctx)?;
        let at = ctx.now;
        match action {
            ItemAction::Create {
                item_id,
                title,
                body,
                tags,
                status,
            } => {
                if access.role == Role::Viewer {
                    return Err(DomainError::forbidden(
                        "the VIEWER role cannot create items",
                    ));
                }
                if status == ItemStatus::Archived {
                    return Err(ValidationError::new(
                        "status",
                        "a new item must be DRAFT or ACTIVE",
                    )
                    .into());
                }
                if self.content.is_some() {
                    return Err(DomainError::conflict("the item already exists"));
                }
                Ok(vec![ItemEvent::ItemCreated {
                    item_id,
                    workspace_id: access.workspace_id,
                    title,
                    body,
                    tags,
                    status,
                    author: access.user_id,
                    created_at: at,
                }])
            }
            ItemAction::Update { title, body, tags } => {
                update(self.editable(&access)?, title, body, tags, at)
            }
            ItemAction::Publish => match self.editable(&access)?.status {
                ItemStatus::Draft => Ok(vec![ItemEvent::ItemPublished { at }]),
                from @ (ItemStatus::Active | ItemStatus::Archived) => Err(invalid(from, "publish")),
            },
            ItemAction::Archive => match self.editable(&access)?.status {
                from @ (ItemStatus::Draft | ItemStatus::Active) => {
                    Ok(vec![ItemEvent::ItemArchived { from, at }])
                }
                from @ ItemStatus::Archived => Err(invalid(from, "archive")),
            },
            ItemAction::Restore => {
                let content = self.editable(&access)?;
                match content.status {
                    ItemStatus::Archived => Ok(vec![ItemEvent::ItemRestored {
                        to: content.status_before_archive.unwrap_or(ItemStatus::Draft),
                        at,
                    }]),
                    from @ (ItemStatus::Draft | ItemStatus::Active) => {
                        Err(invalid(from, "restore"))
                    }
                }
            }
            ItemAction::Delete => Ok(vec![ItemEvent::ItemDeleted {
                title: self.editable(&access)?.title.clone(),
                at,
            }]),
        }
    }

    fn evolve(mut self, event: &ItemEvent) -> Self {
        self.version += 1;
        if let ItemEvent::ItemCreated {
            item_id,
            workspace_id,
            title,
            body,
            tags,
            status,
            author,
            created_at,
        } = event
        {
            self.content = Some(Content {
                id: *item_id,
                workspace_id: *workspace_id,
                title: title.clone(),
                body: body.clone(),
                tags: tags.clone(),
                status: *status,
                author: *author,
                created_at: *created_at,
                updated_at: *created_at,
                status_before_archive: None,
            });
            return self;
        }
        let Some(content) = &mut self.content else {
            return self;
        };
        match event {
            ItemEvent::ItemCreated { .. } => {}
            ItemEvent::ItemRetitled { to, at, .. } => {
                content.title = to.clone();
                content.updated_at = *at;
            }
            ItemEvent::ItemBodyEdited { to, at, .. } => {
                content.body = to.clone();
                content.updated_at = *at;
            }
            ItemEvent::ItemRetagged { to, at, .. } => {
                content.tags = to.clone();
                content.updated_at = *at;
            }
            ItemEvent::ItemPublished { at } => {
                content.status = ItemStatus::Active;
                content.updated_at = *at;
            }
            ItemEvent::ItemArchived { from, at } => {
                content.status_before_archive = Some(*from);
                content.status = ItemStatus::Archived;
                content.updated_at = *at;
            }
            ItemEvent::ItemRestored { to, at } => {
                content.status_before_archive = None;
                content.status = *to;
                content.updated_at = *at;
            }
            ItemEvent::ItemDeleted { at, .. } => {
                content.updated_at = *at;
                self.deleted = true;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests;
