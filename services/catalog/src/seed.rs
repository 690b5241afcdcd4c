//! Deterministic demo data: 50 categories (2–3 levels), 40 brands, 600 products.
//!
//! Everything is derived from fixed tables and the product index (no clock, no RNG): ids are
//! UUIDv5 of the slug, timestamps count from 2024-01-01. Rows are inserted with
//! `ON CONFLICT DO NOTHING` in one transaction, so seeding twice changes nothing.

use kit::db::Db;
use kit::with_db;
use serde_json::{json, Map, Value};
use sqlx::types::Json;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::model::slugify;

/// Namespace of the seed data's UUIDv5 ids.
pub const SEED_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a7e_0b4d_5e9a_8c31_d2f0_a5b6_c7e8);

pub const PRODUCT_COUNT: usize = 600;
const EPOCH: OffsetDateTime = datetime!(2024-01-01 00:00:00 UTC);

/// How many rows a seed run inserted (0s when the data was already there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SeedReport {
    pub categories: u64,
    pub brands: u64,
    pub products: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dept {
    Electronics,
    Home,
    Clothing,
    Sports,
    Books,
    Toys,
    Beauty,
    Garden,
}

/// (slug, name, parent slug, department).
const CATEGORIES: &[(&str, &str, Option<&str>, Dept)] = {
    use Dept::*;
    &[
        ("electronics", "Electronics", None, Electronics),
        ("audio", "Audio", Some("electronics"), Electronics),
        ("headphones", "Headphones", Some("audio"), Electronics),
        ("speakers", "Speakers", Some("audio"), Electronics),
        ("computers", "Computers", Some("electronics"), Electronics),
        ("laptops", "Laptops", Some("computers"), Electronics),
        ("monitors", "Monitors", Some("computers"), Electronics),
        ("keyboards-mice", "Keyboards & Mice", Some("computers"), Electronics),
        ("phones-tablets", "Phones & Tablets", Some("electronics"), Electronics),
        ("smartphones", "Smartphones", Some("phones-tablets"), Electronics),
        ("tablets", "Tablets", Some("phones-tablets"), Electronics),
        ("cameras", "Cameras", Some("electronics"), Electronics),
        ("home-kitchen", "Home & Kitchen", None, Home),
        ("kitchen-appliances", "Kitchen Appliances", Some("home-kitchen"), Home),
        ("coffee-makers", "Coffee Makers", Some("kitchen-appliances"), Home),
        ("blenders", "Blenders", Some("kitchen-appliances"), Home),
        ("cookware", "Cookware", Some("home-kitchen"), Home),
        ("furniture", "Furniture", Some("home-kitchen"), Home),
        ("bedding", "Bedding", Some("home-kitchen"), Home),
        ("clothing", "Clothing", None, Clothing),
        ("mens-clothing", "Men's Clothing", Some("clothing"), Clothing),
        ("mens-shirts", "Men's Shirts", Some("mens-clothing"), Clothing),
        ("mens-jackets", "Men's Jackets", Some("mens-clothing"), Clothing),
        ("womens-clothing", "Women's Clothing", Some("clothing"), Clothing),
        ("dresses", "Dresses", Some("womens-clothing"), Clothing),
        ("womens-jackets", "Women's Jackets", Some("womens-clothing"), Clothing),
        ("shoes", "Shoes", Some("clothing"), Clothing),
        ("sports-outdoors", "Sports & Outdoors", None, Sports),
        ("fitness", "Fitness", Some("sports-outdoors"), Sports),
        ("camping", "Camping", Some("sports-outdoors"), Sports),
        ("tents", "Tents", Some("camping"), Sports),
        ("sleeping-bags", "Sleeping Bags", Some("camping"), Sports),
        ("cycling", "Cycling", Some("sports-outdoors"), Sports),
        ("books", "Books", None, Books),
        ("fiction", "Fiction", Some("books"), Books),
        ("non-fiction", "Non-Fiction", Some("books"), Books),
        ("childrens-books", "Children's Books", Some("books"), Books),
        ("toys-games", "Toys & Games", None, Toys),
        ("board-games", "Board Games", Some("toys-games"), Toys),
        ("puzzles", "Puzzles", Some("toys-games"), Toys),
        ("building-sets", "Building Sets", Some("toys-games"), Toys),
        ("beauty", "Beauty & Personal Care", None, Beauty),
        ("skincare", "Skincare", Some("beauty"), Beauty),
        ("haircare", "Haircare", Some("beauty"), Beauty),
        ("fragrances", "Fragrances", Some("beauty"), Beauty),
        ("garden", "Garden", None, Garden),
        ("garden-tools", "Garden Tools", Some("garden"), Garden),
        ("plants-seeds", "Plants & Seeds", Some("garden"), Garden),
        ("grills", "Grills", Some("garden"), Garden),
        ("outdoor-lighting", "Outdoor Lighting", Some("garden"), Garden),
    ]
};

