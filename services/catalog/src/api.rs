//! HTTP handlers, the router and the OpenAPI document of the catalog.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use kit::auth::{Identity, MaybeIdentity};
use kit::extract::{Json, Path, Query};
use kit::money::{validate_currency, Money};
use kit::openapi::{responses as r, BearerSecurity, Problems};
use kit::pagination::{Page, PageParams};
use kit::problem::FieldError;
use kit::{ApiError, ApiResult};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::model::*;
use crate::store::{ProductFilter, Sort};
use crate::CatalogState;

/// Longest accepted search query.
pub const MAX_QUERY_LEN: usize = 200;

/// The query of `GET /api/v1/products`: the page and the filters (nothing else).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<u32>,
    /// Category id or slug; products of its descendant categories are included. No control
    /// characters; blank means any.
    #[param(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub category: Option<String>,
    /// Brand id or slug. No control characters; blank means any.
    #[param(pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub brand: Option<String>,
    /// Lowest price, in minor units (inclusive).
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub min_price: Option<i64>,
    /// Highest price, in minor units (inclusive); below `minPrice` nothing matches.
    #[param(minimum = 0, maximum = 9223372036854775807_i64)]
    pub max_price: Option<i64>,
    /// Only prices in this ISO 4217 currency.
    #[param(schema_with = kit::money::currency_schema)]
    pub currency: Option<String>,
    /// Text search over name, SKU and description: at most 200 characters, no control
    /// characters; blank means none.
    #[param(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub q: Option<String>,
    /// The order (default: `relevance` with `q`, else `newest`).
    #[param(value_type = Option<ProductSort>)]
    pub sort: Option<String>,
    /// Admins only: also list inactive products (401 without a token, 403 for others).
    pub include_inactive: Option<bool>,
}

/// The orders of `GET /api/v1/products`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
pub enum ProductSort {
    /// Best text match first (only meaningful with `q`; otherwise newest).
    #[serde(rename = "relevance")]
    Relevance,
    #[serde(rename = "price")]
    Price,
    #[serde(rename = "-price")]
    PriceDesc,
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "-name")]
    NameDesc,
    #[serde(rename = "newest")]
    Newest,
    #[serde(rename = "oldest")]
    Oldest,
}

fn fe(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

impl ProductQuery {
    fn into_filter(self) -> Result<ProductFilter, Vec<FieldError>> {
        let mut errors = Vec::new();
        let non_empty = |s: Option<String>| s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
        for (name, v) in [
            ("category", &self.category),
            ("brand", &self.brand),
            ("currency", &self.currency),
            ("q", &self.q),
        ] {
            if v.as_deref().is_some_and(|v| v.chars().any(char::is_control)) {
                errors.push(fe(name, "must not contain control characters"));
            }
        }
        if self.q.as_ref().is_some_and(|q| q.chars().count() > MAX_QUERY_LEN) {
            errors.push(fe("q", format!("must be at most {MAX_QUERY_LEN} characters")));
        }
        let q = non_empty(self.q);
        let sort = match self.sort.as_deref() {
            None => {
                if q.is_some() {
                    Sort::Relevance
                } else {
                    Sort::Newest
                }
            }
            Some(s) => Sort::parse(s).unwrap_or_else(|| {
                errors.push(fe("sort", format!("must be one of {}", Sort::ALL)));
                Sort::Newest
            }),
        };
        for (name, v) in [("minPrice", self.min_price), ("maxPrice", self.max_price)] {
            if v.is_some_and(|v| v < 0) {
                errors.push(fe(name, "must not be negative"));
            }
        }
        // A range whose maximum is below its minimum matches nothing: an empty page, not an error.
        let currency = self.currency;
        if let Some(Err(e)) = currency.as_deref().map(validate_currency) {
            errors.push(fe("currency", e));
        }
        let include_inactive = self.include_inactive.unwrap_or(false);
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ProductFilter {
            category: non_empty(self.category),
            brand: non_empty(self.brand),
            min_price: self.min_price,
            max_price: self.max_price,
            currency,
            q,
            sort,
            include_inactive,
        })
    }
}

