//! The reconciler: level-triggered and idempotent. Every owned object is server-side applied with
//! one field manager; generated Secrets are created only when absent; the status is written only
//! when it changes.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contract::ServiceName;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;

use crate::builders::{self, GeneratedSecretSpec, SecretKind};
use crate::crd::KafkaMode;
use crate::crd::{DatabaseMode, DeletionPolicy, Phase, ServiceStatus, ShopPlatform, ShopPlatformStatus};
use crate::error::{Error, Result};
use crate::names::{self, FIELD_MANAGER, FINALIZER};
use crate::provision::{self, DatabaseGrant, DatabaseProvisioner, KafkaTarget, TopicProvisioner};
use crate::status::{self, reasons, types, Observed};

/// Requeue interval when all is well: the drift check for anything the watches miss.
pub const STEADY_REQUEUE: Duration = Duration::from_secs(300);
/// Requeue interval while something is still starting.
pub const PROGRESS_REQUEUE: Duration = Duration::from_secs(15);

/// Operator-wide settings of the reconciler (flags of the `shop-operator` binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Requeue interval when all is well (`--resync-interval`).
    pub steady_requeue: Duration,
    /// Requeue interval while something is starting or rolling out (`--progress-interval`).
    pub progress_requeue: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { steady_requeue: STEADY_REQUEUE, progress_requeue: PROGRESS_REQUEUE }
    }
}

/// Shared state of the reconciler.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub db: Arc<dyn DatabaseProvisioner>,
    pub topics: Arc<dyn TopicProvisioner>,
    pub settings: Settings,
    /// Consecutive failures per object, for the error backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(client: Client, db: Arc<dyn DatabaseProvisioner>, topics: Arc<dyn TopicProvisioner>) -> Self {
        Context::with_settings(client, db, topics, Settings::default())
    }

    pub fn with_settings(
        client: Client,
        db: Arc<dyn DatabaseProvisioner>,
        topics: Arc<dyn TopicProvisioner>,
        settings: Settings,
    ) -> Self {
        let reporter =
            Reporter { controller: FIELD_MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            db,
            topics,
            settings,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn failure_count(&self, key: &str, bump: bool) -> u32 {
        let mut f = self.failures.lock().expect("failures lock");
        if bump {
            let n = f.entry(key.to_string()).or_insert(0);
            *n += 1;
            *n
        } else {
            f.remove(key);
            0
        }
    }
}

fn object_key(sp: &ShopPlatform) -> String {
    format!("{}/{}", sp.namespace().unwrap_or_default(), sp.name_any())
}

/// Exponential backoff after `failures` consecutive failures: 5 s, 10 s, 20 s, … at most 5 min.
pub fn backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    Duration::from_secs(secs.min(300))
}

/// Reconciles one ShopPlatform.
pub async fn reconcile(sp: Arc<ShopPlatform>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let ns = sp.namespace().ok_or_else(|| Error::InvalidSpec("a ShopPlatform must be namespaced".into()))?;
    let api: Api<ShopPlatform> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer(&api, FINALIZER, sp.clone(), |event| async {
        match event {
            Finalizer::Apply(sp) => apply(&sp, &ctx).await,
            Finalizer::Cleanup(sp) => cleanup(&sp, &ctx).await,
        }
    })
    .await
    .map_err(Error::from);
    crate::metrics::reconciled(start.elapsed());
    if result.is_ok() {
        ctx.failure_count(&object_key(&sp), false);
    }
    result
}

