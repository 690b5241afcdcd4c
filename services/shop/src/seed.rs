//! Seed data that spans services: the catalog's products, their stock in the inventory and the
//! demo accounts. It lives in the composition because no service may read another's data: the
//! catalog's seed dataset is pure, so the inventory is handed the product ids and SKUs.

use anyhow::Context;
use kit::db::Db;

use crate::settings::Settings;

/// Seeds the sample catalog and the stock of its products and, with `demo`, the demo accounts
/// (published passwords: `shop up` and `shop seed --demo` only); idempotent.
pub async fn all(
    settings: &Settings,
    auth_db: &Db,
    catalog_db: &Db,
    inventory_db: &Db,
    demo: bool,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let catalog = shop_catalog::seed(catalog_db).await.context("seeding the catalog")?;
    let products: Vec<shop_inventory::SeedProduct> = shop_catalog::seed::dataset()
        .2
        .into_iter()
        .map(|p| shop_inventory::SeedProduct { id: p.id, sku: p.sku })
        .collect();
    let stock = shop_inventory::seed(inventory_db, &products).await.context("seeding stock")?;
    let auth = if demo {
        Some(shop_auth::seed(auth_db, &settings.auth).await.context("seeding the demo accounts")?)
    } else {
        None
    };
    tracing::info!(
        ?catalog,
        ?stock,
        ?auth,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seed data in place"
    );
    Ok(())
}
