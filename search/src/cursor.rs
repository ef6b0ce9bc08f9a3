//! Sort keys, and the opaque cursors that carry them from one page to the next.
//!
//! Every order sorts by a [`SortKey`]: a `u64` that compares like the order's value (score or
//! timestamp, inverted for descending orders), then the item id. Keys are unique, so "the hits
//! after this cursor" is exact: pages neither repeat nor skip hits while the index does not
//! change. (Relevance scores may shift when the index changes between pages, as in any
//! relevance-ordered pagination.)
//!
//! A cursor is `{order}:{value:016x}:{id:032x}`, tagged with its order so that a cursor of one
//! order is refused by another.

use tantivy::Score;
use uuid::Uuid;

use crate::{Error, Order};

/// Where a document sorts: smaller keys come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SortKey {
    value: u64,
    id: u128,
}

impl SortKey {
    pub(crate) fn new(value: u64, id: u128) -> SortKey {
        SortKey { value, id }
    }

    /// The first part of a document's key for `order`, given its score and the timestamp the
    /// order sorts by, in nanoseconds.
    pub(crate) fn value_for(order: Order, score: Score, time: i64) -> u64 {
        match order {
            Order::Relevance => !ordered_score(score),
            Order::CreatedAsc | Order::UpdatedAsc => ordered_time(time),
            Order::CreatedDesc | Order::UpdatedDesc => !ordered_time(time),
        }
    }

    /// The key in the reversed order (every comparison turned around): a backward read
    /// collects the smallest reversed keys before the cursor, as a forward read collects the
    /// smallest keys after it.
    pub(crate) fn reversed(self) -> SortKey {
        SortKey {
            value: !self.value,
            id: !self.id,
        }
    }

    pub(crate) fn value(&self) -> u64 {
        self.value
    }

    pub(crate) fn id(&self) -> Uuid {
        Uuid::from_u128(self.id)
    }

    pub(crate) fn encode(&self, order: Order) -> String {
        format!("{}:{:016x}:{:032x}", tag(order), self.value, self.id)
    }

    /// Reads a cursor produced by [`SortKey::encode`] for the same order.
    pub(crate) fn decode(cursor: &str, order: Order) -> Result<SortKey, Error> {
        let invalid = |why: &str| Error::InvalidCursor(why.to_owned());
        let mut parts = cursor.split(':');
        let (Some(cursor_tag), Some(value), Some(id), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("not a search cursor"));
        };
        if cursor_tag != tag(order) {
            return Err(invalid("the cursor belongs to a search with another order"));
        }
        let value = parse_hex(value, 16).ok_or_else(|| invalid("not a search cursor"))?;
        let id = parse_hex(id, 32).ok_or_else(|| invalid("not a search cursor"))?;
        Ok(SortKey {
            value: value as u64,
            id,
        })
    }
}

fn tag(order: Order) -> &'static str {
    match order {
        Order::Relevance => "rel",
        Order::CreatedDesc => "cdesc",
        Order::CreatedAsc => "casc",
        Order::UpdatedDesc => "udesc",
        Order::UpdatedAsc => "uasc",
    }
}

fn parse_hex(digits: &str, len: usize) -> Option<u128> {
    let hex = digits.len() == len && digits.bytes().all(|b| b.is_ascii_hexdigit());
    hex.then(|| u128::from_str_radix(digits, 16).ok()).flatten()
}

/// A `u64` ordered like the score (for the non-negative, non-NaN scores queries produce, and
/// for negative ones too).
fn ordered_score(score: Score) -> u64 {
    let bits = score.to_bits();
    let ordered = if bits >> 31 == 1 {
        !bits
    } else {
        bits | 1 << 31
    };
    u64::from(ordered)
}

/// A `u64` ordered like the timestamp.
fn ordered_time(nanos: i64) -> u64 {
    (nanos as u64) ^ (1 << 63)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_like_their_order_then_by_id() {
        let key = |order, score, time, id| SortKey::new(SortKey::value_for(order, score, time), id);
        assert!(key(Order::Relevance, 2.5, 0, 9) < key(Order::Relevance, 1.0, 0, 1));
        assert!(key(Order::Relevance, 1.0, 0, 1) < key(Order::Relevance, 1.0, 0, 2));
        assert!(key(Order::CreatedAsc, 0.0, -5, 9) < key(Order::CreatedAsc, 0.0, 3, 1));
        assert!(key(Order::UpdatedDesc, 0.0, 3, 9) < key(Order::UpdatedDesc, 0.0, -5, 1));
        assert!(key(Order::UpdatedDesc, 0.0, 3, 1) < key(Order::UpdatedDesc, 0.0, 3, 2));
        assert!(ordered_score(-1.0) < ordered_score(0.0));
    }

    #[test]
    fn cursors_round_trip_within_their_order_only() {
        let value = SortKey::value_for(Order::CreatedDesc, 0.0, 1_700_000_000);
        let key = SortKey::new(value, u128::MAX - 7);
        let cursor = key.encode(Order::CreatedDesc);
        assert_eq!(SortKey::decode(&cursor, Order::CreatedDesc).ok(), Some(key));
        assert!(matches!(
            SortKey::decode(&cursor, Order::CreatedAsc),
            Err(Error::InvalidCursor(_))
        ));
    }

    #[test]
    fn garbage_is_an_invalid_cursor() {
        let bad = [
            "",
            "rel",
            "rel:zz:00",
            "rel:0:0",
            "rel:+123456789abcdef:0:0",
            "é:é:é",
        ];
        for cursor in bad {
            assert!(
                matches!(
                    SortKey::decode(cursor, Order::Relevance),
                    Err(Error::InvalidCursor(_))
                ),
                "{cursor}"
            );
        }
    }
}
