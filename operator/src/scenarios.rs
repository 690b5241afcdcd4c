//! Reconcile flows against a scripted API server: every request the reconciler makes is
//! asserted in order (method, path, field manager) and answered; a request too many or too few
//! fails the test.

use std::sync::Arc;
use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{json, Value};

use crate::controller::{error_policy, reconcile, Context};
use crate::crd::{Phase, ShopPlatform, ShopPlatformStatus};
use crate::fixtures::*;
use crate::names::FINALIZER;

const NAME: &str = "mini";
const ADMIN_DSN: &str = "postgres://admin:pw@db.example:5432/postgres";

/// External database, so the script has no StatefulSet; one replica per service.
fn spec() -> Value {
    json!({
        "version": "0.1.0",
        "database": {"mode": "external", "external": {"adminSecretRef": {"name": "pg-admin", "key": "dsn"}}},
    })
}

fn cat<const N: usize>(parts: [Vec<Step>; N]) -> Vec<Step> {
    parts.into_iter().flatten().collect()
}

fn finalized(mut sp: ShopPlatform) -> ShopPlatform {
    sp.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    sp
}

fn generated_secret_names() -> Vec<String> {
    vec![
        format!("{NAME}-jwt-signing-key"),
        format!("{NAME}-internal-credential"),
        format!("{NAME}-auth-db-password"),
        format!("{NAME}-catalog-db-password"),
    ]
}

/// The generated Secrets: created (first run) or found.
fn secret_steps(first: bool) -> Vec<Step> {
    generated_secret_names()
        .into_iter()
        .flat_map(|n| if first { create_secret(&n) } else { vec![existing_secret(&n, key_of(&n), "pw")] })
        .collect()
}

fn key_of(secret: &str) -> &'static str {
    if secret.ends_with("jwt-signing-key") {
        "private-key.pem"
    } else if secret.ends_with("internal-credential") {
        "credential"
    } else {
        "password"
    }
}

fn database_steps() -> Vec<Step> {
    vec![
        existing_secret("pg-admin", "dsn", ADMIN_DSN),
        apply(core("secrets", &format!("{NAME}-auth-db")), Reply::Echo),
        apply(core("secrets", &format!("{NAME}-catalog-db")), Reply::Echo),
    ]
}

/// ConfigMap, Service, [migration Job], Deployment (answering `ready` ready replicas), [PDB].
fn service_steps(service: &str, migrated: bool, ready: i32, pdb: bool) -> Vec<Step> {
    let name = format!("{NAME}-{service}");
    let mut steps = vec![
        apply(core("configmaps", &format!("{name}-config")), Reply::Echo),
        apply(core("services", &name), Reply::Echo),
    ];
    if migrated {
        steps.push(apply(
            group("batch/v1", "jobs", &format!("{name}-migrate-0-1-0")),
            with_status(json!({"succeeded": 1})),
        ));
    }
    steps.push(apply(
        group("apps/v1", "deployments", &name),
        with_status(json!({"replicas": 5, "readyReplicas": ready})),
    ));
    if pdb {
        steps.push(apply(group("policy/v1", "poddisruptionbudgets", &name), Reply::Echo));
    }
    steps
}

fn all_services(ready: i32) -> Vec<Step> {
    cat([
        service_steps("auth", true, ready, false),
        service_steps("catalog", true, ready, false),
        service_steps("gateway", false, ready, false),
    ])
}

/// The platform as the API server returns it after a patch.
fn platform_reply(status: Value) -> Value {
    let mut v = serde_json::to_value(finalized(platform(NAME, spec()))).unwrap();
    v["status"] = status;
    v
}

fn status_patch() -> Step {
    apply(
        format!("{}/status", platform_path(NAME)),
        Reply::EchoWith(Box::new(|body| platform_reply(body["status"].clone()))),
    )
}

fn finalizer_patch() -> Step {
    Step::new(Method::PATCH, platform_path(NAME), Reply::Json(200, platform_reply(Value::Null)))
}

async fn run(ctx: &Arc<Context>, sp: ShopPlatform) -> crate::Result<Action> {
    tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(sp), ctx.clone()))
        .await
        .expect("reconcile finished (a request beyond the script hangs it)")
}

async fn seen(h: tokio::task::JoinHandle<Vec<Seen>>) -> Vec<Seen> {
    tokio::time::timeout(Duration::from_secs(10), h).await.expect("script finished").expect("verifier")
}

fn status_of(seen: &[Seen]) -> ShopPlatformStatus {
    let body = &seen.iter().rev().find(|s| s.path.ends_with("/status")).expect("a status patch").body;
    serde_json::from_value(body["status"].clone()).unwrap()
}

fn condition<'a>(status: &'a ShopPlatformStatus, type_: &str) -> &'a crate::crd::Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("condition {type_}"))
}

