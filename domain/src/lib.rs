//! Chronicle's business rules, in plain Rust. This crate defines the three event-sourced
//! aggregates — [`User`], [`Workspace`] (the tenant) and [`Item`] — with their commands, their
//! past-tense events and every rule that decides between them: validation of input values,
//! permissions by workspace role, the last-owner rule, the trial lock, invites, exports,
//! referral rewards and the item lifecycle. Each aggregate's `decide` turns a command into events
//! (or a [`DomainError`]) and `evolve` applies events to state; nothing here does IO, runs async
//! code, generates ids or reads the clock — time and actor arrive in a [`Context`], and new ids
//! in commands. The [`upcast`] module is the single place where stored payloads of old schema
//! versions are brought up to date. The event log, read models and API build on these types.

#![warn(missing_docs)]

pub mod aggregate;
pub mod context;
pub mod error;
pub mod ids;
pub mod item;
pub mod referral;
pub mod testing;
pub mod upcast;
pub mod user;
pub mod values;
pub mod weekly;
pub mod workspace;

#[cfg(test)]
mod fixtures;

pub use aggregate::{Aggregate, DomainEvent};
pub use context::{Actor, Context};
pub use error::{DomainError, ValidationError};
pub use ids::{ExportId, InviteId, ItemId, UserId, WorkspaceId};
pub use item::{Access, Item, ItemAction, ItemCommand, ItemEvent};
pub use user::{User, UserCommand, UserEvent};
pub use values::{
    DisplayName, Email, ExportFormat, ItemBody, ItemStatus, ItemTitle, Plan, ReferralCode, Region,
    Role, StaffRole, Tag, Tags, WorkspaceName,
};
pub use workspace::{
    Export, ExportFile, ExportFilter, ExportStatus, Invite, InviteStatus, WeeklySummary, Workspace,
    WorkspaceCommand, WorkspaceEvent,
};