/// Requeue with exponential backoff after an error.
pub fn error_policy(sp: Arc<ShopPlatform>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::metrics::failed(error.metric_label());
    let n = ctx.failure_count(&object_key(&sp), true);
    let delay = backoff(n);
    tracing::warn!(name = %sp.name_any(), %error, failures = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Server-side applies `obj` and returns what the API server made of it.
pub async fn apply_object<K>(client: &Client, obj: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let kind: &'static str = kind_name::<K>();
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(obj))
        .await
        .map_err(Error::kube("apply", kind, &name))
}

fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "Deployment" => "Deployment",
        "Service" => "Service",
        "ConfigMap" => "ConfigMap",
        "Secret" => "Secret",
        "Job" => "Job",
        "StatefulSet" => "StatefulSet",
        "Ingress" => "Ingress",
        "PodDisruptionBudget" => "PodDisruptionBudget",
        _ => "object",
    }
}

/// Deletes an object if it exists.
async fn delete_if_exists<K>(client: &Client, ns: &str, name: &str) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("delete", kind_name::<K>(), name)(e)),
    }
}

/// A new Ed25519 signing key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), the format the auth
/// service loads from `SHOP_AUTH__JWT_SIGNING_KEY` (`kit::auth::SigningKey::from_pem`).
pub fn signing_key_pem() -> String {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
        .to_pkcs8_pem(Default::default())
        .expect("Ed25519 keys encode as PKCS#8")
        .to_string()
}

fn generate(kind: SecretKind) -> String {
    use base64::Engine;
    use rand::distributions::{Alphanumeric, DistString};
    use rand::RngCore;
    match kind {
        SecretKind::SigningKey => signing_key_pem(),
        SecretKind::Token => {
            let mut bytes = [0u8; 32];
            rand::thread_rng().fill_bytes(&mut bytes);
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        }
        SecretKind::Password => Alphanumeric.sample_string(&mut rand::thread_rng(), 32),
    }
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    let from_data =
        secret.data.as_ref().and_then(|d| d.get(key)).map(|b| String::from_utf8_lossy(&b.0).into_owned());
    from_data.or_else(|| secret.string_data.as_ref().and_then(|d| d.get(key)).cloned())
}

/// Reads a Secret key; `Ok(None)` when the Secret or key does not exist.
async fn read_secret(client: &Client, ns: &str, name: &str, key: &str) -> Result<Option<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret = api.get_opt(name).await.map_err(Error::kube("get", "Secret", name))?;
    Ok(secret.and_then(|s| secret_value(&s, key)))
}

/// Creates the generated Secrets that do not exist yet (never touches existing ones) and
/// returns every generated value by Secret name, plus the names created now.
async fn ensure_generated_secrets(
    sp: &ShopPlatform,
    ctx: &Context,
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let ns = names::namespace(sp);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut values = BTreeMap::new();
    let mut created = Vec::new();
    for GeneratedSecretSpec { name, key, kind } in builders::generated_secrets(sp) {
        let existing = api.get_opt(&name).await.map_err(Error::kube("get", "Secret", &name))?;
        let value = match existing {
            Some(s) => secret_value(&s, key)
                .ok_or_else(|| Error::MissingSecret { name: name.clone(), key: key.into() })?,
            None => {
                let value = generate(kind);
                let secret = builders::generated_secret(sp, name.clone(), key, value.clone());
                // A 409 (created meanwhile) fails this run; the next one reads the winner's value.
                let pp = PostParams { field_manager: Some(FIELD_MANAGER.into()), ..Default::default() };
                api.create(&pp, &secret).await.map_err(Error::kube("create", "Secret", &name))?;
                created.push(name.clone());
                value
            }
        };
        values.insert(name, value);
    }
    Ok((values, created))
}

/// Outcome of the database step.
struct DatabaseOutcome {
    condition: Observed,
    /// Services whose database is provisioned and whose connection Secret is written.
    ready: Vec<ServiceName>,
    /// A provisioning error to report after the status is written.
    error: Option<Error>,
}

