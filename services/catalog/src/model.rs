//! The catalog's API types and their validation rules.

use kit::money::{validate_currency, Money, MAX_PRICE};
use kit::openapi::strings;
use kit::problem::FieldError;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

pub const MAX_NAME_LEN: usize = 200;
pub const MAX_SLUG_LEN: usize = 120;
pub const MAX_SKU_LEN: usize = 64;
pub const MAX_DESCRIPTION_LEN: usize = 10_000;
pub const MAX_IMAGES: usize = 20;
pub const MAX_URL_LEN: usize = 2048;
pub const MAX_ATTRIBUTES: usize = 50;
pub const MAX_ATTRIBUTE_KEY_LEN: usize = 64;
pub const MAX_ATTRIBUTE_VALUE_LEN: usize = 500;
/// Items per `validate` / `batch` request.
pub const MAX_BATCH: usize = 100;
/// Longest category or brand name.
pub const MAX_NAMED_NAME_LEN: usize = 100;
/// Longest category or brand description.
pub const MAX_NAMED_DESCRIPTION_LEN: usize = 2000;

/// A slug: lower-case letters and digits in groups joined by single hyphens, not a UUID.
pub const SLUG_PATTERN: &str = concat!(
    "^(?![0-9a-f]{32}$)(?![0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$)",
    "[a-z0-9]+(?:-[a-z0-9]+)*$"
);
/// A SKU: ASCII letters, digits, `-`, `_` and `.`, starting with a letter or digit, 1–64 long.
pub const SKU_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$";
/// An http(s) URL with a host, without whitespace or control characters.
pub const URL_PATTERN: &str = concat!(
    r"^https?://[^/\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
);

pub(crate) mod schemas {
    //! Field schemas for rules a `#[schema(pattern = …)]` literal cannot hold.
    use super::*;
    use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};
    use utoipa::openapi::{Object, RefOr, Schema};

    pub fn product_name() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::text(
            MAX_NAME_LEN,
            "1 to 200 characters as sent, not only whitespace, no control characters; trimmed.",
        )
    }
    pub fn product_name_patch() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(
            strings::TEXT,
            1,
            MAX_NAME_LEN,
            true,
            "As in `ProductInput`; absent or null keeps it.",
        )
    }
    pub fn named_name() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::text(
            MAX_NAMED_NAME_LEN,
            "1 to 100 characters as sent, not only whitespace, no control characters; trimmed.",
        )
    }
    pub fn slug() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(
            SLUG_PATTERN,
            1,
            MAX_SLUG_LEN,
            true,
            "URL-safe unique name: lower-case letters and digits joined by single hyphens, at most 120 \
             characters, not a UUID. Absent or null: derived from the name (on create), kept (on update).",
        )
    }
    pub fn sku() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(SKU_PATTERN, 1, MAX_SKU_LEN, false, "Stock keeping unit, unique among live products.")
    }
    pub fn sku_patch() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(SKU_PATTERN, 1, MAX_SKU_LEN, true, "As in `ProductInput`; absent or null keeps it.")
    }
    pub fn description() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(strings::NO_NUL, 0, MAX_DESCRIPTION_LEN, false, "At most 10,000 characters, no NUL.")
    }
    pub fn description_patch() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(strings::NO_NUL, 0, MAX_DESCRIPTION_LEN, true, "At most 10,000 characters, no NUL.")
    }
    pub fn named_description() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(
            strings::NO_NUL,
            0,
            MAX_NAMED_DESCRIPTION_LEN,
            false,
            "At most 2,000 characters, no NUL.",
        )
    }
    pub fn url() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(
            URL_PATTERN,
            1,
            MAX_URL_LEN,
            false,
            "An http(s) URL with a host, at most 2,048 characters.",
        )
    }
    pub fn logo_url() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        strings::string(
            URL_PATTERN,
            1,
            MAX_URL_LEN,
            true,
            "An http(s) URL with a host, at most 2,048 characters.",
        )
    }
    fn images_of(nullable: bool) -> utoipa::openapi::schema::Array {
        let mut a = utoipa::openapi::schema::ArrayBuilder::new()
            .items(url())
            .max_items(Some(MAX_IMAGES))
            .description(Some("Image URLs (at most 20), the first is the main image."));
        if nullable {
            a = a.schema_type(SchemaType::from_iter([Type::Array, Type::Null]));
        }
        a.build()
    }
    pub fn images() -> utoipa::openapi::schema::Array {
        images_of(false)
    }
    pub fn images_patch() -> utoipa::openapi::schema::Array {
        images_of(true)
    }
    fn attributes_of(nullable: bool) -> Object {
        let value: RefOr<Schema> = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Number, Type::Boolean]))
            .max_length(Some(MAX_ATTRIBUTE_VALUE_LEN))
            .pattern(Some(strings::NO_NUL))
            .into();
        let ty = if nullable {
            SchemaType::from_iter([Type::Object, Type::Null])
        } else {
            SchemaType::new(Type::Object)
        };
        let mut o = ObjectBuilder::new()
            .schema_type(ty)
            .additional_properties(Some(value))
            .max_properties(Some(MAX_ATTRIBUTES))
            .description(Some(
                "Free-form attributes (at most 50): names of 1 to 64 characters without NUL, values a string \
                 (at most 500 characters, no NUL), a number or a boolean.",
            ))
            .build();
        o.property_names = Some(Box::new(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(MAX_ATTRIBUTE_KEY_LEN))
                .pattern(Some(strings::NO_NUL))
                .into(),
        ));
        o
    }
    pub fn attributes() -> Object {
        attributes_of(false)
    }
    fn price_of(nullable: bool) -> Object {
        let amount: RefOr<Schema> = ObjectBuilder::new()
            .schema_type(Type::Integer)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
            .minimum(Some(0))
            .maximum(Some(MAX_PRICE))
            .description(Some("In the currency's minor units (cents for USD), 0 to 10,000,000,000."))
            .into();
        let ty = if nullable {
            SchemaType::from_iter([Type::Object, Type::Null])
        } else {
            SchemaType::new(Type::Object)
        };
        ObjectBuilder::new()
            .schema_type(ty)
            .property("amount", amount)
            .property("currency", kit::money::currency_schema())
            .required("amount")
            .required("currency")
            .additional_properties(Some(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)))
            .description(Some("The price of one unit."))
            .build()
    }
    pub fn price() -> Object {
        price_of(false)
    }
    pub fn price_patch() -> Object {
        price_of(true)
    }
    pub fn attributes_patch() -> Object {
        attributes_of(true)
    }
}

