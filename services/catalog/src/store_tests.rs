//! Store contract tests, run on SQLite and PostgreSQL.

use kit::money::Money;
use kit::pagination::PageRequest;
use serde_json::json;
use uuid::Uuid;

use crate::model::*;
use crate::store::{ProductFilter, Sort, Store, StoreError};

struct Fx {
    store: Store,
    electronics: Uuid,
    audio: Uuid,
    headphones: Uuid,
    books: Uuid,
    sonora: Uuid,
    inkwell: Uuid,
}

async fn fixture(db: kit::db::Db) -> Fx {
    let store = Store::new(db);
    let cat = |name: &str, parent: Option<Uuid>| CategoryInput {
        name: name.into(),
        slug: None,
        description: String::new(),
        parent_id: parent,
        position: 0,
    };
    let electronics = store.create_category(cat("Electronics", None)).await.unwrap().category.id;
    let audio = store.create_category(cat("Audio", Some(electronics))).await.unwrap().category.id;
    let headphones = store.create_category(cat("Headphones", Some(audio))).await.unwrap().category.id;
    let books = store.create_category(cat("Books", None)).await.unwrap().category.id;
    let brand =
        |name: &str| BrandInput { name: name.into(), slug: None, description: String::new(), logo_url: None };
    let sonora = store.create_brand(brand("Sonora")).await.unwrap().id;
    let inkwell = store.create_brand(brand("Inkwell Press")).await.unwrap().id;
    Fx { store, electronics, audio, headphones, books, sonora, inkwell }
}

fn input(name: &str, sku: &str, category: Uuid, brand: Option<Uuid>, amount: i64) -> ProductInput {
    ProductInput {
        name: name.into(),
        slug: None,
        description: format!("All about the {name}."),
        sku: sku.into(),
        price: Money::new(amount, "USD"),
        images: vec![format!("https://images.shop.example/{sku}.jpg")],
        category_id: category,
        brand_id: brand,
        attributes: json!({"color": "black", "wireless": true, "weightGrams": 250})
            .as_object()
            .unwrap()
            .clone(),
        active: true,
    }
}

fn data(name: &str, sku: &str, category: Uuid, brand: Option<Uuid>, amount: i64) -> ProductData {
    input(name, sku, category, brand, amount).validate(None).unwrap()
}

fn page(page: u32, size: u32) -> PageRequest {
    PageRequest { page, page_size: size }
}

async fn list(store: &Store, f: ProductFilter) -> (Vec<String>, i64) {
    let (items, total) = store.list_products(&f, page(1, 100)).await.unwrap();
    (items.into_iter().map(|p| p.sku).collect(), total)
}