/// The admin DSN of the platform's PostgreSQL, or a condition saying why there is none yet.
async fn admin_dsn(
    sp: &ShopPlatform,
    ctx: &Context,
    secrets: &BTreeMap<String, String>,
) -> Result<Result<String, Observed>> {
    let ns = names::namespace(sp);
    let not_ready =
        |reason, msg: String| Ok(Err(Observed::new(types::DATABASE_READY, Some(false), reason, msg)));
    match sp.spec.database.mode {
        DatabaseMode::Embedded => {
            let svc = builders::postgres_service(sp).expect("embedded mode");
            apply_object(&ctx.client, &svc).await?;
            let sts = builders::postgres_statefulset(sp).expect("embedded mode");
            let applied: StatefulSet = apply_object(&ctx.client, &sts).await?;
            let ready = applied.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            if ready < 1 {
                return not_ready(
                    reasons::STARTING,
                    format!("waiting for StatefulSet {}", names::postgres(sp)),
                );
            }
            let password = secrets.get(&names::postgres_admin_secret(sp)).cloned().unwrap_or_default();
            let (host, port) = builders::postgres_host(sp);
            Ok(Ok(format!("postgres://postgres:{password}@{host}:{port}/postgres")))
        }
        DatabaseMode::Cloudnativepg => {
            let cluster = builders::cnpg_cluster(sp).expect("cloudnativepg mode");
            let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"));
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);
            let name = names::cnpg_cluster(sp);
            api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&cluster))
                .await
                .map_err(Error::kube("apply", "Cluster", &name))?;
            let secret = names::cnpg_superuser_secret(sp);
            match read_secret(&ctx.client, &ns, &secret, "uri").await? {
                Some(uri) => Ok(Ok(uri)),
                None => not_ready(reasons::STARTING, format!("waiting for CloudNativePG Secret {secret}")),
            }
        }
        DatabaseMode::External => {
            let Some(ext) = &sp.spec.database.external else {
                return Err(Error::InvalidSpec("database.mode external needs database.external".into()));
            };
            let r = &ext.admin_secret_ref;
            match read_secret(&ctx.client, &ns, &r.name, &r.key).await? {
                Some(dsn) => Ok(Ok(dsn.trim().to_string())),
                None => not_ready(
                    reasons::ADMIN_SECRET_MISSING,
                    format!("Secret {} with key {} not found", r.name, r.key),
                ),
            }
        }
    }
}

async fn ensure_databases(
    sp: &ShopPlatform,
    ctx: &Context,
    secrets: &BTreeMap<String, String>,
) -> Result<DatabaseOutcome> {
    let services: Vec<_> = sp.spec.enabled_services().into_iter().filter(|s| s.has_database()).collect();
    if services.is_empty() {
        return Ok(DatabaseOutcome {
            condition: Observed::new(
                types::DATABASE_READY,
                Some(true),
                reasons::NOT_REQUIRED,
                "no enabled service has a database",
            ),
            ready: Vec::new(),
            error: None,
        });
    }
    let dsn = match admin_dsn(sp, ctx, secrets).await? {
        Ok(dsn) => dsn,
        Err(condition) => return Ok(DatabaseOutcome { condition, ready: Vec::new(), error: None }),
    };
    let mut ready = Vec::new();
    for s in &services {
        let grant = DatabaseGrant {
            name: names::db_identifier(sp, *s),
            password: secrets.get(&names::db_password_secret(sp, *s)).cloned().unwrap_or_default(),
            password_current: false,
        };
        match ctx.db.ensure(&dsn, &grant).await {
            Ok(url) => {
                apply_object(&ctx.client, &builders::connection_secret(sp, *s, &url)).await?;
                ready.push(*s);
            }
            Err(e) => {
                let condition = Observed::new(
                    types::DATABASE_READY,
                    Some(false),
                    reasons::PROVISIONING_FAILED,
                    format!("database of {s}: {e}"),
                );
                return Ok(DatabaseOutcome { condition, ready, error: Some(Error::Database(e)) });
            }
        }
    }
    let names: Vec<_> = services.iter().map(|s| s.as_str()).collect();
    Ok(DatabaseOutcome {
        condition: Observed::new(
            types::DATABASE_READY,
            Some(true),
            reasons::PROVISIONED,
            format!("{} mode: databases of {}", sp.spec.database.mode.as_str(), names.join(", ")),
        ),
        ready,
        error: None,
    })
}

