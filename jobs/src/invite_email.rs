//! The invite email: on `InviteCreated`, the invitee gets the accept link and the workspace's
//! name, as text and HTML, once recorded (`InviteEmailSent`).
//!
//! The link's token is never stored: only its hash is (in the `InviteCreated` event and the
//! `invites` table). Instead the token is derived, `HMAC-SHA256(key, invite id)`, from a server
//! secret kept in the database ([`InviteTokens`]): `inviteMember` derives it to store its hash
//! and show it once, and this job derives the same token again to mail it. It cannot be guessed
//! without the key, and `acceptInvite` still checks its hash against the stored one, so nothing
//! about accepting changes.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::PgPool;
use uuid::Uuid;

use crate::mail::{Delivery, Email, Mailer, escape_html};
use crate::worker::{Job, Origin};
use crate::{BoxError, Recorder, SentInvite};

/// The queue (apalis `job_type`) of invite emails.
pub const QUEUE: &str = "chronicle.invite-email";

/// The job's arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteEmail {
    /// The `InviteCreated` event, its workspace and correlation id.
    #[serde(flatten)]
    pub origin: Origin,
    pub invite_id: Uuid,
}

impl Job for InviteEmail {
    const QUEUE: &'static str = QUEUE;
    type Runner = InviteMail;

    fn origin(&self) -> Origin {
        self.origin
    }

    async fn run(&self, mail: &InviteMail) -> Result<String, BoxError> {
        Ok(match mail.run(self).await? {
            Outcome::Sent => "invite email sent",
            Outcome::Logged => "invite email logged (no SMTP server)",
            Outcome::AlreadySent => "invite email sent before; nothing to do",
            Outcome::NoLongerPending => "invite accepted, revoked or expired; not sent",
            Outcome::Unknown => "invite not found; not sent",
        }
        .to_string())
    }
}

/// Derives invite tokens from a server secret (see the module docs).
#[derive(Clone)]
pub struct InviteTokens {
    key: Arc<Vec<u8>>,
}

impl InviteTokens {
    pub fn new(key: Vec<u8>) -> InviteTokens {
        InviteTokens { key: Arc::new(key) }
    }

    /// The secret token of invite `invite_id`.
    pub fn token(&self, invite_id: Uuid) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"chronicle invite token\0");
        mac.update(invite_id.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// What the invite-email job needs.
pub struct InviteMail {
    pub pool: PgPool,
    pub mailer: Mailer,
    pub tokens: InviteTokens,
    /// `CHRONICLE_PUBLIC_URL`, without a trailing slash.
    pub public_url: String,
    pub recorder: Arc<dyn Recorder>,
}

/// What a run of the job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Sent and recorded.
    Sent,
    /// Logged (no SMTP server in development); not recorded as sent.
    Logged,
    /// Recorded as sent before: nothing to do.
    AlreadySent,
    /// Accepted, revoked or expired before the job ran: not sent.
    NoLongerPending,
    /// The invite is not in the read model (it never will be): not sent.
    Unknown,
}

impl InviteMail {
    /// Sends the invite email of `job` unless there is nothing to send, and records it.
    pub async fn run(&self, job: &InviteEmail) -> Result<Outcome, BoxError> {
        let Some(invite) = sqlx::query!(
            r#"SELECT i.email, i.status, i.expires_at, w.name AS workspace_name,
                      e.invite_id IS NOT NULL AS "sent!"
               FROM invites i
               JOIN workspaces w ON w.id = i.workspace_id
               LEFT JOIN invite_emails e ON e.invite_id = i.id
               WHERE i.id = $1 AND i.workspace_id = $2"#,
            job.invite_id,
            job.origin.workspace_id
        )
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(Outcome::Unknown);
        };
        if invite.sent {
            return Ok(Outcome::AlreadySent);
        }
        if invite.status != "PENDING" || invite.expires_at <= chrono::Utc::now() {
            return Ok(Outcome::NoLongerPending);
        }
        let link = format!(
            "{}/invites/accept?token={}",
            self.public_url,
            self.tokens.token(job.invite_id)
        );
        let email = Email {
            to: vec![invite.email.parse()?],
            subject: format!("You are invited to {} on Chronicle", invite.workspace_name),
            message_id: message_id(job.origin.event_id, &self.public_url),
            text: format!(
                "You have been invited to join the workspace \"{name}\" on Chronicle.\n\n\
                 Accept the invitation: {link}\n\n\
                 The invitation expires on {expires}.\n",
                name = invite.workspace_name,
                expires = invite.expires_at.format("%Y-%m-%d %H:%M UTC"),
            ),
            html: format!(
                "<p>You have been invited to join the workspace <strong>{name}</strong> on \
                 Chronicle.</p>\n<p><a href=\"{link}\">Accept the invitation</a></p>\n\
                 <p>The invitation expires on {expires}.</p>\n",
                name = escape_html(&invite.workspace_name),
                link = escape_html(&link),
                expires = invite.expires_at.format("%Y-%m-%d %H:%M UTC"),
            ),
        };
        match self.mailer.send(&email).await? {
            Delivery::Logged => Ok(Outcome::Logged),
            Delivery::Sent => {
                let sent = SentInvite {
                    workspace_id: job.origin.workspace_id,
                    invite_id: job.invite_id,
                    cause: job.origin.event_id,
                    message_id: email.message_id,
                };
                self.recorder.invite_email_sent(&sent).await?;
                Ok(Outcome::Sent)
            }
        }
    }
}

/// The `Message-ID` of the invite email of event `event_id`: the same on every attempt, so a
/// resent email is recognisable as the same one.
pub fn message_id(event_id: Uuid, public_url: &str) -> String {
    crate::mail::message_id(&format!("invite-{event_id}"), public_url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_depend_on_the_key_and_the_invite() {
        let (a, b) = (
            InviteTokens::new(vec![1; 32]),
            InviteTokens::new(vec![2; 32]),
        );
        let invite = Uuid::from_u128(7);
        assert_eq!(a.token(invite), a.token(invite));
        assert_ne!(a.token(invite), b.token(invite));
        assert_ne!(a.token(invite), a.token(Uuid::from_u128(8)));
        assert_eq!(a.token(invite).len(), 43);
    }

    #[test]
    fn message_ids_name_the_event_and_the_public_host() {
        let event = Uuid::from_u128(1);
        assert_eq!(
            message_id(event, "https://app.example.com:8443/base"),
            format!("<invite-{event}@app.example.com>")
        );
        assert_eq!(
            message_id(event, "nonsense"),
            format!("<invite-{event}@chronicle.invalid>")
        );
    }
}
