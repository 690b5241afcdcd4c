//! Every service that writes or consumes events carries the kit's outbox/inbox schema in its
//! own first migration (migrations are per service and per backend, so the SQL is copied there);
//! this keeps those copies from drifting away from the kit.

use kit::events::outbox::{OUTBOX_POSTGRES_SQL, OUTBOX_SQLITE_SQL};

fn migration(backend: &str, service: &str) -> String {
    let path = format!("{}/../../migrations/{backend}/{service}/0001_init.sql", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn event_services_carry_the_kits_outbox_and_inbox_schema() {
    for service in ["inventory", "order", "payment", "notification"] {
        assert!(
            migration("postgres", service).contains(OUTBOX_POSTGRES_SQL.trim()),
            "migrations/postgres/{service}/0001_init.sql must contain the kit's outbox/inbox SQL verbatim"
        );
        assert!(
            migration("sqlite", service).contains(OUTBOX_SQLITE_SQL.trim()),
            "migrations/sqlite/{service}/0001_init.sql must contain the kit's outbox/inbox SQL verbatim"
        );
    }
}
