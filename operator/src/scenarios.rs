//! Reconcile flows against a scripted API server: in the strict scenarios every request the
//! reconciler makes is asserted in order (method, path, field manager) and answered, and a
//! request too many or too few fails the test; the others run against [`FakeApi`], a small
//! stateful stand-in, and assert on what was written. The same flows run against a real control
//! plane in `tests/cluster`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use contract::ServiceName;
use http::Method;
use kube::runtime::controller::Action;
use serde_json::{json, Value};

use crate::controller::{error_policy, reconcile, Context};
use crate::crd::{Phase, ShopPlatform, ShopPlatformStatus};
use crate::fixtures::*;
use crate::names::FINALIZER;

const NAME: &str = "mini";
const ADMIN_DSN: &str = "postgres://admin:pw@db.example:5432/postgres";

const BROKERS: &str = "kafka-0.example:9092,kafka-1.example:9092";

/// External database, Kafka and Redis, so the script has no StatefulSet; one replica per service.
fn spec() -> Value {
    json!({
        "version": "0.1.0",
        "database": {"mode": "external", "external": {"adminSecretRef": {"name": "pg-admin", "key": "dsn"}}},
        "kafka": {"mode": "external", "bootstrapServers": BROKERS},
        "redis": {"mode": "external", "urlSecretRef": {"name": "redis", "key": "url"}},
        "payment": {"provider": "simulated"},
        "networkPolicies": {"enabled": false},
    })
}

fn cat<const N: usize>(parts: [Vec<Step>; N]) -> Vec<Step> {
    parts.into_iter().flatten().collect()
}

fn finalized(mut sp: ShopPlatform) -> ShopPlatform {
    sp.metadata.finalizers = Some(vec![FINALIZER.to_string()]);
    sp
}

/// The contract's services that own a database, in the contract's (= reconcile) order.
fn db_services() -> Vec<ServiceName> {
    ServiceName::ALL.into_iter().filter(|s| s.has_database()).collect()
}

/// The signing key, the internal credential, then one role password per database service.
fn generated_secret_names() -> Vec<String> {
    let mut names = vec![format!("{NAME}-jwt-signing-key"), format!("{NAME}-internal-credential")];
    names.extend(db_services().into_iter().map(|s| format!("{NAME}-{s}-db-password")));
    names
}

/// The objects of a previous run by path (`None`: a first creation, nothing exists).
type Live = Option<BTreeMap<String, Value>>;

/// Read an object: found in `live`, or missing.
fn read(live: &Live, path: String) -> Step {
    match live.as_ref().and_then(|l| l.get(&path)) {
        Some(obj) => get_found(path, obj.clone()),
        None => get_missing(path),
    }
}

/// An object the operator applies: read, and applied only when it does not exist yet.
fn ensure(live: &Live, path: String, reply: Reply) -> Vec<Step> {
    match live.as_ref().and_then(|l| l.get(&path)) {
        Some(obj) => vec![get_found(path, obj.clone())],
        None => applied(path, reply),
    }
}

/// The generated Secrets: created (first run) or found.
fn secret_steps(live: &Live) -> Vec<Step> {
    generated_secret_names()
        .into_iter()
        .flat_map(|n| match live {
            None => create_secret(&n),
            Some(_) => vec![read(live, core("secrets", &n))],
        })
        .collect()
}

/// The admin DSN, then per database service its connection Secret (read, written when new).
fn database_steps(live: &Live) -> Vec<Step> {
    let mut steps = vec![existing_secret("pg-admin", "dsn", ADMIN_DSN)];
    for s in db_services() {
        steps.extend(ensure(live, core("secrets", &format!("{NAME}-{s}-db")), Reply::Echo));
    }
    steps
}

/// The Secret the spec names (Redis), read for the pods' secrets hash.
fn referenced_steps() -> Vec<Step> {
    vec![existing_secret("redis", "url", "redis://r.example:6379")]
}

