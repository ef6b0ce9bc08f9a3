//! Job dispatch against a real PostgreSQL: events become jobs exactly once.

mod dispatch;
