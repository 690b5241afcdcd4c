//! HTTP handlers, the router and the OpenAPI document of the cart.
//!
//! Whose cart: a caller with a valid bearer token owns `user:<id>`; anyone else is a guest
//! whose cart is `guest:<token>`, the token being 32 random bytes (base64url, 43 characters)
//! that the API mints on the first write and returns in the `X-Cart-Token` header and the
//! `cartToken` field; the client sends it back in `X-Cart-Token`.

use std::collections::{BTreeMap, HashMap};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{post, put};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kit::auth::{Identity, MaybeIdentity};
use kit::extract::{Json, Path};
use kit::money::Money;
use kit::openapi::{responses as r, BearerSecurity, Problems};
use kit::problem::{ErrorCode, FieldError};
use kit::{ApiError, ApiResult};
use rand::RngCore;
use utoipa::OpenApi;
use uuid::Uuid;

use crate::model::*;
use crate::products::{LookupError, ProductInfo, ProductStatus, CATALOG_TIMEOUT};
use crate::store::{AddOutcome, LineSnapshot, StoredLine};
use crate::CartState;

/// The header carrying a guest's cart token (request and response).
pub const CART_TOKEN: HeaderName = HeaderName::from_static("x-cart-token");

/// A fresh guest cart token: 32 bytes from the OS generator, base64url without padding.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// True when `t` has the shape of a token this service mints.
pub fn is_token(t: &str) -> bool {
    t.len() == 43 && URL_SAFE_NO_PAD.decode(t).is_ok_and(|b| b.len() == 32)
}

fn header_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(&CART_TOKEN)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| is_token(t))
        .map(String::from)
}

/// Whose cart a request is about.
#[derive(Debug, Clone)]
enum Owner {
    User(Uuid),
    /// A guest with a well-formed token (which may name no cart yet), or none.
    Guest(Option<String>),
}

impl Owner {
    fn of(who: Option<Identity>, headers: &HeaderMap) -> Owner {
        match who {
            Some(who) => Owner::User(who.user_id),
            None => Owner::Guest(header_token(headers)),
        }
    }

    fn cart_id(&self) -> Option<String> {
        match self {
            Owner::User(id) => Some(user_cart(*id)),
            Owner::Guest(Some(t)) => Some(guest_cart(t)),
            Owner::Guest(None) => None,
        }
    }

    fn token(&self) -> Option<&str> {
        match self {
            Owner::Guest(Some(t)) => Some(t),
            _ => None,
        }
    }
}

fn user_cart(id: Uuid) -> String {
    format!("user:{id}")
}

fn guest_cart(token: &str) -> String {
    format!("guest:{token}")
}

