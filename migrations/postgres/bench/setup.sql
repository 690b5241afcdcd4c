-- scripts/bench: the rows checkout.sql needs in the ceiling database (every service's migrations
-- applied there, one schema per service): :products products with plenty of stock.
\set ON_ERROR_STOP on
INSERT INTO inventory.stock (product_id, sku, available_quantity, reserved_quantity, total_quantity, reorder_level,
    reorder_quantity, created_at, updated_at)
SELECT md5('bench-product-' || p)::uuid, 'BENCH-' || p, 100000000, 0, 100000000, 10, 50, now(), now()
FROM generate_series(1, :products) p;