/// ConfigMap, Service, [migration Job], Deployment (`ready` of `replicas` available), [its pods
/// when not available], PDB, HPA.
fn service_steps(live: &Live, service: ServiceName, ready: i32, pdb: bool) -> Vec<Step> {
    let name = format!("{NAME}-{service}");
    let mut steps = cat([
        ensure(live, core("configmaps", &format!("{name}-config")), Reply::Echo),
        ensure(live, core("services", &name), Reply::Echo),
    ]);
    if service.has_database() {
        let job = group("batch/v1", "jobs", &format!("{name}-migrate-0-1-0"));
        steps.extend(ensure(live, job, with_status(json!({"succeeded": 1}))));
    }
    steps.extend(ensure(live, group("apps/v1", "deployments", &name), with_status(rollout_status(1, ready))));
    if ready < 1 {
        steps.push(pods_listed());
    }
    let pdb_path = group("policy/v1", "poddisruptionbudgets", &name);
    steps.extend(if pdb { ensure(live, pdb_path, Reply::Echo) } else { vec![read(live, pdb_path)] });
    steps.push(read(live, group("autoscaling/v2", "horizontalpodautoscalers", &name)));
    steps
}

fn services_steps(live: &Live, ready: i32) -> Vec<Step> {
    ServiceName::ALL.into_iter().flat_map(|s| service_steps(live, s, ready, false)).collect()
}

/// The Ingress (none), then the NetworkPolicies (disabled: only listed, none to delete).
fn ingress_steps(live: &Live) -> Vec<Step> {
    vec![
        read(live, group("networking.k8s.io/v1", "ingresses", &format!("{NAME}-gateway"))),
        network_policies_listed(),
    ]
}

/// `ready/total` over every service of the contract.
fn ready_of(ready: usize) -> String {
    format!("{ready}/{}", ServiceName::ALL.len())
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

/// A [`FakeApi`] holding `objects` and the platform itself (status patches answer it).
fn fake(mut objects: BTreeMap<String, Value>) -> FakeApi {
    objects.insert(platform_path(NAME), platform_reply(Value::Null));
    FakeApi::new(objects)
}

async fn run(ctx: &Arc<Context>, sp: ShopPlatform) -> crate::Result<Action> {
    tokio::time::timeout(Duration::from_secs(10), reconcile(Arc::new(sp), ctx.clone()))
        .await
        .expect("reconcile finished (a request beyond the script hangs it)")
}

async fn seen(h: tokio::task::JoinHandle<Vec<Seen>>) -> Vec<Seen> {
    tokio::time::timeout(Duration::from_secs(10), h).await.expect("script finished").expect("verifier")
}

async fn served(h: tokio::task::JoinHandle<(Vec<Seen>, FakeApi)>) -> (Vec<Seen>, FakeApi) {
    tokio::time::timeout(Duration::from_secs(10), h).await.expect("fake finished").expect("fake")
}

fn status_of(seen: &[Seen]) -> ShopPlatformStatus {
    let body = &seen.iter().rev().find(|s| s.path.ends_with("/status")).expect("a status patch").body;
    serde_json::from_value(body["status"].clone()).unwrap()
}

fn condition<'a>(status: &'a ShopPlatformStatus, type_: &str) -> &'a crate::crd::Condition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap_or_else(|| panic!("condition {type_}"))
}