/// A product as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub id: Uuid,
    pub name: String,
    /// URL-safe unique name: lower-case letters, digits and single hyphens.
    pub slug: String,
    pub description: String,
    /// Stock keeping unit, unique among live products.
    pub sku: String,
    pub price: Money,
    /// Image URLs, first is the main image.
    pub images: Vec<String>,
    pub brand: Option<BrandRef>,
    pub category: CategoryRef,
    /// Free-form attributes: string → string, number or boolean.
    #[schema(value_type = Object, additional_properties = true)]
    pub attributes: Map<String, Value>,
    pub active: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// The brand of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrandRef {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
}

/// The category of a product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryRef {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
}

fn yes() -> bool {
    true
}

/// Body of `POST /api/v1/products` and `PUT /api/v1/products/{id}`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductInput {
    #[schema(schema_with = schemas::product_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = schemas::slug)]
    pub slug: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::description)]
    pub description: String,
    #[schema(schema_with = schemas::sku)]
    pub sku: String,
    /// 0 to 10,000,000,000 minor units.
    #[schema(schema_with = schemas::price)]
    pub price: Money,
    #[serde(default)]
    #[schema(schema_with = schemas::images)]
    pub images: Vec<String>,
    /// An existing category.
    pub category_id: Uuid,
    /// An existing brand, or null for none.
    #[serde(default)]
    pub brand_id: Option<Uuid>,
    #[serde(default)]
    #[schema(schema_with = schemas::attributes)]
    pub attributes: Map<String, Value>,
    /// Default true.
    #[serde(default = "yes")]
    pub active: bool,
}

