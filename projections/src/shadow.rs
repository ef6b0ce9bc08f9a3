//! Rebuilding beside the live tables: empty copies in the schema `projection_rebuild`, written
//! by the very SQL that writes the live ones — it names its tables unqualified, and a
//! rebuild's transactions put the shadow schema first on `search_path`.

use sqlx::{AssertSqlSafe, PgConnection};

use crate::Error;

/// Empty copies of `tables` (columns, defaults and indexes; no foreign keys) in the shadow
/// schema, replacing any an earlier rebuild left behind. The names are constants of this
/// crate, never input.
pub(crate) async fn create(conn: &mut PgConnection, tables: &[&str]) -> Result<(), Error> {
    let mut setup = String::from("CREATE SCHEMA IF NOT EXISTS projection_rebuild;");
    for table in tables {
        setup.push_str(&format!(
            "DROP TABLE IF EXISTS projection_rebuild.{table};
             CREATE TABLE projection_rebuild.{table} (LIKE public.{table} INCLUDING ALL);"
        ));
    }
    sqlx::raw_sql(AssertSqlSafe(setup))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Makes the rest of `conn`'s transaction write (and read) the shadow copies.
pub(crate) async fn write_here(conn: &mut PgConnection) -> Result<(), Error> {
    sqlx::raw_sql("SET LOCAL search_path = projection_rebuild, public")
        .execute(&mut *conn)
        .await?;
    Ok(())
}
