//! Jobs against a real PostgreSQL: events become jobs exactly once, workers share queues
//! without running a job twice at once, and the weekly schedule enqueues each week once.

mod dispatch;
mod schedule;
mod workers;

pub async fn database() -> pgcluster::TestDatabase {
    let db = pgcluster::TestDatabase::create(&eventlog::MIGRATOR).await;
    jobs::setup(db.pool()).await.unwrap();
    db
}
