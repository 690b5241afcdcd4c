//! The reconciler: level-triggered and idempotent. Every owned object is server-side applied with
//! one field manager, and only when the fields the operator owns differ from the desired state
//! (a steady state makes no write); generated Secrets are created only when absent; a failing
//! step is a condition with its reason, and the status is written (when it changed) on every
//! pass, failed or not.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use contract::ServiceName;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
    PostParams,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::builders::{self, GeneratedSecretSpec, SecretKind};
use crate::crd::{
    CaSource, DatabaseMode, DeletionPolicy, KafkaMode, Phase, ServiceStatus, ShopPlatform, ShopPlatformStatus,
};
use crate::error::{Error, Result};
use crate::kafka::{SaslConfig, SaslMechanism, TlsConfig};
use crate::names::{self, FIELD_MANAGER, FINALIZER, TEMPLATE_HASH_ANNOTATION};
use crate::provision::{
    self, DatabaseGrant, DatabaseProvisioner, KafkaTarget, TargetSecurity, TopicProvisioner,
};
use crate::rollout::{self, Rollout};
use crate::ssa;
use crate::status::{self, reasons, types, Observed};

/// Requeue interval when all is well: the drift check for anything the watches miss.
pub const STEADY_REQUEUE: Duration = Duration::from_secs(300);
/// Requeue interval while something is still starting.
pub const PROGRESS_REQUEUE: Duration = Duration::from_secs(15);
/// Longest wait before a retry after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// The field manager that takes over `spec.replicas` of a Deployment when its service starts
/// autoscaling, so that the operator's apply without replicas does not reset them (the
/// hand-over of the server-side apply documentation).
pub const HANDOVER_MANAGER: &str = "shop-operator-autoscaling-handover";

/// Operator-wide settings of the reconciler (flags of the `shop-operator` binary).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Requeue interval when all is well (`--resync-interval`).
    pub steady_requeue: Duration,
    /// Requeue interval while something is starting or rolling out (`--progress-interval`).
    pub progress_requeue: Duration,
    /// Longest wait before retrying after failures (`--max-retry-interval`; the wait doubles
    /// from 5 s up to it).
    pub max_backoff: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            steady_requeue: STEADY_REQUEUE,
            progress_requeue: PROGRESS_REQUEUE,
            max_backoff: MAX_BACKOFF,
        }
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

/// Exponential backoff after `failures` consecutive failures: 5 s, 10 s, 20 s, … at most `max`.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    Duration::from_secs(secs).min(max)
}

/// Reconciles one ShopPlatform.
pub async fn reconcile(sp: Arc<ShopPlatform>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let ns = sp.namespace().ok_or_else(|| Error::InvalidSpec("a ShopPlatform must be namespaced".into()))?;
    let api: Api<ShopPlatform> = Api::namespaced(ctx.client.clone(), &ns);
    // Boxed: a pass's state is large (every builder's objects), too large for a test thread's stack.
    let (result, tally) =
        crate::metrics::tallied(Box::pin(finalizer(&api, FINALIZER, sp.clone(), |event| async {
            match event {
                Finalizer::Apply(sp) => Box::pin(apply(&sp, &ctx)).await,
                Finalizer::Cleanup(sp) => Box::pin(cleanup(&sp, &ctx)).await,
            }
        })))
        .await;
    let result = result.map_err(Error::from);
    crate::metrics::reconciled(start.elapsed());
    let gone = sp.metadata.deletion_timestamp.is_some() && result.is_ok();
    if gone {
        crate::metrics::phase(&ns, &sp.name_any(), None);
        crate::metrics::managed(&ns, &sp.name_any(), &BTreeMap::new());
    } else if !tally.is_empty() {
        crate::metrics::managed(&ns, &sp.name_any(), &tally);
    }
    if result.is_ok() {
        ctx.failure_count(&object_key(&sp), false);
    }
    result
}

/// Requeue with exponential backoff after an error.
pub fn error_policy(sp: Arc<ShopPlatform>, error: &Error, ctx: Arc<Context>) -> Action {
    crate::metrics::failed(error.metric_label());
    let n = ctx.failure_count(&object_key(&sp), true);
    let delay = backoff(n, ctx.settings.max_backoff);
    tracing::warn!(name = %sp.name_any(), %error, failures = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

// --- applying -------------------------------------------------------------------------------------

fn kind_name(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "Deployment",
        "Service" => "Service",
        "ConfigMap" => "ConfigMap",
        "Secret" => "Secret",
        "Job" => "Job",
        "StatefulSet" => "StatefulSet",
        "Ingress" => "Ingress",
        "PodDisruptionBudget" => "PodDisruptionBudget",
        "HorizontalPodAutoscaler" => "HorizontalPodAutoscaler",
        "NetworkPolicy" => "NetworkPolicy",
        "ServiceMonitor" => "ServiceMonitor",
        "ScheduledBackup" => "ScheduledBackup",
        "Cluster" => "Cluster",
        "KafkaTopic" => "KafkaTopic",
        _ => "object",
    }
}

/// Whether server-side applying `desired` would change what the operator owns in `live`.
pub fn needs_apply(desired: &impl Serialize, live: &impl Serialize) -> bool {
    let (Ok(desired), Ok(live)) = (serde_json::to_value(desired), serde_json::to_value(live)) else {
        return true;
    };
    match ssa::extract_owned(&live, FIELD_MANAGER, None) {
        Some(owned) => !ssa::unchanged(&desired, &owned),
        None => true,
    }
}

/// Server-side applies `desired` over `live` (as read just before) unless that would change
/// nothing; returns the object as it now is.
async fn apply_if_changed<K>(api: &Api<K>, desired: &K, live: Option<K>) -> Result<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    if let Some(live) = live {
        if !needs_apply(desired, &live) {
            return Ok(live);
        }
    }
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(desired))
        .await
        .map_err(Error::kube("apply", kind_name(&K::kind(&())), &name))
}

