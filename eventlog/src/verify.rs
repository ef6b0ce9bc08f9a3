//! Checking the hash chains.

use futures::TryStreamExt;
use uuid::Uuid;

use crate::hash::{GENESIS, Hashed};
use crate::{Error, EventLog, Position};

/// The outcome of [`EventLog::verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events_checked: u64,
    pub streams_checked: u64,
    /// The earliest (in log order) event whose link is broken, if any.
    pub first_broken: Option<BrokenLink>,
}

/// An event that does not chain to its predecessor: it, or something before it in its stream,
/// was changed, removed or inserted by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub position: Position,
    pub event_id: Uuid,
    pub stream_id: Uuid,
    pub stream_version: u64,
    pub reason: &'static str,
}

impl EventLog {
    /// Recomputes every stream's hash chain (or only the streams of one workspace) and reports
    /// the first broken link. Streams through the log; memory stays flat.
    #[tracing::instrument(skip(self))]
    pub async fn verify(&self, workspace_id: Option<Uuid>) -> Result<VerifyReport, Error> {
        let mut rows = sqlx::query!(
            r#"SELECT tx_id, seq, event_id, stream_type, stream_id, stream_version, workspace_id,
                      event_type, schema_version, payload, metadata, recorded_at, hash
               FROM events
               WHERE $1::uuid IS NULL OR workspace_id = $1
               ORDER BY stream_id, stream_version"#,
            workspace_id
        )
        .fetch(self.pool());

        let mut report = VerifyReport {
            events_checked: 0,
            streams_checked: 0,
            first_broken: None,
        };
        let mut stream: Option<Uuid> = None;
        let mut previous_hash = GENESIS.to_vec();
        let mut expected_version = 1;
        let mut stream_broken = false;
        while let Some(row) = rows.try_next().await? {
            if stream != Some(row.stream_id) {
                stream = Some(row.stream_id);
                previous_hash = GENESIS.to_vec();
                expected_version = 1;
                stream_broken = false;
                report.streams_checked += 1;
            }
            report.events_checked += 1;
            let version = row.stream_version as u64;
            let reason = if version != expected_version {
                Some("stream versions are not contiguous")
            } else if (Hashed {
                event_id: row.event_id,
                stream_type: &row.stream_type,
                stream_id: row.stream_id,
                stream_version: version,
                workspace_id: row.workspace_id,
                event_type: &row.event_type,
                schema_version: row.schema_version,
                payload: &row.payload,
                metadata: &row.metadata,
                recorded_at: row.recorded_at,
            })
            .link(&previous_hash)
                != row.hash
            {
                Some("hash does not match the event's content and its predecessor")
            } else {
                None
            };
            if let (Some(reason), false) = (reason, stream_broken) {
                stream_broken = true;
                let link = BrokenLink {
                    position: Position::new(row.tx_id, row.seq),
                    event_id: row.event_id,
                    stream_id: row.stream_id,
                    stream_version: version,
                    reason,
                };
                if report
                    .first_broken
                    .as_ref()
                    .is_none_or(|first| link.position < first.position)
                {
                    report.first_broken = Some(link);
                }
            }
            previous_hash = row.hash;
            expected_version = version + 1;
        }
        Ok(report)
    }
}
