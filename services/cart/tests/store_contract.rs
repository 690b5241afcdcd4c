//! ONE contract for every `CartStore`: run against Redis (`SHOP_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`, a unique key prefix per test, cleaned up) and the SQL store on
//! SQLite and PostgreSQL (`kit::db_tests!`).

use std::sync::Arc;
use std::time::Duration;

use kit::money::Money;
use shop_cart::{AddOutcome, CartStore, Limits, LineSnapshot};
use uuid::Uuid;

const LIMITS: Limits = Limits { max_quantity: 99, max_lines: 50 };
const DAY: Duration = Duration::from_secs(24 * 3600);

fn snap(name: &str, amount: i64) -> LineSnapshot {
    LineSnapshot {
        name: name.into(),
        sku: format!("SKU-{name}"),
        unit_price: Money::new(amount, "USD"),
        image: Some(format!("https://img.example/{name}.jpg")),
        added_at: kit::db::Timestamp::now().0,
    }
}

fn cart() -> String {
    format!("user:{}", Uuid::now_v7())
}

async fn add(s: &dyn CartStore, cart: &str, p: Uuid, q: i64) -> AddOutcome {
    s.add(cart, p, q, &snap("p", 100), LIMITS, DAY).await.unwrap()
}

async fn qty(s: &dyn CartStore, cart: &str, p: Uuid) -> Option<i64> {
    s.lines(cart).await.unwrap().into_iter().find(|l| l.product_id == p).map(|l| l.quantity)
}

async fn crud(s: &dyn CartStore) {
    let c = cart();
    let (p1, p2) = (Uuid::now_v7(), Uuid::now_v7());
    assert!(s.lines(&c).await.unwrap().is_empty());
    let first = snap("mug", 1299);
    assert_eq!(
        s.add(&c, p1, 2, &first, LIMITS, DAY).await.unwrap(),
        AddOutcome::Added { quantity: 2, created: true }
    );
    // Adding again sums and keeps the first snapshot.
    assert_eq!(
        s.add(&c, p1, 3, &snap("other", 5), LIMITS, DAY).await.unwrap(),
        AddOutcome::Added { quantity: 5, created: false }
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    add(s, &c, p2, 1).await;
    let lines = s.lines(&c).await.unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].product_id, p1, "oldest first");
    assert_eq!(lines[0].snapshot, first);
    assert_eq!(lines[0].quantity, 5);

    assert!(s.set_quantity(&c, p1, 7, DAY).await.unwrap());
    assert_eq!(qty(s, &c, p1).await, Some(7));
    assert!(!s.set_quantity(&c, Uuid::now_v7(), 1, DAY).await.unwrap(), "unknown line");
    assert!(!s.set_quantity(&cart(), p1, 1, DAY).await.unwrap(), "unknown cart");

    assert!(s.remove(&c, p2, DAY).await.unwrap());
    assert!(!s.remove(&c, p2, DAY).await.unwrap());
    assert_eq!(s.lines(&c).await.unwrap().len(), 1);

    s.clear(&c).await.unwrap();
    assert!(s.lines(&c).await.unwrap().is_empty());
    assert_eq!(s.ttl(&c).await.unwrap(), None);
    // A cleared cart can be used again.
    add(s, &c, p2, 1).await;
    assert_eq!(qty(s, &c, p2).await, Some(1));
    s.clear(&c).await.unwrap();
}

async fn limits(s: &dyn CartStore) {
    let c = cart();
    let p = Uuid::now_v7();
    assert_eq!(add(s, &c, p, 60).await, AddOutcome::Added { quantity: 60, created: true });
    assert_eq!(add(s, &c, p, 60).await, AddOutcome::Added { quantity: 99, created: false }, "capped");
    let small = Limits { max_quantity: 99, max_lines: 3 };
    for _ in 0..2 {
        s.add(&c, Uuid::now_v7(), 1, &snap("x", 1), small, DAY).await.unwrap();
    }
    assert_eq!(
        s.add(&c, Uuid::now_v7(), 1, &snap("x", 1), small, DAY).await.unwrap(),
        AddOutcome::TooManyLines
    );
    // An existing line can still grow when the cart is full.
    assert!(matches!(
        s.add(&c, p, 1, &snap("x", 1), small, DAY).await.unwrap(),
        AddOutcome::Added { quantity: 99, created: false }
    ));
    assert_eq!(s.lines(&c).await.unwrap().len(), 3);
    s.clear(&c).await.unwrap();
}