/// Reads `desired`'s live object and applies `desired` when it differs ([`apply_if_changed`]).
pub async fn ensure_applied<K>(client: &Client, desired: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let name = desired.meta().name.clone().unwrap_or_default();
    let ns = desired.meta().namespace.clone().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    let live = api.get_opt(&name).await.map_err(Error::kube("get", kind_name(&K::kind(&())), &name))?;
    let applied = apply_if_changed(&api, desired, live).await?;
    crate::metrics::count_object(kind_name(&K::kind(&())));
    Ok(applied)
}

/// [`ensure_applied`] for a custom resource of another operator.
async fn ensure_applied_dynamic(
    client: &Client,
    ar: &ApiResource,
    desired: &DynamicObject,
) -> Result<DynamicObject> {
    let name = desired.metadata.name.clone().unwrap_or_default();
    let ns = desired.metadata.namespace.clone().unwrap_or_default();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, ar);
    let kind = kind_name(&ar.kind);
    let live = api.get_opt(&name).await.map_err(Error::kube("get", kind, &name))?;
    crate::metrics::count_object(kind);
    if let Some(live) = live {
        if !needs_apply(desired, &live) {
            return Ok(live);
        }
    }
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(desired))
        .await
        .map_err(Error::kube("apply", kind, &name))
}

/// Deletes the operator's object `name` of kind `K` when it exists (read first: nothing is
/// written when there is nothing to delete).
async fn delete_owned<K>(client: &Client, ns: &str, name: &str) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + DeserializeOwned + Clone + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let kind = kind_name(&K::kind(&()));
    let Some(live) = api.get_opt(name).await.map_err(Error::kube("get", kind, name))? else {
        return Ok(());
    };
    let ours =
        live.meta().labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by")).map(String::as_str)
            == Some(FIELD_MANAGER);
    if !ours || live.meta().deletion_timestamp.is_some() {
        return Ok(());
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(Error::kube("delete", kind, name)(e)),
    }
}

// --- Secrets --------------------------------------------------------------------------------------

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

