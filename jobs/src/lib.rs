//! Background jobs (SPEC §7): apalis workers on the same PostgreSQL, fed by a job-dispatch
//! projection that turns events into jobs (invite emails, exports, referral rewards, weekly
//! summaries) with the event id as idempotency key, and that record what they did as events.
//!
//! Nothing is here yet: the crate holds its place in the workspace layout so that the
//! dependency direction (`eventlog` ← `jobs` ← `api`) is fixed from the start.