/// Body of `PATCH /api/v1/products/{id}`: only the fields present change
/// (`"brandId": null` removes the brand).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductPatch {
    #[schema(schema_with = schemas::product_name_patch)]
    pub name: Option<String>,
    #[schema(schema_with = schemas::slug)]
    pub slug: Option<String>,
    #[schema(schema_with = schemas::description_patch)]
    pub description: Option<String>,
    #[schema(schema_with = schemas::sku_patch)]
    pub sku: Option<String>,
    #[schema(schema_with = schemas::price_patch)]
    pub price: Option<Money>,
    #[schema(schema_with = schemas::images_patch)]
    pub images: Option<Vec<String>>,
    pub category_id: Option<Uuid>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<Uuid>)]
    pub brand_id: Option<Option<Uuid>>,
    #[schema(schema_with = schemas::attributes_patch)]
    pub attributes: Option<Map<String, Value>>,
    pub active: Option<bool>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A validated product, ready to be stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductData {
    pub name: String,
    pub slug: String,
    pub description: String,
    pub sku: String,
    pub price: Money,
    pub images: Vec<String>,
    pub category_id: Uuid,
    pub brand_id: Option<Uuid>,
    pub attributes: Map<String, Value>,
    pub active: bool,
}

impl ProductPatch {
    /// The full input that results from applying this patch to `current`.
    pub fn apply(self, current: &Product) -> ProductInput {
        ProductInput {
            name: self.name.unwrap_or_else(|| current.name.clone()),
            slug: Some(self.slug.unwrap_or_else(|| current.slug.clone())),
            description: self.description.unwrap_or_else(|| current.description.clone()),
            sku: self.sku.unwrap_or_else(|| current.sku.clone()),
            price: self.price.unwrap_or_else(|| current.price.clone()),
            images: self.images.unwrap_or_else(|| current.images.clone()),
            category_id: self.category_id.unwrap_or(current.category.id),
            brand_id: self.brand_id.unwrap_or_else(|| current.brand.as_ref().map(|b| b.id)),
            attributes: self.attributes.unwrap_or_else(|| current.attributes.clone()),
            active: self.active.unwrap_or(current.active),
        }
    }
}

fn err(field: impl Into<String>, message: impl Into<String>) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// Turns a name into a slug: lower-case ASCII letters and digits separated by single hyphens.
pub fn slugify(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut pending_hyphen = false;
    for c in name.chars() {
        let c = match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => 'a',
            'è' | 'é' | 'ê' | 'ë' | 'È' | 'É' | 'Ê' | 'Ë' => 'e',
            'ì' | 'í' | 'î' | 'ï' | 'Ì' | 'Í' | 'Î' | 'Ï' => 'i',
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => 'o',
            'ù' | 'ú' | 'û' | 'ü' | 'Ù' | 'Ú' | 'Û' | 'Ü' => 'u',
            'ç' | 'Ç' => 'c',
            'ñ' | 'Ñ' => 'n',
            c => c,
        };
        if c.is_ascii_alphanumeric() {
            if pending_hyphen && !out.is_empty() {
                out.push('-');
            }
            pending_hyphen = false;
            out.push(c.to_ascii_lowercase());
        } else if c != '\'' && c != '’' {
            pending_hyphen = true;
        }
        if out.len() >= MAX_SLUG_LEN {
            break;
        }
    }
    out.truncate(MAX_SLUG_LEN);
    out.trim_end_matches('-').to_string()
}

/// Why `slug` is not acceptable, if it is not.
/// The slug of a name given without one: [`slugify`], or, when that leaves nothing usable (a
/// name without Latin letters or digits, a name that is a UUID), `x-` and the name's code points
/// in hexadecimal (`日本` → `x-65e5-672c`). Deterministic, so two equal names still collide
/// (`duplicate_slug`), and never refused: every name the schema allows gets a slug.
pub fn derive_slug(name: &str) -> String {
    let s = slugify(name);
    if slug_problem(&s).is_none() {
        return s;
    }
    let mut out = String::from("x");
    for c in name.chars().filter(|c| !c.is_whitespace()) {
        let part = format!("-{:x}", c as u32);
        if out.len() + part.len() > MAX_SLUG_LEN {
            break;
        }
        out.push_str(&part);
    }
    out
}

pub fn slug_problem(slug: &str) -> Option<String> {
    if slug.is_empty() {
        return Some("must not be empty".into());
    }
    if slug.len() > MAX_SLUG_LEN {
        return Some(format!("must be at most {MAX_SLUG_LEN} characters"));
    }
    let ok_chars = slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok_chars || slug.starts_with('-') || slug.ends_with('-') || slug.contains("--") {
        return Some("must be lower-case letters, digits and single hyphens (e.g. `blue-mug-2`)".into());
    }
    if Uuid::parse_str(slug).is_ok() {
        return Some("must not look like a UUID".into());
    }
    None
}