/// Creates the generated Secrets that do not exist yet (never changes their values) and
/// returns every generated value by Secret name, plus the names created now. A Secret that
/// opens kept data ([`GeneratedSecretSpec::holds_data`]) carries the owner reference only under
/// `deletionPolicy: Delete`; an existing one is brought in line when the policy changes.
async fn ensure_generated_secrets(
    sp: &ShopPlatform,
    ctx: &Context,
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let ns = names::namespace(sp);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let mut values = BTreeMap::new();
    let mut created = Vec::new();
    for GeneratedSecretSpec { name, key, kind, holds_data } in builders::generated_secrets(sp) {
        let existing = api.get_opt(&name).await.map_err(Error::kube("get", "Secret", &name))?;
        let value = match existing {
            Some(s) => {
                if holds_data {
                    align_owner(&api, &s, sp).await?;
                }
                secret_value(&s, key)
                    .ok_or_else(|| Error::MissingSecret { name: name.clone(), key: key.into() })?
            }
            None => {
                let value = generate(kind);
                let secret = builders::generated_secret(sp, name.clone(), key, value.clone(), holds_data);
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

/// Adds or removes the platform's owner reference on a data-holding Secret as the deletion
/// policy says (a merge patch of the list, guarded by the resource version).
async fn align_owner(api: &Api<Secret>, secret: &Secret, sp: &ShopPlatform) -> Result<()> {
    let uid = sp.uid().unwrap_or_default();
    let refs = secret.metadata.owner_references.clone().unwrap_or_default();
    let has = refs.iter().any(|r| r.uid == uid);
    let want = builders::owns_data(sp);
    if has == want {
        return Ok(());
    }
    let mut refs: Vec<_> = refs.into_iter().filter(|r| r.uid != uid).collect();
    if want {
        refs.push(builders::owner_reference(sp));
    }
    let name = secret.name_any();
    let patch = json!({"metadata": {"ownerReferences": refs, "resourceVersion": secret.resource_version()}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch)).await.map_err(Error::kube(
        "patch owner of",
        "Secret",
        &name,
    ))?;
    Ok(())
}

/// The values of the Secret keys the services' pods read that are not generated here (the
/// Secrets the spec names), read once per pass; `None` for a missing Secret or key.
async fn referenced_secrets(
    sp: &ShopPlatform,
    ctx: &Context,
    generated: &BTreeMap<String, String>,
) -> Result<BTreeMap<(String, String), Option<String>>> {
    let ns = names::namespace(sp);
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let connection: Vec<String> =
        ServiceName::ALL.into_iter().map(|s| names::db_connection_secret(sp, s)).collect();
    let mut secrets: BTreeMap<String, Option<Secret>> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for s in sp.spec.enabled_services() {
        for (name, key) in builders::consumed_secrets(sp, s) {
            if generated.contains_key(&name) || connection.contains(&name) {
                continue;
            }
            if !secrets.contains_key(&name) {
                let secret = api.get_opt(&name).await.map_err(Error::kube("get", "Secret", &name))?;
                secrets.insert(name.clone(), secret);
            }
            let value = secrets[&name].as_ref().and_then(|s| secret_value(s, &key));
            out.insert((name, key), value);
        }
    }
    Ok(out)
}

/// [`builders::secrets_hash`] of what `service`'s pods read.
fn pod_secrets_hash(
    sp: &ShopPlatform,
    service: ServiceName,
    generated: &BTreeMap<String, String>,
    urls: &BTreeMap<ServiceName, String>,
    referenced: &BTreeMap<(String, String), Option<String>>,
) -> String {
    let values: Vec<(String, String, Option<String>)> = builders::consumed_secrets(sp, service)
        .into_iter()
        .map(|(name, key)| {
            let value = if let Some(v) = generated.get(&name) {
                Some(v.clone())
            } else if name == names::db_connection_secret(sp, service) {
                urls.get(&service).cloned()
            } else {
                referenced.get(&(name.clone(), key.clone())).cloned().flatten()
            };
            (name, key, value)
        })
        .collect();
    builders::secrets_hash(&values)
}

// --- database -------------------------------------------------------------------------------------

/// Outcome of the database step.
struct DatabaseOutcome {
    condition: Observed,
    /// Connection URLs of the services whose database is provisioned and whose connection
    /// Secret is written.
    urls: BTreeMap<ServiceName, String>,
    /// A failure to report after the status is written.
    error: Option<Error>,
}

impl DatabaseOutcome {
    fn failed(e: Error, what: &str) -> DatabaseOutcome {
        let condition = Observed::new(types::DATABASE_READY, Some(false), e.reason(), format!("{what}: {e}"));
        DatabaseOutcome { condition, urls: BTreeMap::new(), error: Some(e) }
    }
}

/// The admin DSN of a CloudNativePG superuser Secret. CloudNativePG's `uri` names the database
/// `*` (any database): the operator connects to `postgres`.
pub fn cnpg_admin_dsn(secret: &Secret) -> Option<String> {
    if let Some(uri) = secret_value(secret, "uri") {
        if let Ok(mut url) = url::Url::parse(uri.trim()) {
            url.set_path("/postgres");
            return Some(url.to_string());
        }
    }
    let (user, password, host) =
        (secret_value(secret, "username")?, secret_value(secret, "password")?, secret_value(secret, "host")?);
    let port = secret_value(secret, "port").unwrap_or_else(|| "5432".into());
    let mut url = url::Url::parse(&format!("postgres://{host}:{port}/postgres")).ok()?;
    url.set_username(&user).ok()?;
    url.set_password(Some(&password)).ok()?;
    Some(url.to_string())
}

/// The embedded StatefulSet keeps the volume claim template it was created with (the API server
/// refuses a change: the CRD's rules forbid one, and an older CRD may not): when the desired
/// template differs, the operator's previous one is applied again and the difference logged.
fn keep_claim_templates(desired: &mut StatefulSet, live: Option<&StatefulSet>) {
    let Some(live) = live else { return };
    let (Ok(live_v), Ok(desired_v)) = (serde_json::to_value(live), serde_json::to_value(&*desired)) else {
        return;
    };
    let Some(owned) = ssa::extract_owned(&live_v, FIELD_MANAGER, None) else { return };
    let previous = &owned["spec"]["volumeClaimTemplates"];
    let wanted = &desired_v["spec"]["volumeClaimTemplates"];
    if previous.is_array() && !ssa::unchanged(&json!({"t": wanted}), &json!({"t": previous})) {
        tracing::warn!(
            statefulset = %live.name_any(),
            "the volume claim template cannot change (resize the PersistentVolumeClaim instead); keeping it"
        );
        if let Ok(kept) = serde_json::from_value(previous.clone()) {
            desired.spec.volume_claim_templates = Some(kept);
        }
    }
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
            ensure_applied(&ctx.client, &svc).await?;
            let mut sts = builders::postgres_statefulset(sp).expect("embedded mode");
            let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
            let name = names::postgres(sp);
            let live = api.get_opt(&name).await.map_err(Error::kube("get", "StatefulSet", &name))?;
            keep_claim_templates(&mut sts, live.as_ref());
            let applied = apply_if_changed(&api, &sts, live).await?;
            let ready = applied.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            if ready < 1 {
                return not_ready(reasons::STARTING, format!("waiting for StatefulSet {name}"));
            }
            let password = secrets.get(&names::postgres_admin_secret(sp)).cloned().unwrap_or_default();
            let (host, port) = builders::postgres_host(sp);
            Ok(Ok(format!("postgres://postgres:{password}@{host}:{port}/postgres")))
        }
        DatabaseMode::Cloudnativepg => {
            let cluster = builders::cnpg_cluster(sp).expect("cloudnativepg mode");
            let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"));
            ensure_applied_dynamic(&ctx.client, &ar, &cluster).await?;
            if let Some(backup) = builders::cnpg_scheduled_backup(sp) {
                let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
                    "postgresql.cnpg.io",
                    "v1",
                    "ScheduledBackup",
                ));
                ensure_applied_dynamic(&ctx.client, &ar, &backup).await?;
            }
            let name = names::cnpg_superuser_secret(sp);
            let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
            let secret = api.get_opt(&name).await.map_err(Error::kube("get", "Secret", &name))?;
            match secret.as_ref().and_then(cnpg_admin_dsn) {
                Some(dsn) => Ok(Ok(dsn)),
                None => not_ready(reasons::STARTING, format!("waiting for CloudNativePG Secret {name}")),
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
            urls: BTreeMap::new(),
            error: None,
        });
    }
    let dsn = match admin_dsn(sp, ctx, secrets).await? {
        Ok(dsn) => with_sslmode(sp, &dsn),
        Err(condition) => return Ok(DatabaseOutcome { condition, urls: BTreeMap::new(), error: None }),
    };
    let ca = database_ca_pem(sp, ctx).await?;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &names::namespace(sp));
    let mut urls = BTreeMap::new();
    for s in &services {
        let mut grant = DatabaseGrant {
            name: names::db_identifier(sp, *s),
            password: secrets.get(&names::db_password_secret(sp, *s)).cloned().unwrap_or_default(),
            password_current: false,
        };
        // The connection Secret is written only after a successful `ensure`: when it holds this
        // password, the role has it.
        let secret = names::db_connection_secret(sp, *s);
        let live = api.get_opt(&secret).await.map_err(Error::kube("get", "Secret", &secret))?;
        let current = live.as_ref().and_then(|l| secret_value(l, names::DATABASE_URL_KEY));
        grant.password_current = current.is_some() && current == provision::service_url(&dsn, &grant).ok();
        match ctx.db.ensure_with_ca(&dsn, ca.as_deref(), &grant).await {
            Ok(url) => {
                apply_if_changed(&api, &builders::connection_secret(sp, *s, &url), live).await?;
                urls.insert(*s, url);
            }
            Err(e) => {
                let condition = Observed::new(
                    types::DATABASE_READY,
                    Some(false),
                    reasons::PROVISIONING_FAILED,
                    format!("database of {s}: {e}"),
                );
                return Ok(DatabaseOutcome { condition, urls, error: Some(Error::Database(e)) });
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
        urls,
        error: None,
    })
}

// --- migrations -----------------------------------------------------------------------------------

