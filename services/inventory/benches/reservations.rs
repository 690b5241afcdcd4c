//! Reservation throughput on PostgreSQL (and SQLite for comparison): N reservations of 2 lines
//! each from 64 concurrent tasks over the pool (20 connections on PostgreSQL, 10 on SQLite),
//! spread over 100 products, then a hot-spot run where every reservation takes the same product.
//!
//! Needs the PostgreSQL test server. Run: `cargo bench -p shop-inventory --bench reservations`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use shop_inventory::model::{NewStock, ReservationLine};
use shop_inventory::{Origin, ReserveOutcome, Store};
use uuid::Uuid;

const N: usize = 4000;
const TASKS: usize = 64;

async fn run(label: &str, store: Arc<Store>, products: Arc<Vec<Uuid>>, hot: bool) {
    let started = Instant::now();
    let per_task = N / TASKS;
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (store, products) = (store.clone(), products.clone());
            tokio::spawn(async move {
                let mut ok = 0usize;
                for i in 0..per_task {
                    let k = t * per_task + i;
                    let items = if hot {
                        vec![ReservationLine { product_id: products[0], quantity: 1 }]
                    } else {
                        vec![
                            ReservationLine { product_id: products[k % products.len()], quantity: 1 },
                            ReservationLine {
                                product_id: products[(k * 7 + 3) % products.len()],
                                quantity: 1,
                            },
                        ]
                    };
                    if let ReserveOutcome::Created(_) =
                        store.reserve(Uuid::now_v7(), &items, &Origin::service()).await.expect("reserve")
                    {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label}: {ok}/{} reservations in {secs:.2} s = {:.0} reservations/s",
        per_task * TASKS,
        (per_task * TASKS) as f64 / secs
    );
}

async fn bench(label: &str, t: &kit::testing::TestDb) {
    let store = Arc::new(Store::new(t.db.clone(), Duration::from_secs(900)));
    let mut products = Vec::new();
    for i in 0..100 {
        let id = Uuid::now_v7();
        let input = NewStock {
            product_id: id,
            sku: format!("B-{i}"),
            quantity: 1_000_000,
            reorder_level: 0,
            reorder_quantity: 0,
        };
        store.create(&input, &Origin::service()).await.unwrap();
        products.push(id);
    }
    let products = Arc::new(products);
    run(&format!("{label} spread (2 lines, 100 products)"), store.clone(), products.clone(), false).await;
    run(&format!("{label} hot spot (1 product)"), store, products, true).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let pg = kit::testing::postgres(&shop_inventory::MIGRATIONS).await;
    bench("postgres", &pg).await;
    drop(pg);
    let sqlite = kit::testing::sqlite(&shop_inventory::MIGRATIONS).await;
    bench("sqlite", &sqlite).await;
}