fn sku_problem(sku: &str) -> Option<String> {
    if sku.is_empty() {
        return Some("must not be empty".into());
    }
    if sku.len() > MAX_SKU_LEN {
        return Some(format!("must be at most {MAX_SKU_LEN} characters"));
    }
    let first_ok = sku.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric());
    let ok = sku.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !first_ok || !ok {
        return Some(
            "must be ASCII letters, digits, `-`, `_` or `.`, starting with a letter or digit".into(),
        );
    }
    None
}

/// Checks a name as sent: 1..=max characters, not only whitespace, no control characters
/// ([`strings::TEXT`]).
pub fn name_problem(name: &str, max: usize) -> Option<String> {
    if name.trim().is_empty() {
        Some("must not be empty".into())
    } else if name.chars().count() > max {
        Some(format!("must be at most {max} characters"))
    } else if name.chars().any(char::is_control) {
        Some("must not contain control characters".into())
    } else {
        None
    }
}

/// Checks an http(s) URL without pulling in a URL parser.
pub fn url_problem(u: &str) -> Option<String> {
    let rest = u.strip_prefix("https://").or_else(|| u.strip_prefix("http://"));
    match rest {
        None => Some("must be an http(s) URL".into()),
        Some(rest) if rest.is_empty() || rest.starts_with('/') => Some("must have a host".into()),
        Some(_) if u.chars().count() > MAX_URL_LEN => {
            Some(format!("must be at most {MAX_URL_LEN} characters"))
        }
        Some(_) if u.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            Some("must not contain whitespace".into())
        }
        Some(_) => None,
    }
}

impl ProductInput {
    /// Validates the input; `current_slug` is kept when no slug is given (updates).
    /// References (category, brand) are checked against the store separately.
    pub fn validate(self, current_slug: Option<&str>) -> Result<ProductData, Vec<FieldError>> {
        let mut errors = Vec::new();
        if let Some(p) = name_problem(&self.name, MAX_NAME_LEN) {
            errors.push(err("name", p));
        }
        let name = self.name.trim().to_string();
        let slug = match (self.slug, current_slug) {
            (Some(s), _) => {
                if let Some(p) = slug_problem(&s) {
                    errors.push(err("slug", p));
                }
                s
            }
            (None, Some(current)) => current.to_string(),
            (None, None) => derive_slug(&name),
        };
        let sku = self.sku;
        if let Some(p) = sku_problem(&sku) {
            errors.push(err("sku", p));
        }
        if self.description.chars().count() > MAX_DESCRIPTION_LEN {
            errors.push(err("description", format!("must be at most {MAX_DESCRIPTION_LEN} characters")));
        } else if self.description.contains('\0') {
            errors.push(err("description", "must not contain NUL characters"));
        }
        if self.price.amount < 0 {
            errors.push(err("price.amount", "must not be negative"));
        } else if self.price.amount > MAX_PRICE {
            errors.push(err("price.amount", format!("must be at most {MAX_PRICE} (minor units)")));
        }
        if let Err(e) = validate_currency(&self.price.currency) {
            errors.push(err("price.currency", e));
        }
        if self.images.len() > MAX_IMAGES {
            errors.push(err("images", format!("at most {MAX_IMAGES} images are allowed")));
        } else {
            for (i, u) in self.images.iter().enumerate() {
                if let Some(p) = url_problem(u) {
                    errors.push(err(format!("images[{i}]"), p));
                }
            }
        }
        if self.attributes.len() > MAX_ATTRIBUTES {
            errors.push(err("attributes", format!("at most {MAX_ATTRIBUTES} attributes are allowed")));
        } else {
            for (k, v) in &self.attributes {
                if k.is_empty() || k.chars().count() > MAX_ATTRIBUTE_KEY_LEN || k.contains('\0') {
                    errors.push(err(
                        "attributes",
                        format!("attribute names must have 1 to {MAX_ATTRIBUTE_KEY_LEN} characters, no NUL"),
                    ));
                    continue;
                }
                match v {
                    Value::String(s) if s.chars().count() > MAX_ATTRIBUTE_VALUE_LEN => errors.push(err(
                        format!("attributes.{k}"),
                        format!("must be at most {MAX_ATTRIBUTE_VALUE_LEN} characters"),
                    )),
                    Value::String(s) if s.contains('\0') => {
                        errors.push(err(format!("attributes.{k}"), "must not contain NUL characters"))
                    }
                    Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
                    _ => errors.push(err(format!("attributes.{k}"), "must be a string, number or boolean")),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(ProductData {
            name,
            slug,
            description: self.description,
            sku,
            price: self.price,
            images: self.images,
            category_id: self.category_id,
            brand_id: self.brand_id,
            attributes: self.attributes,
            active: self.active,
        })
    }
}

/// A category.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    /// The parent category; `null` for a top-level category.
    pub parent_id: Option<Uuid>,
    /// 0 for top-level categories.
    pub depth: u32,
    /// Sort position among siblings.
    pub position: i64,
}

/// A category with its ancestors and direct children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryDetail {
    #[serde(flatten)]
    pub category: Category,
    /// Ancestors from the root down to the parent (breadcrumbs).
    pub ancestors: Vec<CategoryRef>,
    /// Direct children.
    pub children: Vec<CategoryRef>,
}

/// `GET /api/v1/categories`: every category (flat, depth-first order).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CategoryList {
    pub items: Vec<Category>,
}