/// State of a migration Job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Migration {
    Succeeded,
    Running,
    Failed,
    /// Not started: the service's database is not provisioned yet.
    Waiting,
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

fn template_hash(job: &Job) -> Option<&String> {
    job.metadata.annotations.as_ref().and_then(|a| a.get(TEMPLATE_HASH_ANNOTATION))
}

/// The migration Job of the platform's version. Created when missing, otherwise only read: a
/// Job's pod template is immutable, and a Job that ran keeps telling whether this version's
/// schema is in place, whatever else changed in the spec since. A failed Job whose template
/// differs from the desired one (e.g. its Secret env was fixed) is deleted and created anew on
/// the next pass.
async fn ensure_migration(client: &Client, sp: &ShopPlatform, service: ServiceName) -> Result<Migration> {
    let job = builders::migration_job(sp, service).expect("a service with a database");
    let name = job.metadata.name.clone().unwrap_or_default();
    let api: Api<Job> = Api::namespaced(client.clone(), &names::namespace(sp));
    match api.get_opt(&name).await.map_err(Error::kube("get", "Job", &name))? {
        None => Ok(migration_state(&apply_if_changed(&api, &job, None).await?)),
        Some(live) => {
            let state = migration_state(&live);
            if state == Migration::Failed && template_hash(&live) != template_hash(&job) {
                match api.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(Error::kube("delete", "Job", &name)(e)),
                }
                return Ok(Migration::Running);
            }
            Ok(state)
        }
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
    } else if migrations.iter().any(|(_, m)| matches!(m, Migration::Running | Migration::Waiting)) {
        let running = list(Migration::Running);
        let waiting = list(Migration::Waiting);
        let message = match (running.is_empty(), waiting.is_empty()) {
            (false, true) => format!("migrating: {running}"),
            (true, false) => format!("waiting for the databases of: {waiting}"),
            _ => format!("migrating: {running}; waiting for the databases of: {waiting}"),
        };
        Observed::new(types::MIGRATIONS_READY, Some(false), reasons::RUNNING, message)
    } else {
        Observed::new(
            types::MIGRATIONS_READY,
            Some(true),
            reasons::SUCCEEDED,
            format!("migrated: {}", list(Migration::Succeeded)),
        )
    }
}

// --- services -------------------------------------------------------------------------------------

/// What one service's step found.
struct ServiceOutcome {
    migration: Option<Migration>,
    rollout: Rollout,
    status: ServiceStatus,
}

fn owns_replicas(live: &Deployment) -> bool {
    serde_json::to_value(live)
        .ok()
        .and_then(|v| ssa::extract_owned(&v, FIELD_MANAGER, None))
        .is_some_and(|owned| owned["spec"].get("replicas").is_some())
}

/// One enabled service: ConfigMap and Service; for a service with a database its migration Job
/// first and the Deployment only once that succeeded; PodDisruptionBudget and
/// HorizontalPodAutoscaler as the spec says; where its rollout stands.
async fn ensure_service(
    sp: &ShopPlatform,
    ctx: &Context,
    s: ServiceName,
    database_ready: bool,
    secrets_hash: &str,
) -> Result<ServiceOutcome> {
    let client = &ctx.client;
    let ns = names::namespace(sp);
    let spec = sp.spec.service(s);
    if let Some(problem) = builders::placement_problem(sp, Some(s)) {
        return Err(Error::InvalidSpec(problem));
    }
    ensure_applied(client, &builders::config_map(sp, s)).await?;
    ensure_applied(client, &builders::service(sp, s)).await?;
    let mut migration = None;
    if s.has_database() {
        migration =
            Some(if database_ready { ensure_migration(client, sp, s).await? } else { Migration::Waiting });
    }
    let roll_out = migration.is_none_or(|m| m == Migration::Succeeded);
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let name = names::service_object(sp, s);
    let live = api.get_opt(&name).await.map_err(Error::kube("get", "Deployment", &name))?;
    let deployment = if roll_out {
        if let (Some(_), Some(live)) = (&spec.autoscaling, &live) {
            if owns_replicas(live) {
                // Starting to autoscale: another manager takes spec.replicas over first, so the
                // apply without it does not reset the count. A partial apply configuration, so
                // JSON: a typed `Deployment` would also send its required `selector` and
                // `template` (empty), and this manager would own them.
                let handover = json!({
                    "apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": name, "namespace": ns},
                    "spec": {"replicas": live.spec.replicas.unwrap_or(1)},
                });
                api.patch(&name, &PatchParams::apply(HANDOVER_MANAGER).force(), &Patch::Apply(&handover))
                    .await
                    .map_err(Error::kube("hand over replicas of", "Deployment", &name))?;
            }
        }
        Some(apply_if_changed(&api, &builders::deployment(sp, s, secrets_hash), live).await?)
    } else {
        live
    };
    match builders::pod_disruption_budget(sp, s) {
        Some(pdb) => {
            ensure_applied(client, &pdb).await?;
        }
        None => delete_owned::<PodDisruptionBudget>(client, &ns, &name).await?,
    }
    match builders::horizontal_pod_autoscaler(sp, s) {
        Some(hpa) => {
            ensure_applied(client, &hpa).await?;
        }
        None => delete_owned::<HorizontalPodAutoscaler>(client, &ns, &name).await?,
    }
    let (rollout, status) = match &deployment {
        None => (
            Rollout::Progressing(match migration {
                Some(Migration::Failed) => "its migration failed".to_string(),
                _ => "waiting for its migration".to_string(),
            }),
            ServiceStatus { replicas: spec.replicas, ..Default::default() },
        ),
        Some(d) => {
            let mut state = rollout::state(d);
            if state != Rollout::Available {
                let selector = names::selector(sp, "shop", s.as_str())
                    .into_iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
                let list = pods.list(&ListParams::default().labels(&selector)).await.map_err(Error::kube(
                    "list",
                    "object",
                    &format!("pods of {name}"),
                ))?;
                state = rollout::with_pods(state, &list.items);
            }
            let st = d.status.clone().unwrap_or_default();
            let status = ServiceStatus {
                replicas: d.spec.replicas.unwrap_or(spec.replicas),
                ready_replicas: st.ready_replicas.unwrap_or(0),
                updated_replicas: st.updated_replicas.unwrap_or(0),
                available_replicas: st.available_replicas.unwrap_or(0),
            };
            (state, status)
        }
    };
    Ok(ServiceOutcome { migration, rollout, status })
}

