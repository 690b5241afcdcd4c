//! The real database provisioner against the PostgreSQL on this machine
//! (`SHOP_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`). Every test
//! uses unique names and drops what it created. The TLS tests use the server's own certificate
//! (`ssl_cert_file`, read locally) as CA, and say so when the server has no TLS.

use shop_operator::provision::postgres::connect;
use shop_operator::provision::{DatabaseGrant, DatabaseProvisioner, PgProvisioner};

fn admin_dsn() -> String {
    std::env::var("SHOP_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("optest_{tag}_{}_{nanos}", std::process::id())
}

async fn scalar_bool(conn: &tokio_postgres::Client, sql: &str, arg: &str) -> bool {
    conn.query_one(sql, &[&arg]).await.unwrap().get(0)
}

#[tokio::test]
async fn ensure_is_idempotent_least_privilege_and_isolated() {
    let p = PgProvisioner::default();
    let a = DatabaseGrant { name: unique("a"), password: "pw_a_123".into(), password_current: false };
    let b = DatabaseGrant { name: unique("b"), password: "pw_b_123".into(), password_current: false };
    let result = async {
        let url_a = p.ensure(&admin_dsn(), &a).await.unwrap();
        // A second run changes nothing and does not fail.
        assert_eq!(p.ensure(&admin_dsn(), &a).await.unwrap(), url_a);
        let url_b = p.ensure(&admin_dsn(), &b).await.unwrap();
        assert!(url_a.contains(&format!("/{}", a.name)) && url_a.contains(&format!("{}:pw_a_123@", a.name)));

        let admin = connect(&admin_dsn(), None, &Default::default()).await.unwrap();
        // The role owns its database, is a plain login role, and PUBLIC may not connect.
        let owner_ok = scalar_bool(
            &admin,
            "SELECT pg_get_userbyid(datdba) = datname FROM pg_database WHERE datname = $1",
            &a.name,
        )
        .await;
        assert!(owner_ok);
        let plain = scalar_bool(
            &admin,
            "SELECT rolcanlogin AND NOT rolsuper AND NOT rolcreatedb AND NOT rolcreaterole FROM pg_roles WHERE rolname = $1",
            &a.name,
        )
        .await;
        assert!(plain);
        let public_connect = scalar_bool(
            &admin,
            "SELECT has_database_privilege('public', $1, 'CONNECT') FROM (SELECT 1) x",
            &a.name,
        )
        .await;
        assert!(!public_connect, "PUBLIC must not connect");

        // The service can use its own database…
        let conn = connect(&url_a, None, &Default::default()).await.unwrap();
        conn.batch_execute("CREATE TABLE t (id int)").await.unwrap();
        drop(conn);
        // …but not the other service's.
        let cross = url_b.replace(&format!("{}:pw_b_123@", b.name), &format!("{}:pw_a_123@", a.name));
        let Err(err) = connect(&cross, None, &Default::default()).await else {
            panic!("a service's role must not connect to another service's database");
        };
        let err = format!("{err}: {:?}", std::error::Error::source(&err));
        assert!(err.contains("permission denied"), "{err}");
    }
    .await;
    p.drop_database(&admin_dsn(), &a.name).await.unwrap();
    p.drop_database(&admin_dsn(), &b.name).await.unwrap();
    result
}

/// Row versions of a role (and its password hash), its database (and ACL) and the database's
/// `public` schema: DDL on any of them changes one.
async fn versions(admin: &tokio_postgres::Client, name: String) -> (String, String, String) {
    let row = admin
        .query_one(
            "SELECT (SELECT xmin::text || coalesce(rolpassword, '') FROM pg_authid WHERE rolname = $1), \
                    (SELECT xmin::text || coalesce(datacl::text, '') FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin_dsn()).unwrap();
    url.set_path(&format!("/{name}"));
    let db = connect(url.as_str(), None, &Default::default()).await.unwrap();
    let schema: String = db
        .query_one(
            "SELECT xmin::text || coalesce(nspacl::text, '') FROM pg_namespace WHERE nspname = 'public'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    (row.get::<_, String>(0), row.get::<_, String>(1), schema)
}

/// A grant whose password is current and whose catalogs are in place changes nothing (no DDL:
/// the row versions of the role, the database and its schema stay); a drift in the catalogs, or a
/// new password, is repaired.
#[tokio::test]
async fn ensure_runs_no_ddl_when_everything_is_in_place() {
    let p = PgProvisioner::default();
    let mut g = DatabaseGrant { name: unique("s"), password: "pw_s_123".into(), password_current: false };
    let result = async {
        p.ensure(&admin_dsn(), &g).await.unwrap();
        let admin = connect(&admin_dsn(), None, &Default::default()).await.unwrap();
        let before = versions(&admin, g.name.clone()).await;
        g.password_current = true;
        p.ensure(&admin_dsn(), &g).await.unwrap();
        assert_eq!(versions(&admin, g.name.clone()).await, before, "a steady ensure ran DDL");
        // Drift: PUBLIC may connect again; ensure repairs it even with a current password.
        admin.batch_execute(&format!("GRANT CONNECT ON DATABASE \"{}\" TO PUBLIC", g.name)).await.unwrap();
        p.ensure(&admin_dsn(), &g).await.unwrap();
        let public_connect =
            scalar_bool(&admin, "SELECT has_database_privilege('public', $1, 'CONNECT')", &g.name).await;
        assert!(!public_connect, "the drift was not repaired");
        // A new password is set.
        let (role_before, _, _) = versions(&admin, g.name.clone()).await;
        g.password = "pw_s_456".into();
        g.password_current = false;
        p.ensure(&admin_dsn(), &g).await.unwrap();
        let (role_after, _, _) = versions(&admin, g.name.clone()).await;
        assert_ne!(role_before, role_after, "the new password was not set");
    }
    .await;
    p.drop_database(&admin_dsn(), &g.name).await.unwrap();
    result
}

#[tokio::test]
async fn drop_removes_database_and_role_and_is_idempotent() {
    let p = PgProvisioner::default();
    let g = DatabaseGrant { name: unique("d"), password: "pw_d_123".into(), password_current: false };
    let url = p.ensure(&admin_dsn(), &g).await.unwrap();
    // Open connections do not block the drop (WITH (FORCE)).
    let _open = connect(&url, None, &Default::default()).await.unwrap();
    p.drop_database(&admin_dsn(), &g.name).await.unwrap();
    p.drop_database(&admin_dsn(), &g.name).await.unwrap();
    let admin = connect(&admin_dsn(), None, &Default::default()).await.unwrap();
    let left = scalar_bool(
        &admin,
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1) OR EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
        &g.name,
    )
    .await;
    assert!(!left);
}

#[tokio::test]
async fn unsafe_names_never_reach_sql() {
    let p = PgProvisioner::default();
    let g = DatabaseGrant {
        name: "x\"; DROP ROLE postgres; --".into(),
        password: "p".into(),
        password_current: false,
    };
    assert!(p.ensure(&admin_dsn(), &g).await.is_err());
    assert!(p.drop_database(&admin_dsn(), &g.name).await.is_err());
}

fn with_sslmode(dsn: &str, mode: &str) -> String {
    let mut url = url::Url::parse(dsn).unwrap();
    let kept: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != "sslmode").map(|(k, v)| (k.into(), v.into())).collect();
    url.set_query(None);
    url.query_pairs_mut().extend_pairs(kept).append_pair("sslmode", mode);
    url.to_string()
}

async fn uses_tls(conn: &tokio_postgres::Client) -> bool {
    conn.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[]).await.unwrap().get(0)
}