fn events_of(seen: &[Seen]) -> Vec<(String, String)> {
    seen.iter()
        .filter(|s| s.path.ends_with("/events") && s.method == Method::POST)
        .map(|s| {
            (
                s.body["type"].as_str().unwrap_or_default().into(),
                s.body["reason"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

/// A platform as a previous run left it: the objects it created, and its status.
struct Created {
    sp: ShopPlatform,
    seen: Vec<Seen>,
    live: BTreeMap<String, Value>,
}

/// Runs the first-creation flow and returns the platform as the API server would then hold it.
async fn created() -> Created {
    let db = Arc::new(FakeDb::default());
    let topics = Arc::new(FakeTopics::default());
    let (ctx, api) = Context::test_with(db.clone(), topics.clone());
    let none: Live = None;
    let steps = cat([
        secret_steps(&none),
        vec![event()],
        database_steps(&none),
        referenced_steps(),
        services_steps(&none, 1),
        ingress_steps(&none),
        vec![status_patch(), event()],
    ]);
    let script = api.run(steps);
    let action = run(&ctx, finalized(platform(NAME, spec()))).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let seen = seen(script).await;
    let ensured: Vec<String> =
        db_services().into_iter().map(|s| format!("ensure testns_mini_{s} via {ADMIN_DSN}")).collect();
    assert_eq!(*db.calls.lock().unwrap(), ensured);
    // The contract's topics and their dead-letter topics, at the spec's brokers.
    let calls = topics.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let (bootstrap, specs) = &calls[0];
    assert_eq!(bootstrap, BROKERS);
    let names: Vec<&str> = specs.iter().map(|t| t.name.as_str()).collect();
    for t in contract::events::topics::ALL {
        assert!(names.contains(&format!("mini-{t}").as_str()), "{t} in {names:?}");
    }
    assert_eq!(names.len(), expected_topic_count(), "{names:?}");
    assert!(names.contains(&"mini-orders.dlq.payment"), "{names:?}");
    assert!(names.contains(&"mini-shipments.dlq.notification"), "{names:?}");
    assert!(specs
        .iter()
        .all(|t| t.partitions == 6 && t.replication_factor == 1 && t.retention_ms == 168 * 3_600_000));
    let mut sp = finalized(platform(NAME, spec()));
    sp.status = Some(status_of(&seen));
    let live = store_of(&seen);
    Created { sp, seen, live }
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
    let Created { sp, seen, .. } = created().await;
    let status = sp.status.unwrap();
    assert_eq!(status.phase, Some(Phase::Ready));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(status.ready_services, Some(ready_of(ServiceName::ALL.len())));
    assert_eq!(status.services.len(), ServiceName::ALL.len());
    for c in &status.conditions {
        assert_eq!(c.status, "True", "{c:?}");
    }
    let kafka = condition(&status, "KafkaReady");
    assert_eq!(kafka.reason, "Provisioned");
    let present = format!("external mode: {} topics present", expected_topic_count());
    assert!(kafka.message.starts_with(&present), "{}", kafka.message);
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
    // (`kit::auth::SigningKey::from_pem` reads it with the same call.)
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    let pem = std::str::from_utf8(&pem).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim()).expect("valid signing key");
    // The connection Secret carries the provisioned URL.
    let conn = &seen
        .iter()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/secrets/mini-auth-db"))
        .unwrap()
        .body;
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
    // The pods' template carries the hash of the Secrets they read.
    let d = &seen
        .iter()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/deployments/mini-auth"))
        .unwrap()
        .body;
    let hash = &d["spec"]["template"]["metadata"]["annotations"]["platform.shop/secrets-hash"];
    assert_eq!(hash.as_str().map(str::len), Some(16), "{hash}");
}

/// A resync of a platform that is as it should be reads, and writes nothing: no apply, no
/// status, no event; the databases are only checked (their passwords are current).
#[tokio::test]
async fn steady_state_makes_no_write() {
    let Created { sp, live, .. } = created().await;
    let db = Arc::new(FakeDb::default());
    let (ctx, api) = Context::test(db.clone());
    let live: Live = Some(live);
    let script = api.run(cat([
        secret_steps(&live),
        database_steps(&live),
        referenced_steps(),
        services_steps(&live, 1),
        ingress_steps(&live),
    ]));
    let action = run(&ctx, sp).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
    let seen = seen(script).await;
    assert!(seen.iter().all(|s| s.method == Method::GET), "only reads");
    let calls = db.calls.lock().unwrap().clone();
    assert!(calls.iter().all(|c| c.ends_with("(password current)")), "{calls:?}");
}

/// Someone scaled a Deployment by hand (`kubectl scale` takes over `spec.replicas`): the
/// operator applies its desired state again; nothing else is written.
#[tokio::test]
async fn drift_is_repaired_by_reapplying_the_desired_state() {
    let Created { sp, mut live, .. } = created().await;
    let path = group("apps/v1", "deployments", "mini-catalog");
    let d = live.get_mut(&path).unwrap();
    d["spec"]["replicas"] = json!(5);
    d["metadata"]["managedFields"][0]["fieldsV1"]["f:spec"].as_object_mut().unwrap().remove("f:replicas");
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let (seen, _) = {
        let h = api.serve(fake(live));
        run(&ctx, sp).await.unwrap();
        served(h).await
    };
    let writes: Vec<_> = seen.iter().filter(|s| s.method != Method::GET).collect();
    assert_eq!(writes.len(), 1, "{:?}", writes.iter().map(|s| &s.path).collect::<Vec<_>>());
    assert_eq!(writes[0].path, path);
    assert_eq!(writes[0].body["spec"]["replicas"], 1);
    assert_eq!(writes[0].body["spec"]["template"]["spec"]["containers"][0]["image"], "shop:0.1.0");
}

/// More replicas: the Deployment scales, gets a PodDisruptionBudget, and the platform is
/// Progressing (not Degraded) while the new pods start.
#[tokio::test]
async fn a_replica_change_scales_adds_a_pdb_and_is_progressing() {
    let Created { mut sp, live, .. } = created().await;
    sp.spec
        .services
        .insert(ServiceName::Catalog, crate::crd::ServiceSpec { replicas: 3, ..Default::default() });
    sp.metadata.generation = Some(2);
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let mut fake = fake(live);
    // The Deployment controller has made one of three.
    fake.status = Box::new(|path, _| {
        path.ends_with("/deployments/mini-catalog").then(|| {
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]})
        })
    });
    let h = api.serve(fake);
    let action = run(&ctx, sp).await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(15)));
    let (seen, _) = served(h).await;
    let catalog = seen
        .iter()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/deployments/mini-catalog"))
        .unwrap();
    assert_eq!(catalog.body["spec"]["replicas"], 3);
    assert!(seen
        .iter()
        .any(|s| s.method == Method::PATCH && s.path.ends_with("/poddisruptionbudgets/mini-catalog")));
    let status = status_of(&seen);
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.phase, Some(Phase::Progressing), "was Ready, now scaling out");
    assert_eq!(status.ready_services, Some(ready_of(ServiceName::ALL.len() - 1)));
    let services = condition(&status, "ServicesReady");
    assert_eq!((services.status.as_str(), services.reason.as_str()), ("False", "Progressing"));
    assert_eq!(events_of(&seen), vec![("Normal".to_string(), "Progressing".to_string())]);
}