kit::db_tests! { crate::MIGRATIONS;

    async fn product_crud(db) {
        let fx = fixture(db).await;
        let p = fx.store.create_product(data("Studio Headphones", "HP-1", fx.headphones, Some(fx.sonora), 12999)).await.unwrap();
        assert_eq!(p.id.get_version_num(), 7, "new ids are UUIDv7");
        assert_eq!(p.slug, "studio-headphones");
        assert_eq!(p.price, Money::new(12999, "USD"));
        assert_eq!(p.brand.as_ref().unwrap().name, "Sonora");
        assert_eq!(p.category.slug, "headphones");
        assert_eq!(p.attributes["weightGrams"], 250);
        assert_eq!(p.images.len(), 1);

        let by_id = fx.store.get_product(&p.id.to_string(), false).await.unwrap().unwrap();
        assert_eq!(by_id, p, "what was written is read back");
        let by_slug = fx.store.get_product("studio-headphones", false).await.unwrap().unwrap();
        assert_eq!(by_slug.id, p.id);
        assert!(fx.store.get_product("nope", false).await.unwrap().is_none());
        assert!(fx.store.get_product(&Uuid::now_v7().to_string(), true).await.unwrap().is_none());

        let mut changed = input("Studio Headphones II", "HP-1B", fx.books, None, 100);
        changed.active = false;
        let u = fx.store.update_product(p.id, changed.validate(Some(&p.slug)).unwrap()).await.unwrap();
        assert_eq!((u.name.as_str(), u.sku.as_str(), u.slug.as_str()), ("Studio Headphones II", "HP-1B", "studio-headphones"));
        assert_eq!(u.brand, None);
        assert_eq!(u.category.id, fx.books);
        assert!(!u.active);
        assert!(u.updated_at >= p.updated_at);
        assert_eq!(u.created_at, p.created_at);
        assert!(fx.store.get_product(&p.id.to_string(), false).await.unwrap().is_none(), "inactive hidden");
        assert!(fx.store.get_product(&p.id.to_string(), true).await.unwrap().is_some(), "inactive for admins");

        assert!(fx.store.delete_product(p.id).await.unwrap());
        assert!(!fx.store.delete_product(p.id).await.unwrap(), "second delete finds nothing");
        assert!(fx.store.get_product(&p.id.to_string(), true).await.unwrap().is_none());
        let err = fx.store.update_product(p.id, data("X", "X-1", fx.books, None, 1)).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
        let (_, total) = list(&fx.store, ProductFilter { include_inactive: true, ..Default::default() }).await;
        assert_eq!(total, 0);
        let err = fx.store.update_product(Uuid::now_v7(), data("X", "X-1", fx.books, None, 1)).await.unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)));
    }

    async fn duplicates_and_references(db) {
        let fx = fixture(db).await;
        let a = fx.store.create_product(data("Mug", "MUG-1", fx.books, None, 500)).await.unwrap();
        let err = fx.store.create_product(data("Other Mug", "MUG-1", fx.books, None, 500)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::DuplicateSku, .. }), "{err:?}");
        let err = fx.store.create_product(data("Mug", "MUG-2", fx.books, None, 500)).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::DuplicateSlug, .. }), "{err:?}");
        let b = fx.store.create_product(data("Mug Two", "MUG-2", fx.books, None, 500)).await.unwrap();
        let mut clash = data("Mug Two", "MUG-1", fx.books, None, 500);
        clash.slug = b.slug.clone();
        let err = fx.store.update_product(b.id, clash).await.unwrap_err();
        assert!(matches!(err, StoreError::Conflict { code: kit::problem::ErrorCode::DuplicateSku, .. }), "{err:?}");

        let err = fx.store.create_product(data("Ghost", "G-1", Uuid::now_v7(), Some(Uuid::now_v7()), 1)).await.unwrap_err();
        let StoreError::Invalid(fields) = err else { panic!("{err:?}") };
        let names: Vec<_> = fields.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(names, ["categoryId", "brandId"]);

        // A deleted product's SKU and slug can be reused.
        assert!(fx.store.delete_product(a.id).await.unwrap());
        let again = fx.store.create_product(data("Mug", "MUG-1", fx.books, None, 700)).await.unwrap();
        assert_eq!(again.slug, "mug");
        assert_ne!(again.id, a.id);
    }

    async fn filters_and_descendant_categories(db) {
        let fx = fixture(db).await;
        let s = &fx.store;
        s.create_product(data("Over-Ear Headphones", "HP-1", fx.headphones, Some(fx.sonora), 19900)).await.unwrap();
        s.create_product(data("Earbuds", "HP-2", fx.headphones, Some(fx.sonora), 4900)).await.unwrap();
        s.create_product(data("Amplifier", "AUD-1", fx.audio, None, 29900)).await.unwrap();
        s.create_product(data("Electronics Gift Card", "EL-1", fx.electronics, None, 2500)).await.unwrap();
        s.create_product(data("Novel", "BK-1", fx.books, Some(fx.inkwell), 1500)).await.unwrap();
        let mut hidden = data("Hidden Speaker", "AUD-2", fx.audio, Some(fx.sonora), 9900);
        hidden.active = false;
        s.create_product(hidden).await.unwrap();
        let mut euro = data("Euro Earbuds", "HP-3", fx.headphones, None, 3900);
        euro.price.currency = "EUR".into();
        s.create_product(euro).await.unwrap();

        let f = |category: Option<&str>| ProductFilter { category: category.map(str::to_string), sort: Sort::Price, ..Default::default() };
        assert_eq!(list(s, f(Some("electronics"))).await, (vec!["EL-1".into(), "HP-3".into(), "HP-2".into(), "HP-1".into(), "AUD-1".into()], 5));
        assert_eq!(list(s, f(Some(&fx.audio.to_string()))).await.1, 4);
        assert_eq!(list(s, f(Some("headphones"))).await.1, 3);
        assert_eq!(list(s, f(Some("books"))).await.0, ["BK-1"]);
        assert_eq!(list(s, f(Some("no-such-category"))).await.1, 0);
        assert_eq!(list(s, f(Some(&Uuid::now_v7().to_string()))).await.1, 0);
        assert_eq!(list(s, f(None)).await.1, 6, "inactive excluded");
        assert_eq!(list(s, ProductFilter { include_inactive: true, ..f(None) }).await.1, 7);

        let by_brand = |b: String| ProductFilter { brand: Some(b), sort: Sort::Price, ..Default::default() };
        assert_eq!(list(s, by_brand("sonora".into())).await.0, ["HP-2", "HP-1"]);
        assert_eq!(list(s, by_brand(fx.inkwell.to_string())).await.0, ["BK-1"]);

        let price = ProductFilter { min_price: Some(4900), max_price: Some(19900), sort: Sort::Price, ..Default::default() };
        assert_eq!(list(s, price).await.0, ["HP-2", "HP-1"]);
        let cur = ProductFilter { currency: Some("EUR".into()), ..Default::default() };
        assert_eq!(list(s, cur).await.0, ["HP-3"]);
        let combined = ProductFilter {
            category: Some("audio".into()),
            brand: Some("sonora".into()),
            max_price: Some(10000),
            include_inactive: true,
            sort: Sort::Price,
            ..Default::default()
        };
        assert_eq!(list(s, combined).await.0, ["HP-2", "AUD-2"]);
    }

    async fn sorting_and_pagination(db) {
        let fx = fixture(db).await;
        let s = &fx.store;
        for (i, (name, price)) in [("banana Stand", 300), ("Apple Crate", 500), ("cherry Bowl", 100), ("Date Box", 400), ("Elder Jar", 200)].iter().enumerate() {
            s.create_product(data(name, &format!("S-{i}"), fx.books, None, *price)).await.unwrap();
        }
        let sorted = |sort| async move { list(s, ProductFilter { sort, ..Default::default() }).await.0 };
        assert_eq!(sorted(Sort::Price).await, ["S-2", "S-4", "S-0", "S-3", "S-1"]);
        assert_eq!(sorted(Sort::PriceDesc).await, ["S-1", "S-3", "S-0", "S-4", "S-2"]);
        assert_eq!(sorted(Sort::Name).await, ["S-1", "S-0", "S-2", "S-3", "S-4"], "case-insensitive");
        assert_eq!(sorted(Sort::NameDesc).await, ["S-4", "S-3", "S-2", "S-0", "S-1"]);
        assert_eq!(sorted(Sort::Newest).await, ["S-4", "S-3", "S-2", "S-1", "S-0"]);
        assert_eq!(sorted(Sort::Oldest).await, ["S-0", "S-1", "S-2", "S-3", "S-4"]);
        assert_eq!(sorted(Sort::Relevance).await, sorted(Sort::Newest).await, "relevance without q is newest");

        let f = ProductFilter { sort: Sort::Price, ..Default::default() };
        let (items, total) = s.list_products(&f, page(2, 2)).await.unwrap();
        assert_eq!(total, 5);
        assert_eq!(items.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["S-0", "S-3"]);
        let (items, total) = s.list_products(&f, page(3, 2)).await.unwrap();
        assert_eq!((items.len(), total), (1, 5));
        let (items, total) = s.list_products(&f, page(9, 2)).await.unwrap();
        assert_eq!((items.len(), total), (0, 5));
    }

    async fn text_search(db) {
        let fx = fixture(db).await;
        let s = &fx.store;
        let mut a = data("Wireless Headphones", "HP-100", fx.headphones, Some(fx.sonora), 100);
        a.description = "Noise cancelling over-ear headphones.".into();
        let mut b = data("Studio Monitor Speaker", "SPK-200", fx.audio, None, 200);
        b.description = "Pairs well with wireless headphones.".into();
        let mut c = data("Mystery Novel", "BK-300", fx.books, Some(fx.inkwell), 300);
        c.description = "A thriller set in 1920s Paris.".into();
        for d in [a, b, c] {
            s.create_product(d).await.unwrap();
        }
        let q = |q: &str, sort: Sort| ProductFilter { q: Some(q.into()), sort, ..Default::default() };
        let (hits, total) = list(s, q("wireless headphones", Sort::Relevance)).await;
        assert_eq!(total, 2);
        assert_eq!(hits[0], "HP-100", "a match in the name ranks first");
        assert_eq!(list(s, q("headphones", Sort::Price)).await.0, ["HP-100", "SPK-200"]);
        assert_eq!(list(s, q("thriller", Sort::Relevance)).await.0, ["BK-300"]);
        assert_eq!(list(s, q("PARIS", Sort::Relevance)).await.0, ["BK-300"], "case-insensitive");
        assert_eq!(list(s, q("headphones -studio", Sort::Relevance)).await.0, ["HP-100"]);
        assert_eq!(list(s, q("wireless zebra", Sort::Relevance)).await.1, 0, "every term must match");
        assert_eq!(list(s, q("SPK-200", Sort::Relevance)).await.0, ["SPK-200"], "SKU search");
        assert_eq!(list(s, q("100% _off\\", Sort::Relevance)).await.1, 0, "LIKE wildcards are literal");
        let mut f = q("headphones", Sort::Relevance);
        f.category = Some("audio".into());
        f.brand = Some("sonora".into());
        assert_eq!(list(s, f).await.0, ["HP-100"]);
    }

    async fn validate_and_batch(db) {
        let fx = fixture(db).await;
        let s = &fx.store;
        let ok = s.create_product(data("Ok", "OK-1", fx.books, None, 1000)).await.unwrap();
        let mut off = data("Off", "OFF-1", fx.books, None, 2000);
        off.active = false;
        let off = s.create_product(off).await.unwrap();
        let gone = s.create_product(data("Gone", "GONE-1", fx.books, None, 3000)).await.unwrap();
        s.delete_product(gone.id).await.unwrap();
        let unknown = Uuid::now_v7();

        let item = |id: Uuid, quantity: i32| ValidateItem { product_id: id, quantity };
        let r = s.validate_items(&[item(ok.id, 2)]).await.unwrap();
        assert!(r.valid);
        assert_eq!(r.items[0].price, Some(Money::new(1000, "USD")));
        assert_eq!(r.items[0].name.as_deref(), Some("Ok"));
        assert_eq!(r.items[0].sku.as_deref(), Some("OK-1"));
        assert_eq!(r.items[0].quantity, 2);

        let r = s.validate_items(&[item(ok.id, 1), item(off.id, 1), item(gone.id, 1), item(unknown, 1), item(ok.id, 0)]).await.unwrap();
        assert!(!r.valid);
        let errors: Vec<_> = r.items.iter().map(|i| i.error.as_deref()).collect();
        assert_eq!(errors, [None, Some("inactive"), Some("deleted"), Some("not_found"), Some("invalid_quantity")]);
        let found: Vec<_> = r.items.iter().map(|i| (i.found, i.active)).collect();
        assert_eq!(found, [(true, true), (true, false), (true, false), (false, false), (true, true)]);

        assert!(matches!(s.validate_items(&[]).await, Err(StoreError::Invalid(_))));
        let many: Vec<_> = (0..101).map(|_| item(ok.id, 1)).collect();
        assert!(matches!(s.validate_items(&many).await, Err(StoreError::Invalid(_))));

        let b = s.batch(&[off.id, unknown, ok.id, gone.id, ok.id]).await.unwrap();
        assert_eq!(b.products.iter().map(|p| p.id).collect::<Vec<_>>(), [off.id, ok.id]);
        assert_eq!(b.missing, [unknown, gone.id]);
        assert!(matches!(s.batch(&[]).await, Err(StoreError::Invalid(_))));
    }

    async fn categories_and_brands(db) {
        let fx = fixture(db).await;
        let s = &fx.store;
        let all = s.list_categories().await.unwrap();
        let slugs: Vec<_> = all.iter().map(|c| (c.slug.as_str(), c.depth)).collect();
        assert_eq!(slugs, [("books", 0), ("electronics", 0), ("audio", 1), ("headphones", 2)]);
        let d = s.get_category("headphones").await.unwrap().unwrap();
        assert_eq!(d.ancestors.iter().map(|a| a.slug.as_str()).collect::<Vec<_>>(), ["electronics", "audio"]);
        assert!(d.children.is_empty());
        let d = s.get_category(&fx.electronics.to_string()).await.unwrap().unwrap();
        assert_eq!(d.children.len(), 1);
        assert!(s.get_category("nope").await.unwrap().is_none());

        let dup = CategoryInput { name: "Audio".into(), slug: None, description: String::new(), parent_id: None, position: 0 };
        assert!(matches!(s.create_category(dup).await, Err(StoreError::Conflict { code: kit::problem::ErrorCode::DuplicateSlug, .. })));
        let orphan = CategoryInput { name: "Orphan".into(), slug: None, description: String::new(), parent_id: Some(Uuid::now_v7()), position: 0 };
        let Err(StoreError::Invalid(f)) = s.create_category(orphan).await else { panic!() };
        assert_eq!(f[0].field, "parentId");

        let brands = s.list_brands().await.unwrap();
        assert_eq!(brands.iter().map(|b| b.slug.as_str()).collect::<Vec<_>>(), ["inkwell-press", "sonora"]);
        assert_eq!(s.get_brand("sonora").await.unwrap().unwrap().id, fx.sonora);
        assert_eq!(s.get_brand(&fx.inkwell.to_string()).await.unwrap().unwrap().name, "Inkwell Press");
        assert!(s.get_brand("nope").await.unwrap().is_none());
        let dup = BrandInput { name: "SONORA".into(), slug: None, description: String::new(), logo_url: None };
        assert!(matches!(s.create_brand(dup).await, Err(StoreError::Conflict { code: kit::problem::ErrorCode::DuplicateSlug, .. })));
        let bad = BrandInput { name: "".into(), slug: Some("Bad Slug".into()), description: String::new(), logo_url: Some("x".into()) };
        let Err(StoreError::Invalid(f)) = s.create_brand(bad).await else { panic!() };
        assert_eq!(f.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["name", "slug", "logoUrl"]);
    }

    async fn seed_is_idempotent(db) {
        let started = std::time::Instant::now();
        let first = crate::seed(&db).await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(first, crate::SeedReport { categories: 50, brands: 40, products: 600 });
        assert!(elapsed < std::time::Duration::from_secs(10), "seeding took {elapsed:?}");
        let second = crate::seed(&db).await.unwrap();
        assert_eq!(second, crate::SeedReport::default(), "second run inserts nothing");
        let count = |table: &'static str| {
            let db = db.clone();
            async move {
                let sql = format!("SELECT COUNT(*) FROM {table}");
                let n: i64 = kit::with_db!(&db, pool => sqlx::query_scalar(&sql).fetch_one(pool).await).unwrap();
                n
            }
        };
        assert_eq!((count("categories").await, count("brands").await, count("products").await), (50, 40, 600));

        let s = Store::new(db.clone());
        let (_, total) = s.list_products(&ProductFilter::default(), page(1, 20)).await.unwrap();
        assert_eq!(total, 590, "every 60th seed product is inactive");
        let electronics = ProductFilter { category: Some("electronics".into()), ..Default::default() };
        let audio = ProductFilter { category: Some("audio".into()), ..Default::default() };
        let (_, e) = s.list_products(&electronics, page(1, 1)).await.unwrap();
        let (_, a) = s.list_products(&audio, page(1, 1)).await.unwrap();
        assert!(e > a && a > 0, "electronics {e} > audio {a} > 0");
        let search = ProductFilter { q: Some("headphones".into()), sort: Sort::Relevance, ..Default::default() };
        let (hits, n) = s.list_products(&search, page(1, 5)).await.unwrap();
        assert!(n > 0);
        assert_eq!(hits[0].category.slug, "headphones");
        let p = s.get_product(&hits[0].slug, false).await.unwrap().unwrap();
        assert!(p.images[0].starts_with("https://images.shop.example/"));
        assert!(p.brand.is_some());
    }
}