/// Runs the first-creation flow and returns the platform as the API server would then hold it.
async fn created() -> (ShopPlatform, Vec<Seen>) {
    let db = Arc::new(FakeDb::default());
    let (ctx, api) = Context::test(db.clone());
    let steps = cat([
        secret_steps(true),
        vec![event()],
        database_steps(),
        all_services(1),
        vec![status_patch(), event()],
    ]);
    let script = api.run(steps);
    let action = run(&ctx, finalized(platform(NAME, spec()))).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let seen = seen(script).await;
    assert_eq!(db.calls.lock().unwrap().len(), 2);
    let mut sp = finalized(platform(NAME, spec()));
    sp.status = Some(status_of(&seen));
    (sp, seen)
}

#[tokio::test]
async fn a_new_platform_first_gets_the_finalizer() {
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let script = api.run(vec![finalizer_patch()]);
    let action = run(&ctx, platform(NAME, spec())).await.unwrap();
    assert_eq!(action, Action::await_change());
    let seen = seen(script).await;
    assert_eq!(
        seen[0].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers", "value": null},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ])
    );
}

#[tokio::test]
async fn first_creation_generates_secrets_provisions_migrates_and_rolls_out() {
    let (sp, seen) = created().await;
    let status = sp.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.ready_services.as_deref(), Some("3/3"));
    for c in &status.conditions {
        assert_eq!(c.status, "True", "{c:?}");
    }
    assert_eq!(condition(&status, "KafkaReady").reason, "NotRequired");
    // The signing key is an Ed25519 PKCS#8 PEM usable by the auth service.
    let jwt = &seen
        .iter()
        .find(|s| s.method == Method::POST && s.body["metadata"]["name"] == "mini-jwt-signing-key")
        .unwrap()
        .body;
    use base64::Engine;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(jwt["data"]["private-key.pem"].as_str().unwrap())
        .unwrap();
    kit::auth::SigningKey::from_pem(std::str::from_utf8(&pem).unwrap()).expect("valid signing key");
    // The connection Secret carries the provisioned URL.
    let conn = &seen.iter().find(|s| s.path.ends_with("/secrets/mini-auth-db")).unwrap().body;
    let url = base64::engine::general_purpose::STANDARD
        .decode(conn["data"]["DATABASE_URL"].as_str().unwrap())
        .unwrap();
    let pw = &seen
        .iter()
        .find(|s| s.method == Method::POST && s.body["metadata"]["name"] == "mini-auth-db-password")
        .unwrap()
        .body;
    let pw =
        base64::engine::general_purpose::STANDARD.decode(pw["data"]["password"].as_str().unwrap()).unwrap();
    let pw = String::from_utf8(pw).unwrap();
    assert_eq!(pw.len(), 32);
    assert_eq!(
        std::str::from_utf8(&url).unwrap(),
        format!("postgres://testns_mini_auth:{pw}@db.example:5432/testns_mini_auth"),
        "the role password is the generated one"
    );
    // Every applied object is owned by the platform.
    for s in seen.iter().filter(|s| s.method == Method::PATCH && !s.path.ends_with("/status")) {
        assert_eq!(s.body["metadata"]["ownerReferences"][0]["uid"], "uid-1", "{}", s.path);
    }
}

#[tokio::test]
async fn steady_state_reapplies_but_writes_no_status_and_no_event() {
    let (sp, _) = created().await;
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let script = api.run(cat([secret_steps(false), database_steps(), all_services(1)]));
    let action = run(&ctx, sp).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let seen = seen(script).await;
    assert!(seen.iter().all(|s| s.method == Method::GET || s.method == Method::PATCH));
    assert!(!seen.iter().any(|s| s.path.ends_with("/status")));
}

#[tokio::test]
async fn drift_is_repaired_by_reapplying_the_desired_state() {
    let (sp, _) = created().await;
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    // The live Deployments were scaled to 5 by hand (see `service_steps`' replies): the apply
    // states the desired replicas again, and the status is unchanged.
    let script = api.run(cat([secret_steps(false), database_steps(), all_services(1)]));
    run(&ctx, sp).await.unwrap();
    let seen = seen(script).await;
    let deployments: Vec<_> = seen.iter().filter(|s| s.path.contains("/deployments/")).collect();
    assert_eq!(deployments.len(), 3);
    for d in deployments {
        assert_eq!(d.body["spec"]["replicas"], 1);
        assert_eq!(d.body["spec"]["template"]["spec"]["containers"][0]["image"], "shop:0.1.0");
    }
}