async fn merge(s: &dyn CartStore) {
    let guest = format!("guest:{}", Uuid::now_v7());
    let user = cart();
    let (shared, only_guest, only_user) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    add(s, &guest, shared, 60).await;
    add(s, &guest, only_guest, 2).await;
    add(s, &user, shared, 50).await;
    add(s, &user, only_user, 1).await;
    let out = s.merge(&guest, &user, LIMITS, DAY).await.unwrap();
    assert_eq!((out.merged, out.dropped), (2, 0));
    assert_eq!(qty(s, &user, shared).await, Some(99), "summed and capped");
    assert_eq!(qty(s, &user, only_guest).await, Some(2));
    assert_eq!(qty(s, &user, only_user).await, Some(1));
    assert!(s.lines(&guest).await.unwrap().is_empty(), "guest cart deleted");
    // Merging an unknown cart changes nothing.
    let out = s.merge(&format!("guest:{}", Uuid::now_v7()), &user, LIMITS, DAY).await.unwrap();
    assert_eq!((out.merged, out.dropped), (0, 0));
    assert_eq!(s.lines(&user).await.unwrap().len(), 3);
    // Lines beyond the line limit are dropped.
    add(s, &guest, Uuid::now_v7(), 1).await;
    add(s, &guest, shared, 1).await;
    let out = s.merge(&guest, &user, Limits { max_quantity: 99, max_lines: 3 }, DAY).await.unwrap();
    assert_eq!((out.merged, out.dropped), (1, 1));
    assert_eq!(s.lines(&user).await.unwrap().len(), 3);
    // Merging into an empty cart moves everything.
    let fresh = cart();
    add(s, &guest, only_guest, 4).await;
    s.merge(&guest, &fresh, LIMITS, DAY).await.unwrap();
    assert_eq!(qty(s, &fresh, only_guest).await, Some(4));
    for c in [&user, &fresh] {
        s.clear(c).await.unwrap();
    }
}

async fn ttl(s: &dyn CartStore) {
    let c = cart();
    let p = Uuid::now_v7();
    s.add(&c, p, 1, &snap("t", 1), LIMITS, Duration::from_secs(100)).await.unwrap();
    let t = s.ttl(&c).await.unwrap().expect("a TTL is set");
    assert!(t > Duration::from_secs(95) && t <= Duration::from_secs(100), "{t:?}");
    // Every kind of write refreshes it.
    s.add(&c, Uuid::now_v7(), 1, &snap("t", 1), LIMITS, Duration::from_secs(1000)).await.unwrap();
    let t = s.ttl(&c).await.unwrap().unwrap();
    assert!(t > Duration::from_secs(995), "refreshed by add: {t:?}");
    s.set_quantity(&c, p, 3, Duration::from_secs(2000)).await.unwrap();
    let t = s.ttl(&c).await.unwrap().unwrap();
    assert!(t > Duration::from_secs(1995), "refreshed by update: {t:?}");
    s.remove(&c, p, Duration::from_secs(3000)).await.unwrap();
    let t = s.ttl(&c).await.unwrap().unwrap();
    assert!(t > Duration::from_secs(2995), "refreshed by remove: {t:?}");
    s.clear(&c).await.unwrap();
}

async fn expiry(s: &dyn CartStore) {
    let c = cart();
    let p = Uuid::now_v7();
    s.add(&c, p, 5, &snap("e", 1), LIMITS, Duration::from_millis(300)).await.unwrap();
    assert_eq!(qty(s, &c, p).await, Some(5));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(s.lines(&c).await.unwrap().is_empty(), "expired");
    assert_eq!(s.ttl(&c).await.unwrap(), None);
    assert!(!s.set_quantity(&c, p, 1, DAY).await.unwrap(), "an expired line cannot be updated");
    // A new add starts a new cart: the expired quantity does not come back.
    assert_eq!(add(s, &c, p, 1).await, AddOutcome::Added { quantity: 1, created: true });
    s.purge_expired().await.unwrap();
    assert_eq!(qty(s, &c, p).await, Some(1), "the sweep keeps live carts");
    s.clear(&c).await.unwrap();
}