/// State of a migration Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Migration {
    Succeeded,
    Running,
    Failed,
}

fn migration_state(job: &Job) -> Migration {
    let status = job.status.clone().unwrap_or_default();
    let failed_condition =
        status.conditions.unwrap_or_default().iter().any(|c| c.type_ == "Failed" && c.status == "True");
    if status.succeeded.unwrap_or(0) > 0 {
        Migration::Succeeded
    } else if failed_condition {
        Migration::Failed
    } else {
        Migration::Running
    }
}

/// Publishes an event; a failure to publish never fails the reconcile.
async fn publish(
    ctx: &Context,
    sp: &ShopPlatform,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&ev, &sp.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "publishing event failed");
    }
}

async fn apply(sp: &ShopPlatform, ctx: &Context) -> Result<Action> {
    let ns = names::namespace(sp);
    let client = &ctx.client;
    let previous = sp.status.clone();
    let prev_services = previous.as_ref().map(|s| s.services.clone()).unwrap_or_default();
    let mut observed = Vec::new();

    // 1. Generated Secrets: created once, never regenerated.
    let (secrets, created) = ensure_generated_secrets(sp, ctx).await?;
    observed.push(Observed::new(
        types::SECRETS_READY,
        Some(true),
        reasons::GENERATED,
        "generated Secrets exist",
    ));
    if !created.is_empty() {
        publish(
            ctx,
            sp,
            EventType::Normal,
            "SecretsGenerated",
            "Generate",
            format!("created {}", created.join(", ")),
        )
        .await;
    }

    // 2. Databases: one database and role per service, then its connection Secret.
    let db = ensure_databases(sp, ctx, &secrets).await?;
    observed.push(db.condition.clone());

    // 3. Kafka: the contract's topics (admin API, or Strimzi KafkaTopics); the embedded broker.
    let kafka = ensure_kafka(sp, ctx).await?;
    observed.push(kafka.condition.clone());

    // 4. Redis: the embedded pod (external: services read the URL from the referenced Secret).
    if let (Some(svc), Some(deploy)) = (builders::redis_service(sp), builders::redis_deployment(sp)) {
        apply_object(client, &svc).await?;
        apply_object(client, &deploy).await?;
    }

    // 5. Services: ConfigMap and Service always; a service with a database gets its migration Job
    //    for this version first, and its Deployment only once the Job has succeeded.
    let mut service_status = BTreeMap::new();
    let mut migrations: Vec<(ServiceName, Migration)> = Vec::new();
    for s in sp.spec.enabled_services() {
        let spec = sp.spec.service(s);
        apply_object(client, &builders::config_map(sp, s)).await?;
        apply_object(client, &builders::service(sp, s)).await?;
        let mut roll_out = true;
        if s.has_database() {
            if !db.ready.contains(&s) {
                migrations.push((s, Migration::Running));
                roll_out = false;
            } else if let Some(job) = builders::migration_job(sp, s) {
                let applied = apply_object(client, &job).await?;
                let state = migration_state(&applied);
                migrations.push((s, state));
                roll_out = state == Migration::Succeeded;
            }
        }
        let deployment = if roll_out {
            Some(apply_object(client, &builders::deployment(sp, s)).await?)
        } else {
            let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
            let name = names::service_object(sp, s);
            api.get_opt(&name).await.map_err(Error::kube("get", "Deployment", &name))?
        };
        match builders::pod_disruption_budget(sp, s) {
            Some(pdb) => {
                apply_object(client, &pdb).await?;
            }
            None if prev_services.get(s.as_str()).is_some_and(|p| p.replicas > 1) => {
                delete_if_exists::<PodDisruptionBudget>(client, &ns, &names::service_object(sp, s)).await?;
            }
            None => {}
        }
        let ready = deployment.and_then(|d| d.status).and_then(|st| st.ready_replicas).unwrap_or(0);
        service_status
            .insert(s.as_str().to_string(), ServiceStatus { replicas: spec.replicas, ready_replicas: ready });
    }

    // Services disabled since the last reconcile: remove their workloads (data is kept).
    for s in ServiceName::ALL {
        if prev_services.contains_key(s.as_str()) && !sp.spec.service(s).enabled {
            let name = names::service_object(sp, s);
            delete_if_exists::<Deployment>(client, &ns, &name).await?;
            delete_if_exists::<PodDisruptionBudget>(client, &ns, &name).await?;
            delete_if_exists::<Service>(client, &ns, &name).await?;
            delete_if_exists::<ConfigMap>(client, &ns, &names::config_map(sp, s)).await?;
        }
    }

    // 6. Ingress.
    match builders::ingress(sp) {
        Some(ing) => {
            apply_object(client, &ing).await?;
        }
        None if previous.as_ref().is_some_and(|p| p.url.is_some()) => {
            delete_if_exists::<Ingress>(client, &ns, &names::ingress(sp)).await?;
        }
        None => {}
    }

    observed.push(migrations_condition(&migrations));
    let (services_cond, ready_count) = services_condition(&service_status);
    observed.push(services_cond);

    // 7. Status, only when it changed.
    let prev_phase = previous.as_ref().and_then(|p| p.phase);
    let (ready, phase) = status::summarize(&observed, prev_phase);
    observed.insert(0, ready);
    let prev_conditions = previous.as_ref().map(|p| p.conditions.clone()).unwrap_or_default();
    let new_status = ShopPlatformStatus {
        observed_generation: sp.metadata.generation,
        phase: Some(phase),
        conditions: status::settle(&prev_conditions, &observed, sp.metadata.generation, &status::now()),
        ready_services: Some(format!("{ready_count}/{}", service_status.len())),
        services: service_status,
        url: builders::public_url(sp),
    };
    if status::changed(previous.as_ref(), &new_status) {
        patch_status(ctx, sp, &new_status).await?;
    }
    if prev_phase != Some(phase) {
        let (type_, note) = match phase {
            Phase::Degraded => (EventType::Warning, observed[0].message.clone()),
            _ => (EventType::Normal, format!("{} (version {})", observed[0].message, sp.spec.version)),
        };
        publish(ctx, sp, type_, phase.as_str(), "Reconcile", note).await;
    }

    if let Some(e) = db.error.or(kafka.error) {
        return Err(e);
    }
    let settings = &ctx.settings;
    Ok(Action::requeue(if phase == Phase::Ready {
        settings.steady_requeue
    } else {
        settings.progress_requeue
    }))
}