/// List products.
///
/// Only active products, unless an admin passes `includeInactive=true`. Deleted products are
/// never listed.
#[utoipa::path(
    get, path = "/api/v1/products", tag = "catalog",
    params(ProductQuery),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of products", body = Page<Product>),
        r::List, r::Forbidden,
    )
)]
pub async fn list_products(
    State(st): State<CatalogState>,
    MaybeIdentity(who): MaybeIdentity,
    Query(query): Query<ProductQuery>,
) -> ApiResult<Json<Page<Product>>> {
    let pp = PageParams { page: query.page, page_size: query.page_size };
    if query.include_inactive == Some(true) {
        match &who {
            None => return Err(kit::auth::TokenError::Missing.into()),
            Some(who) => who.require_admin()?,
        }
    }
    let mut errors = Vec::new();
    let page = pp.validate().map_err(|e| errors.extend(e.errors)).ok();
    let filter = query.into_filter().map_err(|e| errors.extend(e)).ok();
    let (Some(page), Some(filter)) = (page, filter) else {
        return Err(ApiError::invalid_fields(errors));
    };
    let (items, total) = st.store.list_products(&filter, page).await?;
    Ok(Json(Page::new(items, page, total)))
}

/// Get a product by id or slug.
///
/// Inactive products are visible to admins only; deleted products are not found.
#[utoipa::path(
    get, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Product UUID or slug")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The product", body = Product),
        r::Read, r::NotFound,
    )
)]
pub async fn get_product(
    State(st): State<CatalogState>,
    MaybeIdentity(who): MaybeIdentity,
    Path(id): Path<String>,
) -> ApiResult<Json<Product>> {
    let admin = who.as_ref().is_some_and(Identity::is_admin);
    st.store
        .get_product(&id, admin)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("product `{id}` not found")))
}

