//! HTTP handlers, the router and the OpenAPI document of the catalog.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use kit::auth::{Identity, MaybeIdentity};
use kit::extract::{Json, Path, Query};
use kit::money::{validate_currency, Money};
use kit::openapi::BearerSecurity;
use kit::pagination::{Page, PageParams};
use kit::problem::{FieldError, Problem};
use kit::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::model::*;
use crate::store::{ProductFilter, Sort};
use crate::CatalogState;

/// Longest accepted search query.
pub const MAX_QUERY_LEN: usize = 200;

/// Filters of `GET /api/v1/products` (with `page` and `pageSize`).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Category id or slug; products of its descendant categories are included.
    pub category: Option<String>,
    /// Brand id or slug.
    pub brand: Option<String>,
    /// Lowest price, in minor units (inclusive).
    pub min_price: Option<i64>,
    /// Highest price, in minor units (inclusive).
    pub max_price: Option<i64>,
    /// Only prices in this ISO 4217 currency.
    pub currency: Option<String>,
    /// Text search over name, SKU and description.
    pub q: Option<String>,
    /// One of `relevance`, `price`, `-price`, `name`, `-name`, `newest`, `oldest`
    /// (default: `relevance` with `q`, else `newest`).
    pub sort: Option<String>,
    /// Admins only: also list inactive products.
    pub include_inactive: Option<bool>,
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
        let q = non_empty(self.q);
        if q.as_ref().is_some_and(|q| q.chars().count() > MAX_QUERY_LEN) {
            errors.push(fe("q", format!("must be at most {MAX_QUERY_LEN} characters")));
        }
        let sort = match self.sort.as_deref() {
            None | Some("") => {
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
        if let (Some(min), Some(max)) = (self.min_price, self.max_price) {
            if min > max {
                errors.push(fe("maxPrice", "must not be below minPrice"));
            }
        }
        let currency = non_empty(self.currency);
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
    params(PageParams, ProductQuery),
    responses(
        (status = 200, description = "A page of products", body = Page<Product>),
        (status = 400, description = "Unparseable query string", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter or pagination values", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_products(
    State(st): State<CatalogState>,
    MaybeIdentity(who): MaybeIdentity,
    Query(pp): Query<PageParams>,
    Query(query): Query<ProductQuery>,
) -> ApiResult<Json<Page<Product>>> {
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
    responses(
        (status = 200, description = "The product", body = Product),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
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
#[utoipa::path(
    post, path = "/api/v1/products", tag = "catalog",
    request_body = ProductInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created; `Location` names the product", body = Product,
            headers(("Location" = String, description = "URL of the new product"))),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate SKU or slug", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
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
/// Every field is set from the body; a missing `slug` keeps the current one.
#[utoipa::path(
    put, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Product id")),
    request_body = ProductInput,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated product", body = Product),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate SKU or slug", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
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

/// Change some fields of a product (admin).
#[utoipa::path(
    patch, path = "/api/v1/products/{id}", tag = "catalog",
    params(("id" = Uuid, Path, description = "Product id")),
    request_body = ProductPatch,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The updated product", body = Product),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate SKU or slug", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
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
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such product", body = Problem, content_type = "application/problem+json"),
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
        (status = 422, description = "No items or more than 100", body = Problem, content_type = "application/problem+json"),
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
        (status = 422, description = "No ids or more than 100", body = Problem, content_type = "application/problem+json"),
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
    responses((status = 200, description = "All categories", body = CategoryList))
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
        (status = 404, description = "No such category", body = Problem, content_type = "application/problem+json"),
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

/// Create a category (admin).
#[utoipa::path(
    post, path = "/api/v1/categories", tag = "catalog",
    request_body = CategoryInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = CategoryDetail,
            headers(("Location" = String, description = "URL of the new category"))),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate slug", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
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
    responses((status = 200, description = "All brands", body = BrandList))
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
        (status = 404, description = "No such brand", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_brand(State(st): State<CatalogState>, Path(id): Path<String>) -> ApiResult<Json<Brand>> {
    st.store
        .get_brand(&id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("brand `{id}` not found")))
}

/// Create a brand (admin).
#[utoipa::path(
    post, path = "/api/v1/brands", tag = "catalog",
    request_body = BrandInput,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Brand,
            headers(("Location" = String, description = "URL of the new brand"))),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate slug", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
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
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such category", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate slug", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields (a parent that is the category or its descendant, too)", body = Problem, content_type = "application/problem+json"),
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
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such brand", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Duplicate slug", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
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
        .route("/api/v1/categories/{id}", get(get_category).put(update_category))
        .route("/api/v1/brands", get(list_brands).post(create_brand))
        .route("/api/v1/brands/{id}", get(get_brand).put(update_brand))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_products, get_product, create_product, replace_product, patch_product, delete_product,
        validate_products, batch_products, list_categories, get_category, create_category,
        update_category, list_brands, get_brand, create_brand, update_brand,
    ),
    components(schemas(
        Product, BrandRef, CategoryRef, ProductInput, ProductPatch, Money, Category, CategoryDetail,
        CategoryList, CategoryInput, Brand, BrandList, BrandInput, ValidateItem, ValidateRequest,
        ValidatedItem, ValidateResponse, BatchRequest, BatchResponse, Problem, FieldError,
    )),
    modifiers(&BearerSecurity),
    tags((name = "catalog", description = "Products, categories and brands"))
)]
struct CatalogApi;

/// The OpenAPI document of the catalog's routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    CatalogApi::openapi()
}