async fn patch_status(ctx: &Context, sp: &ShopPlatform, status: &ShopPlatformStatus) -> Result<()> {
    let api: Api<ShopPlatform> = Api::namespaced(ctx.client.clone(), &names::namespace(sp));
    let patch = json!({
        "apiVersion": ShopPlatform::api_version(&()),
        "kind": ShopPlatform::kind(&()),
        "status": status,
    });
    api.patch_status(&sp.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(Error::kube("patch status of", "ShopPlatform", &sp.name_any()))?;
    Ok(())
}

/// Outcome of the Kafka step.
struct KafkaOutcome {
    condition: Observed,
    /// A provisioning error to report after the status is written.
    error: Option<Error>,
}

fn kafka_ok(reason: &'static str, message: String) -> KafkaOutcome {
    KafkaOutcome { condition: Observed::new(types::KAFKA_READY, Some(true), reason, message), error: None }
}

fn kafka_waiting(message: String) -> KafkaOutcome {
    KafkaOutcome {
        condition: Observed::new(types::KAFKA_READY, Some(false), reasons::STARTING, message),
        error: None,
    }
}

/// Topics through the admin API at `bootstrap`: `KafkaReady` from the report, or the failure.
async fn provision_topics(sp: &ShopPlatform, ctx: &Context, bootstrap: &str) -> KafkaOutcome {
    let topics = provision::topics(sp);
    let mode = sp.spec.kafka.mode.as_str();
    match ctx.topics.ensure_topics(&kafka_target(sp, bootstrap), &topics).await {
        Ok(report) => {
            let reason = if report.not_decreased.is_empty() {
                reasons::PROVISIONED
            } else {
                reasons::PARTITIONS_NOT_DECREASED
            };
            kafka_ok(reason, format!("{mode} mode: {}", report.summary(topics.len())))
        }
        Err(e) => KafkaOutcome {
            condition: Observed::new(
                types::KAFKA_READY,
                Some(false),
                reasons::PROVISIONING_FAILED,
                format!("{mode} mode, topics at {bootstrap}: {e}"),
            ),
            error: Some(Error::Kafka(e)),
        },
    }
}

/// The admin API's target: the operator's Kafka security settings apply to `external` brokers.
fn kafka_target(sp: &ShopPlatform, bootstrap: &str) -> KafkaTarget {
    KafkaTarget {
        bootstrap_servers: bootstrap.to_string(),
        secured: sp.spec.kafka.mode == KafkaMode::External,
    }
}

/// The Kafka step per `kafka.mode`: `external` creates the topics at `bootstrapServers`;
/// `embedded` applies the broker and, once it is ready, creates the topics there; `strimzi`
/// applies one `KafkaTopic` per topic and reports what Strimzi says about them.
async fn ensure_kafka(sp: &ShopPlatform, ctx: &Context) -> Result<KafkaOutcome> {
    match sp.spec.kafka.mode {
        KafkaMode::External => {
            let bootstrap = builders::kafka_bootstrap_servers(sp);
            if bootstrap.trim().is_empty() {
                return Err(Error::InvalidSpec("kafka.mode external needs kafka.bootstrapServers".into()));
            }
            Ok(provision_topics(sp, ctx, &bootstrap).await)
        }
        KafkaMode::Embedded => {
            let svc = builders::kafka_service(sp).expect("embedded mode");
            apply_object(&ctx.client, &svc).await?;
            let sts = builders::kafka_statefulset(sp).expect("embedded mode");
            let applied: StatefulSet = apply_object(&ctx.client, &sts).await?;
            if applied.status.and_then(|s| s.ready_replicas).unwrap_or(0) < 1 {
                return Ok(kafka_waiting(format!("waiting for StatefulSet {}", names::kafka(sp))));
            }
            Ok(provision_topics(sp, ctx, &builders::kafka_bootstrap_servers(sp)).await)
        }
        KafkaMode::Strimzi => {
            let ar =
                ApiResource::from_gvk(&GroupVersionKind::gvk("kafka.strimzi.io", "v1beta2", "KafkaTopic"));
            let api: Api<DynamicObject> =
                Api::namespaced_with(ctx.client.clone(), &names::namespace(sp), &ar);
            let mut waiting = Vec::new();
            let mut total = 0;
            for topic in builders::strimzi_topics(sp) {
                let name = topic.metadata.name.clone().unwrap_or_default();
                let applied = api
                    .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&topic))
                    .await
                    .map_err(Error::kube("apply", "KafkaTopic", &name))?;
                total += 1;
                if let Some(why) = strimzi_not_ready(&applied) {
                    waiting.push(format!("{name} ({why})"));
                }
            }
            if waiting.is_empty() {
                Ok(kafka_ok(reasons::PROVISIONED, format!("strimzi mode: {total} KafkaTopics ready")))
            } else {
                Ok(kafka_waiting(format!("waiting for Strimzi: {}", waiting.join(", "))))
            }
        }
    }
}