/// An API error in one step: the rest of the pass runs, the status says what failed, a Warning
/// event, and the reconcile fails (so it backs off).
#[tokio::test]
async fn an_api_error_is_reported_in_the_status_and_backs_off() {
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let boom =
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": "boom", "code": 500});
    let mut fake = fake(BTreeMap::new());
    fake.overrides.push((Method::GET, core("secrets", "mini-jwt-signing-key"), 500, boom));
    let h = api.serve(fake);
    let sp = Arc::new(finalized(platform(NAME, spec())));
    let err = run(&ctx, (*sp).clone()).await.unwrap_err();
    let (seen, _) = served(h).await;
    assert_eq!(err.metric_label(), "kube_api");
    let status = status_of(&seen);
    let secrets = condition(&status, "SecretsReady");
    assert_eq!((secrets.status.as_str(), secrets.reason.as_str()), ("False", "ApiError"));
    assert!(secrets.message.contains("boom"), "{}", secrets.message);
    assert_eq!(status.phase, Some(Phase::Degraded));
    let events = events_of(&seen);
    assert!(events.contains(&("Warning".into(), "Degraded".into())), "{events:?}");
    assert!(events.contains(&("Warning".into(), "ReconcileFailed".into())), "{events:?}");
    // Services without a database were rolled out regardless.
    assert!(seen.iter().any(|s| s.method == Method::PATCH && s.path.ends_with("/deployments/mini-gateway")));
    assert_eq!(error_policy(sp.clone(), &err, ctx.clone()), Action::requeue(Duration::from_secs(5)));
    assert_eq!(error_policy(sp.clone(), &err, ctx.clone()), Action::requeue(Duration::from_secs(10)));
    assert_eq!(error_policy(sp, &err, ctx), Action::requeue(Duration::from_secs(20)));
}

