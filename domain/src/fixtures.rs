//! Shared test fixtures: a fixed clock, deterministic ids and parsed values.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::aggregate::DomainEvent;
use crate::context::Context;
use crate::error::ValidationError;
use crate::ids::{ExportId, InviteId, ItemId, UserId, WorkspaceId};
use crate::values::{DisplayName, Email, ItemBody, ItemTitle, ReferralCode, Tags, WorkspaceName};

/// The fixed "now" of every test: 2025-01-01T12:00:00Z.
pub fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_735_732_800, 0).expect("valid timestamp")
}

/// `t0` plus `days`.
pub fn days(days: i64) -> DateTime<Utc> {
    t0() + Duration::days(days)
}

pub fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(n))
}

pub fn workspace_id() -> WorkspaceId {
    WorkspaceId::from_uuid(Uuid::from_u128(1000))
}

pub fn other_workspace_id() -> WorkspaceId {
    WorkspaceId::from_uuid(Uuid::from_u128(1001))
}

pub fn invite_id(n: u128) -> InviteId {
    InviteId::from_uuid(Uuid::from_u128(2000 + n))
}

pub fn export_id(n: u128) -> ExportId {
    ExportId::from_uuid(Uuid::from_u128(3000 + n))
}

pub fn item_id() -> ItemId {
    ItemId::from_uuid(Uuid::from_u128(4000))
}

pub fn as_user(n: u128) -> Context {
    Context::user(t0(), user(n))
}

pub fn as_user_at(n: u128, at: DateTime<Utc>) -> Context {
    Context::user(at, user(n))
}

pub fn as_system() -> Context {
    Context::system(t0(), "test-job")
}

pub fn as_system_at(at: DateTime<Utc>) -> Context {
    Context::system(at, "test-job")
}

pub fn email(s: &str) -> Email {
    Email::parse(s).expect("valid email")
}

pub fn display_name(s: &str) -> DisplayName {
    DisplayName::parse(s).expect("valid display name")
}

pub fn ws_name(s: &str) -> WorkspaceName {
    WorkspaceName::parse(s).expect("valid workspace name")
}

pub fn title(s: &str) -> ItemTitle {
    ItemTitle::parse(s).expect("valid title")
}

pub fn body(s: &str) -> ItemBody {
    ItemBody::parse(s).expect("valid body")
}

pub fn tags(list: &[&str]) -> Tags {
    Tags::parse(list.iter().map(|s| (*s).to_owned()).collect()).expect("valid tags")
}

pub fn code(s: &str) -> ReferralCode {
    ReferralCode::parse(s).expect("valid referral code")
}

/// Checks that `events` hold exactly one event of each type `E` has — the types serde's derive
/// lists ([`DomainEvent::event_types`]), so a new variant fails the caller's test until an
/// event of it is added there.
pub fn assert_one_of_each_type<E: DomainEvent>(events: &[E]) {
    let mut given: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
    given.sort_unstable();
    let mut every: Vec<&str> = E::event_types().to_vec();
    every.sort_unstable();
    assert_eq!(given, every, "one event of each type");
}

/// Checks that `event_type` is no type of `E`: reading it fails, naming it as unknown.
pub fn assert_unknown_type<E: DomainEvent>(event_type: &str) {
    let err = E::from_parts(event_type, serde_json::json!({}))
        .expect_err("an unknown type")
        .to_string();
    let expected = format!("unknown variant `{event_type}`");
    assert!(err.starts_with(&expected), "{err}");
}

/// The field and message a value was refused with (panics when it was accepted).
pub fn refused<T: std::fmt::Debug>(result: Result<T, ValidationError>) -> (&'static str, String) {
    let err = result.expect_err("refused");
    (err.field, err.message)
}

/// `(field, message)`, to compare with [`refused`].
pub fn because(field: &'static str, message: &str) -> (&'static str, String) {
    (field, message.to_owned())
}
