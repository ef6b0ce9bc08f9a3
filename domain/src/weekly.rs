//! The weekly summary (SPEC §7): each workspace's owners get a summary of every past ISO week
//! (Monday 00:00 to the next Monday 00:00, UTC), once per workspace and week. This module says
//! which weeks are due ([`due_weeks`]) and who were the most active members ([`most_active`]);
//! the workspace records each summary sent (`WeeklySummarySent`) once.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::error::ValidationError;

/// Weeks missed while no node ran (all down) that are still caught up on restart; older
/// missed weeks are not summarised (a summary that late has no use).
pub const MAX_CATCH_UP_WEEKS: usize = 4;
/// How many of the most active members a summary names.
pub const MOST_ACTIVE: usize = 3;

/// An ISO 8601 week, written `2026-W49`: Monday 00:00 UTC to the next Monday 00:00 UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IsoWeek {
    /// The week's Monday (ordering weeks by it orders them in time).
    monday: NaiveDate,
}

impl IsoWeek {
    /// The week `at` falls in.
    pub fn containing(at: DateTime<Utc>) -> IsoWeek {
        IsoWeek::of_date(at.date_naive())
    }

    /// The week a date falls in.
    pub fn of_date(date: NaiveDate) -> IsoWeek {
        let days_from_monday = date.weekday().num_days_from_monday();
        IsoWeek {
            monday: date - Duration::days(i64::from(days_from_monday)),
        }
    }

    /// The week that starts on `monday` (a date that is no Monday is refused).
    pub fn starting(monday: NaiveDate) -> Result<IsoWeek, ValidationError> {
        if monday.weekday() == Weekday::Mon {
            Ok(IsoWeek { monday })
        } else {
            Err(ValidationError::new("week", "a week starts on a Monday"))
        }
    }

    /// The last week that has ended at `now`.
    pub fn last_complete(now: DateTime<Utc>) -> IsoWeek {
        IsoWeek::containing(now).previous()
    }

    /// The week's Monday.
    pub fn monday(&self) -> NaiveDate {
        self.monday
    }

    /// Its first instant.
    pub fn start(&self) -> DateTime<Utc> {
        self.monday.and_time(NaiveTime::MIN).and_utc()
    }

    /// The first instant after it.
    pub fn end(&self) -> DateTime<Utc> {
        self.next().start()
    }

    /// The week before.
    pub fn previous(&self) -> IsoWeek {
        IsoWeek {
            monday: self.monday - Duration::days(7),
        }
    }

    /// The week after.
    pub fn next(&self) -> IsoWeek {
        IsoWeek {
            monday: self.monday + Duration::days(7),
        }
    }

    /// Parses `2026-W49`.
    pub fn parse(text: &str) -> Result<IsoWeek, ValidationError> {
        let invalid = || ValidationError::new("week", "must be an ISO week such as 2026-W49");
        let (year, week) = text.split_once("-W").ok_or_else(invalid)?;
        let (year, week) = (
            year.parse::<i32>().map_err(|_| invalid())?,
            week.parse::<u32>().map_err(|_| invalid())?,
        );
        if week.to_string().len() > 2 || text.len() != format!("{year}-W{week:02}").len() {
            return Err(invalid());
        }
        NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)
            .map(|monday| IsoWeek { monday })
            .ok_or_else(invalid)
    }
}

impl fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let week = self.monday.iso_week();
        write!(f, "{}-W{:02}", week.year(), week.week())
    }
}

impl FromStr for IsoWeek {
    type Err = ValidationError;

    fn from_str(text: &str) -> Result<IsoWeek, ValidationError> {
        IsoWeek::parse(text)
    }
}

impl TryFrom<String> for IsoWeek {
    type Error = ValidationError;

    fn try_from(text: String) -> Result<IsoWeek, ValidationError> {
        IsoWeek::parse(&text)
    }
}

impl From<IsoWeek> for String {
    fn from(week: IsoWeek) -> String {
        week.to_string()
    }
}

/// The weeks whose summaries are due at `now`, oldest first, given the last week already
/// scheduled (`None`: none ever was). The last complete week is always due; weeks missed
/// since the last scheduled one (every node was down over a Monday) are due too, up to
/// [`MAX_CATCH_UP_WEEKS`] in all. With no week scheduled before (a new installation) only the
/// last complete week is due. Nothing is due twice: weeks up to `last_scheduled` are not.
pub fn due_weeks(last_scheduled: Option<IsoWeek>, now: DateTime<Utc>) -> Vec<IsoWeek> {
    let last_complete = IsoWeek::last_complete(now);
    let Some(last_scheduled) = last_scheduled else {
        return vec![last_complete];
    };
    let mut due = Vec::new();
    let mut week = last_complete;
    while week > last_scheduled && due.len() < MAX_CATCH_UP_WEEKS {
        due.push(week);
        week = week.previous();
    }
    due.reverse();
    due
}