/// A leaf category that holds products: (slug, SKU prefix, nouns, price range in whole USD, blurb).
type Leaf = (&'static str, &'static str, &'static [&'static str], (i64, i64), &'static str);

const LEAVES: &[Leaf] = &[
    (
        "headphones",
        "HP",
        &["Over-Ear Headphones", "Earbuds", "Studio Headphones"],
        (29, 399),
        "Balanced sound with deep bass and all-day comfort.",
    ),
    (
        "speakers",
        "SPK",
        &["Bluetooth Speaker", "Bookshelf Speakers", "Soundbar"],
        (39, 599),
        "Room-filling sound in a compact cabinet.",
    ),
    (
        "laptops",
        "LAP",
        &["Ultrabook", "Laptop", "Gaming Laptop"],
        (499, 2999),
        "A fast, light machine with a long-lasting battery.",
    ),
    (
        "monitors",
        "MON",
        &["4K Monitor", "Curved Monitor", "Portable Monitor"],
        (149, 1299),
        "Sharp, colour-accurate panel with slim bezels.",
    ),
    (
        "keyboards-mice",
        "KBM",
        &["Mechanical Keyboard", "Wireless Mouse", "Keyboard and Mouse Set"],
        (19, 199),
        "Precise input with a satisfying feel.",
    ),
    (
        "smartphones",
        "PHN",
        &["Smartphone", "Phone"],
        (199, 1399),
        "A bright display, a great camera and a battery that lasts.",
    ),
    (
        "tablets",
        "TAB",
        &["Tablet", "Drawing Tablet"],
        (149, 1099),
        "Work, draw and stream on a vivid touch screen.",
    ),
    (
        "cameras",
        "CAM",
        &["Mirrorless Camera", "Action Camera", "Instant Camera"],
        (99, 2499),
        "Capture every moment in crisp detail.",
    ),
    (
        "coffee-makers",
        "COF",
        &["Espresso Machine", "Drip Coffee Maker", "Pour-Over Kettle"],
        (29, 899),
        "Barista-quality coffee at home.",
    ),
    (
        "blenders",
        "BLD",
        &["Countertop Blender", "Personal Blender", "Immersion Blender"],
        (24, 449),
        "Smooth results from smoothies to soups.",
    ),
    (
        "cookware",
        "CKW",
        &["Cast Iron Skillet", "Saucepan Set", "Dutch Oven", "Nonstick Frying Pan"],
        (19, 399),
        "Even heating and easy cleaning.",
    ),
    (
        "furniture",
        "FUR",
        &["Bookshelf", "Coffee Table", "Desk Chair", "Side Table"],
        (49, 1499),
        "Solid construction and timeless design.",
    ),
    (
        "bedding",
        "BED",
        &["Duvet Cover", "Sheet Set", "Pillow", "Weighted Blanket"],
        (19, 299),
        "Soft, breathable comfort for better sleep.",
    ),
    (
        "mens-shirts",
        "MSH",
        &["Oxford Shirt", "Linen Shirt", "Flannel Shirt", "T-Shirt"],
        (15, 129),
        "A classic cut in durable fabric.",
    ),
    (
        "mens-jackets",
        "MJK",
        &["Rain Jacket", "Down Jacket", "Denim Jacket"],
        (59, 449),
        "Keeps you warm and dry in style.",
    ),
    (
        "dresses",
        "DRS",
        &["Wrap Dress", "Maxi Dress", "Shirt Dress"],
        (29, 249),
        "Effortless style for any occasion.",
    ),
    (
        "womens-jackets",
        "WJK",
        &["Trench Coat", "Puffer Jacket", "Blazer"],
        (59, 499),
        "Tailored warmth for the season.",
    ),
    (
        "shoes",
        "SHO",
        &["Running Shoes", "Leather Boots", "Sneakers", "Sandals"],
        (29, 299),
        "Cushioned support for every step.",
    ),
    (
        "fitness",
        "FIT",
        &["Yoga Mat", "Adjustable Dumbbells", "Resistance Bands", "Kettlebell"],
        (15, 499),
        "Build strength and flexibility at home.",
    ),
    (
        "tents",
        "TNT",
        &["2-Person Tent", "Family Tent", "Ultralight Tent"],
        (79, 899),
        "Quick to pitch and built for the weather.",
    ),
    (
        "sleeping-bags",
        "SLB",
        &["Sleeping Bag", "Down Sleeping Bag", "Sleeping Pad"],
        (39, 499),
        "Warm nights under the stars.",
    ),
    (
        "cycling",
        "CYC",
        &["Road Bike Helmet", "Bike Light Set", "Cycling Gloves", "Bike Pump"],
        (15, 349),
        "Ride safer and farther.",
    ),
    (
        "fiction",
        "FIC",
        &["Novel", "Mystery", "Thriller", "Short Stories"],
        (9, 35),
        "A gripping story you will not put down.",
    ),
    (
        "non-fiction",
        "NFC",
        &["Cookbook", "Biography", "History", "Field Guide"],
        (12, 45),
        "Thoughtful, well-researched and engaging.",
    ),
    (
        "childrens-books",
        "CHB",
        &["Picture Book", "Bedtime Stories", "Activity Book"],
        (6, 25),
        "Delightful illustrations for young readers.",
    ),
    (
        "board-games",
        "BGM",
        &["Strategy Game", "Party Game", "Family Board Game"],
        (19, 89),
        "Hours of fun around the table.",
    ),
    (
        "puzzles",
        "PZL",
        &["1000-Piece Puzzle", "3D Puzzle", "Brain Teaser Set"],
        (9, 59),
        "A satisfying challenge for curious minds.",
    ),
    (
        "building-sets",
        "BLS",
        &["Building Set", "Robotics Kit", "Marble Run"],
        (19, 249),
        "Build, rebuild and imagine.",
    ),
    (
        "skincare",
        "SKN",
        &["Face Serum", "Moisturizer", "Sunscreen SPF 50", "Cleanser"],
        (9, 129),
        "Gentle, effective care for every skin type.",
    ),
    (
        "haircare",
        "HRC",
        &["Shampoo", "Conditioner", "Hair Dryer", "Hair Oil"],
        (7, 299),
        "Healthy, shiny hair every day.",
    ),
    (
        "fragrances",
        "FRG",
        &["Eau de Parfum", "Eau de Toilette", "Scented Candle"],
        (19, 189),
        "A signature scent that lingers.",
    ),
    (
        "garden-tools",
        "GTL",
        &["Pruning Shears", "Garden Hose", "Spade", "Wheelbarrow"],
        (12, 249),
        "Tough tools for tidy gardens.",
    ),
    (
        "plants-seeds",
        "PLS",
        &["Herb Seed Kit", "Potted Fern", "Tomato Seeds", "Succulent Trio"],
        (4, 79),
        "Grow something beautiful.",
    ),
    (
        "grills",
        "GRL",
        &["Charcoal Grill", "Gas Grill", "Pellet Smoker", "Grill Tool Set"],
        (29, 1299),
        "Perfect searing, every cookout.",
    ),
    (
        "outdoor-lighting",
        "OLT",
        &["Solar Path Lights", "String Lights", "Motion Sensor Floodlight"],
        (15, 199),
        "Light up your evenings outdoors.",
    ),
];

