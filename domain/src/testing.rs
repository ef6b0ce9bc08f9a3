//! A given-events / when-command / then-events harness for aggregates, in the shape of
//! cqrs-es's `TestFramework`. For tests only: its checks panic on mismatch.
//!
//! ```
//! use domain::testing::given;
//! use domain::{Context, User, UserCommand};
//! # let now = chrono::DateTime::from_timestamp(0, 0).expect("epoch");
//! # let user_id = domain::UserId::from_uuid(uuid::Uuid::from_u128(1));
//! given::<User>([])
//!     .when(UserCommand::Rename { display_name: domain::DisplayName::parse("Ada").expect("valid") },
//!           &Context::user(now, user_id))
//!     .then_err(domain::DomainError::NotFound { entity: "user" });
//! ```

use crate::aggregate::Aggregate;
use crate::context::Context;
use crate::error::DomainError;

/// Starts a scenario from the state folded from `events`.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let events: Vec<A::Event> = events.into_iter().collect();
    Given {
        state: A::fold(&events),
    }
}

/// The state a command is decided against.
#[derive(Debug)]
pub struct Given<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    /// Decides `command` in `ctx` against the given state.
    pub fn when(self, command: A::Command, ctx: &Context) -> Then<A> {
        let result = self.state.decide(command, ctx);
        Then {
            state: self.state,
            result,
        }
    }

    /// The state folded from the given events.
    pub fn state(&self) -> &A {
        &self.state
    }
}

/// The outcome of a decided command, to be checked.
#[derive(Debug)]
pub struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, DomainError>,
}

impl<A: Aggregate> Then<A> {
    /// Asserts the command succeeded with exactly `expected`; returns the evolved state.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "unexpected events");
                events.iter().fold(self.state, |state, e| state.evolve(e))
            }
            Err(error) => panic!("expected events {expected:?}, got error {error:?}"),
        }
    }

    /// Asserts the command succeeded without any event (a no-op).
    #[track_caller]
    pub fn then_nothing(self) -> A {
        self.then([])
    }

    /// Asserts the command failed with exactly `expected`.
    #[track_caller]
    pub fn then_err(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected error {expected:?}, got events {events:?}"),
            Err(error) => assert_eq!(error, expected, "unexpected error"),
        }
    }

    /// Asserts the command failed with an error accepted by `matches`.
    #[track_caller]
    pub fn then_err_matching(self, matches: impl FnOnce(&DomainError) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, got events {events:?}"),
            Err(error) => assert!(matches(&error), "unexpected error {error:?}"),
        }
    }

    /// The raw result, for checks the helpers above don't cover.
    pub fn result(self) -> Result<Vec<A::Event>, DomainError> {
        self.result
    }
}