/// A forbidden request is a `Forbidden` condition naming the refused request.
#[tokio::test]
async fn a_forbidden_request_is_a_forbidden_condition() {
    let Created { sp, live, .. } = created().await;
    let mut sp = sp;
    sp.spec.ingress = serde_json::from_value(json!({"enabled": true, "host": "shop.example.com"})).unwrap();
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let mut fake = fake(live);
    let path = group("networking.k8s.io/v1", "ingresses", "mini-gateway");
    let denied = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
        "message": "ingresses.networking.k8s.io \"mini-gateway\" is forbidden: User \"system:serviceaccount:x:y\" cannot get resource \"ingresses\""});
    fake.overrides.push((Method::GET, path, 403, denied));
    let h = api.serve(fake);
    let err = run(&ctx, sp).await.unwrap_err();
    let (seen, _) = served(h).await;
    assert!(err.is_forbidden());
    let status = status_of(&seen);
    let services = condition(&status, "ServicesReady");
    assert_eq!((services.status.as_str(), services.reason.as_str()), ("False", "Forbidden"));
    assert!(services.message.contains("cannot get resource \"ingresses\""), "{}", services.message);
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert!(events_of(&seen).contains(&("Warning".into(), "Forbidden".into())));
}

#[tokio::test]
async fn a_database_failure_is_reported_in_the_status_and_retried() {
    let db = Arc::new(FakeDb { fail: true, ..Default::default() });
    let (ctx, api) = Context::test(db);
    let mut objects = BTreeMap::new();
    objects.insert(core("secrets", "pg-admin"), json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-admin"}, "data": {"dsn": "cG9zdGdyZXM6Ly9hQGIvYw=="}}));
    let h = api.serve(fake(objects));
    let err = run(&ctx, finalized(platform(NAME, spec()))).await.unwrap_err();
    assert_eq!(err.metric_label(), "database");
    let (seen, _) = served(h).await;
    let status = status_of(&seen);
    assert_eq!(status.phase, Some(Phase::Degraded));
    assert_eq!(condition(&status, "DatabaseReady").reason, "ProvisioningFailed");
    assert!(!seen.iter().any(|s| s.path.contains("/jobs/")), "no migration without a database");
    // Services with a database are not rolled out; the gateway is.
    assert!(!seen.iter().any(|s| s.method == Method::PATCH && s.path.ends_with("/deployments/mini-auth")));
    assert!(seen.iter().any(|s| s.method == Method::PATCH && s.path.ends_with("/deployments/mini-gateway")));
}

fn deleting(mut sp: ShopPlatform) -> ShopPlatform {
    sp.metadata.deletion_timestamp =
        Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time("2026-01-01T00:00:00Z".parse().unwrap()));
    sp
}

#[tokio::test]
async fn deletion_with_retain_keeps_databases_and_removes_the_finalizer() {
    let Created { sp, .. } = created().await;
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
    let Created { mut sp, .. } = created().await;
    sp.spec.deletion_policy = crate::crd::DeletionPolicy::Delete;
    let db = Arc::new(FakeDb::default());
    let topics = Arc::new(FakeTopics::default());
    let (ctx, api) = Context::test_with(db.clone(), topics.clone());
    let script = api.run(vec![
        status_patch(),
        existing_secret("pg-admin", "dsn", ADMIN_DSN),
        event(),
        finalizer_patch(),
    ]);
    run(&ctx, deleting(sp.clone())).await.unwrap();
    let seen = seen(script).await;
    let dropped: Vec<String> =
        db_services().into_iter().map(|s| format!("drop testns_mini_{s} via {ADMIN_DSN}")).collect();
    assert_eq!(*db.calls.lock().unwrap(), dropped);
    // The platform's topics and dead-letter topics are deleted at the external brokers.
    let deleted = topics.deleted.lock().unwrap().clone();
    assert_eq!(deleted, vec![(BROKERS.to_string(), crate::provision::topic_names(&sp))]);
    assert_eq!(deleted[0].1.len(), expected_topic_count());
    let message = seen[2].body["note"].as_str().unwrap_or_default().to_string();
    assert!(message.contains(&format!("deleted {} topics", expected_topic_count())), "{}", seen[2].body);
}