/// `ServicesReady` from the services' rollouts and the failures of the services' steps.
fn services_condition(rollouts: &[(ServiceName, Rollout)], failures: &[Error]) -> Observed {
    let join = |f: &dyn Fn(&Rollout) -> Option<String>| {
        rollouts.iter().filter_map(|(s, r)| f(r).map(|m| format!("{s}: {m}"))).collect::<Vec<_>>().join("; ")
    };
    if !failures.is_empty() {
        let reason = if failures.iter().any(Error::is_forbidden) {
            reasons::FORBIDDEN
        } else if failures.iter().all(|e| matches!(e, Error::InvalidSpec(_))) {
            reasons::FAILED
        } else {
            reasons::API_ERROR
        };
        let msg = failures.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
        return Observed::new(types::SERVICES_READY, Some(false), reason, msg);
    }
    let failed = join(&|r| match r {
        Rollout::Failed(m) => Some(m.clone()),
        _ => None,
    });
    if !failed.is_empty() {
        return Observed::new(types::SERVICES_READY, Some(false), reasons::ROLLOUT_FAILED, failed);
    }
    let lost = join(&|r| match r {
        Rollout::Unavailable(m) => Some(m.clone()),
        _ => None,
    });
    if !lost.is_empty() {
        return Observed::new(types::SERVICES_READY, Some(false), reasons::UNAVAILABLE, lost);
    }
    let waiting = join(&|r| match r {
        Rollout::Progressing(m) => Some(m.clone()),
        _ => None,
    });
    if !waiting.is_empty() {
        return Observed::new(
            types::SERVICES_READY,
            Some(false),
            reasons::PROGRESSING,
            format!("waiting for {waiting}"),
        );
    }
    Observed::new(
        types::SERVICES_READY,
        Some(true),
        reasons::AVAILABLE,
        format!("{} services available", rollouts.len()),
    )
}

// --- events and status ----------------------------------------------------------------------------

/// Publishes an event; a failure to publish never fails the reconcile.
async fn publish(
    ctx: &Context,
    sp: &ShopPlatform,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    // An event's note is at most 1 kB.
    let note: String = note.chars().take(1000).collect();
    let ev = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    if let Err(e) = ctx.recorder.publish(&ev, &sp.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "publishing event failed");
    }
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

// --- one pass -------------------------------------------------------------------------------------

async fn apply(sp: &ShopPlatform, ctx: &Context) -> Result<Action> {
    let ns = names::namespace(sp);
    let client = &ctx.client;
    let previous = sp.status.clone();
    let mut observed = Vec::new();
    // Failures of this pass, reported after the status is written.
    let mut errors: Vec<Error> = Vec::new();

    let mut timer = Instant::now();
    let mut lap = |step: &'static str| {
        crate::metrics::step(step, timer.elapsed());
        timer = Instant::now();
    };

    // 1. Generated Secrets: created once, never regenerated.
    let secrets = match ensure_generated_secrets(sp, ctx).await {
        Ok((values, created)) => {
            observed.push(Observed::new(
                types::SECRETS_READY,
                Some(true),
                reasons::GENERATED,
                "generated Secrets exist",
            ));
            if !created.is_empty() {
                let note = format!("created {}", created.join(", "));
                publish(ctx, sp, EventType::Normal, "SecretsGenerated", "Generate", note).await;
            }
            Some(values)
        }
        Err(e) => {
            observed.push(Observed::new(
                types::SECRETS_READY,
                Some(false),
                e.reason(),
                format!("generated Secrets: {e}"),
            ));
            errors.push(e);
            None
        }
    };
    let generated = secrets.clone().unwrap_or_default();
    lap("secrets");

    // 2. Databases: one database and role per service, then its connection Secret.
    let db = match &secrets {
        Some(secrets) => match ensure_databases(sp, ctx, secrets).await {
            Ok(outcome) => outcome,
            Err(e) => DatabaseOutcome::failed(e, "database"),
        },
        None => DatabaseOutcome {
            condition: Observed::new(
                types::DATABASE_READY,
                Some(false),
                reasons::STARTING,
                "waiting for the generated Secrets",
            ),
            urls: BTreeMap::new(),
            error: None,
        },
    };
    observed.push(db.condition.clone());
    errors.extend(db.error);
    lap("databases");

    // 3. Kafka: the contract's topics (admin API, or Strimzi KafkaTopics); the embedded broker.
    match ensure_kafka(sp, ctx).await {
        Ok(kafka) => {
            observed.push(kafka.condition);
            errors.extend(kafka.error);
        }
        Err(e) => {
            observed.push(Observed::new(types::KAFKA_READY, Some(false), e.reason(), format!("kafka: {e}")));
            errors.push(e);
        }
    }
    lap("kafka");

    // 4. The Secrets the spec names, read once for the pods' secrets hash; embedded Redis.
    let mut service_failures = Vec::new();
    let referenced = match referenced_secrets(sp, ctx, &generated).await {
        Ok(r) => r,
        Err(e) => {
            service_failures.push(e);
            BTreeMap::new()
        }
    };
    if let (Some(svc), Some(deploy)) = (builders::redis_service(sp), builders::redis_deployment(sp)) {
        let result = async {
            ensure_applied(client, &svc).await?;
            ensure_applied(client, &deploy).await
        };
        if let Err(e) = result.await {
            service_failures.push(e);
        }
    }

    lap("referenced_secrets");

    // 5. Services.
    let mut service_status = BTreeMap::new();
    let mut migrations: Vec<(ServiceName, Migration)> = Vec::new();
    let mut rollouts: Vec<(ServiceName, Rollout)> = Vec::new();
    for s in sp.spec.enabled_services() {
        let hash = pod_secrets_hash(sp, s, &generated, &db.urls, &referenced);
        let database_ready = !s.has_database() || db.urls.contains_key(&s);
        match ensure_service(sp, ctx, s, database_ready, &hash).await {
            Ok(outcome) => {
                migrations.extend(outcome.migration.map(|m| (s, m)));
                rollouts.push((s, outcome.rollout));
                service_status.insert(s.as_str().to_string(), outcome.status);
            }
            Err(e) => {
                rollouts.push((s, Rollout::Progressing("not applied".into())));
                service_status.insert(
                    s.as_str().to_string(),
                    ServiceStatus { replicas: sp.spec.service(s).replicas, ..Default::default() },
                );
                if s.has_database() {
                    migrations.push((s, Migration::Running));
                }
                service_failures.push(e);
            }
        }
    }

    lap("services");

    // 6. Workloads of disabled services (their data is kept); the Ingress.
    let prev_services = previous.as_ref().map(|s| s.services.clone()).unwrap_or_default();
    for s in ServiceName::ALL {
        if prev_services.contains_key(s.as_str()) && !sp.spec.service(s).enabled {
            let name = names::service_object(sp, s);
            let result = async {
                delete_owned::<Deployment>(client, &ns, &name).await?;
                delete_owned::<PodDisruptionBudget>(client, &ns, &name).await?;
                delete_owned::<HorizontalPodAutoscaler>(client, &ns, &name).await?;
                delete_owned::<Service>(client, &ns, &name).await?;
                delete_owned::<ConfigMap>(client, &ns, &names::config_map(sp, s)).await
            };
            if let Err(e) = result.await {
                service_failures.push(e);
            }
        }
    }
    let ingress = match builders::ingress(sp) {
        Some(ing) => ensure_applied(client, &ing).await.map(|_| ()),
        None => delete_owned::<Ingress>(client, &ns, &names::ingress(sp)).await,
    };
    if let Err(e) = ingress {
        service_failures.push(e);
    }
    if let Err(e) = ensure_network_policies(sp, ctx).await {
        service_failures.push(e);
    }
    if let Err(e) = ensure_service_monitor(sp, ctx).await {
        service_failures.push(e);
    }

    lap("ingress_and_policies");
    observed.push(migrations_condition(&migrations));
    observed.push(services_condition(&rollouts, &service_failures));
    let ready_count = rollouts.iter().filter(|(_, r)| *r == Rollout::Available).count();
    errors.extend(service_failures);

    // 7. Status, only when it changed; events on a phase change and on a failure.
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
        if let Err(e) = patch_status(ctx, sp, &new_status).await {
            errors.insert(0, e);
        }
    }
    lap("status");
    crate::metrics::phase(&ns, &sp.name_any(), Some(phase));
    if prev_phase != Some(phase) {
        let (type_, note) = match phase {
            Phase::Degraded => (EventType::Warning, observed[0].message.clone()),
            _ => (EventType::Normal, format!("{} (version {})", observed[0].message, sp.spec.version)),
        };
        publish(ctx, sp, type_, phase.as_str(), "Reconcile", note).await;
    }
    if let Some(first) = errors.first() {
        let note = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
        let reason = if first.is_forbidden() { "Forbidden" } else { "ReconcileFailed" };
        publish(ctx, sp, EventType::Warning, reason, "Reconcile", note).await;
        return Err(errors.remove(0));
    }
    let settings = &ctx.settings;
    Ok(Action::requeue(if phase == Phase::Ready {
        settings.steady_requeue
    } else {
        settings.progress_requeue
    }))
}