fn fe(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

fn check_quantity(st: &CartState, q: i64) -> ApiResult<()> {
    let max = st.config.max_quantity_per_line;
    if (1..=max).contains(&q) {
        Ok(())
    } else {
        Err(ApiError::invalid_fields(vec![fe("quantity", format!("must be between 1 and {max}"))]))
    }
}

fn catalog_unavailable(e: LookupError) -> ApiError {
    tracing::warn!(error = %e, "catalog unavailable");
    ApiError::new(ErrorCode::CatalogUnavailable)
        .detail("the catalog is not answering, so the product cannot be checked; try again shortly")
        .header(header::RETRY_AFTER, HeaderValue::from_static("5"))
}

async fn lookup(st: &CartState, ids: &[Uuid]) -> Result<HashMap<Uuid, ProductInfo>, LookupError> {
    // The transports time out on their own; this bounds a misbehaving implementation too.
    match tokio::time::timeout(CATALOG_TIMEOUT * 3, st.products.lookup(ids)).await {
        Ok(r) => r,
        Err(_) => Err(LookupError::Unavailable("no answer in time".into())),
    }
}

/// Builds the API view of stored lines, refreshed from the catalog when it answers.
async fn view(st: &CartState, owner: &Owner, lines: Vec<StoredLine>) -> ApiResult<Cart> {
    let limits =
        CartLimits { max_quantity_per_line: st.config.max_quantity_per_line, max_lines: st.config.max_lines };
    let owner_name = match owner {
        Owner::User(_) => "user",
        Owner::Guest(_) => "guest",
    };
    let cart_token = if lines.is_empty() { None } else { owner.token().map(String::from) };
    if lines.is_empty() {
        return Ok(Cart {
            owner: owner_name.into(),
            cart_token,
            items: vec![],
            line_count: 0,
            item_count: 0,
            subtotals: vec![],
            stale: false,
            expires_at: None,
            limits,
        });
    }
    let ids: Vec<Uuid> = lines.iter().map(|l| l.product_id).collect();
    let current = match lookup(st, &ids).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "catalog unavailable; answering from the stored snapshot");
            None
        }
    };
    let expires_at = match owner.cart_id() {
        Some(id) => st.store.ttl(&id).await?.map(|left| time::OffsetDateTime::now_utc() + left),
        None => None,
    };
    let mut subtotals: BTreeMap<String, i64> = BTreeMap::new();
    let mut items = Vec::with_capacity(lines.len());
    for l in lines {
        let snap = l.snapshot;
        let info = current.as_ref().and_then(|c| c.get(&l.product_id));
        let status = info.map_or(ProductStatus::Available, |i| i.status);
        let unit_price = info.and_then(|i| i.price.clone()).unwrap_or_else(|| snap.unit_price.clone());
        let price_changed = unit_price != snap.unit_price;
        let available = status == ProductStatus::Available;
        let line_total = Money {
            amount: unit_price.amount.saturating_mul(l.quantity),
            currency: unit_price.currency.clone(),
        };
        if available {
            let s = subtotals.entry(line_total.currency.clone()).or_default();
            *s = s.saturating_add(line_total.amount);
        }
        items.push(CartLine {
            product_id: l.product_id,
            name: info.and_then(|i| i.name.clone()).unwrap_or(snap.name),
            sku: info.and_then(|i| i.sku.clone()).unwrap_or(snap.sku),
            image: snap.image,
            quantity: l.quantity,
            unit_price,
            line_total,
            available,
            reason: status.reason().map(String::from),
            price_changed,
            previous_price: price_changed.then_some(snap.unit_price),
            added_at: snap.added_at,
        });
    }
    Ok(Cart {
        owner: owner_name.into(),
        cart_token,
        line_count: items.len(),
        item_count: items.iter().map(|i| i.quantity).sum(),
        items,
        subtotals: subtotals.into_iter().map(|(currency, amount)| Money { amount, currency }).collect(),
        stale: current.is_none(),
        expires_at,
        limits,
    })
}

async fn load(st: &CartState, owner: &Owner) -> ApiResult<Cart> {
    let lines = match owner.cart_id() {
        Some(id) => st.store.lines(&id).await?,
        None => vec![],
    };
    view(st, owner, lines).await
}

/// A cart response: `Cache-Control: no-store`, and the guest's token in `X-Cart-Token`.
fn respond(status: StatusCode, cart: Cart) -> Response {
    let mut res = (status, Json(&cart)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = cart.cart_token.as_deref().and_then(|t| HeaderValue::from_str(t).ok()) {
        res.headers_mut().insert(CART_TOKEN, v);
    }
    res
}

/// Get the caller's cart.
///
/// Prices and availability come from the catalog; when it cannot be asked the stored snapshot
/// answers with `stale: true`. A guest without a (known) token gets an empty cart.
#[utoipa::path(
    get, path = "/api/v1/cart", tag = "cart",
    params(("X-Cart-Token" = Option<String>, Header, description = "Guest cart token (from an earlier answer); a token that is malformed or names no cart is ignored")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The cart", body = Cart,
            headers(("X-Cart-Token" = String, description = "The guest cart token (guests with a cart)"))),
        r::Always,
    )
)]
pub async fn get_cart(
    State(st): State<CartState>,
    MaybeIdentity(who): MaybeIdentity,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let owner = Owner::of(who, &headers);
    Ok(respond(StatusCode::OK, load(&st, &owner).await?))
}

