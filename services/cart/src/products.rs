//! What the cart asks the catalog: the current state and price of products, through the
//! catalog's public `POST /api/v1/products/validate` (and `POST /api/v1/products/batch` for
//! images), through the kit's service client — over HTTP or into the catalog's router in the
//! same process; the cart never reads the catalog's tables.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kit::client::{Call, ClientPolicy, ServiceClient};
use kit::money::Money;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most ids per catalog request (the catalog's batch limit).
pub const CATALOG_BATCH: usize = 100;
/// Timeout of one catalog call.
pub const CATALOG_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether a product can be sold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    Available,
    Inactive,
    Deleted,
    NotFound,
}

impl ProductStatus {
    /// The `reason` shown on unavailable cart lines.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            ProductStatus::Available => None,
            ProductStatus::Inactive => Some("inactive"),
            ProductStatus::Deleted => Some("deleted"),
            ProductStatus::NotFound => Some("not_found"),
        }
    }
}

/// The catalog's current view of a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductInfo {
    pub product_id: Uuid,
    pub status: ProductStatus,
    pub name: Option<String>,
    pub sku: Option<String>,
    pub price: Option<Money>,
}

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// The catalog could not be reached or did not answer well (timeout, 5xx, garbage).
    #[error("the catalog is unavailable: {0}")]
    Unavailable(String),
}

/// The catalog as the cart sees it.
#[async_trait::async_trait]
pub trait ProductLookup: Send + Sync {
    /// The current state of each product (every requested id is in the answer).
    async fn lookup(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, ProductInfo>, LookupError>;

    /// The main image of each product that has one (best effort).
    async fn images(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>, LookupError>;
}

// Mirrors of the catalog's public wire types (the cart does not link the catalog crate).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ValidateItem {
    product_id: Uuid,
    quantity: i64,
}

#[derive(Serialize)]
struct ValidateRequest {
    items: Vec<ValidateItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValidatedItem {
    product_id: Uuid,
    found: bool,
    active: bool,
    name: Option<String>,
    sku: Option<String>,
    price: Option<Money>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct ValidateResponse {
    items: Vec<ValidatedItem>,
}

#[derive(Serialize)]
struct BatchRequest {
    ids: Vec<Uuid>,
}

#[derive(Deserialize)]
struct BatchProduct {
    id: Uuid,
    #[serde(default)]
    images: Vec<String>,
}

#[derive(Deserialize)]
struct BatchResponse {
    products: Vec<BatchProduct>,
}

fn decode<T: DeserializeOwned>(path: &str, bytes: &[u8]) -> Result<T, LookupError> {
    serde_json::from_slice(bytes)
        .map_err(|e| LookupError::Unavailable(format!("{path}: unreadable answer: {e}")))
}

/// The catalog through the kit's service client (in-process router or HTTP, with its timeout,
/// retries and circuit breaker). Both catalog calls are reads, so they are retried.
struct Catalog(ServiceClient);

impl Catalog {
    async fn post<T: Serialize>(&self, path: &str, body: &T) -> Result<Vec<u8>, LookupError> {
        let reply = self
            .0
            .send(Call::post(path, body).idempotent())
            .await
            .map_err(|e| LookupError::Unavailable(format!("POST {path}: {e}")))?;
        if !reply.status.is_success() {
            return Err(LookupError::Unavailable(format!("POST {path}: status {}", reply.status)));
        }
        Ok(reply.body.to_vec())
    }
}

#[async_trait::async_trait]
impl ProductLookup for Catalog {
    async fn lookup(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, ProductInfo>, LookupError> {
        let mut ids = ids.to_vec();
        ids.sort();
        ids.dedup();
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(CATALOG_BATCH) {
            let req = ValidateRequest {
                items: chunk.iter().map(|&product_id| ValidateItem { product_id, quantity: 1 }).collect(),
            };
            let path = "/api/v1/products/validate";
            let body = self.post(path, &req).await?;
            let res: ValidateResponse = decode(path, &body)?;
            for v in res.items {
                let status = match (v.found, v.active, v.error.as_deref()) {
                    (false, _, _) => ProductStatus::NotFound,
                    (true, true, _) => ProductStatus::Available,
                    (true, false, Some("deleted")) => ProductStatus::Deleted,
                    (true, false, _) => ProductStatus::Inactive,
                };
                out.insert(
                    v.product_id,
                    ProductInfo {
                        product_id: v.product_id,
                        status,
                        name: v.name,
                        sku: v.sku,
                        price: v.price,
                    },
                );
            }
        }
        for id in ids {
            out.entry(id).or_insert(ProductInfo {
                product_id: id,
                status: ProductStatus::NotFound,
                name: None,
                sku: None,
                price: None,
            });
        }
        Ok(out)
    }

    async fn images(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, String>, LookupError> {
        let mut out = HashMap::new();
        for chunk in ids.chunks(CATALOG_BATCH) {
            let path = "/api/v1/products/batch";
            let req = BatchRequest { ids: chunk.to_vec() };
            let body = self.post(path, &req).await?;
            let res: BatchResponse = decode(path, &body)?;
            for p in res.products {
                if let Some(img) = p.images.into_iter().next() {
                    out.insert(p.id, img);
                }
            }
        }
        Ok(out)
    }
}

/// The catalog as the cart sees it, through `client` (made by the composer: the catalog's
/// router in one process, its URL apart). Give the client a short timeout: a slow catalog
/// makes the cart answer from its snapshot (`stale: true`).
pub fn catalog_products(client: ServiceClient) -> Arc<dyn ProductLookup> {
    Arc::new(Catalog(client))
}

/// The client policy of the cart's catalog calls: [`CATALOG_TIMEOUT`] per attempt, two
/// attempts.
pub fn catalog_policy() -> ClientPolicy {
    ClientPolicy { timeout: CATALOG_TIMEOUT, attempts: 2, ..ClientPolicy::default() }
}