/// `sslmode` as libpq: `disable` plaintext, `prefer`/`require` encrypted without verification,
/// `verify-ca`/`verify-full` verified against the CA (here: the server's self-signed
/// certificate), `verify-full` also by name.
#[tokio::test]
async fn sslmode_is_honoured() {
    let admin = connect(&admin_dsn(), None, &Default::default()).await.unwrap();
    let ssl_on: String = admin.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert!(
        !uses_tls(&connect(&with_sslmode(&admin_dsn(), "disable"), None, &Default::default()).await.unwrap())
            .await
    );
    if ssl_on != "on" {
        eprintln!("NOTE: this PostgreSQL has ssl=off: only `disable`/`prefer` verified");
        assert!(
            !uses_tls(
                &connect(&with_sslmode(&admin_dsn(), "prefer"), None, &Default::default()).await.unwrap()
            )
            .await
        );
        assert!(connect(&with_sslmode(&admin_dsn(), "require"), None, &Default::default()).await.is_err());
        return;
    }
    for mode in ["prefer", "require"] {
        let conn = connect(&with_sslmode(&admin_dsn(), mode), None, &Default::default()).await.unwrap();
        assert!(uses_tls(&conn).await, "{mode}");
    }
    // The Mozilla roots do not include this server's certificate.
    assert!(connect(&with_sslmode(&admin_dsn(), "verify-ca"), None, &Default::default()).await.is_err());
    // The server's certificate as CA: readable when the server runs on this machine as the same
    // or a more privileged user (CI and the development machines).
    let cert_file: String = admin.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let Ok(ca) = std::fs::read(&cert_file) else {
        eprintln!("NOTE: cannot read {cert_file}: verify-ca/verify-full not verified");
        return;
    };
    match connect(&with_sslmode(&admin_dsn(), "verify-ca"), Some(&ca), &Default::default()).await {
        Ok(conn) => assert!(uses_tls(&conn).await),
        Err(e) => {
            // A certificate webpki does not accept as its own trust anchor (e.g. a v1 certificate).
            eprintln!("NOTE: the server certificate {cert_file} is not usable as a CA: {e}");
            return;
        }
    }
    // `require` with a CA verifies like `verify-ca`.
    assert!(
        uses_tls(
            &connect(&with_sslmode(&admin_dsn(), "require"), Some(&ca), &Default::default()).await.unwrap()
        )
        .await
    );
    // verify-full: the name must be in the certificate. Debian's snakeoil certificate names the
    // machine (or `localhost`), not 127.0.0.1.
    let names = [
        "localhost".to_string(),
        std::fs::read_to_string("/etc/hostname").unwrap_or_default().trim().to_string(),
    ];
    let host = url::Url::parse(&admin_dsn()).unwrap().host_str().unwrap().to_string();
    if host.parse::<std::net::IpAddr>().is_ok() {
        let err = connect(&with_sslmode(&admin_dsn(), "verify-full"), Some(&ca), &Default::default())
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
    }
    let mut verified = false;
    for name in names.iter().filter(|n| !n.is_empty()) {
        let mut url = url::Url::parse(&with_sslmode(&admin_dsn(), "verify-full")).unwrap();
        url.set_host(Some(name)).unwrap();
        if let Ok(conn) = connect(url.as_str(), Some(&ca), &Default::default()).await {
            verified = uses_tls(&conn).await;
            break;
        }
    }
    if !verified {
        eprintln!("NOTE: the server certificate names none of {names:?}: verify-full success not verified");
    }
}