async fn concurrent_adds(s: Arc<dyn CartStore>) {
    let c = cart();
    let p = Uuid::now_v7();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (s, c) = (s.clone(), c.clone());
            tokio::spawn(async move { s.add(&c, p, 1, &snap("c", 1), LIMITS, DAY).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(qty(&*s, &c, p).await, Some(50), "no lost update");
    s.clear(&c).await.unwrap();
}

async fn concurrent_lines(s: Arc<dyn CartStore>) {
    let c = cart();
    let products: Vec<Uuid> = (0..20).map(|_| Uuid::now_v7()).collect();
    for p in &products {
        add(&*s, &c, *p, 1).await;
    }
    let tasks: Vec<_> = products
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let (s, c) = (s.clone(), c.clone());
            tokio::spawn(async move { assert!(s.set_quantity(&c, p, i as i64 + 2, DAY).await.unwrap()) })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let lines = s.lines(&c).await.unwrap();
    assert_eq!(lines.len(), 20);
    for (i, p) in products.iter().enumerate() {
        assert_eq!(qty(&*s, &c, *p).await, Some(i as i64 + 2));
    }
    // And 20 concurrent adds of new lines.
    let c2 = cart();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (s, c2) = (s.clone(), c2.clone());
            tokio::spawn(async move { add(&*s, &c2, Uuid::now_v7(), 1).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.lines(&c2).await.unwrap().len(), 20);
    s.clear(&c).await.unwrap();
    s.clear(&c2).await.unwrap();
}

/// The whole contract.
async fn contract(s: Arc<dyn CartStore>) {
    s.ping().await.unwrap();
    crud(&*s).await;
    limits(&*s).await;
    merge(&*s).await;
    ttl(&*s).await;
    expiry(&*s).await;
    concurrent_adds(s.clone()).await;
    concurrent_lines(s.clone()).await;
}

fn redis_url() -> String {
    std::env::var("SHOP_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Deletes every key under `prefix`.
async fn redis_cleanup(prefix: &str) {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> =
        redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut conn).await.unwrap();
    if !keys.is_empty() {
        let _: i64 = redis::cmd("DEL").arg(keys).query_async(&mut conn).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_store_contract() {
    let prefix = format!("shop-test:{}:", Uuid::new_v4().simple());
    let store = shop_cart::redis_store(&redis_url(), &prefix).await.unwrap();
    let res = tokio::spawn(contract(store)).await;
    redis_cleanup(&prefix).await;
    res.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_ttl_is_a_real_key_ttl() {
    let url = redis_url();
    let prefix = format!("shop-test:{}:", Uuid::new_v4().simple());
    let store = shop_cart::redis_store(&url, &prefix).await.unwrap();
    store
        .add("user:x", Uuid::now_v7(), 1, &snap("r", 1), LIMITS, Duration::from_secs(7 * 86400))
        .await
        .unwrap();
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL").arg(format!("{prefix}user:x")).query_async(&mut conn).await.unwrap();
    redis_cleanup(&prefix).await;
    assert!(pttl > 7 * 86_400_000 - 5_000 && pttl <= 7 * 86_400_000, "{pttl}");
}

#[tokio::test]
async fn redis_store_reports_an_unreachable_server() {
    let err = shop_cart::redis_store("redis://127.0.0.1:1", "x:").await.err().expect("no server on port 1");
    assert!(err.to_string().contains("Redis"), "{err}");
}

/// The same contract over TLS, against the TLS-only Redis of `scripts/tls-test-servers`
/// (`--port 0 --tls-port …`). Fails, not skips, without it (`scripts/test` starts it).
mod tls {
    use super::*;
    use shop_cart::{CartConfig, RedisTarget};

    fn env(name: &str) -> String {
        std::env::var(name).unwrap_or_else(|_| {
            panic!(
                "{name} is not set: the TLS tests need scripts/tls-test-servers. Run \
                 `scripts/tls-test-servers start` and export the lines of `scripts/tls-test-servers env`"
            )
        })
    }

    /// The TLS-only server's URL (with a password the server does not check, so errors can be
    /// checked for not showing it) and its `host:port`.
    fn url_and_server() -> (String, String) {
        let mut url = url::Url::parse(&env("SHOP_TEST_TLS_REDIS_URL")).unwrap();
        let server = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
        url.set_username("default").unwrap();
        url.set_password(Some("hunter2")).unwrap();
        (url.to_string(), server)
    }

    /// The cart's configuration as `SHOP_CART__REDIS_URL` and `SHOP_CART__REDIS_CA_FILE` give it.
    fn target(url: &str, ca: Option<String>) -> RedisTarget {
        let cfg = CartConfig {
            redis_url: Some(url.into()),
            redis_ca_file: ca.map(Into::into),
            ..Default::default()
        };
        cfg.redis_target(None, None).expect("a Redis target")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn rediss_with_the_right_ca_passes_the_store_contract() {
        let (url, _) = url_and_server();
        // The server has no password: use the URL without one.
        let url = url.replace("default:hunter2@", "");
        let prefix = format!("shop-test:{}:", Uuid::new_v4().simple());
        let store = shop_cart::redis_store_at(&target(&url, Some(env("SHOP_TEST_TLS_CA_FILE"))), &prefix)
            .await
            .unwrap();
        contract(store).await;
    }

    #[tokio::test]
    async fn rediss_with_the_wrong_ca_fails_naming_the_keys_and_the_server() {
        let (url, server) = url_and_server();
        let wrong = env("SHOP_TEST_TLS_WRONG_CA_FILE");
        let err = shop_cart::redis_store_at(&target(&url, Some(wrong.clone())), "x:")
            .await
            .err()
            .expect("a certificate from another CA is refused");
        let msg = format!("{err:#}");
        assert!(msg.contains(&server), "names the server: {msg}");
        assert!(msg.contains("SHOP_CART__REDIS_URL"), "names the URL key: {msg}");
        assert!(msg.contains("SHOP_CART__REDIS_CA_FILE") && msg.contains(&wrong), "names the CA key: {msg}");
        assert!(msg.to_lowercase().contains("certificate"), "says what failed: {msg}");
        assert!(!msg.contains("hunter2"), "never the password: {msg}");
    }

    #[tokio::test]
    async fn rediss_without_a_ca_file_trusts_only_the_web_pki_roots() {
        let (url, server) = url_and_server();
        let err =
            shop_cart::redis_store_at(&target(&url, None), "x:").await.err().expect("private CA refused");
        let msg = format!("{err:#}");
        assert!(msg.contains(&server) && msg.contains("web PKI roots"), "{msg}");
        assert!(!msg.contains("hunter2"), "never the password: {msg}");
    }

    #[tokio::test]
    async fn a_ca_file_with_a_cleartext_url_is_a_configuration_error() {
        let (url, server) = url_and_server();
        let plain = url.replacen("rediss://", "redis://", 1);
        let err = shop_cart::redis_store_at(&target(&plain, Some(env("SHOP_TEST_TLS_CA_FILE"))), "x:")
            .await
            .err()
            .expect("CA file without TLS");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("SHOP_CART__REDIS_CA_FILE") && msg.contains("rediss://") && msg.contains(&server),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn insecure_urls_are_refused() {
        let (url, _) = url_and_server();
        let err = shop_cart::redis_store_at(&target(&format!("{url}#insecure"), None), "x:")
            .await
            .err()
            .expect("no unverified TLS");
        let msg = format!("{err:#}");
        assert!(msg.contains("#insecure") && msg.contains("SHOP_CART__REDIS_URL"), "{msg}");
    }

    #[test]
    fn the_cart_keys_override_the_shared_ones() {
        let shared_url = secrecy::SecretString::from("rediss://shared:6380");
        let shared_ca = std::path::Path::new("/shared/ca.pem");
        let t = CartConfig::default().redis_target(Some(&shared_url), Some(shared_ca)).unwrap();
        assert_eq!((t.url_key.as_str(), t.ca_key.as_str()), ("SHOP_REDIS_URL", "SHOP_REDIS_CA_FILE"));
        let own = CartConfig {
            redis_url: Some("rediss://own:6380".into()),
            redis_ca_file: Some("/own/ca.pem".into()),
            ..Default::default()
        };
        let t = own.redis_target(Some(&shared_url), Some(shared_ca)).unwrap();
        assert_eq!(
            (t.url_key.as_str(), t.ca_key.as_str()),
            ("SHOP_CART__REDIS_URL", "SHOP_CART__REDIS_CA_FILE")
        );
        assert_eq!(t.ca_file.as_deref(), Some(std::path::Path::new("/own/ca.pem")));
        assert!(CartConfig::default().redis_target(None, Some(shared_ca)).is_none(), "no URL, no Redis");
    }
}

mod sql {
    use super::*;
    use kit::db::Timestamp;
    use shop_cart::MIGRATIONS;

    kit::db_tests! { MIGRATIONS;
        async fn sql_store_contract(db) {
            contract(shop_cart::sql_store(db)).await;
        }

        async fn sql_rows_carry_expires_at_and_the_sweep_purges_them(db) {
            let s = shop_cart::sql_store(db.clone());
            let (live, dead) = (cart(), cart());
            s.add(&live, Uuid::now_v7(), 1, &snap("l", 1), LIMITS, DAY).await.unwrap();
            s.add(&dead, Uuid::now_v7(), 1, &snap("d", 1), LIMITS, Duration::from_millis(50)).await.unwrap();
            let at: Timestamp = kit::with_db!(&db, pool => sqlx::query_scalar(
                "SELECT expires_at FROM cart_lines WHERE cart_id = $1").bind(&live).fetch_one(pool).await).unwrap();
            let left = at.0 - Timestamp::now().0;
            assert!(left > time::Duration::hours(23), "{left}");
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert!(s.purge_expired().await.unwrap() >= 2, "the dead line and its cart row");
            let rows: i64 = kit::with_db!(&db, pool => sqlx::query_scalar(
                "SELECT COUNT(*) FROM cart_lines").fetch_one(pool).await).unwrap();
            assert_eq!(rows, 1);
        }
    }
}
