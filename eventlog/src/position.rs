//! Positions: where an event sits in the log's read order.
//!
//! The read order is the pair (appending transaction id, sequence number). A reader only returns
//! events whose transaction id is below the oldest transaction still running, so an event that
//! becomes visible later always sorts after everything already delivered (SPEC §4, design 1).
//! Clients see a position as an opaque string that compares the same way as the pair.

use std::fmt;
use std::str::FromStr;

/// An event's place in the log. `Position::START` sorts before every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    tx_id: i64,
    seq: i64,
}

impl Position {
    /// Before the first event: reading after it reads the whole log.
    pub const START: Position = Position { tx_id: 0, seq: 0 };

    /// The position stored as `(tx_id, seq)` (as the `events` table and projection
    /// checkpoints store it).
    pub fn new(tx_id: i64, seq: i64) -> Position {
        Position { tx_id, seq }
    }

    /// The appending transaction's id.
    pub fn tx_id(self) -> i64 {
        self.tx_id
    }

    /// The event's sequence number within its transaction.
    pub fn seq(self) -> i64 {
        self.seq
    }
}

/// 32 lowercase hex digits: fixed width, so string order equals position order.
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.tx_id, self.seq)
    }
}

/// A string that is not a position this log issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a valid log position")]
pub struct InvalidPosition(String);

impl FromStr for Position {
    type Err = InvalidPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidPosition(s.chars().take(64).collect());
        if s.len() != 32
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(invalid());
        }
        let tx_id = i64::from_str_radix(&s[..16], 16).map_err(|_| invalid())?;
        let seq = i64::from_str_radix(&s[16..], 16).map_err(|_| invalid())?;
        Ok(Position { tx_id, seq })
    }
}

impl serde::Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_order_is_position_order() {
        let positions = [
            Position::START,
            Position::new(1, 900),
            Position::new(2, 3),
            Position::new(2, 4),
            Position::new(0x1_0000_0000, 1),
        ];
        for pair in positions.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
    }

    #[test]
    fn round_trips_and_rejects_garbage() {
        let p = Position::new(123_456, 789);
        assert_eq!(p.to_string().parse::<Position>(), Ok(p));
        for bad in [
            "",
            "12",
            "zz000000000000000000000000000000",
            &"0".repeat(33),
            "0000000000000000000000000000000G",
            // Beyond the largest transaction id a position can hold.
            "ffffffffffffffff0000000000000001",
        ] {
            assert_eq!(
                bad.parse::<Position>(),
                Err(InvalidPosition(bad.to_string())),
                "{bad}"
            );
        }
    }
}