/// Create a product (admin).
///
/// 409 `duplicate_sku` or `duplicate_slug`; 422 also when `categoryId` or `brandId` names no
/// category or brand.
#[utoipa::path(
    post, path = "/api/v1/products", tag = "catalog",
    request_body = ProductInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` names the product", body = Product,
            headers(("Location" = String, description = "URL of the new product"))),
        r::Write, r::Admin, r::Conflict,
    )
)]
pub async fn create_product(
    State(st): State<CatalogState>,
    who: Identity,
    Json(input): Json<ProductInput>,
) -> ApiResult<impl IntoResponse> {
    who.require_admin()?;
    let data = input.validate(None).map_err(ApiError::invalid_fields)?;
    let product = st.store.create_product(data).await?;
    tracing::info!(product_id = %product.id, sku = %product.sku, by = %who.user_id, "product created");
    let location = format!("/api/v1/products/{}", product.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(product)))
}

async fn current(st: &CatalogState, id: Uuid) -> ApiResult<Product> {
    st.store
        .get_product(&id.to_string(), true)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("product `{id}` not found")))
}

/// Replace a product (admin).
///
/// Every field is set from the body; a missing `slug` keeps the current one. 409
/// `duplicate_sku` or `duplicate_slug`.
#[utoipa::path(
    put, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Product id")),
    request_body = ProductInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated product", body = Product),
        r::Write, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn replace_product(
    State(st): State<CatalogState>,
    who: Identity,
    Path(id): Path<Uuid>,
    Json(input): Json<ProductInput>,
) -> ApiResult<Json<Product>> {
    who.require_admin()?;
    let cur = current(&st, id).await?;
    let data = input.validate(Some(&cur.slug)).map_err(ApiError::invalid_fields)?;
    Ok(Json(st.store.update_product(id, data).await?))
}

/// Change some fields of a product (admin). 409 `duplicate_sku` or `duplicate_slug`.
#[utoipa::path(
    patch, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Product id")),
    request_body = ProductPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated product", body = Product),
        r::Write, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn patch_product(
    State(st): State<CatalogState>,
    who: Identity,
    Path(id): Path<Uuid>,
    Json(patch): Json<ProductPatch>,
) -> ApiResult<Json<Product>> {
    who.require_admin()?;
    let cur = current(&st, id).await?;
    let data = patch.apply(&cur).validate(Some(&cur.slug)).map_err(ApiError::invalid_fields)?;
    Ok(Json(st.store.update_product(id, data).await?))
}

/// Delete a product (admin; soft delete).
///
/// The product disappears from lists and lookups; `validate` reports it as `deleted`.
#[utoipa::path(
    delete, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Product id")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        r::Read, r::Admin, r::NotFound,
    )
)]
pub async fn delete_product(
    State(st): State<CatalogState>,
    who: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    who.require_admin()?;
    if st.store.delete_product(id).await? {
        tracing::info!(product_id = %id, by = %who.user_id, "product deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("product `{id}` not found")))
    }
}

/// Check products and quantities for a cart or order (public).
///
/// One verdict per line, in request order; `valid` is true when every line is sellable.
#[utoipa::path(
    post, path = "/api/v1/products/validate", tag = "catalog",
    request_body = ValidateRequest,
    responses(
        (status = 200, description = "Verdicts", body = ValidateResponse),
        r::Write,
    )
)]
pub async fn validate_products(
    State(st): State<CatalogState>,
    Json(req): Json<ValidateRequest>,
) -> ApiResult<Json<ValidateResponse>> {
    Ok(Json(st.store.validate_items(&req.items).await?))
}

/// Look up several products by id (public).
#[utoipa::path(
    post, path = "/api/v1/products/batch", tag = "catalog",
    request_body = BatchRequest,
    responses(
        (status = 200, description = "Found products and missing ids", body = BatchResponse),
        r::Write,
    )
)]
pub async fn batch_products(
    State(st): State<CatalogState>,
    Json(req): Json<BatchRequest>,
) -> ApiResult<Json<BatchResponse>> {
    Ok(Json(st.store.batch(&req.ids).await?))
}

/// List every category (flat, depth-first, with `parentId` and `depth`).
#[utoipa::path(
    get, path = "/api/v1/categories", tag = "catalog",
    responses((status = 200, description = "All categories", body = CategoryList), r::Always)
)]
pub async fn list_categories(State(st): State<CatalogState>) -> ApiResult<Json<CategoryList>> {
    Ok(Json(CategoryList { items: st.store.list_categories().await? }))
}

/// Get a category by id or slug, with ancestors and children.
#[utoipa::path(
    get, path = "/api/v1/categories/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Category UUID or slug")),
    responses(
        (status = 200, description = "The category", body = CategoryDetail),
        r::Read, r::NotFound,
    )
)]
pub async fn get_category(
    State(st): State<CatalogState>,
    Path(id): Path<String>,
) -> ApiResult<Json<CategoryDetail>> {
    st.store
        .get_category(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("category `{id}` not found")))
}

/// Create a category (admin). 409 `duplicate_slug`; 422 also when `parentId` names no category.
#[utoipa::path(
    post, path = "/api/v1/categories", tag = "catalog",
    request_body = CategoryInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CategoryDetail,
            headers(("Location" = String, description = "URL of the new category"))),
        r::Write, r::Admin, r::Conflict,
    )
)]
pub async fn create_category(
    State(st): State<CatalogState>,
    who: Identity,
    Json(input): Json<CategoryInput>,
) -> ApiResult<impl IntoResponse> {
    who.require_admin()?;
    let c = st.store.create_category(input).await?;
    let location = format!("/api/v1/categories/{}", c.category.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(c)))
}

/// List every brand, by name.
#[utoipa::path(
    get, path = "/api/v1/brands", tag = "catalog",
    responses((status = 200, description = "All brands", body = BrandList), r::Always)
)]
pub async fn list_brands(State(st): State<CatalogState>) -> ApiResult<Json<BrandList>> {
    Ok(Json(BrandList { items: st.store.list_brands().await? }))
}

/// Get a brand by id or slug.
#[utoipa::path(
    get, path = "/api/v1/brands/{id}", tag = "catalog",
    params(("id" = String, Path, description = "Brand UUID or slug")),
    responses(
        (status = 200, description = "The brand", body = Brand),
        r::Read, r::NotFound,
    )
)]
pub async fn get_brand(State(st): State<CatalogState>, Path(id): Path<String>) -> ApiResult<Json<Brand>> {
    st.store
        .get_brand(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("brand `{id}` not found")))
}

/// Create a brand (admin). 409 `duplicate_slug`.
#[utoipa::path(
    post, path = "/api/v1/brands", tag = "catalog",
    request_body = BrandInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Brand,
            headers(("Location" = String, description = "URL of the new brand"))),
        r::Write, r::Admin, r::Conflict,
    )
)]
pub async fn create_brand(
    State(st): State<CatalogState>,
    who: Identity,
    Json(input): Json<BrandInput>,
) -> ApiResult<impl IntoResponse> {
    who.require_admin()?;
    let b = st.store.create_brand(input).await?;
    let location = format!("/api/v1/brands/{}", b.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(b)))
}

/// Replace a category's name, slug, description, parent and position (admin). Without a
/// `slug` the current one is kept.
#[utoipa::path(
    put, path = "/api/v1/categories/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Category UUID")),
    request_body = CategoryInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = CategoryDetail),
        r::Write, r::Forbidden, r::NotFound, r::Conflict,
    )
)]
pub async fn update_category(
    State(st): State<CatalogState>,
    who: Identity,
    Path(id): Path<Uuid>,
    Json(input): Json<CategoryInput>,
) -> ApiResult<Json<CategoryDetail>> {
    who.require_admin()?;
    st.store
        .update_category(id, input)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("category `{id}` not found")))
}

/// Replace a brand's name, slug, description and logo (admin). Without a `slug` the current
/// one is kept.
#[utoipa::path(
    put, path = "/api/v1/brands/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Brand UUID")),
    request_body = BrandInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = Brand),
        r::Write, r::Forbidden, r::NotFound, r::Conflict,
    )
)]
pub async fn update_brand(
    State(st): State<CatalogState>,
    who: Identity,
    Path(id): Path<Uuid>,
    Json(input): Json<BrandInput>,
) -> ApiResult<Json<Brand>> {
    who.require_admin()?;
    st.store
        .update_brand(id, input)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("brand `{id}` not found")))
}

/// Delete a category (admin).
///
/// 409 `category_in_use` while a product (live, or deleted: deleted products keep their
/// category for the order history) or a child category names it: move them first.
#[utoipa::path(
    delete, path = "/api/v1/categories/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Category UUID")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        r::Read, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn delete_category(
    State(st): State<CatalogState>,
    who: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    who.require_admin()?;
    if st.store.delete_category(id).await? {
        tracing::info!(category_id = %id, by = %who.user_id, "category deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("category `{id}` not found")))
    }
}

/// Delete a brand (admin).
///
/// 409 `brand_in_use` while a product (live or deleted) names it: move them first.
#[utoipa::path(
    delete, path = "/api/v1/brands/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Brand UUID")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Deleted"),
        r::Read, r::Admin, r::NotFound, r::Conflict,
    )
)]
pub async fn delete_brand(
    State(st): State<CatalogState>,
    who: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    who.require_admin()?;
    if st.store.delete_brand(id).await? {
        tracing::info!(brand_id = %id, by = %who.user_id, "brand deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("brand `{id}` not found")))
    }
}

/// The catalog's `/api/v1/...` routes (no common layers; the composer adds them and the
/// token verifier extension).
pub fn router(state: CatalogState) -> Router {
    Router::new()
        .route("/api/v1/products", get(list_products).post(create_product))
        .route("/api/v1/products/validate", post(validate_products))
        .route("/api/v1/products/batch", post(batch_products))
        .route(
            "/api/v1/products/{id}",
            get(get_product).put(replace_product).patch(patch_product).delete(delete_product),
        )
        .route("/api/v1/categories", get(list_categories).post(create_category))
        .route("/api/v1/categories/{id}", get(get_category).put(update_category).delete(delete_category))
        .route("/api/v1/brands", get(list_brands).post(create_brand))
        .route("/api/v1/brands/{id}", get(get_brand).put(update_brand).delete(delete_brand))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_products, get_product, create_product, replace_product, patch_product, delete_product,
        validate_products, batch_products, list_categories, get_category, create_category,
        update_category, delete_category, list_brands, get_brand, create_brand, update_brand, delete_brand,
    ),
    components(schemas(
        Product, BrandRef, CategoryRef, ProductInput, ProductPatch, Money, Category, CategoryDetail,
        CategoryList, CategoryInput, Brand, BrandList, BrandInput, ValidateItem, ValidateRequest,
        ValidatedItem, ValidateResponse, BatchRequest, BatchResponse, ProductSort, LineError,
    )),
    modifiers(&BearerSecurity, &Problems),
    tags((name = "catalog", description = "Products, categories and brands"))
)]
struct CatalogApi;

/// The OpenAPI document of the catalog's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    CatalogApi::openapi()
}