#[tokio::test]
async fn deletion_with_retain_keeps_topics() {
    let Created { sp, .. } = created().await;
    let topics = Arc::new(FakeTopics::default());
    let (ctx, api) = Context::test_with(Arc::new(FakeDb::default()), topics.clone());
    let script = api.run(vec![status_patch(), event(), finalizer_patch()]);
    run(&ctx, deleting(sp)).await.unwrap();
    seen(script).await;
    assert!(topics.deleted.lock().unwrap().is_empty(), "Retain deletes no topic");
}

/// The services' event-bus and Redis wiring, from the kit's contract keys.
#[tokio::test]
async fn services_get_the_event_bus_and_redis_from_the_spec() {
    let Created { seen, .. } = created().await;
    let cm = &seen
        .iter()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/configmaps/mini-catalog-config"))
        .unwrap()
        .body;
    use contract::events::env;
    assert_eq!(cm["data"][env::BUS], "kafka");
    assert_eq!(cm["data"][env::BROKERS], BROKERS);
    assert_eq!(cm["data"][env::TOPIC_PREFIX], "mini-");
    let d = &seen
        .iter()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/deployments/mini-gateway"))
        .unwrap()
        .body;
    let env = d["spec"]["template"]["spec"]["containers"][0]["env"].as_array().unwrap();
    let redis = env.iter().find(|e| e["name"] == "SHOP_REDIS_URL").expect("SHOP_REDIS_URL");
    assert_eq!(redis["valueFrom"]["secretKeyRef"], json!({"name": "redis", "key": "url"}));
}

fn embedded_spec() -> Value {
    let mut s = spec();
    s["kafka"] = json!({"mode": "embedded", "topics": {"replicationFactor": 3}});
    s["redis"] = json!({"mode": "embedded"});
    s
}

/// Embedded Kafka: the broker first; topics only once it is ready (with replication factor 1,
/// whatever the spec says: one node). Embedded Redis: its Service and Deployment.
#[tokio::test]
async fn embedded_kafka_and_redis_are_applied_and_topics_wait_for_the_broker() {
    for broker_ready in [0, 1] {
        let topics = Arc::new(FakeTopics::default());
        let (ctx, api) = Context::test_with(Arc::new(FakeDb::default()), topics.clone());
        let mut objects = BTreeMap::new();
        objects.insert(core("secrets", "pg-admin"), json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pg-admin"}, "data": {"dsn": "cG9zdGdyZXM6Ly9hQGIvYw=="}}));
        let mut fake = fake(objects);
        fake.status = Box::new(move |path, _| {
            if path.ends_with("/statefulsets/mini-kafka") {
                Some(json!({"replicas": 1, "readyReplicas": broker_ready}))
            } else if path.contains("/jobs/") {
                Some(json!({"succeeded": 1}))
            } else if path.contains("/deployments/") {
                Some(rollout_status(1, 1))
            } else {
                None
            }
        });
        let h = api.serve(fake);
        run(&ctx, finalized(platform(NAME, embedded_spec()))).await.unwrap();
        let (seen, fake) = served(h).await;
        let kafka = condition(&status_of(&seen), "KafkaReady").clone();
        let calls = topics.calls.lock().unwrap().clone();
        for path in [
            core("services", "mini-kafka"),
            group("apps/v1", "statefulsets", "mini-kafka"),
            core("services", "mini-redis"),
            group("apps/v1", "deployments", "mini-redis"),
        ] {
            assert!(fake.objects.contains_key(&path), "{path} applied");
        }
        if broker_ready == 0 {
            assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("False", "Starting"));
            assert!(calls.is_empty(), "no topics before the broker is ready");
            assert_eq!(status_of(&seen).phase, Some(Phase::Provisioning));
        } else {
            assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("True", "Provisioned"));
            assert_eq!(calls[0].0, "mini-kafka.testns.svc:9092");
            assert!(calls[0].1.iter().all(|t| t.replication_factor == 1));
            assert_eq!(status_of(&seen).phase, Some(Phase::Ready));
        }
        let cm = &fake.objects[&core("configmaps", "mini-auth-config")];
        assert_eq!(cm["data"]["SHOP_EVENTS__BROKERS"], "mini-kafka.testns.svc:9092");
        assert_eq!(cm["data"]["SHOP_REDIS_URL"], "redis://mini-redis.testns.svc:6379");
    }
}