/// Why a `KafkaTopic` is not ready yet (`None` when its `Ready` condition is `True` for its
/// current generation). Strimzi refuses a partition decrease with `Ready=False` and says so.
fn strimzi_not_ready(topic: &DynamicObject) -> Option<String> {
    let status = topic.data.get("status");
    let ready = status
        .and_then(|s| s.get("conditions"))
        .and_then(|c| c.as_array())
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
    let Some(ready) = ready else { return Some("not reconciled yet".into()) };
    let observed = status.and_then(|s| s.get("observedGeneration")).and_then(|g| g.as_i64());
    if let (Some(o), Some(g)) = (observed, topic.metadata.generation) {
        if o < g {
            return Some("not reconciled yet".into());
        }
    }
    if ready["status"] == "True" {
        None
    } else {
        Some(ready["message"].as_str().or(ready["reason"].as_str()).unwrap_or("not ready").to_string())
    }
}

fn migrations_condition(migrations: &[(ServiceName, Migration)]) -> Observed {
    let list = |m: Migration| {
        migrations.iter().filter(|(_, x)| *x == m).map(|(s, _)| s.as_str()).collect::<Vec<_>>().join(", ")
    };
    if migrations.is_empty() {
        Observed::new(
            types::MIGRATIONS_READY,
            Some(true),
            reasons::NOT_REQUIRED,
            "no enabled service has a database",
        )
    } else if migrations.iter().any(|(_, m)| *m == Migration::Failed) {
        Observed::new(
            types::MIGRATIONS_READY,
            Some(false),
            reasons::FAILED,
            format!("migration Job failed: {}", list(Migration::Failed)),
        )
    } else if migrations.iter().any(|(_, m)| *m == Migration::Running) {
        Observed::new(
            types::MIGRATIONS_READY,
            Some(false),
            reasons::RUNNING,
            format!("migrating: {}", list(Migration::Running)),
        )
    } else {
        Observed::new(
            types::MIGRATIONS_READY,
            Some(true),
            reasons::SUCCEEDED,
            format!("migrated: {}", list(Migration::Succeeded)),
        )
    }
}

