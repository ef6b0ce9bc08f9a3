//! Validated value types. Each string newtype has a private field and a `parse` that returns a
//! [`ValidationError`]; once parsed, a value is valid for good. They serialise as their plain
//! string (or list of strings, for [`Tags`]) and re-validate when deserialised.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Maximum length of an email address, in characters.
pub const EMAIL_MAX_CHARS: usize = 254;
/// Maximum length of a display name, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 100;
/// Maximum length of a workspace name, in characters.
pub const WORKSPACE_NAME_MAX_CHARS: usize = 100;
/// Maximum length of an item title, in characters.
pub const ITEM_TITLE_MAX_CHARS: usize = 200;
/// Maximum length of an item body, in characters.
pub const ITEM_BODY_MAX_CHARS: usize = 20_000;
/// Maximum length of one tag, in characters.
pub const TAG_MAX_CHARS: usize = 40;
/// Maximum number of tags on an item.
pub const TAGS_MAX: usize = 20;
/// Minimum length of a referral code, in characters.
pub const REFERRAL_CODE_MIN_CHARS: usize = 4;
/// Maximum length of a referral code, in characters.
pub const REFERRAL_CODE_MAX_CHARS: usize = 32;

/// Implements the accessors, `Display`, and the serde conversions shared by string newtypes.
macro_rules! string_value {
    ($name:ident) => {
        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = ValidationError;

            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

/// Trims `raw` and checks it is 1..=`max` characters with no control characters.
fn single_line(field: &'static str, raw: &str, max: usize) -> Result<String, ValidationError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(ValidationError::new(field, "must not be blank"));
    }
    if text.chars().count() > max {
        return Err(ValidationError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(ValidationError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(text.to_owned())
}

/// An email address: trimmed, at most 254 characters, `local@domain.tld` shaped. The original
/// case is kept for display; [`Email::normalized`] is the form used for uniqueness.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);
string_value!(Email);

impl Email {
    /// Parses and validates an email address.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "email";
        let text = raw.trim();
        if text.is_empty() {
            return Err(ValidationError::new(FIELD, "must not be blank"));
        }
        if text.chars().count() > EMAIL_MAX_CHARS {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at most {EMAIL_MAX_CHARS} characters"),
            ));
        }
        let invalid = || ValidationError::new(FIELD, "is not a valid email address");
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = text.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.contains('@')
            && !domain.contains("..")
            && !domain.starts_with(['.', '-'])
            && !domain.ends_with(['.', '-']);
        if local.is_empty() || local.chars().count() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(text.to_owned()))
    }

    /// The lowercase form, used to compare addresses and to enforce uniqueness.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// Whether two addresses are the same, ignoring case.
    pub fn matches(&self, other: &Email) -> bool {
        self.normalized() == other.normalized()
    }
}

/// A user's display name: 1–100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);
string_value!(DisplayName);

impl DisplayName {
    /// Parses and validates a display name.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        single_line("display_name", raw, DISPLAY_NAME_MAX_CHARS).map(Self)
    }
}

/// A workspace's name: 1–100 characters after trimming.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct WorkspaceName(String);
string_value!(WorkspaceName);

impl WorkspaceName {
    /// Parses and validates a workspace name.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        single_line("name", raw, WORKSPACE_NAME_MAX_CHARS).map(Self)
    }
}

/// An item's title: 1–200 characters after trimming, not blank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ItemTitle(String);
string_value!(ItemTitle);

impl ItemTitle {
    /// Parses and validates an item title.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        single_line("title", raw, ITEM_TITLE_MAX_CHARS).map(Self)
    }
}

/// An item's body: free text of at most 20,000 characters (may be empty; kept as given).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ItemBody(String);
string_value!(ItemBody);