/// A topic failure is reported (phase Degraded), does not stop the services, and is retried.
#[tokio::test]
async fn a_topic_failure_is_reported_and_retried() {
    let Created { sp, live, .. } = created().await;
    let topics = Arc::new(FakeTopics { fail: Some("broker unreachable".into()), ..Default::default() });
    let (ctx, api) = Context::test_with(Arc::new(FakeDb::default()), topics);
    let h = api.serve(fake(live));
    let err = run(&ctx, sp).await.unwrap_err();
    assert_eq!(err.metric_label(), "kafka");
    let (seen, _) = served(h).await;
    let status = status_of(&seen);
    assert_eq!(status.phase, Some(Phase::Degraded));
    let kafka = condition(&status, "KafkaReady");
    assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("False", "ProvisioningFailed"));
    assert!(kafka.message.contains("broker unreachable"), "{}", kafka.message);
    let services = condition(&status, "ServicesReady");
    assert_eq!(services.status, "True", "services keep running");
}

/// Asking for fewer partitions changes nothing and says so.
#[tokio::test]
async fn fewer_partitions_are_reported_not_applied() {
    let Created { sp, live, .. } = created().await;
    let report = crate::provision::TopicReport {
        not_decreased: vec![("mini-orders".into(), 6, 3)],
        ..Default::default()
    };
    let topics = Arc::new(FakeTopics { report, ..Default::default() });
    let (ctx, api) = Context::test_with(Arc::new(FakeDb::default()), topics);
    let h = api.serve(fake(live));
    run(&ctx, sp).await.unwrap();
    let (seen, _) = served(h).await;
    let status = status_of(&seen);
    let kafka = condition(&status, "KafkaReady");
    assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("True", "PartitionsNotDecreased"));
    assert!(kafka.message.contains("mini-orders has 6, spec asks 3"), "{}", kafka.message);
}

/// Strimzi mode: one KafkaTopic per topic at the newest version the cluster serves
/// (`kafka.strimzi.io/v1`; `v1beta2` only where nothing newer is); KafkaReady follows their
/// status; owned by the platform only under `deletionPolicy: Delete`.
#[tokio::test]
async fn strimzi_mode_applies_kafka_topics() {
    for (served_versions, version, ready, policy) in [
        (json!(["v1", "v1beta2"]), "v1", true, "Retain"),
        (json!(["v1"]), "v1", false, "Delete"),
        (json!(["v1beta2"]), "v1beta2", true, "Retain"),
    ] {
        let mut spec = spec();
        spec["kafka"] = json!({"mode": "strimzi", "strimziCluster": "events"});
        spec["deletionPolicy"] = json!(policy);
        let topics = Arc::new(FakeTopics::default());
        let (ctx, api) = Context::test_with(Arc::new(FakeDb::default()), topics.clone());
        let names = crate::provision::topic_names(&platform(NAME, spec.clone()));
        assert_eq!(names.len(), expected_topic_count());
        let mut fake = fake(BTreeMap::new());
        let versions: Vec<Value> =
            served_versions.as_array().unwrap().iter().map(|v| json!({"groupVersion": format!("kafka.strimzi.io/{}", v.as_str().unwrap()), "version": v})).collect();
        fake.overrides.push((
            Method::GET,
            "/apis/kafka.strimzi.io".into(),
            200,
            json!({"kind": "APIGroup", "apiVersion": "v1", "name": "kafka.strimzi.io", "versions": versions}),
        ));
        fake.status = Box::new(move |path, _| {
            path.contains("/kafkatopics/").then(|| {
                if ready {
                    json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]})
                } else {
                    json!({"conditions": [{"type": "Ready", "status": "False", "message": "Number of partitions cannot be decreased"}]})
                }
            })
        });
        let h = api.serve(fake);
        let _ = run(&ctx, finalized(platform(NAME, spec.clone()))).await;
        let (seen, fake) = served(h).await;
        assert!(topics.calls.lock().unwrap().is_empty(), "no admin API in strimzi mode");
        let path = group(&format!("kafka.strimzi.io/{version}"), "kafkatopics", "mini-orders");
        let body = &fake.objects.get(&path).unwrap_or_else(|| panic!("{path} applied"));
        assert_eq!(body["apiVersion"], format!("kafka.strimzi.io/{version}"));
        assert_eq!(body["metadata"]["labels"]["strimzi.io/cluster"], "events");
        assert_eq!(body["spec"]["topicName"], "mini-orders");
        assert_eq!(
            body["metadata"]["ownerReferences"].is_array(),
            policy == "Delete",
            "{policy}: {}",
            body["metadata"]
        );
        let topic_objects = fake.objects.keys().filter(|p| p.contains("/kafkatopics/")).count();
        assert_eq!(topic_objects, expected_topic_count());
        let kafka = condition(&status_of(&seen), "KafkaReady").clone();
        if ready {
            assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("True", "Provisioned"));
        } else {
            assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("False", "Starting"));
            assert!(kafka.message.contains("cannot be decreased"), "{}", kafka.message);
        }
        let cm = &fake.objects[&core("configmaps", "mini-auth-config")];
        assert_eq!(cm["data"]["SHOP_EVENTS__BROKERS"], "events-kafka-bootstrap.testns.svc:9092");
    }
}

