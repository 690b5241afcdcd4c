//! Reconcile flows against a scripted API server: every request the reconciler makes is
//! asserted in order (method, path, field manager) and answered; a request too many or too few
//! fails the test.

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

/// The admin DSN, then one connection Secret per database service.
fn database_steps() -> Vec<Step> {
    let mut steps = vec![existing_secret("pg-admin", "dsn", ADMIN_DSN)];
    steps.extend(
        db_services().into_iter().map(|s| apply(core("secrets", &format!("{NAME}-{s}-db")), Reply::Echo)),
    );
    steps
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

/// Every service of the contract in order (a migration Job for those with a database); the
/// services in `with_pdb` also get a PodDisruptionBudget.
fn services_steps(ready: i32, with_pdb: &[ServiceName]) -> Vec<Step> {
    ServiceName::ALL
        .into_iter()
        .flat_map(|s| service_steps(s.as_str(), s.has_database(), ready, with_pdb.contains(&s)))
        .collect()
}

fn all_services(ready: i32) -> Vec<Step> {
    services_steps(ready, &[])
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
    let topics = Arc::new(FakeTopics::default());
    let (ctx, api) = Context::test_with(db.clone(), topics.clone());
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
    assert_eq!(deployments.len(), ServiceName::ALL.len());
    for d in deployments {
        assert_eq!(d.body["spec"]["replicas"], 1);
        assert_eq!(d.body["spec"]["template"]["spec"]["containers"][0]["image"], "shop:0.1.0");
    }
}

#[tokio::test]
async fn a_replica_change_scales_adds_a_pdb_and_updates_the_status() {
    let (mut sp, _) = created().await;
    sp.spec.services.insert(
        contract::ServiceName::Catalog,
        crate::crd::ServiceSpec { replicas: 3, ..Default::default() },
    );
    sp.metadata.generation = Some(2);
    let (ctx, api) = Context::test(Arc::new(FakeDb::default()));
    let steps = cat([
        secret_steps(false),
        database_steps(),
        services_steps(1, &[ServiceName::Catalog]),
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
    assert_eq!(status.ready_services, Some(ready_of(ServiceName::ALL.len() - 1)));
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
    // The first database fails: no service with a database is migrated or rolled out (their
    // Deployments are only read), the others roll out as usual.
    for s in ServiceName::ALL {
        if !s.has_database() {
            steps.extend(service_steps(s.as_str(), false, 1, false));
            continue;
        }
        let name = format!("{NAME}-{s}");
        steps.push(apply(core("configmaps", &format!("{name}-config")), Reply::Echo));
        steps.push(apply(core("services", &name), Reply::Echo));
        steps.push(Step::new(
            Method::GET,
            group("apps/v1", "deployments", &name),
            Reply::Json(404, json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404})),
        ));
    }
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
    let (sp, _) = created().await;
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
    let (_, seen) = created().await;
    let cm = &seen.iter().find(|s| s.path.ends_with("/configmaps/mini-catalog-config")).unwrap().body;
    use contract::events::env;
    assert_eq!(cm["data"][env::BUS], "kafka");
    assert_eq!(cm["data"][env::BROKERS], BROKERS);
    assert_eq!(cm["data"][env::TOPIC_PREFIX], "mini-");
    let d = &seen.iter().find(|s| s.path.ends_with("/deployments/mini-gateway")).unwrap().body;
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
        let steps = cat([
            secret_steps(false),
            database_steps(),
            vec![
                apply(core("services", "mini-kafka"), Reply::Echo),
                apply(
                    group("apps/v1", "statefulsets", "mini-kafka"),
                    with_status(json!({"replicas": 1, "readyReplicas": broker_ready})),
                ),
                apply(core("services", "mini-redis"), Reply::Echo),
                apply(group("apps/v1", "deployments", "mini-redis"), Reply::Echo),
            ],
            all_services(1),
            vec![status_patch(), event()],
        ]);
        let script = api.run(steps);
        run(&ctx, finalized(platform(NAME, embedded_spec()))).await.unwrap();
        let seen = seen(script).await;
        let kafka = condition(&status_of(&seen), "KafkaReady").clone();
        let calls = topics.calls.lock().unwrap().clone();
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
        let cm = &seen.iter().find(|s| s.path.ends_with("/configmaps/mini-auth-config")).unwrap().body;
        assert_eq!(cm["data"]["SHOP_EVENTS__BROKERS"], "mini-kafka.testns.svc:9092");
        assert_eq!(cm["data"]["SHOP_REDIS_URL"], "redis://mini-redis.testns.svc:6379");
    }
}