/// (name, department) — five per department.
const BRANDS: &[(&str, Dept)] = {
    use Dept::*;
    &[
        ("Sonora", Electronics),
        ("Voltix", Electronics),
        ("Pixelon", Electronics),
        ("Nimbus Labs", Electronics),
        ("Arcwave", Electronics),
        ("Hearthstone", Home),
        ("Copperleaf", Home),
        ("Kitchara", Home),
        ("Duvetta", Home),
        ("Oakhaven", Home),
        ("Northwind Apparel", Clothing),
        ("Linen & Loom", Clothing),
        ("Stridewell", Clothing),
        ("Urban Thread", Clothing),
        ("Maison Fleur", Clothing),
        ("Summit Gear", Sports),
        ("Trailcraft", Sports),
        ("Peakform", Sports),
        ("Velocity Cycles", Sports),
        ("Basecamp Co", Sports),
        ("Inkwell Press", Books),
        ("Lantern Books", Books),
        ("Paperkite", Books),
        ("Meridian House", Books),
        ("Foxglove Publishing", Books),
        ("Brickhaven", Toys),
        ("Jigsawyer", Toys),
        ("Playforge", Toys),
        ("Meeple & Co", Toys),
        ("Tinkerbox", Toys),
        ("Lumiere Skin", Beauty),
        ("Verdant Botanics", Beauty),
        ("Silkroot", Beauty),
        ("Aurelle", Beauty),
        ("Pure Petal", Beauty),
        ("Greenthumb", Garden),
        ("Fernway", Garden),
        ("Emberline", Garden),
        ("Rootstock", Garden),
        ("Lumen Garden", Garden),
    ]
};