// --- NetworkPolicies and ServiceMonitor ------------------------------------------------------------

/// Applies the platform's NetworkPolicies and deletes those of the operator that are no longer
/// desired (a disabled service, `networkPolicies.enabled: false`).
async fn ensure_network_policies(sp: &ShopPlatform, ctx: &Context) -> Result<()> {
    let ns = names::namespace(sp);
    let desired = builders::network_policies(sp);
    let mut keep = Vec::new();
    for np in &desired {
        ensure_applied(&ctx.client, np).await?;
        keep.push(np.metadata.name.clone().unwrap_or_default());
    }
    let api: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
    let selector = format!(
        "app.kubernetes.io/managed-by={FIELD_MANAGER},app.kubernetes.io/instance={},app.kubernetes.io/name=network-policy",
        sp.name_any()
    );
    let live = api.list_metadata(&ListParams::default().labels(&selector)).await.map_err(Error::kube(
        "list",
        "NetworkPolicy",
        &format!("network policies of {}", sp.name_any()),
    ))?;
    for np in live.items {
        let name = np.metadata.name.unwrap_or_default();
        if !keep.contains(&name) {
            delete_owned::<NetworkPolicy>(&ctx.client, &ns, &name).await?;
        }
    }
    Ok(())
}

/// Applies the `ServiceMonitor` when enabled and the cluster serves `monitoring.coreos.com/v1`
/// (a warning otherwise); nothing is read or written when it is not enabled.
async fn ensure_service_monitor(sp: &ShopPlatform, ctx: &Context) -> Result<()> {
    let Some(monitor) = builders::service_monitor(sp) else { return Ok(()) };
    let req = http::Request::get("/apis/monitoring.coreos.com/v1").body(Vec::new()).expect("request");
    let served = match ctx.client.request::<Value>(req).await {
        Ok(list) => {
            list["resources"].as_array().is_some_and(|r| r.iter().any(|r| r["kind"] == "ServiceMonitor"))
        }
        Err(kube::Error::Api(s)) if s.code == 404 => false,
        Err(e) => return Err(Error::kube("discover", "ServiceMonitor", "monitoring.coreos.com/v1")(e)),
    };
    if !served {
        tracing::warn!(platform = %sp.name_any(), "monitoring.serviceMonitor.enabled, but the cluster serves no monitoring.coreos.com/v1 ServiceMonitor: is the Prometheus Operator installed?");
        return Ok(());
    }
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"));
    ensure_applied_dynamic(&ctx.client, &ar, &monitor).await?;
    Ok(())
}

