//! The real database provisioner against the PostgreSQL on this machine
//! (`SHOP_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`). Every test
//! uses unique names and drops what it created.

use shop_operator::provision::{DatabaseGrant, DatabaseProvisioner, PgProvisioner};
use sqlx::{Connection, PgConnection};

fn admin_dsn() -> String {
    std::env::var("SHOP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("optest_{tag}_{}_{nanos}", std::process::id())
}

async fn scalar_bool(conn: &mut PgConnection, sql: &str, arg: &str) -> bool {
    sqlx::query_scalar(sql).bind(arg).fetch_one(conn).await.unwrap()
}

#[tokio::test]
async fn ensure_is_idempotent_least_privilege_and_isolated() {
    let p = PgProvisioner;
    let a = DatabaseGrant { name: unique("a"), password: "pw_a_123".into() };
    let b = DatabaseGrant { name: unique("b"), password: "pw_b_123".into() };
    let result = async {
        let url_a = p.ensure(&admin_dsn(), &a).await.unwrap();
        // A second run changes nothing and does not fail.
        assert_eq!(p.ensure(&admin_dsn(), &a).await.unwrap(), url_a);
        let url_b = p.ensure(&admin_dsn(), &b).await.unwrap();
        assert!(url_a.contains(&format!("/{}", a.name)) && url_a.contains(&format!("{}:pw_a_123@", a.name)));

        let mut admin = PgConnection::connect(&admin_dsn()).await.unwrap();
        // The role owns its database, is a plain login role, and PUBLIC may not connect.
        let owner_ok = scalar_bool(
            &mut admin,
            "SELECT pg_get_userbyid(datdba) = datname FROM pg_database WHERE datname = $1",
            &a.name,
        )
        .await;
        assert!(owner_ok);
        let plain: bool = sqlx::query_scalar(
            "SELECT rolcanlogin AND NOT rolsuper AND NOT rolcreatedb AND NOT rolcreaterole FROM pg_roles WHERE rolname = $1",
        )
        .bind(&a.name)
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert!(plain);
        let public_connect = scalar_bool(
            &mut admin,
            "SELECT has_database_privilege('public', $1, 'CONNECT') FROM (SELECT 1) x",
            &a.name,
        )
        .await;
        assert!(!public_connect, "PUBLIC must not connect");

        // The service can use its own database…
        let mut conn = PgConnection::connect(&url_a).await.unwrap();
        sqlx::query("CREATE TABLE t (id int)").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
        // …but not the other service's.
        let cross = url_b.replace(&format!("{}:pw_b_123@", b.name), &format!("{}:pw_a_123@", a.name));
        let Err(err) = PgConnection::connect(&cross).await else {
            panic!("a service's role must not connect to another service's database");
        };
        assert!(err.to_string().contains("permission denied"), "{err}");
        admin.close().await.unwrap();
    }
    .await;
    p.drop_database(&admin_dsn(), &a.name).await.unwrap();
    p.drop_database(&admin_dsn(), &b.name).await.unwrap();
    result
}

#[tokio::test]
async fn drop_removes_database_and_role_and_is_idempotent() {
    let p = PgProvisioner;
    let g = DatabaseGrant { name: unique("d"), password: "pw_d_123".into() };
    let url = p.ensure(&admin_dsn(), &g).await.unwrap();
    // Open connections do not block the drop (WITH (FORCE)).
    let _open = PgConnection::connect(&url).await.unwrap();
    p.drop_database(&admin_dsn(), &g.name).await.unwrap();
    p.drop_database(&admin_dsn(), &g.name).await.unwrap();
    let mut admin = PgConnection::connect(&admin_dsn()).await.unwrap();
    let left: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
    )
    .bind(&g.name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(!left);
}

#[tokio::test]
async fn unsafe_names_never_reach_sql() {
    let p = PgProvisioner;
    let g = DatabaseGrant { name: "x\"; DROP ROLE postgres; --".into(), password: "p".into() };
    assert!(p.ensure(&admin_dsn(), &g).await.is_err());
    assert!(p.drop_database(&admin_dsn(), &g.name).await.is_err());
}
