//! The catalog store: one set of queries over PostgreSQL and SQLite.
//!
//! Every query is written once with `$N` placeholders (SQLite binds them by number) and run
//! through [`kit::with_db!`]. Backend-specific SQL lives in three named functions:
//! [`search_condition`] / [`relevance_order`] (full-text search) and [`name_order`] (collation).

use std::collections::HashMap;
use std::fmt::Write as _;

use kit::db::{is_foreign_key_violation, is_unique_violation_on, like_escape, Backend, Db};
use kit::money::Money;
use kit::pagination::PageRequest;
use kit::problem::{ErrorCode, FieldError};
use kit::with_db;
use serde_json::{Map, Value};
use sqlx::types::Json;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::model::*;

/// What can go wrong in the store: the kit's store error, whose one mapping to problem
/// documents is `kit::store` (the catalog has no refusal of its own).
pub type StoreError = kit::store::StoreError;

pub type StoreResult<T> = Result<T, StoreError>;

/// Product list order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Best text match first (only meaningful with a search query; otherwise newest).
    Relevance,
    Price,
    PriceDesc,
    Name,
    NameDesc,
    Newest,
    Oldest,
}

impl Sort {
    pub const ALL: &'static str = "relevance|price|-price|name|-name|newest|oldest";

    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s {
            "relevance" => Sort::Relevance,
            "price" => Sort::Price,
            "-price" => Sort::PriceDesc,
            "name" => Sort::Name,
            "-name" => Sort::NameDesc,
            "newest" => Sort::Newest,
            "oldest" => Sort::Oldest,
            _ => return None,
        })
    }
}

/// Validated filters of the product list.
#[derive(Debug, Clone)]
pub struct ProductFilter {
    /// Category id or slug; products of descendant categories are included.
    pub category: Option<String>,
    /// Brand id or slug.
    pub brand: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub currency: Option<String>,
    /// Text search (non-empty).
    pub q: Option<String>,
    pub sort: Sort,
    /// Also list inactive products (never deleted ones).
    pub include_inactive: bool,
}

impl Default for ProductFilter {
    fn default() -> Self {
        ProductFilter {
            category: None,
            brand: None,
            min_price: None,
            max_price: None,
            currency: None,
            q: None,
            sort: Sort::Newest,
            include_inactive: false,
        }
    }
}

/// A bind value of a dynamically built query.
#[derive(Debug, Clone)]
enum Arg {
    Uuid(Uuid),
    I64(i64),
    Text(String),
}

/// SQL text with `$N` placeholders and the values they refer to.
#[derive(Debug, Clone, Default)]
struct Sql {
    text: String,
    args: Vec<Arg>,
}

impl Sql {
    fn new(text: &str) -> Self {
        Sql { text: text.to_string(), args: Vec::new() }
    }
    fn push(&mut self, s: &str) -> &mut Self {
        self.text.push_str(s);
        self
    }
    /// Adds a value and returns its placeholder number (usable several times).
    fn arg(&mut self, a: Arg) -> usize {
        self.args.push(a);
        self.args.len()
    }
    /// Adds a value and writes its placeholder.
    fn bind(&mut self, a: Arg) -> &mut Self {
        let n = self.arg(a);
        let _ = write!(self.text, "${n}");
        self
    }
}

/// Binds every value of `$args` to the query `$q` (expanded per backend inside `with_db!`).
macro_rules! bind_args {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Arg::Uuid(v) => q.bind(*v),
                Arg::I64(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }};
}

const PRODUCT_SELECT: &str =
    "SELECT p.id, p.name, p.slug, p.description, p.sku, p.price_amount, p.currency, \
     p.images, p.attributes, p.active, p.created_at, p.updated_at, p.deleted_at, \
     p.brand_id, b.name AS brand_name, b.slug AS brand_slug, \
     p.category_id, c.name AS category_name, c.slug AS category_slug \
     FROM products p JOIN categories c ON c.id = p.category_id LEFT JOIN brands b ON b.id = p.brand_id";