/// A succeeded migration Job is only read after that: a configuration change without a new
/// version (resources, pull policy) rolls the Deployments and leaves the Job alone.
#[tokio::test]
async fn a_config_change_without_a_new_version_leaves_the_migration_job() {
    let Created { mut sp, live, .. } = created().await;
    sp.spec.image_pull_policy = crate::crd::PullPolicy::Always;
    sp.metadata.generation = Some(2);
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let h = api.serve(fake(live));
    run(&ctx, sp).await.unwrap();
    let (seen, _) = served(h).await;
    assert!(!seen.iter().any(|s| s.path.contains("/jobs/") && s.method != Method::GET), "a Job was written");
    let deployments =
        seen.iter().filter(|s| s.method == Method::PATCH && s.path.contains("/deployments/")).count();
    assert_eq!(deployments, ServiceName::ALL.len());
}

/// A failed migration Job whose template changed since (e.g. its Secret env was fixed) is
/// deleted, so that the next pass creates it anew; a failed Job with the same template stays
/// (it failed for another reason: the platform is Degraded until someone looks).
#[tokio::test]
async fn a_failed_migration_job_with_a_changed_template_is_replaced() {
    for changed in [true, false] {
        let Created { sp, mut live, .. } = created().await;
        let path = group("batch/v1", "jobs", "mini-catalog-migrate-0-1-0");
        let job = live.get_mut(&path).unwrap();
        job["status"] = json!({"failed": 5, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]});
        if changed {
            job["metadata"]["annotations"]["platform.shop/template-hash"] = json!("0000000000000000");
        }
        let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
        let h = api.serve(fake(live));
        let _ = run(&ctx, sp.clone()).await;
        let (seen, _) = served(h).await;
        let deleted = seen.iter().any(|s| s.method == Method::DELETE && s.path == path);
        assert_eq!(deleted, changed, "changed template: {changed}");
        assert!(!seen.iter().any(|s| s.method == Method::PATCH && s.path == path), "a Job is never patched");
        let status = status_of(&seen);
        let m = condition(&status, "MigrationsReady");
        if changed {
            assert_eq!((m.status.as_str(), m.reason.as_str()), ("False", "Running"), "{m:?}");
        } else {
            assert_eq!((m.status.as_str(), m.reason.as_str()), ("False", "Failed"), "{m:?}");
            assert_eq!(status.phase, Some(Phase::Degraded));
        }
    }
}