/// The `n` most active of `activity` (someone, how many things they did), most active first;
/// ties go to the earlier-named (by `Ord`), so the ranking is stable. Nobody who did nothing
/// is named.
pub fn most_active<K: Ord + Clone>(activity: &[(K, u64)], n: usize) -> Vec<(K, u64)> {
    let mut ranked: Vec<(K, u64)> = activity
        .iter()
        .filter(|(_, count)| *count > 0)
        .cloned()
        .collect();
    ranked.sort_by(|(a, x), (b, y)| y.cmp(x).then_with(|| a.cmp(b)));
    ranked.truncate(n);
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{because, refused};

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    fn week(text: &str) -> IsoWeek {
        IsoWeek::parse(text).unwrap()
    }

    #[test]
    fn weeks_run_from_monday_to_monday_utc() {
        let w = IsoWeek::containing(at("2026-12-06T23:59:59Z"));
        assert_eq!(w.to_string(), "2026-W49");
        assert_eq!(w.start(), at("2026-11-30T00:00:00Z"));
        assert_eq!(w.end(), at("2026-12-07T00:00:00Z"));
        assert_eq!(IsoWeek::containing(at("2026-12-07T00:00:00Z")), w.next());
        assert_eq!(w.next().previous(), w);
    }

    #[test]
    fn iso_years_differ_from_calendar_years_at_the_edges() {
        // 2027-01-01 is a Friday: it belongs to 2026's last week, which has 53.
        assert_eq!(
            IsoWeek::containing(at("2027-01-01T12:00:00Z")).to_string(),
            "2026-W53"
        );
        // 2024-12-30 is a Monday: the first day of 2025-W01.
        assert_eq!(
            IsoWeek::containing(at("2024-12-30T00:00:00Z")).to_string(),
            "2025-W01"
        );
        assert_eq!(week("2026-W53").next(), week("2027-W01"));
    }

    #[test]
    fn weeks_parse_and_print_alike() {
        for text in ["2026-W01", "2026-W49", "2026-W53", "1999-W10"] {
            assert_eq!(week(text).to_string(), text);
        }
        for bad in [
            "2026-W54",
            "2025-W53",
            "2026-W1",
            "2026-49",
            "2026-W049",
            "x-W01",
            "",
        ] {
            assert_eq!(
                refused(IsoWeek::parse(bad)),
                because("week", "must be an ISO week such as 2026-W49"),
                "{bad}"
            );
        }
        let json = serde_json::to_string(&week("2026-W49")).unwrap();
        assert_eq!(json, "\"2026-W49\"");
        assert_eq!(
            serde_json::from_str::<IsoWeek>(&json).unwrap(),
            week("2026-W49")
        );
        assert_eq!(
            refused(IsoWeek::starting(
                NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()
            )),
            because("week", "a week starts on a Monday")
        );
    }

    #[test]
    fn the_last_complete_week_is_due_once() {
        let monday_morning = at("2026-12-07T00:00:01Z");
        assert_eq!(due_weeks(None, monday_morning), [week("2026-W49")]);
        assert_eq!(
            due_weeks(Some(week("2026-W48")), monday_morning),
            [week("2026-W49")]
        );
        assert!(due_weeks(Some(week("2026-W49")), monday_morning).is_empty());
        // A clock that went back never makes a week due again.
        assert!(due_weeks(Some(week("2026-W50")), monday_morning).is_empty());
    }

    #[test]
    fn missed_weeks_are_caught_up_within_a_bound() {
        let now = at("2026-12-23T10:00:00Z"); // in 2026-W52
        assert_eq!(
            due_weeks(Some(week("2026-W48")), now),
            [week("2026-W49"), week("2026-W50"), week("2026-W51")]
        );
        let due = due_weeks(Some(week("2026-W30")), now);
        assert_eq!(due.len(), MAX_CATCH_UP_WEEKS);
        assert_eq!(due.last(), Some(&week("2026-W51")));
        assert_eq!(due.first(), Some(&week("2026-W48")));
    }

    #[test]
    fn the_most_active_are_ranked_by_count_then_stably() {
        let activity = [("bo", 3), ("al", 3), ("cy", 9), ("di", 0), ("ed", 1)];
        assert_eq!(most_active(&activity, 3), [("cy", 9), ("al", 3), ("bo", 3)]);
        assert_eq!(most_active(&activity, 10).len(), 4, "nobody idle is named");
    }
}