impl ItemBody {
    /// Parses and validates an item body.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "body";
        if raw.chars().count() > ITEM_BODY_MAX_CHARS {
            return Err(ValidationError::new(
                FIELD,
                format!("must be at most {ITEM_BODY_MAX_CHARS} characters"),
            ));
        }
        if raw.contains('\0') {
            return Err(ValidationError::new(
                FIELD,
                "must not contain NUL characters",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The empty body.
    pub fn empty() -> Self {
        Self::default()
    }
}

/// One tag: 1–40 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Tag(String);
string_value!(Tag);

impl Tag {
    /// Parses and validates a tag.
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        single_line("tag", raw, TAG_MAX_CHARS).map(Self)
    }
}

/// An item's tags: at most 20 distinct tags, in the order first given (duplicates are dropped).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Tags(Vec<Tag>);

impl Tags {
    /// Checks the count first (at most [`TAGS_MAX`] given, duplicates included, so no work is
    /// done on an oversized list), then parses each tag and drops duplicates (keeping the
    /// first).
    pub fn parse(raw: Vec<String>) -> Result<Self, ValidationError> {
        const FIELD: &str = "tags";
        if raw.len() > TAGS_MAX {
            return Err(ValidationError::new(
                FIELD,
                format!("at most {TAGS_MAX} tags are allowed, not {}", raw.len()),
            ));
        }
        let mut tags: Vec<Tag> = Vec::with_capacity(raw.len());
        for (index, text) in raw.iter().enumerate() {
            let tag = Tag::parse(text).map_err(|e| {
                ValidationError::new(FIELD, format!("tag {}: {}", index + 1, e.message))
            })?;
            // At most TAGS_MAX tags: the scan is bounded.
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        Ok(Self(tags))
    }

    /// No tags.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The tags, in order.
    pub fn as_slice(&self) -> &[Tag] {
        &self.0
    }

    /// Iterates over the tags in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Tag> {
        self.0.iter()
    }

    /// How many tags there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Tags {
    type Item = &'a Tag;
    type IntoIter = std::slice::Iter<'a, Tag>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl TryFrom<Vec<String>> for Tags {
    type Error = ValidationError;

    fn try_from(value: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Tags> for Vec<String> {
    fn from(tags: Tags) -> Self {
        tags.0.into_iter().map(String::from).collect()
    }
}

/// A user's referral code: 4–32 ASCII letters or digits, stored uppercase so codes compare
/// case-insensitively. Generated by the caller; the domain has no randomness.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReferralCode(String);
string_value!(ReferralCode);

impl ReferralCode {
    /// Parses and validates a referral code (trimmed, uppercased).
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        const FIELD: &str = "referral_code";
        let text = raw.trim();
        let len = text.chars().count();
        if !(REFERRAL_CODE_MIN_CHARS..=REFERRAL_CODE_MAX_CHARS).contains(&len) {
            return Err(ValidationError::new(
                FIELD,
                format!(
                    "must be {REFERRAL_CODE_MIN_CHARS}–{REFERRAL_CODE_MAX_CHARS} characters long"
                ),
            ));
        }
        if !text.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ValidationError::new(
                FIELD,
                "must contain only letters and digits",
            ));
        }
        Ok(Self(text.to_ascii_uppercase()))
    }
}

/// Defines a closed set of named values with a fixed text form used by serde, `Display` and
/// `FromStr` (which also accepts any letter case).
macro_rules! text_enum {
    (
        $(#[$doc:meta])*
        $name:ident, field = $field:literal {
            $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The text form, as serialised.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = ValidationError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str().eq_ignore_ascii_case(s))
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        ValidationError::new($field, format!("must be one of {}", names.join(", ")))
                    })
            }
        }
    };
}

text_enum!(
    /// A member's role in a workspace, from most to least privileged.
    Role, field = "role" {
        /// Full control, including billing and other owners.
        Owner => "OWNER",
        /// Manages members (except owners), invites and content.
        Admin => "ADMIN",
        /// Creates content and edits their own.
        Member => "MEMBER",
        /// Reads only.
        Viewer => "VIEWER",
    }
);

text_enum!(
    /// A workspace's billing plan.
    Plan, field = "plan" {
        /// The free trial, limited in time.
        Trial => "TRIAL",
        /// The paid plan.
        Pro => "PRO",
    }
);

text_enum!(
    /// Where a workspace's data lives; fixed at creation.
    Region, field = "region" {
        /// Europe.
        Eu => "eu",
        /// United States.
        Us => "us",
    }
);

text_enum!(
    /// An item's lifecycle status.
    ItemStatus, field = "status" {
        /// Not yet published.
        Draft => "DRAFT",
        /// Published.
        Active => "ACTIVE",
        /// Put away; can be restored.
        Archived => "ARCHIVED",
    }
);

text_enum!(
    /// A global staff role (not tied to a workspace).
    StaffRole, field = "staff_role" {
        /// May read any workspace's audit history, giving a recorded reason.
        Support => "SUPPORT",
        /// May read event streams with personal data pseudonymised.
        Analyst => "ANALYST",
    }
);

text_enum!(
    /// The file format of an export.
    ExportFormat, field = "format" {
        /// Comma-separated values.
        Csv => "CSV",
        /// A PDF document.
        Pdf => "PDF",
    }
);

#[cfg(test)]
mod tests;