/// What the server said reaches the condition's message: a missing database is named.
#[tokio::test]
async fn errors_say_what_the_server_said() {
    let p = PgProvisioner::default();
    let mut url = url::Url::parse(&admin_dsn()).unwrap();
    url.set_path("/*");
    let g = DatabaseGrant { name: unique("e"), password: "pw".into(), password_current: false };
    let err = p.ensure(url.as_str(), &g).await.unwrap_err().to_string();
    assert!(err.contains("database \"*\" does not exist"), "{err}");
    let mut closed = url::Url::parse(&admin_dsn()).unwrap();
    closed.set_port(Some(1)).unwrap();
    let err = p.ensure(closed.as_str(), &g).await.unwrap_err().to_string();
    assert!(
        err.contains("error connecting to server")
            && err.len() > "database server: error connecting to server".len(),
        "{err}"
    );
}

/// The embedded database's backup path (docs/operations.md, "Backups"): a service database
/// dumped with the documented `pg_dump` command (custom format, run as the superuser) and
/// restored with the documented `pg_restore` command into a fresh database of a new
/// provisioning (another role): tables, rows and sequences come back, owned by the new role.
#[tokio::test]
async fn a_service_database_dumps_and_restores_with_the_documented_commands() {
    let p = PgProvisioner::default();
    let source =
        DatabaseGrant { name: unique("dump"), password: "pw-source".into(), password_current: false };
    let target =
        DatabaseGrant { name: unique("restore"), password: "pw-target".into(), password_current: false };
    let source_url = p.ensure(&admin_dsn(), &source).await.unwrap();
    let db = connect(&source_url, None, &Default::default()).await.unwrap();
    db.batch_execute(
        "CREATE TABLE products (id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL, price_cents BIGINT NOT NULL);
         INSERT INTO products (name, price_cents) VALUES ('tea', 450), ('coffee', 390), ('mate', 520);",
    )
    .await
    .unwrap();
    drop(db);
    let dir = std::env::temp_dir().join(unique("dumpdir"));
    std::fs::create_dir_all(&dir).unwrap();
    let dump = dir.join("service.dump");
    let with_db = |db: &str| {
        let mut u = url::Url::parse(&admin_dsn()).unwrap();
        u.set_path(&format!("/{db}"));
        u.to_string()
    };
    // As in docs/operations.md: pg_dump --format=custom --no-owner --no-privileges <db>.
    let out = std::process::Command::new("pg_dump")
        .args(["--format=custom", "--no-owner", "--no-privileges", "--dbname"])
        .arg(with_db(&source.name))
        .arg("--file")
        .arg(&dump)
        .output()
        .expect("pg_dump runs");
    assert!(out.status.success(), "pg_dump: {}", String::from_utf8_lossy(&out.stderr));
    // A fresh database for the service (the operator provisions it), then
    // pg_restore --no-owner --no-privileges --role=<service role> --dbname <db> <file>.
    let target_url = p.ensure(&admin_dsn(), &target).await.unwrap();
    let out = std::process::Command::new("pg_restore")
        .args(["--no-owner", "--no-privileges", "--exit-on-error"])
        .arg(format!("--role={}", target.name))
        .arg("--dbname")
        .arg(with_db(&target.name))
        .arg(&dump)
        .output()
        .expect("pg_restore runs");
    assert!(out.status.success(), "pg_restore: {}", String::from_utf8_lossy(&out.stderr));
    // The service's own role reads the data and owns the table; the sequence continues.
    let db = connect(&target_url, None, &Default::default()).await.unwrap();
    let rows = db.query("SELECT name, price_cents FROM products ORDER BY id", &[]).await.unwrap();
    let got: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(got, vec![("tea".into(), 450), ("coffee".into(), 390), ("mate".into(), 520)]);
    let owner: String = db
        .query_one("SELECT tableowner::text FROM pg_tables WHERE tablename = 'products'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, target.name);
    let next: i64 = db
        .query_one("INSERT INTO products (name, price_cents) VALUES ('cocoa', 300) RETURNING id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, 4);
    drop(db);
    p.drop_database(&admin_dsn(), &source.name).await.unwrap();
    p.drop_database(&admin_dsn(), &target.name).await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