// --- Kafka ----------------------------------------------------------------------------------------

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
    let target = match kafka_target(sp, ctx, bootstrap).await {
        Ok(t) => t,
        Err(e) => {
            return KafkaOutcome {
                condition: Observed::new(
                    types::KAFKA_READY,
                    Some(false),
                    e.reason(),
                    format!("{mode} mode: {e}"),
                ),
                error: Some(e),
            }
        }
    };
    match ctx.topics.ensure_topics(&target, &topics).await {
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

/// The admin API's target: `external` brokers with the platform's `kafka.security` (its CA and
/// SASL password read from their Secret/ConfigMap), or else the operator-wide settings.
async fn kafka_target(sp: &ShopPlatform, ctx: &Context, bootstrap: &str) -> Result<KafkaTarget> {
    let mut target = KafkaTarget {
        bootstrap_servers: bootstrap.to_string(),
        secured: sp.spec.kafka.mode == KafkaMode::External,
        security: None,
    };
    if let Some(sec) = builders::kafka_security(sp) {
        let ns = names::namespace(sp);
        let tls = match (sec.protocol.is_tls(), &sec.ca) {
            (false, _) => None,
            (true, None) => Some(TlsConfig { ca_pem: None, server_name: None }),
            (true, Some(ca)) => {
                Some(TlsConfig { ca_pem: Some(read_ca(ctx, &ns, ca).await?), server_name: None })
            }
        };
        let sasl = match &sec.sasl {
            None => None,
            Some(s) => {
                let r = &s.password_secret_ref;
                let password = read_secret(&ctx.client, &ns, &r.name, &r.key)
                    .await?
                    .ok_or_else(|| Error::MissingSecret { name: r.name.clone(), key: r.key.clone() })?;
                Some(SaslConfig {
                    mechanism: SaslMechanism::parse(s.mechanism.as_str()).map_err(Error::InvalidSpec)?,
                    username: s.username.clone(),
                    password,
                })
            }
        };
        target.security = Some(TargetSecurity { tls, sasl });
    }
    Ok(target)
}

/// The PEM of a CA the spec names (a Secret's or a ConfigMap's key).
async fn read_ca(ctx: &Context, ns: &str, ca: &CaSource) -> Result<Vec<u8>> {
    if let Some(r) = &ca.secret_ref {
        return read_secret(&ctx.client, ns, &r.name, &r.key)
            .await?
            .map(String::into_bytes)
            .ok_or_else(|| Error::MissingSecret { name: r.name.clone(), key: r.key.clone() });
    }
    let r = ca
        .config_map_ref
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("a CA needs secretRef or configMapRef".into()))?;
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let cm = api.get_opt(&r.name).await.map_err(Error::kube("get", "ConfigMap", &r.name))?;
    cm.and_then(|c| c.data.and_then(|d| d.get(&r.key).cloned()))
        .map(String::into_bytes)
        .ok_or_else(|| Error::MissingSecret { name: format!("ConfigMap {}", r.name), key: r.key.clone() })
}

/// The platform's PostgreSQL CA (`database.tls.ca`), read for the operator's own connections.
async fn database_ca_pem(sp: &ShopPlatform, ctx: &Context) -> Result<Option<Vec<u8>>> {
    match builders::database_ca(sp) {
        Some(ca) => Ok(Some(read_ca(ctx, &names::namespace(sp), ca).await?)),
        None => Ok(None),
    }
}

/// The admin DSN with the spec's `sslmode` (`database.tls.mode`), which the services'
/// connection URLs inherit.
pub fn with_sslmode(sp: &ShopPlatform, dsn: &str) -> String {
    let Some(tls) = sp.spec.database.tls.as_ref().filter(|_| sp.spec.database.mode != DatabaseMode::Embedded)
    else {
        return dsn.to_string();
    };
    let Ok(mut url) = url::Url::parse(dsn) else { return dsn.to_string() };
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| k != "sslmode")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut().clear().extend_pairs(pairs).append_pair("sslmode", tls.mode.as_str());
    url.to_string()
}

/// The `KafkaTopic` version to write, from the versions the cluster serves for
/// `kafka.strimzi.io`: `v1` (Strimzi ≥ 0.49; the only one from 1.0), else `v1beta2`.
pub fn strimzi_version(served: &[String]) -> Option<&'static str> {
    [builders::STRIMZI_VERSION, builders::STRIMZI_LEGACY_VERSION]
        .into_iter()
        .find(|v| served.iter().any(|s| s == v))
}

/// The versions the API server serves for `kafka.strimzi.io` (discovery; empty when Strimzi's
/// CRDs are not installed).
async fn strimzi_served_versions(client: &Client) -> Result<Vec<String>> {
    let req = http::Request::get("/apis/kafka.strimzi.io").body(Vec::new()).expect("request");
    match client.request::<Value>(req).await {
        Ok(group) => Ok(group["versions"]
            .as_array()
            .map(|vs| vs.iter().filter_map(|v| v["version"].as_str().map(String::from)).collect())
            .unwrap_or_default()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Vec::new()),
        Err(e) => Err(Error::kube("discover", "KafkaTopic", "kafka.strimzi.io")(e)),
    }
}

