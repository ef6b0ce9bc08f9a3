//! The context every command is decided in: the current time and who is acting. The domain
//! never reads the system clock; the time comes from here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::UserId;

/// Who issues a command.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Actor {
    /// A signed-in user.
    User(UserId),
    /// The system itself: a background job or an operator's CLI command.
    System {
        /// What acts, e.g. `"cli"` or `"referral-reward-job"`.
        name: String,
    },
}

impl Actor {
    /// The acting user, if the actor is a user.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Self::User(id) => Some(*id),
            Self::System { .. } => None,
        }
    }

    /// Whether the actor is the system.
    pub fn is_system(&self) -> bool {
        matches!(self, Self::System { .. })
    }
}

/// The time and actor a command is decided with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Context {
    /// The current time, as the caller sees it.
    pub now: DateTime<Utc>,
    /// Who issues the command.
    pub actor: Actor,
}

impl Context {
    /// A context for `actor` at `now`.
    pub fn new(now: DateTime<Utc>, actor: Actor) -> Self {
        Self { now, actor }
    }

    /// A context for a signed-in user at `now`.
    pub fn user(now: DateTime<Utc>, user_id: UserId) -> Self {
        Self::new(now, Actor::User(user_id))
    }

    /// A context for the system (a job or the CLI) named `name` at `now`.
    pub fn system(now: DateTime<Utc>, name: impl Into<String>) -> Self {
        Self::new(now, Actor::System { name: name.into() })
    }
}