/// Add a product to the cart.
///
/// The quantity is added to the product's line (created with a snapshot of the product's
/// name, SKU, price and image); the sum is capped at the per-line maximum. A guest without a
/// cart gets a new token in `X-Cart-Token` and `cartToken`.
///
/// 422 `unknown_product` (no such product) or `too_many_lines`; 409 `product_unavailable` (not
/// for sale now); 503 `catalog_unavailable`.
#[utoipa::path(
    post, path = "/api/v1/cart/items", tag = "cart",
    params(("X-Cart-Token" = Option<String>, Header, description = "Guest cart token (from an earlier answer); a token that is malformed or names no cart is ignored")),
    request_body = AddItem,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The cart after the change", body = Cart,
            headers(("X-Cart-Token" = String, description = "The guest cart token (guests)"))),
        r::Write, r::Conflict, r::ServiceUnavailable,
    )
)]
pub async fn add_item(
    State(st): State<CartState>,
    MaybeIdentity(who): MaybeIdentity,
    headers: HeaderMap,
    Json(input): Json<AddItem>,
) -> ApiResult<Response> {
    check_quantity(&st, input.quantity)?;
    let pid = input.product_id;
    let ids = [pid];
    let (found, images) = tokio::join!(lookup(&st, &ids), st.products.images(&ids));
    let info = found.map_err(catalog_unavailable)?.remove(&pid);
    let info = info.ok_or_else(|| unknown_product(pid))?;
    let price = match (info.status, info.price.clone()) {
        (ProductStatus::NotFound | ProductStatus::Deleted, _) => return Err(unknown_product(pid)),
        (ProductStatus::Inactive, _) => {
            return Err(ApiError::new(ErrorCode::ProductUnavailable)
                .detail(format!("product `{pid}` is not for sale"))
                .field("productId", "is not for sale"));
        }
        (ProductStatus::Available, Some(p)) => p,
        (ProductStatus::Available, None) => {
            return Err(catalog_unavailable(LookupError::Unavailable("the catalog sent no price".into())))
        }
    };
    let snapshot = LineSnapshot {
        name: info.name.unwrap_or_default(),
        sku: info.sku.unwrap_or_default(),
        unit_price: price,
        image: images.ok().and_then(|mut m| m.remove(&pid)),
        added_at: kit::db::Timestamp::now().0,
    };

    let mut owner = Owner::of(who, &headers);
    let ttl = match owner {
        Owner::User(_) => st.config.user_ttl(),
        Owner::Guest(_) => st.config.guest_ttl(),
    };
    if let Owner::Guest(token) = &owner {
        // Only tokens of live carts are reused; anything else gets a fresh, unguessable token.
        let live = match token {
            Some(t) => !st.store.lines(&guest_cart(t)).await?.is_empty(),
            None => false,
        };
        if !live {
            owner = Owner::Guest(Some(new_token()));
        }
    }
    let cart = owner.cart_id().expect("an owner with a token has a cart");
    match st.store.add(&cart, pid, input.quantity, &snapshot, st.config.limits(), ttl).await? {
        AddOutcome::TooManyLines => {
            let max = st.config.max_lines;
            return Err(ApiError::new(ErrorCode::TooManyLines)
                .detail(format!("a cart holds at most {max} different products"))
                .field("productId", format!("the cart already has {max} lines")));
        }
        AddOutcome::Added { quantity, created } => {
            tracing::debug!(cart = %cart_label(&owner), product_id = %pid, quantity, created, "cart line added");
        }
    }
    Ok(respond(StatusCode::OK, load(&st, &owner).await?))
}

fn cart_label(owner: &Owner) -> String {
    match owner {
        Owner::User(id) => format!("user:{id}"),
        Owner::Guest(_) => "guest".into(),
    }
}

fn unknown_product(pid: Uuid) -> ApiError {
    ApiError::new(ErrorCode::UnknownProduct)
        .detail(format!("product `{pid}` does not exist"))
        .field("productId", "no such product")
}

fn line_not_found(pid: Uuid) -> ApiError {
    ApiError::not_found(format!("product `{pid}` is not in the cart"))
}

/// Set the quantity of a line.
#[utoipa::path(
    put, path = "/api/v1/cart/items/{productId}", tag = "cart",
    params(
        ("productId" = Uuid, Path, description = "Product id of the line"),
        ("X-Cart-Token" = Option<String>, Header, description = "Guest cart token (from an earlier answer); a token that is malformed or names no cart is ignored"),
    ),
    request_body = SetQuantity,
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The cart after the change", body = Cart),
        r::Write, r::NotFound,
    )
)]
pub async fn update_item(
    State(st): State<CartState>,
    MaybeIdentity(who): MaybeIdentity,
    headers: HeaderMap,
    Path(pid): Path<Uuid>,
    Json(input): Json<SetQuantity>,
) -> ApiResult<Response> {
    check_quantity(&st, input.quantity)?;
    let owner = Owner::of(who, &headers);
    let ttl = if matches!(owner, Owner::User(_)) { st.config.user_ttl() } else { st.config.guest_ttl() };
    let cart = owner.cart_id().ok_or_else(|| line_not_found(pid))?;
    if !st.store.set_quantity(&cart, pid, input.quantity, ttl).await? {
        return Err(line_not_found(pid));
    }
    Ok(respond(StatusCode::OK, load(&st, &owner).await?))
}

