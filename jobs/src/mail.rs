//! Sending mail: over SMTP with lettre (tokio, rustls), or — in development, with no SMTP server
//! configured — into the log, saying so.

use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::Error;

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain text (a relay on the same host or network).
    None,
    /// Plain connection upgraded with `STARTTLS` (required).
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

impl std::str::FromStr for TlsMode {
    type Err = String;

    fn from_str(text: &str) -> Result<TlsMode, String> {
        match text {
            "none" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::StartTls),
            "tls" => Ok(TlsMode::Tls),
            other => Err(format!("`{other}` is none of `none`, `starttls`, `tls`")),
        }
    }
}

/// Where and how to send mail.
#[derive(Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls: TlsMode,
}

/// The password stays out of logs.
impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// An email to send.
#[derive(Debug, Clone)]
pub struct Email {
    /// Its recipients (at least one).
    pub to: Vec<Mailbox>,
    pub subject: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

/// Sends mail.
#[derive(Clone)]
pub enum Mailer {
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
    },
    /// Development without SMTP: the email is logged, not sent.
    Log,
}

/// Whether an email went out or was only logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    Logged,
}

impl Mailer {
    /// A mailer for `settings`, sending as `from`.
    pub fn smtp(settings: &SmtpSettings, from: &str) -> Result<Mailer, Error> {
        let from: Mailbox = from
            .parse()
            .map_err(|err| Error::Config(format!("sender address `{from}`: {err}")))?;
        let builder = match settings.tls {
            TlsMode::None => {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&settings.host)
            }
            TlsMode::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&settings.host)
                    .map_err(|err| Error::Config(format!("SMTP host: {err}")))?
            }
            TlsMode::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&settings.host)
                .map_err(|err| Error::Config(format!("SMTP host: {err}")))?,
        };
        let mut builder = builder.port(settings.port).timeout(Some(SMTP_TIMEOUT));
        if let Some(username) = &settings.username {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                settings.password.clone().unwrap_or_default(),
            ));
        }
        Ok(Mailer::Smtp {
            transport: Box::new(builder.build()),
            from,
        })
    }

    /// Sends `email` (or logs it, without SMTP).
    pub async fn send(&self, email: &Email) -> Result<Delivery, Error> {
        match self {
            Mailer::Smtp { transport, from } => {
                let mut message = Message::builder()
                    .message_id(Some(email.message_id.clone()))
                    .from(from.clone());
                for to in &email.to {
                    message = message.to(to.clone());
                }
                let message = message
                    .subject(&email.subject)
                    .multipart(MultiPart::alternative_plain_html(
                        email.text.clone(),
                        email.html.clone(),
                    ))
                    .map_err(|err| Error::Mail(err.to_string()))?;
                transport
                    .send(message)
                    .await
                    .map_err(|err| Error::Mail(err.to_string()))?;
                Ok(Delivery::Sent)
            }
            Mailer::Log => {
                let to: Vec<String> = email.to.iter().map(ToString::to_string).collect();
                tracing::info!(
                    to = %to.join(", "),
                    subject = %email.subject,
                    message_id = %email.message_id,
                    text = %email.text,
                    "no SMTP server configured: this email is logged, not sent"
                );
                Ok(Delivery::Logged)
            }
        }
    }
}

/// A `Message-ID` made of `local` and the host of `public_url` (`chronicle.invalid` when it
/// has none): the same for every attempt to send one email, so a resent email is
/// recognisable as the same one.
pub fn message_id(local: &str, public_url: &str) -> String {
    let host = public_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .filter(|host| !host.is_empty())
        .unwrap_or("chronicle.invalid");
    format!("<{local}@{host}>")
}

/// `text` safe inside HTML.
pub fn escape_html(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(
            escape_html(r#"<b>Tom & "Jerry's"</b>"#),
            "&lt;b&gt;Tom &amp; &quot;Jerry&#39;s&quot;&lt;/b&gt;"
        );
    }

    #[test]
    fn tls_modes_parse() {
        assert_eq!("starttls".parse(), Ok(TlsMode::StartTls));
        assert_eq!(
            "ssl".parse::<TlsMode>(),
            Err("`ssl` is none of `none`, `starttls`, `tls`".to_string())
        );
    }
}