fn services_condition(services: &BTreeMap<String, ServiceStatus>) -> (Observed, usize) {
    let ready: Vec<_> = services.iter().filter(|(_, s)| s.ready_replicas >= s.replicas).collect();
    let waiting: Vec<_> = services
        .iter()
        .filter(|(_, s)| s.ready_replicas < s.replicas)
        .map(|(n, s)| format!("{n} {}/{}", s.ready_replicas, s.replicas))
        .collect();
    let cond = if waiting.is_empty() {
        Observed::new(
            types::SERVICES_READY,
            Some(true),
            reasons::AVAILABLE,
            format!("{} services ready", ready.len()),
        )
    } else {
        Observed::new(
            types::SERVICES_READY,
            Some(false),
            reasons::PROGRESSING,
            format!("waiting for {}", waiting.join(", ")),
        )
    };
    (cond, ready.len())
}

/// Runs the deletion policy before the finalizer is removed.
async fn cleanup(sp: &ShopPlatform, ctx: &Context) -> Result<Action> {
    let previous = sp.status.clone().unwrap_or_default();
    if previous.phase != Some(Phase::Deleting) {
        let mut status = previous.clone();
        status.phase = Some(Phase::Deleting);
        patch_status(ctx, sp, &status).await?;
    }
    let mode = sp.spec.database.mode;
    let dropped = match (sp.spec.deletion_policy, mode) {
        (DeletionPolicy::Delete, DatabaseMode::External | DatabaseMode::Cloudnativepg) => {
            let ns = names::namespace(sp);
            let dsn = match mode {
                DatabaseMode::External => {
                    let r = &sp
                        .spec
                        .database
                        .external
                        .as_ref()
                        .ok_or_else(|| {
                            Error::InvalidSpec("database.mode external needs database.external".into())
                        })?
                        .admin_secret_ref;
                    read_secret(&ctx.client, &ns, &r.name, &r.key)
                        .await?
                        .ok_or_else(|| Error::MissingSecret { name: r.name.clone(), key: r.key.clone() })?
                }
                _ => {
                    let name = names::cnpg_superuser_secret(sp);
                    read_secret(&ctx.client, &ns, &name, "uri")
                        .await?
                        .ok_or(Error::MissingSecret { name, key: "uri".into() })?
                }
            };
            let mut dropped = Vec::new();
            for s in ServiceName::ALL.into_iter().filter(|s| s.has_database()) {
                let name = names::db_identifier(sp, s);
                ctx.db.drop_database(dsn.trim(), &name).await?;
                dropped.push(name);
            }
            format!("dropped databases and roles {}", dropped.join(", "))
        }
        (DeletionPolicy::Delete, DatabaseMode::Embedded) => {
            "the embedded database volume is deleted with its StatefulSet".to_string()
        }
        (DeletionPolicy::Retain, _) => "deletionPolicy Retain: databases are kept".to_string(),
    };
    let topics = match (sp.spec.deletion_policy, sp.spec.kafka.mode) {
        // The platform's topics (and dead-letter topics) at the external brokers. Embedded: the
        // broker and its data go with the StatefulSet; Strimzi: the `KafkaTopic`s are owned by
        // the platform and garbage-collected with it.
        (DeletionPolicy::Delete, KafkaMode::External) => {
            let bootstrap = builders::kafka_bootstrap_servers(sp);
            if bootstrap.trim().is_empty() {
                "no bootstrap servers: no topics to delete".to_string()
            } else {
                let names = provision::topic_names(sp);
                let deleted = ctx
                    .topics
                    .delete_topics(&kafka_target(sp, &bootstrap), &names)
                    .await
                    .map_err(Error::Kafka)?;
                format!("deleted {} topics at {bootstrap}", deleted.len())
            }
        }
        (DeletionPolicy::Delete, _) => "topics go with the broker or its KafkaTopics".to_string(),
        (DeletionPolicy::Retain, _) => "topics are kept".to_string(),
    };
    let dropped = format!("{dropped}; {topics}");
    publish(ctx, sp, EventType::Normal, "Deleting", "Cleanup", dropped).await;
    Ok(Action::await_change())
}

