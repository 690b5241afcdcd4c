//! What the payment service asks the order service: an order's owner, status and total, through
//! `GET /api/v1/orders/{id}` with the internal credential (`x-internal-token`), through the kit's
//! service client ([`lookup`]) — over HTTP or into the order service's router in the same
//! process. The payment service never reads the order tables.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use kit::client::{Call, CallError, ClientPolicy, ServiceClient};
use kit::money::Money;
use serde::Deserialize;
use uuid::Uuid;

/// Timeout of one call to the order service.
pub const ORDERS_TIMEOUT: Duration = Duration::from_secs(2);

/// The order status in which a payment may be created.
pub const AWAITING_PAYMENT: &str = "AWAITING_PAYMENT";

/// The order as the payment service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderInfo {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The order's status, e.g. `AWAITING_PAYMENT`.
    pub status: String,
    /// What the customer pays (minor units).
    pub total: Money,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// The order service could not be reached or did not answer well (timeout, 5xx, garbage).
    #[error("the order service is unavailable: {0}")]
    Unavailable(String),
}

/// The order service as the payment service sees it.
#[async_trait::async_trait]
pub trait OrderLookup: Send + Sync {
    /// The order, or `None` when it does not exist.
    async fn order(&self, id: Uuid) -> Result<Option<OrderInfo>, LookupError>;
}

/// The fields of the order service's order document that matter here (the rest is ignored).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OrderDoc {
    id: Uuid,
    user_id: Uuid,
    status: String,
    total: Money,
}

struct Orders(ServiceClient);

#[async_trait::async_trait]
impl OrderLookup for Orders {
    async fn order(&self, id: Uuid) -> Result<Option<OrderInfo>, LookupError> {
        let unavailable = |e: CallError| LookupError::Unavailable(e.to_string());
        let reply = self.0.send(Call::get(format!("/api/v1/orders/{id}"))).await.map_err(unavailable)?;
        match reply.status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => {
                let doc: OrderDoc = reply.json("order").map_err(unavailable)?;
                Ok(Some(OrderInfo { id: doc.id, user_id: doc.user_id, status: doc.status, total: doc.total }))
            }
            s => Err(LookupError::Unavailable(format!("GET /api/v1/orders/{id}: status {s}"))),
        }
    }
}

/// The client policy of the payment service's order lookups: 2 s per call.
pub fn policy() -> ClientPolicy {
    ClientPolicy { timeout: ORDERS_TIMEOUT, ..ClientPolicy::default() }
}

/// The order service through `client` (made by the composer: the order service's router in one
/// process, its URL apart, presenting the internal credential).
pub fn lookup(client: ServiceClient) -> Arc<dyn OrderLookup> {
    Arc::new(Orders(client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Path;
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::Json;
    use secrecy::ExposeSecret;
    use secrecy::SecretString;

    fn order_service(token: &'static str) -> axum::Router {
        axum::Router::new().route(
            "/api/v1/orders/{id}",
            get(move |Path(id): Path<Uuid>, headers: HeaderMap| async move {
                if headers.get("x-internal-token").and_then(|v| v.to_str().ok()) != Some(token) {
                    return (StatusCode::UNAUTHORIZED, Json(serde_json::json!({}))).into_response();
                }
                if id.is_nil() {
                    return (StatusCode::NOT_FOUND, Json(serde_json::json!({"code": "not_found"}))).into_response();
                }
                if id.get_version_num() == 4 {
                    return (StatusCode::SERVICE_UNAVAILABLE, Json(serde_json::json!({}))).into_response();
                }
                (
                    StatusCode::OK,
                    Json(serde_json::json!({
                        "id": id, "userId": id, "status": "AWAITING_PAYMENT",
                        "total": {"amount": 2599, "currency": "EUR"}, "items": [], "createdAt": "2026-01-01T00:00:00Z"
                    })),
                )
                    .into_response()
            }),
        )
    }

    #[tokio::test]
    async fn reads_orders_through_the_router_with_the_internal_token() {
        let token = SecretString::from("internal-secret".to_string());
        assert_eq!(token.expose_secret(), "internal-secret");
        let orders = lookup(
            ServiceClient::router("order", order_service("internal-secret"), policy())
                .with_internal_token(Some(token)),
        );
        let id = Uuid::now_v7();
        let o = orders.order(id).await.unwrap().unwrap();
        assert_eq!((o.id, o.user_id, o.status.as_str()), (id, id, AWAITING_PAYMENT));
        assert_eq!(o.total, Money::new(2599, "EUR"));
        assert_eq!(orders.order(Uuid::nil()).await.unwrap(), None);
        assert!(matches!(orders.order(Uuid::new_v4()).await, Err(LookupError::Unavailable(_))));
        // A wrong credential is not "no such order".
        let wrong = lookup(ServiceClient::router("order", order_service("internal-secret"), policy()));
        assert!(matches!(wrong.order(id).await, Err(LookupError::Unavailable(_))));
    }

    #[tokio::test]
    async fn reads_orders_over_http() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { axum::serve(listener, order_service("t")).await });
        let orders = lookup(
            ServiceClient::http("order", &format!("http://{addr}/"), policy())
                .with_internal_token(Some(SecretString::from("t".to_string()))),
        );
        let id = Uuid::now_v7();
        assert_eq!(orders.order(id).await.unwrap().unwrap().total.amount, 2599);
        assert_eq!(orders.order(Uuid::nil()).await.unwrap(), None);
        server.abort();
        // Nothing listens on port 9: unavailable, not "not found".
        let down = lookup(ServiceClient::http("order", "http://127.0.0.1:9", policy()));
        assert!(matches!(down.order(id).await, Err(LookupError::Unavailable(_))));
    }
}