/// Body of `POST /api/v1/categories`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CategoryInput {
    #[schema(schema_with = schemas::named_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = schemas::slug)]
    pub slug: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::named_description)]
    pub description: String,
    /// An existing category, or null for a top-level one.
    #[serde(default)]
    pub parent_id: Option<Uuid>,
    /// Sort position among siblings (default 0; a 32-bit integer).
    #[serde(default)]
    #[schema(minimum = -2147483648, maximum = 2147483647)]
    pub position: i32,
}

/// A brand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Brand {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub logo_url: Option<String>,
}

/// `GET /api/v1/brands`: every brand, by name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BrandList {
    pub items: Vec<Brand>,
}

/// Body of `POST /api/v1/brands`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrandInput {
    #[schema(schema_with = schemas::named_name)]
    pub name: String,
    #[serde(default)]
    #[schema(schema_with = schemas::slug)]
    pub slug: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::named_description)]
    pub description: String,
    #[serde(default)]
    #[schema(schema_with = schemas::logo_url)]
    pub logo_url: Option<String>,
}

/// Validated name + slug + description shared by categories and brands.
#[derive(Debug, Clone)]
pub struct NamedData {
    pub name: String,
    pub slug: String,
    pub description: String,
}

/// Validates the common fields of categories and brands.
pub fn validate_named(
    name: &str,
    slug: Option<&str>,
    description: &str,
    errors: &mut Vec<FieldError>,
) -> NamedData {
    if let Some(p) = name_problem(name, MAX_NAMED_NAME_LEN) {
        errors.push(err("name", p));
    }
    let name = name.trim().to_string();
    let slug = match slug {
        Some(s) => {
            let s = s.to_string();
            if let Some(p) = slug_problem(&s) {
                errors.push(err("slug", p));
            }
            s
        }
        None => derive_slug(&name),
    };
    if description.chars().count() > MAX_NAMED_DESCRIPTION_LEN {
        errors.push(err("description", "must be at most 2000 characters"));
    } else if description.contains('\0') {
        errors.push(err("description", "must not contain NUL characters"));
    }
    NamedData { name, slug, description: description.to_string() }
}

/// One line of `POST /api/v1/products/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ValidateItem {
    pub product_id: Uuid,
    /// Requested quantity (a 32-bit integer); a line below 1 gets the verdict `invalid_quantity`.
    #[schema(minimum = -2147483648, maximum = 2147483647)]
    pub quantity: i32,
}

/// Body of `POST /api/v1/products/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidateRequest {
    /// 1 to 100 items.
    #[schema(min_items = 1, max_items = 100)]
    pub items: Vec<ValidateItem>,
}

/// The verdict on one line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValidatedItem {
    pub product_id: Uuid,
    /// The product exists (it may be inactive or deleted).
    pub found: bool,
    /// The product can be sold (active and not deleted).
    pub active: bool,
    pub name: Option<String>,
    pub sku: Option<String>,
    pub price: Option<Money>,
    pub quantity: i64,
    /// Why the line is not valid: `not_found`, `deleted`, `inactive` or `invalid_quantity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<LineError>)]
    pub error: Option<String>,
}

