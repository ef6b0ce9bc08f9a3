//! Automatic persisted queries, Apollo's protocol: a client sends
//! `extensions.persistedQuery = {"version": 1, "sha256Hash": H}` with or without the query.
//! Without it, the query stored under `H` is run, or the answer is the error
//! `PersistedQueryNotFound` (code `PERSISTED_QUERY_NOT_FOUND`), on which the client sends the
//! query again together with `H` and the node stores it. A query whose SHA-256 is not `H` is
//! refused, so what is stored under a hash is always the document with that hash.
//!
//! This runs in the HTTP handler before anything parses the document (see
//! [`crate::http`]), so everything after — the response cache, parsing, validation — sees
//! the resolved query text as if the client had sent it. Over GET the extension comes as the
//! `extensions` URL parameter (JSON), which makes a persisted query's URL short and stable.
//!
//! The store is per node, in memory (moka), bounded by bytes (`CHRONICLE_APQ_MB`): an evicted
//! or never-seen hash costs the client one more round trip, never a wrong answer. Registering
//! needs no sign-in (the client proves nothing but the hash, which anyone can compute); the
//! weigher counts each document's bytes and moka's admission policy keeps frequently used
//! documents when one-off ones pour in.

use std::sync::Arc;

use async_graphql::{Request, Value};
use moka::sync::Cache;
use sha2::{Digest, Sha256};

/// The only version of the protocol.
const VERSION: u64 = 1;
/// A SHA-256 in hex.
const HASH_HEX_LEN: usize = 64;
/// What an entry costs besides its text (key, reference count, moka's bookkeeping), roughly.
const ENTRY_OVERHEAD: usize = 96;

/// What a request asked of the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The request carries no persisted-query extension.
    NotPersisted,
    /// A hash alone, found: the stored query was put in the request.
    Hit,
    /// A hash with its query: stored (or already stored).
    Registered,
}

/// Why a persisted-query request is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PersistedQueryError {
    /// A hash alone that this node does not know: send the query with it. The message is the
    /// protocol's, which clients match on.
    #[error("PersistedQueryNotFound")]
    NotFound,
    /// The extension is not `{"version": 1, "sha256Hash": "<64 hex digits>"}`.
    #[error(
        "extensions.persistedQuery must be {{\"version\": 1, \"sha256Hash\": \"<64 hex digits>\"}}: {0}"
    )]
    Malformed(&'static str),
    /// The query sent with the hash does not have that hash.
    #[error("the query's SHA-256 is not extensions.persistedQuery.sha256Hash")]
    HashMismatch,
}

/// This node's persisted queries, by SHA-256. Cheap to clone (clones share the store).
#[derive(Clone)]
pub struct PersistedQueries {
    documents: Cache<[u8; 32], Arc<str>>,
}

impl PersistedQueries {
    /// A store holding at most about `max_bytes` of documents.
    pub fn new(max_bytes: u64) -> PersistedQueries {
        let documents = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_hash: &[u8; 32], query: &Arc<str>| {
                u32::try_from(query.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .build();
        PersistedQueries { documents }
    }

    /// Resolves `request`'s persisted-query extension, if any: a known hash alone gets its
    /// query put in the request; a query with its hash is stored. Everything is checked before
    /// the query is hashed (the hash's shape) or stored (its hash).
    pub fn resolve(&self, request: &mut Request) -> Result<Lookup, PersistedQueryError> {
        let Some(extension) = request.extensions.0.get("persistedQuery") else {
            return Ok(Lookup::NotPersisted);
        };
        let hash = parse_extension(extension)?;
        if request.query.is_empty() {
            let query = self
                .documents
                .get(&hash)
                .ok_or(PersistedQueryError::NotFound)?;
            request.query = query.to_string();
            return Ok(Lookup::Hit);
        }
        if <[u8; 32]>::from(Sha256::digest(request.query.as_bytes())) != hash {
            return Err(PersistedQueryError::HashMismatch);
        }
        if !self.documents.contains_key(&hash) {
            self.documents
                .insert(hash, Arc::from(request.query.as_str()));
        }
        Ok(Lookup::Registered)
    }
}

/// The hash of a well-formed `persistedQuery` extension.
fn parse_extension(extension: &Value) -> Result<[u8; 32], PersistedQueryError> {
    use PersistedQueryError::Malformed;
    let Value::Object(fields) = extension else {
        return Err(Malformed("not an object"));
    };
    match fields.get("version") {
        Some(Value::Number(version)) if version.as_u64() == Some(VERSION) => {}
        Some(_) => return Err(Malformed("unsupported version")),
        None => return Err(Malformed("no version")),
    }
    let Some(Value::String(hex_hash)) = fields.get("sha256Hash") else {
        return Err(Malformed("no sha256Hash string"));
    };
    if hex_hash.len() != HASH_HEX_LEN {
        return Err(Malformed("sha256Hash is not 64 characters long"));
    }
    let mut hash = [0; 32];
    hex::decode_to_slice(hex_hash, &mut hash)
        .map_err(|_| Malformed("sha256Hash is not hexadecimal"))?;
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, extension: serde_json::Value) -> Request {
        let mut request = Request::new(query);
        request.extensions.0.insert(
            "persistedQuery".into(),
            Value::from_json(extension).unwrap(),
        );
        request
    }

    fn extension(hash: &str) -> serde_json::Value {
        serde_json::json!({ "version": 1, "sha256Hash": hash })
    }

    #[test]
    fn a_hash_alone_is_found_once_registered() {
        let store = PersistedQueries::new(1 << 20);
        let query = "{ me { id } }";
        let hash = hex::encode(Sha256::digest(query));
        assert_eq!(
            store.resolve(&mut request("", extension(&hash))),
            Err(PersistedQueryError::NotFound)
        );
        assert_eq!(
            store.resolve(&mut request(query, extension(&hash))),
            Ok(Lookup::Registered)
        );
        let mut alone = request("", extension(&hash.to_uppercase()));
        assert_eq!(store.resolve(&mut alone), Ok(Lookup::Hit));
        assert_eq!(alone.query, query);
        assert_eq!(
            store.resolve(&mut Request::new(query)),
            Ok(Lookup::NotPersisted)
        );
    }

    #[test]
    fn a_query_with_another_hash_is_refused_and_not_stored() {
        let store = PersistedQueries::new(1 << 20);
        let other = hex::encode(Sha256::digest("{ other }"));
        assert_eq!(
            store.resolve(&mut request("{ me { id } }", extension(&other))),
            Err(PersistedQueryError::HashMismatch)
        );
        assert_eq!(
            store.resolve(&mut request("", extension(&other))),
            Err(PersistedQueryError::NotFound)
        );
    }

    #[test]
    fn malformed_extensions_are_refused() {
        let store = PersistedQueries::new(1 << 20);
        let hash = hex::encode(Sha256::digest("{ me { id } }"));
        for (bad, why) in [
            (serde_json::json!("nope"), "not an object"),
            (serde_json::json!({ "sha256Hash": hash }), "no version"),
            (
                serde_json::json!({ "version": 2, "sha256Hash": hash }),
                "unsupported version",
            ),
            (serde_json::json!({ "version": 1 }), "no sha256Hash string"),
            (extension(&hash[..63]), "not 64 characters long"),
            (extension(&format!("{hash}0")), "not 64 characters long"),
            (extension(&"g".repeat(64)), "not hexadecimal"),
        ] {
            let refused = store.resolve(&mut request("", bad.clone())).unwrap_err();
            assert!(refused.to_string().ends_with(why), "{bad}: {refused}");
        }
    }
}