const PRODUCT_COUNT: &str = "SELECT COUNT(*) FROM products p JOIN categories c ON c.id = p.category_id \
     LEFT JOIN brands b ON b.id = p.brand_id";

#[derive(Debug, sqlx::FromRow)]
struct ProductRow {
    id: Uuid,
    name: String,
    slug: String,
    description: String,
    sku: String,
    price_amount: i64,
    currency: String,
    images: Json<Vec<String>>,
    attributes: Json<Map<String, Value>>,
    active: bool,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
    deleted_at: Option<OffsetDateTime>,
    brand_id: Option<Uuid>,
    brand_name: Option<String>,
    brand_slug: Option<String>,
    category_id: Uuid,
    category_name: String,
    category_slug: String,
}

impl ProductRow {
    fn into_product(self) -> Product {
        let brand = match (self.brand_id, self.brand_name, self.brand_slug) {
            (Some(id), Some(name), Some(slug)) => Some(BrandRef { id, name, slug }),
            _ => None,
        };
        Product {
            id: self.id,
            name: self.name,
            slug: self.slug,
            description: self.description,
            sku: self.sku,
            price: Money { amount: self.price_amount, currency: self.currency },
            images: self.images.0,
            brand,
            category: CategoryRef {
                id: self.category_id,
                name: self.category_name,
                slug: self.category_slug,
            },
            attributes: self.attributes.0,
            active: self.active,
            created_at: self.created_at.to_offset(time::UtcOffset::UTC),
            updated_at: self.updated_at.to_offset(time::UtcOffset::UTC),
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct CategoryRow {
    id: Uuid,
    parent_id: Option<Uuid>,
    name: String,
    slug: String,
    description: String,
    position: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct BrandRow {
    id: Uuid,
    name: String,
    slug: String,
    description: String,
    logo_url: Option<String>,
}

impl From<BrandRow> for Brand {
    fn from(r: BrandRow) -> Self {
        Brand { id: r.id, name: r.name, slug: r.slug, description: r.description, logo_url: r.logo_url }
    }
}

/// The current time, truncated to microseconds (PostgreSQL's precision) so both backends
/// return what was written.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

fn field(field: &str, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// Maps write errors: unique violations → 409, foreign-key violations → 422.
fn write_error(e: sqlx::Error, what: &str) -> StoreError {
    if is_unique_violation_on(&e, "sku") {
        StoreError::Conflict { code: ErrorCode::DuplicateSku, detail: format!("another {what} has this SKU") }
    } else if is_unique_violation_on(&e, "slug") {
        StoreError::Conflict {
            code: ErrorCode::DuplicateSlug,
            detail: format!("another {what} has this slug"),
        }
    } else if is_foreign_key_violation(&e) {
        StoreError::Invalid(vec![field("categoryId", "refers to an unknown category or brand")])
    } else {
        StoreError::Db(e)
    }
}

/// Search terms of the SQLite search: whitespace-separated, quotes dropped, `-term` excludes,
/// the websearch operator `or` is ignored; at most 10 terms.
fn search_terms(q: &str) -> Vec<(bool, String)> {
    q.split_whitespace()
        .filter_map(|t| {
            let (neg, t) = match t.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, t),
            };
            let t = t.trim_matches('"');
            (!t.is_empty() && !t.eq_ignore_ascii_case("or")).then(|| (neg, t.to_string()))
        })
        .take(10)
        .collect()
}

/// The text-search condition (backend-specific). PostgreSQL: the generated `search`
/// tsvector against `websearch_to_tsquery('english', q)` (GIN index). SQLite: every term must
/// appear (case-insensitive for ASCII) in the name, SKU or description; `-term` must not.
/// Returns the placeholders [`relevance_order`] ranks by.
fn search_condition(backend: Backend, q: &str, sql: &mut Sql) -> Vec<usize> {
    match backend {
        Backend::Postgres => {
            let n = sql.arg(Arg::Text(q.to_string()));
            let _ = write!(sql.text, " AND p.search @@ websearch_to_tsquery('english', ${n})");
            vec![n]
        }
        Backend::Sqlite => {
            let mut positives = Vec::new();
            for (neg, term) in search_terms(q) {
                let n = sql.arg(Arg::Text(format!("%{}%", like_escape(&term))));
                let _ = write!(
                    sql.text,
                    " AND {}(p.name LIKE ${n} ESCAPE '\\' OR p.sku LIKE ${n} ESCAPE '\\' \
                     OR p.description LIKE ${n} ESCAPE '\\')",
                    if neg { "NOT " } else { "" }
                );
                if !neg {
                    positives.push(n);
                }
            }
            positives
        }
    }
}

/// ORDER BY terms for relevance (backend-specific). PostgreSQL: `ts_rank_cd`; SQLite: terms
/// found in the name or SKU count double.
fn relevance_order(backend: Backend, args: &[usize]) -> String {
    match backend {
        Backend::Postgres => args
            .iter()
            .map(|n| format!("ts_rank_cd(p.search, websearch_to_tsquery('english', ${n})) DESC, "))
            .collect(),
        Backend::Sqlite if args.is_empty() => String::new(),
        Backend::Sqlite => {
            let score: Vec<String> = args
                .iter()
                .map(|n| {
                    format!(
                        "(CASE WHEN p.name LIKE ${n} ESCAPE '\\' OR p.sku LIKE ${n} ESCAPE '\\' THEN 2 ELSE 1 END)"
                    )
                })
                .collect();
            format!("({}) DESC, ", score.join(" + "))
        }
    }
}

/// Case-insensitive, byte-wise name order (the same on both backends).
fn name_order(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "lower(p.name) COLLATE \"C\"",
        Backend::Sqlite => "lower(p.name)",
    }
}

/// The catalog's persistence.
#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Store { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    // ----- products -----------------------------------------------------------------------

    async fn fetch_products(&self, sql: &Sql) -> StoreResult<Vec<ProductRow>> {
        Ok(with_db!(&self.db, pool => bind_args!(sqlx::query_as::<_, ProductRow>(&sql.text), &sql.args)
            .fetch_all(pool)
            .await)?)
    }

    /// A live (not deleted) product by id or slug; inactive ones only when `include_inactive`.
    pub async fn get_product(
        &self,
        id_or_slug: &str,
        include_inactive: bool,
    ) -> StoreResult<Option<Product>> {
        if !usable_key(id_or_slug) {
            return Ok(None);
        }
        let mut sql = Sql::new(PRODUCT_SELECT);
        match Uuid::parse_str(id_or_slug) {
            Ok(id) => sql.push(" WHERE p.id = ").bind(Arg::Uuid(id)),
            Err(_) => sql.push(" WHERE p.slug = ").bind(Arg::Text(id_or_slug.to_string())),
        };
        sql.push(" AND p.deleted_at IS NULL");
        let row = self.fetch_products(&sql).await?.into_iter().next();
        Ok(row.map(ProductRow::into_product).filter(|p| include_inactive || p.active))
    }

    /// Rows for these ids, deleted ones included (with their deletion time).
    async fn rows_by_ids(&self, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, ProductRow>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = Sql::new(PRODUCT_SELECT);
        sql.push(" WHERE p.id IN (");
        for (i, id) in ids.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            sql.bind(Arg::Uuid(*id));
        }
        sql.push(")");
        Ok(self.fetch_products(&sql).await?.into_iter().map(|r| (r.id, r)).collect())
    }