/// Why a line of `POST /api/v1/products/validate` is not valid.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LineError {
    NotFound,
    Deleted,
    Inactive,
    InvalidQuantity,
}

/// Response of `POST /api/v1/products/validate`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ValidateResponse {
    /// True when every line is valid.
    pub valid: bool,
    /// One verdict per requested line, in request order.
    pub items: Vec<ValidatedItem>,
}

/// Body of `POST /api/v1/products/batch`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 100 product ids.
    #[schema(min_items = 1, max_items = 100)]
    pub ids: Vec<Uuid>,
}

/// Response of `POST /api/v1/products/batch`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BatchResponse {
    /// The products found (active or not), in request order, without duplicates.
    pub products: Vec<Product>,
    /// Ids that are unknown or deleted.
    pub missing: Vec<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slugify("Sony WH-1000XM5 Headphones!"), "sony-wh-1000xm5-headphones");
        assert_eq!(slugify("  Men's  Shirts & Ties "), "mens-shirts-ties");
        assert_eq!(slugify("Crème brûlée"), "creme-brulee");
        assert_eq!(slugify("日本"), "");
        assert_eq!(derive_slug("日本"), "x-65e5-672c");
        assert_eq!(derive_slug("Crème brûlée"), "creme-brulee");
        let uuid = "550e8400-e29b-41d4-a716-446655440000";
        assert!(slug_problem(&derive_slug(uuid)).is_none(), "{}", derive_slug(uuid));
        assert!(slug_problem(&derive_slug(&"ķ".repeat(200))).is_none());
        assert!(slug_problem("ok-slug-1").is_none());
        assert!(slug_problem("Bad").is_some());
        assert!(slug_problem("a--b").is_some());
        assert!(slug_problem("-a").is_some());
        assert!(slug_problem("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b").is_some());
        assert!(slugify(&"x".repeat(500)).len() <= MAX_SLUG_LEN);
    }

    #[test]
    fn skus_and_urls() {
        assert!(sku_problem("ELE-HP-0001").is_none());
        assert!(sku_problem("a b").is_some());
        assert!(sku_problem("-x").is_some());
        assert!(url_problem("https://images.shop.example/a.jpg").is_none());
        assert!(url_problem("ftp://x").is_some());
        assert!(url_problem("https://").is_some());
    }

    fn input() -> ProductInput {
        serde_json::from_value(serde_json::json!({
            "name": " Blue Mug ", "sku": "MUG-1", "price": {"amount": 999, "currency": "USD"},
            "categoryId": Uuid::nil(),
        }))
        .unwrap()
    }

    #[test]
    fn validates_products() {
        let d = input().validate(None).unwrap();
        assert_eq!((d.name.as_str(), d.slug.as_str(), d.active), ("Blue Mug", "blue-mug", true));
        assert_eq!(input().validate(Some("kept")).unwrap().slug, "kept");

        let mut bad = input();
        bad.name = " ".into();
        bad.price = Money::new(-1, "usd");
        bad.images = vec!["nope".into()];
        bad.attributes.insert("nested".into(), serde_json::json!({"a": 1}));
        let errs = bad.validate(None).unwrap_err();
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "price.amount", "price.currency", "images[0]", "attributes.nested"]);

        let mut many = input();
        many.images = vec!["https://x.example/a.jpg".into(); MAX_IMAGES + 1];
        assert_eq!(many.validate(None).unwrap_err()[0].field, "images");

        // Prices have an upper bound: the most is accepted, one more is not.
        let mut dear = input();
        dear.price = Money::new(MAX_PRICE, "USD");
        assert!(dear.clone().validate(None).is_ok());
        dear.price.amount = MAX_PRICE + 1;
        assert_eq!(dear.validate(None).unwrap_err()[0].field, "price.amount");
    }

    #[test]
    fn patch_keeps_or_clears_brand() {
        let p: ProductPatch = serde_json::from_str(r#"{"brandId": null}"#).unwrap();
        assert_eq!(p.brand_id, Some(None));
        let p: ProductPatch = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(p.brand_id, None);
    }
}
