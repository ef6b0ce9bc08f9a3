//! The per-stream hash chain that makes tampering evident.
//!
//! Each event's hash is `sha256(previous event's hash ‖ canonical JSON of this event)`, where
//! the first event of a stream chains to 32 zero bytes. The canonical JSON sorts object keys, so
//! the hash computed at append time is the one recomputed from what PostgreSQL hands back.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The chain's starting point: what the first event of every stream links to.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// The stored fields that the hash covers.
pub(crate) struct Hashed<'a> {
    pub event_id: Uuid,
    pub stream_type: &'a str,
    pub stream_id: Uuid,
    pub stream_version: u64,
    pub workspace_id: Option<Uuid>,
    pub event_type: &'a str,
    pub schema_version: i32,
    pub payload: &'a serde_json::Value,
    pub metadata: &'a serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

impl Hashed<'_> {
    /// This event's link in the chain that `previous` ends.
    pub fn link(&self, previous: &[u8]) -> Vec<u8> {
        let mut text = String::with_capacity(512);
        let _ = write!(
            text,
            "{}\n{}\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.event_id,
            self.stream_type,
            self.stream_id,
            self.stream_version,
            self.workspace_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            self.event_type,
            self.schema_version,
            self.recorded_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        );
        canonical_json(self.payload, &mut text);
        text.push('\n');
        canonical_json(self.metadata, &mut text);
        let mut hasher = Sha256::new();
        hasher.update(previous);
        hasher.update(text.as_bytes());
        hasher.finalize().to_vec()
    }
}

/// JSON with object keys sorted and no insignificant white space.
fn canonical_json(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash_but_content_does() {
        let at = DateTime::from_timestamp(1_800_000_000, 123_000).unwrap();
        let a = json!({"b": 1, "a": {"y": [1, 2], "x": "s"}});
        let b: serde_json::Value =
            serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        let c = json!({"b": 2, "a": {"y": [1, 2], "x": "s"}});
        let meta = json!({});
        let event = |payload| Hashed {
            event_id: Uuid::nil(),
            stream_type: "item",
            stream_id: Uuid::nil(),
            stream_version: 1,
            workspace_id: None,
            event_type: "ItemCreated",
            schema_version: 1,
            payload,
            metadata: &meta,
            recorded_at: at,
        };
        assert_eq!(event(&a).link(&GENESIS), event(&b).link(&GENESIS));
        assert_ne!(event(&a).link(&GENESIS), event(&c).link(&GENESIS));
        assert_ne!(event(&a).link(&GENESIS), event(&a).link(&[1; 32]));
    }
}