const ADJECTIVES: &[&str] = &[
    "Classic",
    "Essential",
    "Premium",
    "Compact",
    "Deluxe",
    "Everyday",
    "Signature",
    "Modern",
    "Heritage",
    "Urban",
    "Pro",
    "Eco",
];
const COLORS: &[&str] = &["black", "white", "navy", "grey", "red", "green", "beige", "blue"];
const MATERIALS: &[&str] =
    &["cotton", "wool", "linen", "steel", "oak", "bamboo", "aluminium", "recycled polyester"];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];
const AGES: &[&str] = &["3+", "6+", "8+", "12+", "14+"];

/// SplitMix64: a fixed, well-mixed hash of the product index.
fn mix(i: u64, salt: u64) -> u64 {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(salt.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<'a>(list: &[&'a str], i: u64, salt: u64) -> &'a str {
    list[(mix(i, salt) % list.len() as u64) as usize]
}

pub fn category_id(slug: &str) -> Uuid {
    Uuid::new_v5(&SEED_NAMESPACE, format!("category:{slug}").as_bytes())
}
pub fn brand_id(slug: &str) -> Uuid {
    Uuid::new_v5(&SEED_NAMESPACE, format!("brand:{slug}").as_bytes())
}
pub fn product_id(slug: &str) -> Uuid {
    Uuid::new_v5(&SEED_NAMESPACE, format!("product:{slug}").as_bytes())
}

/// One seed category.
#[derive(Debug, Clone)]
pub struct SeedCategory {
    pub id: Uuid,
    pub parent_id: Option<Uuid>,
    pub name: String,
    pub slug: String,
    pub position: i64,
}

/// One seed brand.
#[derive(Debug, Clone)]
pub struct SeedBrand {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub logo_url: String,
}

/// One seed product.
#[derive(Debug, Clone)]
pub struct SeedProduct {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub sku: String,
    pub price_amount: i64,
    pub images: Vec<String>,
    pub attributes: Map<String, Value>,
    pub brand_id: Uuid,
    pub category_id: Uuid,
    pub active: bool,
    pub created_at: OffsetDateTime,
}