#[tokio::test]
async fn a_replica_change_scales_adds_a_pdb_and_updates_the_status() {
    let (mut sp, _) = created().await;
    sp.spec.services.insert(
        kit::contract::ServiceName::Catalog,
        crate::crd::ServiceSpec { replicas: 3, ..Default::default() },
    );
    sp.metadata.generation = Some(2);
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let steps = cat([
        secret_steps(false),
        database_steps(),
        service_steps("auth", true, 1, false),
        service_steps("catalog", true, 1, true),
        service_steps("gateway", false, 1, false),
        vec![status_patch(), event()],
    ]);
    let script = api.run(steps);
    let action = run(&ctx, sp).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
    let seen = seen(script).await;
    let catalog = seen.iter().find(|s| s.path.ends_with("/deployments/mini-catalog")).unwrap();
    assert_eq!(catalog.body["spec"]["replicas"], 3);
    let status = status_of(&seen);
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.phase, Some(Phase::Degraded), "was Ready, now 1/3 catalog pods");
    assert_eq!(status.ready_services.as_deref(), Some("2/3"));
    let services = condition(&status, "ServicesReady");
    assert_eq!((services.status.as_str(), services.reason.as_str()), ("False", "Progressing"));
    let event = seen.last().unwrap();
    assert_eq!(event.body["type"], "Warning");
}

#[tokio::test]
async fn an_api_error_fails_the_reconcile_and_backs_off() {
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let boom =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "boom", "code": 500});
    let script = api.run(vec![Step::new(
        Method::GET,
        core("secrets", "mini-jwt-signing-key"),
        Reply::Json(500, boom),
    )]);
    let sp = Arc::new(finalized(platform(NAME, spec())));
    let err = run(&ctx, (*sp).clone()).await.unwrap_err();
    seen(script).await;
    assert_eq!(err.metric_label(), "kube_api");
    assert_eq!(error_policy(sp.clone(), &err, ctx.clone()), Action::requeue(Duration::from_secs(5)));
    assert_eq!(error_policy(sp.clone(), &err, ctx.clone()), Action::requeue(Duration::from_secs(10)));
    assert_eq!(error_policy(sp, &err, ctx), Action::requeue(Duration::from_secs(20)));
}

#[tokio::test]
async fn a_database_failure_is_reported_in_the_status_and_retried() {
    let db = Arc::new(FakeDb { fail: true, ..Default::default() });
    let (ctx, api) = Context::test(db);
    let mut steps = secret_steps(false);
    steps.push(existing_secret("pg-admin", "dsn", ADMIN_DSN));
    for s in ["auth", "catalog"] {
        let name = format!("{NAME}-{s}");
        steps.push(apply(core("configmaps", &format!("{name}-config")), Reply::Echo));
        steps.push(apply(core("services", &name), Reply::Echo));
        steps.push(Step::new(
            Method::GET,
            group("apps/v1", "deployments", &name),
            Reply::Json(404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})),
        ));
    }
    steps.extend(service_steps("gateway", false, 1, false));
    steps.extend([status_patch(), event()]);
    let script = api.run(steps);
    let err = run(&ctx, finalized(platform(NAME, spec()))).await.unwrap_err();
    assert_eq!(err.metric_label(), "database");
    let seen = seen(script).await;
    let status = status_of(&seen);
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(condition(&status, "DatabaseReady").reason, "ProvisioningFailed");
    assert!(!seen.iter().any(|s| s.path.contains("/jobs/")), "no migration without a database");
}

fn deleting(mut sp: ShopPlatform) -> ShopPlatform {
    sp.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
    sp
}

#[tokio::test]
async fn deletion_with_retain_keeps_databases_and_removes_the_finalizer() {
    let (sp, _) = created().await;
    let db = Arc::new(FakeDb::default());
    let (ctx, api) = Context::test(db.clone());
    let script = api.run(vec![status_patch(), event(), finalizer_patch()]);
    run(&ctx, deleting(sp)).await.unwrap();
    let seen = seen(script).await;
    assert_eq!(status_of(&seen).phase, Some(Phase::Deleting));
    assert_eq!(
        seen[2].body,
        json!([
            {"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
            {"op": "remove", "path": "/metadata/finalizers/0"},
        ])
    );
    assert!(db.calls.lock().unwrap().is_empty(), "Retain drops nothing");
}

#[tokio::test]
async fn deletion_with_delete_drops_databases_and_roles() {
    let (mut sp, _) = created().await;
    sp.spec.deletion_policy = crate::crd::DeletionPolicy::Delete;
    let db = Arc::new(FakeDb::default());
    let (ctx, api) = Context::test(db.clone());
    let script = api.run(vec![
        status_patch(),
        existing_secret("pg-admin", "dsn", ADMIN_DSN),
        event(),
        finalizer_patch(),
    ]);
    run(&ctx, deleting(sp)).await.unwrap();
    seen(script).await;
    assert_eq!(
        *db.calls.lock().unwrap(),
        vec![
            format!("drop testns_mini_auth via {ADMIN_DSN}"),
            format!("drop testns_mini_catalog via {ADMIN_DSN}")
        ]
    );
}