/// Where the controller watches: every namespace, or one (`--namespace`: the operator then
/// needs permissions in that namespace only).
fn scoped<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope>,
    <K as Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs the controller until the process is stopped: over every namespace, or only `namespace`.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    settings: Settings,
    db: Arc<dyn DatabaseProvisioner>,
    topics: Arc<dyn TopicProvisioner>,
) {
    let ns = namespace.as_deref();
    let platforms: Api<ShopPlatform> = scoped(&client, ns);
    if let Err(e) = platforms.list(&kube::api::ListParams::default().limit(1)).await {
        tracing::error!(error = %e, "the ShopPlatform CRD is not queryable; is it installed?");
        std::process::exit(1);
    }
    let ctx = Arc::new(Context::with_settings(client.clone(), db, topics, settings));
    let owned = watcher::Config::default().labels("app.kubernetes.io/managed-by=shop-operator");
    Controller::new(platforms, watcher::Config::default().any_semantic())
        .owns(scoped::<Deployment>(&client, ns), owned.clone())
        .owns(scoped::<Service>(&client, ns), owned.clone())
        .owns(scoped::<Secret>(&client, ns), owned.clone())
        .owns(scoped::<Job>(&client, ns), owned.clone())
        .owns(scoped::<ConfigMap>(&client, ns), owned.clone())
        .owns(scoped::<StatefulSet>(&client, ns), owned)
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}