/// The Kafka step per `kafka.mode`: `external` creates the topics at `bootstrapServers`;
/// `embedded` applies the broker and, once it is ready, creates the topics there; `strimzi`
/// applies one `KafkaTopic` per topic, at the newest version the cluster serves, and reports
/// what Strimzi says about them.
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
            ensure_applied(&ctx.client, &svc).await?;
            let sts = builders::kafka_statefulset(sp).expect("embedded mode");
            let applied: StatefulSet = ensure_applied(&ctx.client, &sts).await?;
            if applied.status.and_then(|s| s.ready_replicas).unwrap_or(0) < 1 {
                return Ok(kafka_waiting(format!("waiting for StatefulSet {}", names::kafka(sp))));
            }
            Ok(provision_topics(sp, ctx, &builders::kafka_bootstrap_servers(sp)).await)
        }
        KafkaMode::Strimzi => {
            let served = strimzi_served_versions(&ctx.client).await?;
            let Some(version) = strimzi_version(&served) else {
                return Ok(kafka_waiting(format!(
                    "the cluster serves no KafkaTopic API (kafka.strimzi.io {}): is Strimzi installed?",
                    if served.is_empty() { "missing".to_string() } else { served.join(", ") }
                )));
            };
            let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("kafka.strimzi.io", version, "KafkaTopic"));
            let mut waiting = Vec::new();
            let mut total = 0;
            for topic in builders::strimzi_topics(sp, version) {
                let name = topic.metadata.name.clone().unwrap_or_default();
                let applied = ensure_applied_dynamic(&ctx.client, &ar, &topic).await?;
                total += 1;
                if let Some(why) = strimzi_not_ready(&applied) {
                    waiting.push(format!("{name} ({why})"));
                }
            }
            if waiting.is_empty() {
                Ok(kafka_ok(
                    reasons::PROVISIONED,
                    format!("strimzi mode: {total} KafkaTopics (kafka.strimzi.io/{version}) ready"),
                ))
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

// --- deletion -------------------------------------------------------------------------------------

/// Runs the deletion policy before the finalizer is removed.
async fn cleanup(sp: &ShopPlatform, ctx: &Context) -> Result<Action> {
    let previous = sp.status.clone().unwrap_or_default();
    if previous.phase != Some(Phase::Deleting) {
        let mut status = previous.clone();
        status.phase = Some(Phase::Deleting);
        patch_status(ctx, sp, &status).await?;
    }
    let mode = sp.spec.database.mode;
    let ns = names::namespace(sp);
    let dropped = match (sp.spec.deletion_policy, mode) {
        (DeletionPolicy::Delete, DatabaseMode::External | DatabaseMode::Cloudnativepg) => {
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
                    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
                    let secret = api.get_opt(&name).await.map_err(Error::kube("get", "Secret", &name))?;
                    secret
                        .as_ref()
                        .and_then(cnpg_admin_dsn)
                        .ok_or(Error::MissingSecret { name, key: "uri".into() })?
                }
            };
            let dsn = with_sslmode(sp, dsn.trim());
            let ca = database_ca_pem(sp, ctx).await?;
            let mut dropped = Vec::new();
            for s in ServiceName::ALL.into_iter().filter(|s| s.has_database()) {
                let name = names::db_identifier(sp, s);
                ctx.db.drop_database_with_ca(&dsn, ca.as_deref(), &name).await?;
                dropped.push(name);
            }
            format!("dropped databases and roles {}", dropped.join(", "))
        }
        (DeletionPolicy::Delete, DatabaseMode::Embedded) => {
            "the embedded database's volume is deleted with its StatefulSet".to_string()
        }
        (DeletionPolicy::Retain, DatabaseMode::Embedded) => {
            format!(
                "deletionPolicy Retain: the volume data-{}-0 and the Secret {} are kept",
                names::postgres(sp),
                names::postgres_admin_secret(sp)
            )
        }
        (DeletionPolicy::Retain, DatabaseMode::Cloudnativepg) => {
            format!(
                "deletionPolicy Retain: the CloudNativePG Cluster {} and its databases are kept",
                names::cnpg_cluster(sp)
            )
        }
        (DeletionPolicy::Retain, DatabaseMode::External) => {
            "deletionPolicy Retain: databases are kept".to_string()
        }
    };
    let topics = match (sp.spec.deletion_policy, sp.spec.kafka.mode) {
        // The platform's topics (and dead-letter topics) at the external brokers. Embedded: the
        // broker and its data go with the StatefulSet; Strimzi: the `KafkaTopic`s are owned by
        // the platform under Delete, and Strimzi deletes the topics with them.
        (DeletionPolicy::Delete, KafkaMode::External) => {
            let bootstrap = builders::kafka_bootstrap_servers(sp);
            if bootstrap.trim().is_empty() {
                "no bootstrap servers: no topics to delete".to_string()
            } else {
                let names = provision::topic_names(sp);
                let target = kafka_target(sp, ctx, &bootstrap).await?;
                let deleted = ctx.topics.delete_topics(&target, &names).await.map_err(Error::Kafka)?;
                format!("deleted {} topics at {bootstrap}", deleted.len())
            }
        }
        (DeletionPolicy::Delete, _) => "topics go with the broker or its KafkaTopics".to_string(),
        (DeletionPolicy::Retain, KafkaMode::Strimzi) => "the KafkaTopics (and topics) are kept".to_string(),
        (DeletionPolicy::Retain, _) => "topics are kept".to_string(),
    };
    let dropped = format!("{dropped}; {topics}");
    publish(ctx, sp, EventType::Normal, "Deleting", "Cleanup", dropped).await;
    Ok(Action::await_change())
}

// --- the controller -------------------------------------------------------------------------------

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
        .owns(scoped::<StatefulSet>(&client, ns), owned.clone())
        .owns(scoped::<NetworkPolicy>(&client, ns), owned)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strimzi_v1_wins_and_v1beta2_only_where_nothing_newer_is_served() {
        let v = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(strimzi_version(&v(&["v1"])), Some("v1"));
        assert_eq!(strimzi_version(&v(&["v1beta2", "v1"])), Some("v1"));
        assert_eq!(strimzi_version(&v(&["v1beta2", "v1beta1"])), Some("v1beta2"));
        assert_eq!(strimzi_version(&v(&["v1alpha1"])), None);
        assert_eq!(strimzi_version(&[]), None);
    }

    #[test]
    fn cloudnativepg_superuser_secret_dsn_uses_the_postgres_database() {
        let secret = |data: serde_json::Value| -> Secret {
            serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": data})).unwrap()
        };
        let s = secret(json!({"uri": "postgresql://postgres:pw@shop-db-rw.ns:5432/*", "dbname": "*"}));
        assert_eq!(cnpg_admin_dsn(&s).unwrap(), "postgresql://postgres:pw@shop-db-rw.ns:5432/postgres");
        let s =
            secret(json!({"username": "postgres", "password": "p@ss", "host": "shop-db-rw", "port": "5432"}));
        assert_eq!(cnpg_admin_dsn(&s).unwrap(), "postgres://postgres:p%40ss@shop-db-rw:5432/postgres");
        assert!(cnpg_admin_dsn(&secret(json!({}))).is_none());
    }
}