/// The full seed data set (pure and deterministic).
pub fn dataset() -> (Vec<SeedCategory>, Vec<SeedBrand>, Vec<SeedProduct>) {
    let categories = CATEGORIES
        .iter()
        .enumerate()
        .map(|(i, (slug, name, parent, _))| SeedCategory {
            id: category_id(slug),
            parent_id: parent.map(category_id),
            name: name.to_string(),
            slug: slug.to_string(),
            position: i as i64,
        })
        .collect();
    let brands = BRANDS
        .iter()
        .map(|(name, dept)| {
            let slug = slugify(name);
            SeedBrand {
                id: brand_id(&slug),
                name: name.to_string(),
                description: format!("{name}: {} since 1998.", dept_tagline(*dept)),
                logo_url: format!("https://images.shop.example/brands/{slug}.png"),
                slug,
            }
        })
        .collect();
    let products = (0..PRODUCT_COUNT).map(product).collect();
    (categories, brands, products)
}

fn dept_tagline(d: Dept) -> &'static str {
    match d {
        Dept::Electronics => "thoughtfully engineered electronics",
        Dept::Home => "home goods made to last",
        Dept::Clothing => "clothing with honest materials",
        Dept::Sports => "gear for the outdoors",
        Dept::Books => "independent publishing",
        Dept::Toys => "toys and games for every age",
        Dept::Beauty => "clean beauty and personal care",
        Dept::Garden => "tools and goods for the garden",
    }
}

fn dept_of(slug: &str) -> Dept {
    CATEGORIES.iter().find(|c| c.0 == slug).map(|c| c.3).unwrap_or(Dept::Home)
}

fn product(i: usize) -> SeedProduct {
    let n = i as u64;
    let (leaf, sku_prefix, nouns, (lo, hi), blurb) = LEAVES[i % LEAVES.len()];
    let dept = dept_of(leaf);
    let dept_brands: Vec<&str> = BRANDS.iter().filter(|b| b.1 == dept).map(|b| b.0).collect();
    let brand = dept_brands[(i / LEAVES.len() + i) % dept_brands.len()];
    let noun = pick(nouns, n, 1);
    let adjective = pick(ADJECTIVES, n, 2);
    let model = 100 + i;
    let name = match dept {
        Dept::Books => format!("{brand} {adjective} {noun} Vol. {model}"),
        _ => format!("{brand} {adjective} {noun} {}{model}", &sku_prefix[..1]),
    };
    let slug = slugify(&name);
    let dollars = lo + (mix(n, 3) % (hi - lo + 1) as u64) as i64;
    let cents = if mix(n, 4) % 3 == 0 { 0 } else { 99 };
    let price_amount = dollars * 100 + cents;
    let image_count = 1 + mix(n, 5) % 3;
    let images =
        (1..=image_count).map(|k| format!("https://images.shop.example/products/{slug}/{k}.jpg")).collect();
    let color = pick(COLORS, n, 6);
    let mut attributes = Map::new();
    let mut put = |k: &str, v: Value| {
        attributes.insert(k.to_string(), v);
    };
    match dept {
        Dept::Electronics => {
            put("color", json!(color));
            put("warrantyMonths", json!(if mix(n, 7) % 2 == 0 { 12 } else { 24 }));
            put("wireless", json!(mix(n, 8) % 3 != 0));
            put("weightGrams", json!(150 + mix(n, 9) % 2500));
        }
        Dept::Home | Dept::Garden => {
            put("color", json!(color));
            put("material", json!(pick(MATERIALS, n, 10)));
            put("weightGrams", json!(300 + mix(n, 9) % 9000));
        }
        Dept::Clothing => {
            put("color", json!(color));
            put("size", json!(pick(SIZES, n, 11)));
            put("material", json!(pick(MATERIALS, n, 10)));
        }
        Dept::Sports => {
            put("color", json!(color));
            put("weightGrams", json!(100 + mix(n, 9) % 5000));
            put("waterproof", json!(mix(n, 12) % 2 == 0));
        }
        Dept::Books => {
            put("pages", json!(96 + mix(n, 13) % 600));
            put("language", json!("English"));
            put("format", json!(if mix(n, 14) % 2 == 0 { "Hardcover" } else { "Paperback" }));
        }
        Dept::Toys => {
            put("ageRange", json!(pick(AGES, n, 15)));
            put("pieces", json!(20 + mix(n, 16) % 1500));
        }
        Dept::Beauty => {
            put("volumeMl", json!(30 + (mix(n, 17) % 10) * 25));
            put("vegan", json!(mix(n, 18) % 2 == 0));
        }
    }
    let description = format!(
        "The {adjective} {noun} by {brand}. {blurb} Designed with care and backed by {brand}'s \
         customer promise; free returns within 30 days."
    );
    SeedProduct {
        id: product_id(&slug),
        sku: format!("{sku_prefix}-{:04}", i + 1),
        name,
        description,
        price_amount,
        images,
        attributes,
        brand_id: brand_id(&slugify(brand)),
        category_id: category_id(leaf),
        active: i % 60 != 59,
        created_at: EPOCH + Duration::hours(3 * i as i64),
        slug,
    }
}

