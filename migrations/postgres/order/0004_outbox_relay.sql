-- The outbox's second version (kit::events::outbox::OUTBOX_POSTGRES_V2_SQL, verbatim).

-- kit::events outbox, second version (PostgreSQL). Include verbatim in a migration after the first.
-- The relay is woken in process (kit::db::Db::outbox_committed) and polls; the NOTIFY trigger goes:
-- a transaction that notifies holds a cluster-wide lock from before its commit until after its
-- WAL flush, so no two of them could share a flush. Published rows are deleted (ADR 0018).
DROP TRIGGER IF EXISTS outbox_notify ON outbox;
DROP FUNCTION IF EXISTS outbox_notify();