/// Remove a line.
#[utoipa::path(
    delete, path = "/api/v1/cart/items/{productId}", tag = "cart",
    params(
        ("productId" = Uuid, Path, description = "Product id of the line"),
        ("X-Cart-Token" = Option<String>, Header, description = "Guest cart token (from an earlier answer); a token that is malformed or names no cart is ignored"),
    ),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The cart after the change", body = Cart),
        r::Read, r::NotFound,
    )
)]
pub async fn remove_item(
    State(st): State<CartState>,
    MaybeIdentity(who): MaybeIdentity,
    headers: HeaderMap,
    Path(pid): Path<Uuid>,
) -> ApiResult<Response> {
    let owner = Owner::of(who, &headers);
    let ttl = if matches!(owner, Owner::User(_)) { st.config.user_ttl() } else { st.config.guest_ttl() };
    let cart = owner.cart_id().ok_or_else(|| line_not_found(pid))?;
    if !st.store.remove(&cart, pid, ttl).await? {
        return Err(line_not_found(pid));
    }
    Ok(respond(StatusCode::OK, load(&st, &owner).await?))
}

/// Empty the cart.
#[utoipa::path(
    delete, path = "/api/v1/cart", tag = "cart",
    params(("X-Cart-Token" = Option<String>, Header, description = "Guest cart token (from an earlier answer); a token that is malformed or names no cart is ignored")),
    security((), ("bearer" = [])),
    responses((status = 204, description = "The cart is empty"), r::Always)
)]
pub async fn clear_cart(
    State(st): State<CartState>,
    MaybeIdentity(who): MaybeIdentity,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    if let Some(cart) = Owner::of(who, &headers).cart_id() {
        st.store.clear(&cart).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Merge a guest cart into the caller's cart (on sign-in).
///
/// Quantities of the same product are summed and capped at the per-line maximum; guest lines
/// beyond the line limit are dropped; the guest cart is deleted. An unknown token merges
/// nothing.
#[utoipa::path(
    post, path = "/api/v1/cart/merge", tag = "cart",
    request_body = MergeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's cart after the merge", body = Cart),
        r::Write,
    )
)]
pub async fn merge_cart(
    State(st): State<CartState>,
    who: Identity,
    Json(input): Json<MergeRequest>,
) -> ApiResult<Response> {
    let token = input.cart_token.as_str();
    if !is_token(token) {
        return Err(ApiError::invalid_fields(vec![fe("cartToken", "is not a cart token")]));
    }
    let owner = Owner::User(who.user_id);
    let into = user_cart(who.user_id);
    let out = st.store.merge(&guest_cart(token), &into, st.config.limits(), st.config.user_ttl()).await?;
    tracing::info!(user_id = %who.user_id, merged = out.merged, dropped = out.dropped, "guest cart merged");
    Ok(respond(StatusCode::OK, load(&st, &owner).await?))
}

/// The cart's `/api/v1/cart...` routes (no common layers; the composer adds them and the
/// token verifier extension).
pub fn router(state: CartState) -> Router {
    Router::new()
        .route("/api/v1/cart", axum::routing::get(get_cart).delete(clear_cart))
        .route("/api/v1/cart/items", post(add_item))
        .route("/api/v1/cart/items/{productId}", put(update_item).delete(remove_item))
        .route("/api/v1/cart/merge", post(merge_cart))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(get_cart, add_item, update_item, remove_item, clear_cart, merge_cart),
    components(schemas(Cart, CartOwner, CartLine, LineReason, CartLimits, AddItem, SetQuantity, MergeRequest, Money)),
    modifiers(&BearerSecurity, &Problems),
    tags((name = "cart", description = "Guest and customer shopping carts"))
)]
struct CartApi;

/// The OpenAPI document of the cart's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    CartApi::openapi()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_recognised() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert!(is_token(&a));
        assert!(!is_token("short"));
        assert!(!is_token(&format!("{}!", &a[..42])));
    }

    #[test]
    fn openapi_has_the_cart_paths() {
        let doc = openapi();
        for p in
            ["/api/v1/cart", "/api/v1/cart/items", "/api/v1/cart/items/{productId}", "/api/v1/cart/merge"]
        {
            assert!(doc.paths.paths.contains_key(p), "{p}");
        }
    }
}
