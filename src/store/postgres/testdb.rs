//! Tests: a fresh schema on the server named by `USERDIR_TEST_PG_URL` (see `scripts/pg`).

/// A URL whose connections use a new, empty schema; `None` (the test is skipped, loudly) when
/// no server is configured, unless `USERDIR_REQUIRE_PG` is set (the whole suite sets it).
pub(crate) fn fresh_url() -> Option<String> {
    let Ok(base) = std::env::var("USERDIR_TEST_PG_URL") else {
        assert!(
            std::env::var_os("USERDIR_REQUIRE_PG").is_none(),
            "USERDIR_REQUIRE_PG is set but USERDIR_TEST_PG_URL is not"
        );
        eprintln!("skipped: USERDIR_TEST_PG_URL is not set (run through scripts/pg)");
        return None;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut c = postgres::Client::connect(&base, postgres::NoTls).expect("connect to test server");
    c.batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    let sep = if base.contains('?') { '&' } else { '?' };
    Some(format!("{base}{sep}options=-csearch_path%3D{schema}"))
}
