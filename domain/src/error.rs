//! The crate's one error type, [`DomainError`], and the typed [`ValidationError`] returned by
//! every `parse` at the boundary. Messages are written to be safe to show to end users.

use thiserror::Error;

use crate::values::ItemStatus;

/// An input value that failed validation: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The name of the offending field, e.g. `"title"`.
    pub field: &'static str,
    /// A human-readable explanation, e.g. `"must be at most 200 characters"`.
    pub message: String,
}

impl ValidationError {
    /// Builds a validation error for `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Why a command was refused. Every variant's message is safe to show to users.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// An input value is invalid.
    #[error("invalid input: {0}")]
    Validation(#[from] ValidationError),
    /// The entity does not exist, or the actor may not know that it exists.
    #[error("{entity} not found")]
    NotFound {
        /// The kind of entity, e.g. `"workspace"`.
        entity: &'static str,
    },
    /// The actor is known but not allowed to do this.
    #[error("forbidden: {reason}")]
    Forbidden {
        /// Why the action is not allowed.
        reason: String,
    },
    /// The command contradicts the current state (already exists, already done, …).
    #[error("conflict: {reason}")]
    Conflict {
        /// What conflicts.
        reason: String,
    },
    /// The command would leave a workspace without an owner.
    #[error("a workspace must keep at least one owner: the last owner cannot leave or be demoted")]
    LastOwner,
    /// The workspace's trial has ended; the feature is available again after upgrading.
    #[error(
        "{feature} are locked because the workspace's trial has ended; upgrade the plan to unlock them"
    )]
    FeatureLocked {
        /// The locked feature, e.g. `"invites"` or `"exports"`.
        feature: &'static str,
    },
    /// The item's status does not allow this action.
    #[error("cannot {action} an item whose status is {from}")]
    InvalidTransition {
        /// The item's current status.
        from: ItemStatus,
        /// The refused action, e.g. `"publish"`.
        action: &'static str,
    },
    /// The invite can no longer be accepted because it has expired.
    #[error("this invite has expired; ask for a new one")]
    InviteExpired,
}

impl DomainError {
    /// Shorthand for [`DomainError::NotFound`].
    pub fn not_found(entity: &'static str) -> Self {
        Self::NotFound { entity }
    }

    /// Shorthand for [`DomainError::Forbidden`].
    pub fn forbidden(reason: impl Into<String>) -> Self {
        Self::Forbidden {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`DomainError::Conflict`].
    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::Conflict {
            reason: reason.into(),
        }
    }
}
