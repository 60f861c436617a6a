//! The store suite: the same checks against SQLite and against a real PostgreSQL (Debian's
//! package, a fresh cluster per test, run unprivileged).

use crate::harness::library::{suite, Backend};
use crate::harness::postgres::Postgres;

macro_rules! on_both {
    ($($check:ident),* $(,)?) => {
        $(
            mod $check {
                use super::*;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let dir = tempfile::tempdir().unwrap();
                    suite::$check(&Backend::Sqlite(dir.path().join("history.db"))).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let pg = Postgres::start();
                    suite::$check(&Backend::Postgres(pg.url())).await;
                }
            }
        )*
    };
}

on_both!(
    life_cycle,
    append_only,
    deduplicates_deliveries,
    one_in_flight,
    reviews
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fences_an_adopted_event_from_its_lost_owner() {
    let pg = Postgres::start();
    suite::fencing(&pg.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_schema_is_versioned_and_migrated_once() {
    let pg = Postgres::start();
    let b = Backend::Postgres(pg.url());
    let first = b.open().await;
    let second = b.open().await;
    assert_eq!(
        pg.sql("SELECT string_agg(version::text, ',' ORDER BY version) FROM schema_version"),
        Ok("1,2".into())
    );
    assert_eq!(
        pg.sql("SELECT count(*) FROM pg_indexes WHERE indexname IN ('rollback_events_by_created', 'rollback_transitions_open')"),
        Ok("2".into()),
        "version 2's indexes"
    );
    first.close();
    second.close();
}
