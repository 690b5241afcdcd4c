//! Every service that writes or consumes events carries the kit's outbox/inbox schema in its
//! own first migration (migrations are per service and per backend, so the SQL is copied there);
//! this keeps those copies from drifting away from the kit.

use kit::events::outbox::{OUTBOX_POSTGRES_SQL, OUTBOX_POSTGRES_V2_SQL, OUTBOX_SQLITE_SQL};

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

#[test]
fn postgres_event_services_carry_the_second_outbox_version() {
    // ADR 0018: the NOTIFY trigger of the first version goes, in a later migration.
    for service in ["inventory", "order", "payment", "notification"] {
        let dir = format!("{}/../../migrations/postgres/{service}", env!("CARGO_MANIFEST_DIR"));
        let carriers: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|e| e.unwrap().path())
            .filter(|p| std::fs::read_to_string(p).unwrap().contains(OUTBOX_POSTGRES_V2_SQL.trim()))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            carriers.len(),
            1,
            "{dir}: exactly one migration must contain outbox_v2.sql verbatim: {carriers:?}"
        );
        assert!(!carriers[0].starts_with("0001"), "{dir}: after the first migration");
    }
}