    /// Field errors for a category or brand id that does not exist.
    pub async fn check_refs(
        &self,
        category_id: Uuid,
        brand_id: Option<Uuid>,
    ) -> StoreResult<Vec<FieldError>> {
        let mut errors = Vec::new();
        let n: i64 = with_db!(&self.db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM categories WHERE id = $1")
            .bind(category_id)
            .fetch_one(pool)
            .await)?;
        if n == 0 {
            errors.push(field("categoryId", format!("no category has the id {category_id}")));
        }
        if let Some(brand_id) = brand_id {
            let n: i64 = with_db!(&self.db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM brands WHERE id = $1")
                .bind(brand_id)
                .fetch_one(pool)
                .await)?;
            if n == 0 {
                errors.push(field("brandId", format!("no brand has the id {brand_id}")));
            }
        }
        Ok(errors)
    }

    /// Creates a product (references are checked first: unknown ones are a 422).
    pub async fn create_product(&self, data: ProductData) -> StoreResult<Product> {
        let errors = self.check_refs(data.category_id, data.brand_id).await?;
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let id = Uuid::now_v7();
        let now = now();
        with_db!(&self.db, pool => sqlx::query(
            "INSERT INTO products (id, name, slug, description, sku, price_amount, currency, images, \
             attributes, brand_id, category_id, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(id)
        .bind(&data.name)
        .bind(&data.slug)
        .bind(&data.description)
        .bind(&data.sku)
        .bind(data.price.amount)
        .bind(&data.price.currency)
        .bind(Json(&data.images))
        .bind(Json(&data.attributes))
        .bind(data.brand_id)
        .bind(data.category_id)
        .bind(data.active)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| write_error(e, "product"))?;
        self.get_product(&id.to_string(), true).await?.ok_or_else(|| StoreError::NotFound("product".into()))
    }

    /// Replaces every field of a live product.
    pub async fn update_product(&self, id: Uuid, data: ProductData) -> StoreResult<Product> {
        let errors = self.check_refs(data.category_id, data.brand_id).await?;
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let res = with_db!(&self.db, pool => sqlx::query(
            "UPDATE products SET name = $2, slug = $3, description = $4, sku = $5, price_amount = $6, \
             currency = $7, images = $8, attributes = $9, brand_id = $10, category_id = $11, active = $12, \
             updated_at = $13 WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(&data.name)
        .bind(&data.slug)
        .bind(&data.description)
        .bind(&data.sku)
        .bind(data.price.amount)
        .bind(&data.price.currency)
        .bind(Json(&data.images))
        .bind(Json(&data.attributes))
        .bind(data.brand_id)
        .bind(data.category_id)
        .bind(data.active)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))
        .map_err(|e| write_error(e, "product"))?;
        if res == 0 {
            return Err(StoreError::NotFound(format!("product {id}")));
        }
        self.get_product(&id.to_string(), true)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("product {id}")))
    }

    /// Soft-deletes a live product. False when there is none.
    pub async fn delete_product(&self, id: Uuid) -> StoreResult<bool> {
        let n = with_db!(&self.db, pool => sqlx::query(
            "UPDATE products SET deleted_at = $2, updated_at = $2 WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(now())
        .execute(pool)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n > 0)
    }

    /// One page of products matching `f`, and the total number of matches.
    pub async fn list_products(
        &self,
        f: &ProductFilter,
        page: PageRequest,
    ) -> StoreResult<(Vec<Product>, i64)> {
        let backend = self.db.backend();
        let mut cond = Sql::default();
        cond.push(" WHERE p.deleted_at IS NULL");
        if !f.include_inactive {
            cond.push(" AND p.active = TRUE");
        }
        if let Some(cat) = &f.category {
            cond.push(" AND p.category_id IN (WITH RECURSIVE sub(id) AS (SELECT id FROM categories WHERE ");
            match Uuid::parse_str(cat) {
                Ok(id) => cond.push("id = ").bind(Arg::Uuid(id)),
                Err(_) => cond.push("slug = ").bind(Arg::Text(cat.clone())),
            };
            cond.push(
                " UNION SELECT k.id FROM categories k JOIN sub ON k.parent_id = sub.id) SELECT id FROM sub)",
            );
        }
        if let Some(brand) = &f.brand {
            match Uuid::parse_str(brand) {
                Ok(id) => cond.push(" AND p.brand_id = ").bind(Arg::Uuid(id)),
                Err(_) => cond.push(" AND b.slug = ").bind(Arg::Text(brand.clone())),
            };
        }
        if let Some(min) = f.min_price {
            cond.push(" AND p.price_amount >= ").bind(Arg::I64(min));
        }
        if let Some(max) = f.max_price {
            cond.push(" AND p.price_amount <= ").bind(Arg::I64(max));
        }
        if let Some(cur) = &f.currency {
            cond.push(" AND p.currency = ").bind(Arg::Text(cur.clone()));
        }
        let mut relevance = String::new();
        if let Some(q) = &f.q {
            let ranked = search_condition(backend, q, &mut cond);
            if f.sort == Sort::Relevance {
                relevance = relevance_order(backend, &ranked);
            }
        }

        let count_sql = Sql { text: format!("{PRODUCT_COUNT}{}", cond.text), args: cond.args.clone() };
        let total: i64 = with_db!(&self.db, pool => bind_args!(sqlx::query_scalar::<_, i64>(&count_sql.text), &count_sql.args)
            .fetch_one(pool)
            .await)?;

        let order = match f.sort {
            Sort::Relevance => format!("{relevance}p.created_at DESC, p.id DESC"),
            Sort::Newest => "p.created_at DESC, p.id DESC".to_string(),
            Sort::Oldest => "p.created_at ASC, p.id ASC".to_string(),
            Sort::Price => "p.price_amount ASC, p.id ASC".to_string(),
            Sort::PriceDesc => "p.price_amount DESC, p.id DESC".to_string(),
            Sort::Name => format!("{} ASC, p.id ASC", name_order(backend)),
            Sort::NameDesc => format!("{} DESC, p.id DESC", name_order(backend)),
        };
        let mut sql =
            Sql { text: format!("{PRODUCT_SELECT}{} ORDER BY {order}", cond.text), args: cond.args };
        sql.push(" LIMIT ").bind(Arg::I64(page.limit()));
        sql.push(" OFFSET ").bind(Arg::I64(page.offset()));
        let items = self.fetch_products(&sql).await?.into_iter().map(ProductRow::into_product).collect();
        Ok((items, total))
    }

    /// The seeds' `validate_products`: one verdict per line, in request order.
    pub async fn validate_items(&self, items: &[ValidateItem]) -> StoreResult<ValidateResponse> {
        check_batch_size("items", items.len())?;
        let mut ids: Vec<Uuid> = items.iter().map(|i| i.product_id).collect();
        ids.sort();
        ids.dedup();
        let rows = self.rows_by_ids(&ids).await?;
        let verdicts: Vec<ValidatedItem> = items
            .iter()
            .map(|item| {
                let Some(r) = rows.get(&item.product_id) else {
                    return ValidatedItem {
                        product_id: item.product_id,
                        found: false,
                        active: false,
                        name: None,
                        sku: None,
                        price: None,
                        quantity: i64::from(item.quantity),
                        error: Some("not_found".into()),
                    };
                };
                let sellable = r.active && r.deleted_at.is_none();
                let error = if r.deleted_at.is_some() {
                    Some("deleted")
                } else if !r.active {
                    Some("inactive")
                } else if item.quantity < 1 {
                    Some("invalid_quantity")
                } else {
                    None
                };
                ValidatedItem {
                    product_id: item.product_id,
                    found: true,
                    active: sellable,
                    name: Some(r.name.clone()),
                    sku: Some(r.sku.clone()),
                    price: Some(Money { amount: r.price_amount, currency: r.currency.clone() }),
                    quantity: i64::from(item.quantity),
                    error: error.map(str::to_string),
                }
            })
            .collect();
        Ok(ValidateResponse { valid: verdicts.iter().all(|v| v.error.is_none()), items: verdicts })
    }

    /// Live products (active or not) for these ids, in request order without duplicates;
    /// unknown and deleted ids are `missing`.
    pub async fn batch(&self, ids: &[Uuid]) -> StoreResult<BatchResponse> {
        check_batch_size("ids", ids.len())?;
        let mut rows = self.rows_by_ids(ids).await?;
        let mut products = Vec::new();
        let mut missing = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for id in ids {
            if !seen.insert(*id) {
                continue;
            }
            match rows.remove(id) {
                Some(r) if r.deleted_at.is_none() => products.push(r.into_product()),
                _ => missing.push(*id),
            }
        }
        Ok(BatchResponse { products, missing })
    }

    // ----- categories ---------------------------------------------------------------------

    async fn category_rows(&self) -> StoreResult<Vec<CategoryRow>> {
        Ok(with_db!(&self.db, pool => sqlx::query_as::<_, CategoryRow>(
            "SELECT id, parent_id, name, slug, description, position FROM categories",
        )
        .fetch_all(pool)
        .await)?)
    }

    /// Every category, depth-first (parents before children; siblings by position, name).
    pub async fn list_categories(&self) -> StoreResult<Vec<Category>> {
        let rows = self.category_rows().await?;
        let mut children: HashMap<Option<Uuid>, Vec<&CategoryRow>> = HashMap::new();
        for r in &rows {
            children.entry(r.parent_id).or_default().push(r);
        }
        for v in children.values_mut() {
            v.sort_by(|a, b| (a.position, &a.name, a.id).cmp(&(b.position, &b.name, b.id)));
        }
        let mut out = Vec::with_capacity(rows.len());
        let mut stack: Vec<(&CategoryRow, u32)> =
            children.get(&None).map(|v| v.iter().rev().map(|r| (*r, 0)).collect()).unwrap_or_default();
        while let Some((r, depth)) = stack.pop() {
            out.push(Category {
                id: r.id,
                name: r.name.clone(),
                slug: r.slug.clone(),
                description: r.description.clone(),
                parent_id: r.parent_id,
                depth,
                position: r.position,
            });
            if let Some(kids) = children.get(&Some(r.id)) {
                stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
            }
        }
        Ok(out)
    }

    /// A category by id or slug, with its ancestors and children.
    pub async fn get_category(&self, id_or_slug: &str) -> StoreResult<Option<CategoryDetail>> {
        let all = self.list_categories().await?;
        let by_id: HashMap<Uuid, &Category> = all.iter().map(|c| (c.id, c)).collect();
        let found = match Uuid::parse_str(id_or_slug) {
            Ok(id) => by_id.get(&id).copied(),
            Err(_) => all.iter().find(|c| c.slug == id_or_slug),
        };
        let Some(cat) = found else { return Ok(None) };
        let as_ref = |c: &Category| CategoryRef { id: c.id, name: c.name.clone(), slug: c.slug.clone() };
        let mut ancestors = Vec::new();
        let mut parent = cat.parent_id;
        while let Some(p) = parent.and_then(|id| by_id.get(&id)) {
            ancestors.push(as_ref(p));
            parent = p.parent_id;
            if ancestors.len() > all.len() {
                break;
            }
        }
        ancestors.reverse();
        let children = all.iter().filter(|c| c.parent_id == Some(cat.id)).map(as_ref).collect();
        Ok(Some(CategoryDetail { category: cat.clone(), ancestors, children }))
    }

    pub async fn create_category(&self, input: CategoryInput) -> StoreResult<CategoryDetail> {
        let mut errors = Vec::new();
        let named = validate_named(&input.name, input.slug.as_deref(), &input.description, &mut errors);
        if let Some(parent) = input.parent_id {
            let n: i64 = with_db!(&self.db, pool => sqlx::query_scalar("SELECT COUNT(*) FROM categories WHERE id = $1")
                .bind(parent)
                .fetch_one(pool)
                .await)?;
            if n == 0 {
                errors.push(field("parentId", format!("no category has the id {parent}")));
            }
        }
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let id = Uuid::now_v7();
        let now = now();
        with_db!(&self.db, pool => sqlx::query(
            "INSERT INTO categories (id, parent_id, name, slug, description, position, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(id)
        .bind(input.parent_id)
        .bind(&named.name)
        .bind(&named.slug)
        .bind(&named.description)
        .bind(i64::from(input.position))
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| write_error(e, "category"))?;
        self.get_category(&id.to_string()).await?.ok_or_else(|| StoreError::NotFound("category".into()))
    }

    /// Replaces a category's fields (`PUT`): without a slug the current one is kept; the parent
    /// must exist and must not be the category itself or one of its descendants. `None` when
    /// there is no such category.
    pub async fn update_category(
        &self,
        id: Uuid,
        input: CategoryInput,
    ) -> StoreResult<Option<CategoryDetail>> {
        let rows = self.category_rows().await?;
        let Some(current) = rows.iter().find(|r| r.id == id) else { return Ok(None) };
        let mut errors = Vec::new();
        let slug = input.slug.clone().or_else(|| Some(current.slug.clone()));
        let named = validate_named(&input.name, slug.as_deref(), &input.description, &mut errors);
        if let Some(parent) = input.parent_id {
            let parents: HashMap<Uuid, Option<Uuid>> = rows.iter().map(|r| (r.id, r.parent_id)).collect();
            if !parents.contains_key(&parent) {
                errors.push(field("parentId", format!("no category has the id {parent}")));
            } else {
                // Walk up from the new parent: meeting the category itself would make a cycle.
                let mut at = Some(parent);
                let mut steps = 0;
                while let Some(p) = at {
                    if p == id {
                        errors.push(field(
                            "parentId",
                            "must not be the category itself or one of its descendants",
                        ));
                        break;
                    }
                    at = parents.get(&p).copied().flatten();
                    steps += 1;
                    if steps > rows.len() {
                        break;
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        with_db!(&self.db, pool => sqlx::query(
            "UPDATE categories SET parent_id = $2, name = $3, slug = $4, description = $5, position = $6, \
             updated_at = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(input.parent_id)
        .bind(&named.name)
        .bind(&named.slug)
        .bind(&named.description)
        .bind(input.position)
        .bind(now())
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| write_error(e, "category"))?;
        self.get_category(&id.to_string()).await
    }

    /// Deletes a category that nothing names: 409 `category_in_use` while a product (live or
    /// deleted: deleted products keep their category for the order history) or a child
    /// category names it. `false` when there is no such category.
    pub async fn delete_category(&self, id: Uuid) -> StoreResult<bool> {
        self.delete_named(
            id,
            "categories",
            "SELECT (SELECT COUNT(*) FROM products WHERE category_id = $1 AND deleted_at IS NULL), \
             (SELECT COUNT(*) FROM products WHERE category_id = $1 AND deleted_at IS NOT NULL), \
             (SELECT COUNT(*) FROM categories WHERE parent_id = $1)",
            ErrorCode::CategoryInUse,
            "category",
        )
        .await
    }

    /// Deletes a brand that no product names (live or deleted): 409 `brand_in_use` otherwise.
    /// `false` when there is no such brand.
    pub async fn delete_brand(&self, id: Uuid) -> StoreResult<bool> {
        self.delete_named(
            id,
            "brands",
            "SELECT (SELECT COUNT(*) FROM products WHERE brand_id = $1 AND deleted_at IS NULL), \
             (SELECT COUNT(*) FROM products WHERE brand_id = $1 AND deleted_at IS NOT NULL), CAST(0 AS BIGINT)",
            ErrorCode::BrandInUse,
            "brand",
        )
        .await
    }

    /// The delete of a category or brand: counts what names it and deletes it in one write
    /// transaction; a product made meanwhile that names it fails the delete on its foreign key,
    /// which is the same 409.
    async fn delete_named(
        &self,
        id: Uuid,
        table: &str,
        users_sql: &str,
        in_use: ErrorCode,
        what: &str,
    ) -> StoreResult<bool> {
        let refused = |live: i64, deleted: i64, children: i64| {
            let mut parts = Vec::new();
            if live > 0 {
                parts.push(format!("{live} product(s)"));
            }
            if deleted > 0 {
                parts.push(format!("{deleted} deleted product(s), kept for the order history"));
            }
            if children > 0 {
                parts.push(format!("{children} child categor{}", if children == 1 { "y" } else { "ies" }));
            }
            StoreError::Conflict {
                code: in_use,
                detail: format!(
                    "the {what} is still named by {}: move them to another {what} first",
                    parts.join(", ")
                ),
            }
        };
        let result: Result<Result<bool, StoreError>, sqlx::Error> = with_db!(&self.db, pool => async {
            let mut tx = pool.begin_with(self.db.begin_write_sql()).await?;
            let (live, deleted, children): (i64, i64, i64) =
                sqlx::query_as(users_sql).bind(id).fetch_one(&mut *tx).await?;
            if live + deleted + children > 0 {
                tx.rollback().await?;
                return Ok(Err(refused(live, deleted, children)));
            }
            let gone = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
                .bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(Ok(gone == 1))
        }.await);
        match result {
            Ok(outcome) => outcome,
            Err(e) if kit::db::is_foreign_key_violation(&e) => Err(refused(1, 0, 0)),
            Err(e) => Err(e.into()),
        }
    }

    // ----- brands -------------------------------------------------------------------------

    pub async fn list_brands(&self) -> StoreResult<Vec<Brand>> {
        let rows = with_db!(&self.db, pool => sqlx::query_as::<_, BrandRow>(
            "SELECT id, name, slug, description, logo_url FROM brands ORDER BY lower(name), slug",
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(Brand::from).collect())
    }

    pub async fn get_brand(&self, id_or_slug: &str) -> StoreResult<Option<Brand>> {
        if !usable_key(id_or_slug) {
            return Ok(None);
        }
        let mut sql = Sql::new("SELECT id, name, slug, description, logo_url FROM brands");
        match Uuid::parse_str(id_or_slug) {
            Ok(id) => sql.push(" WHERE id = ").bind(Arg::Uuid(id)),
            Err(_) => sql.push(" WHERE slug = ").bind(Arg::Text(id_or_slug.to_string())),
        };
        let row = with_db!(&self.db, pool => bind_args!(sqlx::query_as::<_, BrandRow>(&sql.text), &sql.args)
            .fetch_optional(pool)
            .await)?;
        Ok(row.map(Brand::from))
    }

    pub async fn create_brand(&self, input: BrandInput) -> StoreResult<Brand> {
        let mut errors = Vec::new();
        let named = validate_named(&input.name, input.slug.as_deref(), &input.description, &mut errors);
        if let Some(p) = input.logo_url.as_deref().and_then(url_problem) {
            errors.push(field("logoUrl", p));
        }
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        let id = Uuid::now_v7();
        let now = now();
        with_db!(&self.db, pool => sqlx::query(
            "INSERT INTO brands (id, name, slug, description, logo_url, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $6)",
        )
        .bind(id)
        .bind(&named.name)
        .bind(&named.slug)
        .bind(&named.description)
        .bind(&input.logo_url)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| write_error(e, "brand"))?;
        self.get_brand(&id.to_string()).await?.ok_or_else(|| StoreError::NotFound("brand".into()))
    }

    /// Replaces a brand's fields (`PUT`): without a slug the current one is kept. `None` when
    /// there is no such brand.
    pub async fn update_brand(&self, id: Uuid, input: BrandInput) -> StoreResult<Option<Brand>> {
        let Some(current) = self.get_brand(&id.to_string()).await? else { return Ok(None) };
        let mut errors = Vec::new();
        let slug = input.slug.clone().unwrap_or(current.slug);
        let named = validate_named(&input.name, Some(&slug), &input.description, &mut errors);
        if let Some(p) = input.logo_url.as_deref().and_then(url_problem) {
            errors.push(field("logoUrl", p));
        }
        if !errors.is_empty() {
            return Err(StoreError::Invalid(errors));
        }
        with_db!(&self.db, pool => sqlx::query(
            "UPDATE brands SET name = $2, slug = $3, description = $4, logo_url = $5, updated_at = $6 WHERE id = $1",
        )
        .bind(id)
        .bind(&named.name)
        .bind(&named.slug)
        .bind(&named.description)
        .bind(&input.logo_url)
        .bind(now())
        .execute(pool)
        .await
        .map(|_| ()))
        .map_err(|e| write_error(e, "brand"))?;
        self.get_brand(&id.to_string()).await
    }
}

/// Ids and slugs never contain NUL (which PostgreSQL cannot even compare) and are short.
fn usable_key(s: &str) -> bool {
    !s.contains('\0') && s.len() <= 200
}

fn check_batch_size(name: &str, n: usize) -> StoreResult<()> {
    if n == 0 || n > MAX_BATCH {
        return Err(StoreError::Invalid(vec![field(name, format!("must hold 1 to {MAX_BATCH} entries"))]));
    }
    Ok(())
}
