//! `schema.graphql` is generated from the code; this keeps the committed file true.

#[test]
fn schema_graphql_matches_the_served_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../schema.graphql");
    let generated = api::graphql::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test -p api schema` and commit it"
    );
}
