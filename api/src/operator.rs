//! What operators do from the command line: grant and revoke staff roles, verify the audit
//! trail. Each change goes through the domain and the log like any other.

use domain::{Aggregate, Email, StaffRole, UserCommand};
use eventlog::{EventLog, Metadata, StreamRef, VerifyReport};
use projections::queries;
use uuid::Uuid;

use crate::error::ApiError;
use crate::writes::Writes;

/// Grants (`grant`) or revokes a global staff role of the user with `email`. Returns whether
/// anything changed (granting a held role, or revoking one not held, changes nothing).
pub async fn set_staff_role(
    writes: &Writes,
    email: &str,
    role: StaffRole,
    grant: bool,
) -> Result<bool, ApiError> {
    let email = Email::parse(email).map_err(|err| ApiError::Domain(err.into()))?;
    let pool = writes.log().pool();
    let user = queries::user_by_email(pool, &email.normalized())
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let loaded = writes.log().load::<domain::User>(user.id).await?;
    let command = if grant {
        UserCommand::GrantStaffRole { role }
    } else {
        UserCommand::RevokeStaffRole { role }
    };
    let ctx = domain::Context::system(writes.now(), "operator");
    let events = loaded.state.decide(command, &ctx)?;
    let stream = StreamRef {
        stream_type: domain::User::STREAM_TYPE,
        stream_id: user.id,
        workspace_id: None,
    };
    let mut tx = pool
        .begin()
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    let written = writes
        .append(
            &mut tx,
            &stream,
            loaded.expected_version(),
            events,
            &Metadata::system("chronicle staff"),
        )
        .await?;
    tx.commit()
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    writes.log().announce_append();
    Ok(written.is_some())
}

/// Verifies the hash chains of the whole log, or of one workspace's streams.
pub async fn verify(log: &EventLog, workspace: Option<Uuid>) -> Result<VerifyReport, ApiError> {
    Ok(log.verify(workspace).await?)
}

/// A one-paragraph account of a verification, for people.
pub fn describe(report: &VerifyReport) -> String {
    let checked = format!(
        "{} events in {} streams checked",
        report.events_checked, report.streams_checked
    );
    match &report.first_broken {
        None => format!("{checked}: every hash chain is intact."),
        Some(link) => format!(
            "{checked}: BROKEN at position {} (event {}, stream {} version {}): {}.",
            link.position, link.event_id, link.stream_id, link.stream_version, link.reason
        ),
    }
}
