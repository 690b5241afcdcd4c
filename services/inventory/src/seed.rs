//! Seed stock for the catalog's seed products. The composition hands over their ids and SKUs
//! (the catalog's seed dataset is pure); the inventory never reads the catalog's tables and does
//! not link its crate.

use kit::db::{Db, Timestamp};
use kit::with_db;
use uuid::Uuid;

use crate::store::begin_write_sql;

/// How many stock rows a seed run inserted (0 when they were already there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SeedReport {
    pub stock: u64,
}

/// Deterministic seed quantities of product number `i`: (on hand, reorder level, reorder
/// quantity). Every 25th product is sold out, every 9th is at or below its reorder level.
pub fn seed_quantities(i: usize) -> (i64, i64, i64) {
    let level = [5i64, 10, 10, 20, 25][i % 5];
    let reorder = level * 5;
    let on_hand = if i % 25 == 7 {
        0
    } else if i % 9 == 4 {
        1 + (i as i64 * 7) % level
    } else {
        level + 15 + (i as i64 * 37) % 240
    };
    (on_hand, level, reorder)
}

/// One product to stock: its id and SKU.
#[derive(Debug, Clone)]
pub struct SeedProduct {
    pub id: Uuid,
    pub sku: String,
}

/// Gives every product a stock row with [`seed_quantities`] of its position (idempotent; one
/// transaction).
pub async fn seed(db: &Db, products: &[SeedProduct]) -> anyhow::Result<SeedReport> {
    let now = Timestamp::now();
    let begin = begin_write_sql(db.backend());
    let report = with_db!(db, pool => {
        let mut tx = pool.begin_with(begin).await?;
        let mut r = SeedReport::default();
        for (i, p) in products.iter().enumerate() {
            let (on_hand, level, reorder) = seed_quantities(i);
            let n = sqlx::query(
                "INSERT INTO stock (product_id, sku, available_quantity, reserved_quantity, total_quantity, \
                 reorder_level, reorder_quantity, created_at, updated_at) \
                 VALUES ($1, $2, $3, 0, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
            )
            .bind(p.id)
            .bind(&p.sku)
            .bind(on_hand)
            .bind(level)
            .bind(reorder)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 && on_hand > 0 {
                sqlx::query(
                    "INSERT INTO stock_transactions (id, product_id, type, quantity, available_after, \
                     reserved_after, total_after, reference, reason, actor, created_at) \
                     VALUES ($1, $2, 'PURCHASE', $3, $3, 0, $3, 'seed', 'initial stock', 'system:seed', $4)",
                )
                .bind(Uuid::now_v7())
                .bind(p.id)
                .bind(on_hand)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            r.stock += n;
        }
        tx.commit().await?;
        r
    });
    tracing::info!(?report, "inventory seed data applied");
    Ok(report)
}