/// Inserts the seed data (idempotent; one transaction).
pub async fn seed(db: &Db) -> anyhow::Result<SeedReport> {
    let (categories, brands, products) = dataset();
    let report = with_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let mut r = SeedReport::default();
        for c in &categories {
            r.categories += sqlx::query(
                "INSERT INTO categories (id, parent_id, name, slug, description, position, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT DO NOTHING",
            )
            .bind(c.id)
            .bind(c.parent_id)
            .bind(&c.name)
            .bind(&c.slug)
            .bind(format!("Shop {} at ShopPlatform.", c.name))
            .bind(c.position)
            .bind(EPOCH)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for b in &brands {
            r.brands += sqlx::query(
                "INSERT INTO brands (id, name, slug, description, logo_url, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT DO NOTHING",
            )
            .bind(b.id)
            .bind(&b.name)
            .bind(&b.slug)
            .bind(&b.description)
            .bind(&b.logo_url)
            .bind(EPOCH)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for p in &products {
            r.products += sqlx::query(
                "INSERT INTO products (id, name, slug, description, sku, price_amount, currency, images, \
                 attributes, brand_id, category_id, active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'USD', $7, $8, $9, $10, $11, $12, $12) ON CONFLICT DO NOTHING",
            )
            .bind(p.id)
            .bind(&p.name)
            .bind(&p.slug)
            .bind(&p.description)
            .bind(&p.sku)
            .bind(p.price_amount)
            .bind(Json(&p.images))
            .bind(Json(&p.attributes))
            .bind(p.brand_id)
            .bind(p.category_id)
            .bind(p.active)
            .bind(p.created_at)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        r
    });
    tracing::info!(?report, "catalog seed data applied");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::model::{slug_problem, ProductInput};

    #[test]
    fn dataset_has_the_seeds_volumes_and_is_valid() {
        let (cats, brands, products) = dataset();
        assert_eq!((cats.len(), brands.len(), products.len()), (50, 40, 600));
        let depth3 = cats.iter().filter(|c| {
            c.parent_id.and_then(|p| cats.iter().find(|x| x.id == p)).is_some_and(|p| p.parent_id.is_some())
        });
        assert!(depth3.count() > 10, "a real three-level hierarchy");
        let unique = |v: Vec<&str>| v.iter().collect::<HashSet<_>>().len() == v.len();
        assert!(unique(products.iter().map(|p| p.slug.as_str()).collect()));
        assert!(unique(products.iter().map(|p| p.sku.as_str()).collect()));
        assert!(unique(brands.iter().map(|b| b.slug.as_str()).collect()));
        for p in &products {
            let input = ProductInput {
                name: p.name.clone(),
                slug: Some(p.slug.clone()),
                description: p.description.clone(),
                sku: p.sku.clone(),
                price: kit::money::Money::new(p.price_amount, "USD"),
                images: p.images.clone(),
                category_id: p.category_id,
                brand_id: Some(p.brand_id),
                attributes: p.attributes.clone(),
                active: p.active,
            };
            assert!(input.validate(None).is_ok(), "{p:?}");
            assert!(cats.iter().any(|c| c.id == p.category_id));
            assert!(brands.iter().any(|b| b.id == p.brand_id));
        }
        for c in &cats {
            assert!(slug_problem(&c.slug).is_none(), "{}", c.slug);
        }
        // Deterministic.
        assert_eq!(dataset().2[123].price_amount, products[123].price_amount);
    }
}