/// A topic failure is reported (phase Degraded), does not stop the services, and is retried.
#[tokio::test]
async fn a_topic_failure_is_reported_and_retried() {
    let topics = Arc::new(FakeTopics { fail: Some("broker unreachable".into()), ..Default::default() });
    let (ctx, api) = Context::test_with(Arc::new(FakeDb::default()), topics);
    let script =
        api.run(cat([secret_steps(false), database_steps(), all_services(1), vec![status_patch(), event()]]));
    let err = run(&ctx, finalized(platform(NAME, spec()))).await.unwrap_err();
    assert_eq!(err.metric_label(), "kafka");
    let status = status_of(&seen(script).await);
    assert_eq!(status.phase, Some(Phase::Degraded));
    let kafka = condition(&status, "KafkaReady");
    assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("False", "ProvisioningFailed"));
    assert!(kafka.message.contains("broker unreachable"), "{}", kafka.message);
}

/// Asking for fewer partitions changes nothing and says so.
#[tokio::test]
async fn fewer_partitions_are_reported_not_applied() {
    let report = crate::provision::TopicReport {
        not_decreased: vec![("mini-orders".into(), 6, 3)],
        ..Default::default()
    };
    let topics = Arc::new(FakeTopics { report, ..Default::default() });
    let (ctx, api) = Context::test_with(Arc::new(FakeDb::default()), topics);
    let script =
        api.run(cat([secret_steps(false), database_steps(), all_services(1), vec![status_patch(), event()]]));
    run(&ctx, finalized(platform(NAME, spec()))).await.unwrap();
    let status = status_of(&seen(script).await);
    let kafka = condition(&status, "KafkaReady");
    assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("True", "PartitionsNotDecreased"));
    assert!(kafka.message.contains("mini-orders has 6, spec asks 3"), "{}", kafka.message);
}

/// Strimzi mode: one KafkaTopic per topic, server-side applied; KafkaReady follows their status.
#[tokio::test]
async fn strimzi_mode_applies_kafka_topics() {
    let mut spec = spec();
    spec["kafka"] = json!({"mode": "strimzi", "strimziCluster": "events"});
    for ready in [false, true] {
        let topics = Arc::new(FakeTopics::default());
        let (ctx, api) = Context::test_with(Arc::new(FakeDb::default()), topics.clone());
        let names = crate::provision::topic_names(&platform(NAME, spec.clone()));
        assert_eq!(names.len(), expected_topic_count());
        let topic_steps: Vec<Step> = names
            .iter()
            .map(|n| {
                let status = if ready {
                    json!({"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True"}]})
                } else {
                    json!({"conditions": [{"type": "Ready", "status": "False", "message": "Number of partitions cannot be decreased"}]})
                };
                apply(group("kafka.strimzi.io/v1beta2", "kafkatopics", n), with_status(status))
            })
            .collect();
        let script = api.run(cat([
            secret_steps(false),
            database_steps(),
            topic_steps,
            all_services(1),
            vec![status_patch(), event()],
        ]));
        run(&ctx, finalized(platform(NAME, spec.clone()))).await.unwrap();
        let seen = seen(script).await;
        assert!(topics.calls.lock().unwrap().is_empty(), "no admin API in strimzi mode");
        let body = &seen.iter().find(|s| s.path.ends_with("/kafkatopics/mini-orders")).unwrap().body;
        assert_eq!(body["metadata"]["labels"]["strimzi.io/cluster"], "events");
        assert_eq!(body["spec"]["topicName"], "mini-orders");
        let kafka = condition(&status_of(&seen), "KafkaReady").clone();
        if ready {
            assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("True", "Provisioned"));
        } else {
            assert_eq!((kafka.status.as_str(), kafka.reason.as_str()), ("False", "Starting"));
            assert!(kafka.message.contains("cannot be decreased"), "{}", kafka.message);
        }
        let cm = &seen.iter().find(|s| s.path.ends_with("/configmaps/mini-auth-config")).unwrap().body;
        assert_eq!(cm["data"]["SHOP_EVENTS__BROKERS"], "events-kafka-bootstrap.testns.svc:9092");
    }
}
