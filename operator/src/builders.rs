//! Desired state as pure functions: each builder takes the `ShopPlatform` and returns the object
//! the operator applies, with the owner reference and standard labels. No I/O, no clock, no
//! randomness — the golden tests pin their output byte for byte.

use std::collections::BTreeMap;

use contract::events::env as events_env;
use contract::{env, ServiceName, KUBERNETES_PORT};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::crd::{DatabaseMode, DeletionPolicy, KafkaMode, RedisMode, ShopPlatform};
use crate::names::{self, *};

/// Component and `app.kubernetes.io/name` of the service workloads.
const APP_NAME: &str = "shop";

fn from_json<T: DeserializeOwned>(v: Value) -> T {
    serde_json::from_value(v).expect("builder produces a valid object")
}

/// Controller owner reference to the ShopPlatform: owned objects are garbage-collected with it
/// and their changes trigger a reconcile.
pub fn owner_reference(sp: &ShopPlatform) -> OwnerReference {
    OwnerReference {
        api_version: ShopPlatform::api_version(&()).into_owned(),
        kind: ShopPlatform::kind(&()).into_owned(),
        name: sp.name_any(),
        uid: sp.uid().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn meta(sp: &ShopPlatform, name: String, app: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(names::namespace(sp)),
        labels: Some(labels(sp, app, component)),
        owner_references: Some(vec![owner_reference(sp)]),
        ..ObjectMeta::default()
    }
}

/// Whether objects that hold data (the CloudNativePG `Cluster`, the embedded database's admin
/// Secret, Strimzi `KafkaTopic`s) carry the owner reference: only with `deletionPolicy: Delete`.
/// With `Retain` they outlive the ShopPlatform (the garbage collector leaves them alone) and a
/// new ShopPlatform of the same name takes them over.
pub fn owns_data(sp: &ShopPlatform) -> bool {
    sp.spec.deletion_policy == DeletionPolicy::Delete
}

/// [`meta`] of an object holding data: owned only when [`owns_data`].
fn data_meta(sp: &ShopPlatform, name: String, app: &str, component: &str) -> ObjectMeta {
    let mut m = meta(sp, name, app, component);
    if !owns_data(sp) {
        m.owner_references = None;
    }
    m
}

/// The non-secret environment of a service (its ConfigMap's data).
pub fn service_config(sp: &ShopPlatform, service: ServiceName) -> BTreeMap<String, String> {
    let mut data = BTreeMap::new();
    data.insert(env::HTTP_ADDR.to_string(), format!("0.0.0.0:{KUBERNETES_PORT}"));
    data.insert(env::LOG_FORMAT.to_string(), env::LOG_FORMAT_JSON.to_string());
    if service.has_database() {
        data.insert(env::MIGRATE_ON_START.to_string(), "false".to_string());
    }
    let enabled = sp.spec.enabled_services();
    if enabled.contains(&ServiceName::Auth) {
        data.insert(
            env::JWKS_URL.to_string(),
            format!("{}/.well-known/jwks.json", service_url(sp, ServiceName::Auth)),
        );
    }
    // The peers the service calls over HTTP (the gateway: every other service), when enabled.
    for peer in service.peers().iter().filter(|p| enabled.contains(p)) {
        data.insert(peer.url_env_key(), service_url(sp, *peer));
    }
    if service == ServiceName::Payment {
        // Stripe when the spec names its Secret (the keys come from it, see `secret_env`).
        let provider = if sp.spec.stripe.is_some() {
            env::PAYMENT_PROVIDER_STRIPE
        } else {
            env::PAYMENT_PROVIDER_SIMULATED
        };
        data.insert(env::PAYMENT_PROVIDER.to_string(), provider.to_string());
    }
    // The event bus (`kit::events::EventsConfig`): Kafka, with the platform's topic prefix.
    data.insert(events_env::BUS.to_string(), events_env::BUS_KAFKA.to_string());
    data.insert(events_env::BROKERS.to_string(), kafka_bootstrap_servers(sp));
    data.insert(events_env::TOPIC_PREFIX.to_string(), names::topic_prefix(sp));
    if sp.spec.redis.mode == RedisMode::Embedded {
        data.insert(env::REDIS_URL.to_string(), redis_url(sp));
    }
    for var in sp.spec.service(service).env {
        if let Some(value) = var.value {
            data.insert(var.name, value);
        }
    }
    data
}

/// ConfigMap with the service's non-secret environment.
pub fn config_map(sp: &ShopPlatform, service: ServiceName) -> ConfigMap {
    ConfigMap {
        metadata: meta(sp, names::config_map(sp, service), APP_NAME, service.as_str()),
        data: Some(service_config(sp, service)),
        ..ConfigMap::default()
    }
}

/// Environment variables that come from Secrets. `serving`: the Deployment's container (the
/// migration Job's container does not get the Stripe credentials).
fn secret_env(sp: &ShopPlatform, service: ServiceName, serving: bool) -> Vec<Value> {
    let secret = |name: &str, secret: String, key: &str| json!({"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}});
    let mut out = Vec::new();
    if service.has_database() {
        out.push(secret(env::DATABASE_URL, db_connection_secret(sp, service), DATABASE_URL_KEY));
    }
    if service == ServiceName::Auth {
        out.push(secret(env::JWT_SIGNING_KEY, signing_key_secret(sp), SIGNING_KEY_KEY));
    }
    out.push(secret(env::INTERNAL_TOKEN, internal_credential_secret(sp), INTERNAL_CREDENTIAL_KEY));
    if let (RedisMode::External, Some(r)) = (sp.spec.redis.mode, &sp.spec.redis.url_secret_ref) {
        out.push(secret(env::REDIS_URL, r.name.clone(), &r.key));
    }
    if let (ServiceName::Payment, true, Some(stripe)) = (service, serving, &sp.spec.stripe) {
        out.push(secret(env::STRIPE_SECRET_KEY, stripe.secret_name.clone(), STRIPE_API_KEY_KEY));
        out.push(secret(env::PAYMENT_WEBHOOK_SECRET, stripe.secret_name.clone(), STRIPE_WEBHOOK_SECRET_KEY));
    }
    // The spec's extra env overrides the operator's: a variable it names (by value or from a
    // Secret) replaces the operator's secret reference (which would shadow a ConfigMap value,
    // and a name twice in `env` is refused by server-side apply).
    let extra = sp.spec.service(service).env;
    out.retain(|e| !extra.iter().any(|v| e["name"] == v.name.as_str()));
    for var in extra {
        if let Some(r) = var.secret_key_ref {
            out.push(secret(&var.name, r.name, &r.key));
        }
    }
    out
}

fn resources(sp: &ShopPlatform, service: ServiceName) -> Value {
    let spec = sp.spec.service(service).resources.unwrap_or_default();
    let requests = spec.requests.unwrap_or_default();
    let limits = spec.limits.unwrap_or_default();
    json!({
        "requests": {
            "cpu": requests.cpu.unwrap_or_else(|| "100m".into()),
            "memory": requests.memory.unwrap_or_else(|| "128Mi".into()),
        },
        "limits": match limits.cpu {
            Some(cpu) => json!({"cpu": cpu, "memory": limits.memory.unwrap_or_else(|| "512Mi".into())}),
            None => json!({"memory": limits.memory.unwrap_or_else(|| "512Mi".into())}),
        },
    })
}

/// Restricted-profile security context of every service container.
pub fn container_security_context() -> Value {
    json!({
        "allowPrivilegeEscalation": false,
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

fn pod_security_context(uid: i64) -> Value {
    json!({
        "runAsNonRoot": true,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    })
}

/// The container running `shop <args…>`; `probes`: the serving container of a Deployment (ports,
/// probes, every secret of the service), otherwise a migration Job's.
fn shop_container(sp: &ShopPlatform, service: ServiceName, name: &str, args: Value, probes: bool) -> Value {
    let mut c = json!({
        "name": name,
        "image": format!("{}:{}", sp.spec.image, sp.spec.version),
        "imagePullPolicy": sp.spec.image_pull_policy.as_str(),
        "args": args,
        "envFrom": [{"configMapRef": {"name": names::config_map(sp, service)}}],
        "env": secret_env(sp, service, probes),
        "resources": resources(sp, service),
        "securityContext": container_security_context(),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    });
    if probes {
        c["ports"] = json!([{"name": HTTP_PORT_NAME, "containerPort": KUBERNETES_PORT, "protocol": "TCP"}]);
        c["livenessProbe"] = json!({
            "httpGet": {"path": "/healthz", "port": HTTP_PORT_NAME},
            "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3,
        });
        c["readinessProbe"] = json!({
            "httpGet": {"path": "/readyz", "port": HTTP_PORT_NAME},
            "periodSeconds": 5, "timeoutSeconds": 2, "failureThreshold": 3,
        });
        c["startupProbe"] = json!({
            "httpGet": {"path": "/healthz", "port": HTTP_PORT_NAME},
            "periodSeconds": 2, "failureThreshold": 30,
        });
    }
    c
}

fn short_hash(data: &[u8]) -> String {
    Sha256::digest(data).iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Hash of everything in the pod's configuration that is not in the pod template itself.
fn config_hash(sp: &ShopPlatform, service: ServiceName) -> String {
    short_hash(&serde_json::to_vec(&service_config(sp, service)).expect("serializable"))
}

/// The Secret keys a service's pods read (`secretKeyRef`s of its container): generated ones,
/// its connection Secret, and the Secrets the spec names (Stripe, Redis, extra env).
pub fn consumed_secrets(sp: &ShopPlatform, service: ServiceName) -> Vec<(String, String)> {
    let mut refs: Vec<(String, String)> = secret_env(sp, service, true)
        .iter()
        .filter_map(|e| {
            let r = &e["valueFrom"]["secretKeyRef"];
            Some((r["name"].as_str()?.to_string(), r["key"].as_str()?.to_string()))
        })
        .collect();
    refs.sort();
    refs.dedup();
    refs
}

/// Hash of the values of the Secret keys a pod reads (`None`: missing), for the pod template's
/// [`SECRETS_HASH_ANNOTATION`]: a rotated Secret changes it, so the pods roll and read the new
/// value (environment variables from Secrets are read only when a container starts).
pub fn secrets_hash(values: &[(String, String, Option<String>)]) -> String {
    let mut h = Sha256::new();
    for (name, key, value) in values {
        h.update(name.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        h.update([0]);
        match value {
            Some(v) => {
                h.update([1]);
                h.update(v.as_bytes());
            }
            None => h.update([2]),
        }
        h.update([0]);
    }
    h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// Deployment running `shop serve <service>`; `secrets_hash` is [`secrets_hash`] of the values
/// of [`consumed_secrets`]. With `autoscaling` the replica count is left out: the
/// HorizontalPodAutoscaler (or `kubectl scale`) owns it.
pub fn deployment(sp: &ShopPlatform, service: ServiceName, secrets_hash: &str) -> Deployment {
    let spec = sp.spec.service(service);
    let labels = labels(sp, APP_NAME, service.as_str());
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(sp, service_object(sp, service), APP_NAME, service.as_str()),
        "spec": {
            "replicas": spec.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": selector(sp, APP_NAME, service.as_str())},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        CONFIG_HASH_ANNOTATION: config_hash(sp, service),
                        SECRETS_HASH_ANNOTATION: secrets_hash,
                    },
                },
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": pod_security_context(65532),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [shop_container(sp, service, service.as_str(), json!(["serve", service.as_str()]), true)],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
        },
    });
    if spec.autoscaling.is_some() {
        d["spec"].as_object_mut().expect("spec").remove("replicas");
    }
    from_json(d)
}

/// HorizontalPodAutoscaler (`autoscaling/v2`, CPU utilization) of a service with `autoscaling`.
pub fn horizontal_pod_autoscaler(sp: &ShopPlatform, service: ServiceName) -> Option<HorizontalPodAutoscaler> {
    let spec = sp.spec.service(service);
    let a = spec.autoscaling.filter(|_| spec.enabled)?;
    Some(from_json(json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": meta(sp, service_object(sp, service), APP_NAME, service.as_str()),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": service_object(sp, service)},
            "minReplicas": a.min_replicas,
            "maxReplicas": a.max_replicas,
            "metrics": [{
                "type": "Resource",
                "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": a.target_cpu_utilization_percentage}},
            }],
        },
    })))
}

/// Service `<platform>-<service>`: port 80 → the pods' `http` port (8080).
pub fn service(sp: &ShopPlatform, service: ServiceName) -> Service {
    from_json(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(sp, service_object(sp, service), APP_NAME, service.as_str()),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(sp, APP_NAME, service.as_str()),
            "ports": [{"name": HTTP_PORT_NAME, "port": SERVICE_PORT, "targetPort": HTTP_PORT_NAME, "protocol": "TCP"}],
        },
    }))
}

/// PodDisruptionBudget keeping all but one pod up, only when the service has several replicas
/// (with `autoscaling`: when its minimum is above one).
pub fn pod_disruption_budget(sp: &ShopPlatform, service: ServiceName) -> Option<PodDisruptionBudget> {
    let spec = sp.spec.service(service);
    let several = match &spec.autoscaling {
        Some(a) => a.min_replicas > 1,
        None => spec.replicas > 1,
    };
    (spec.enabled && several).then(|| {
        from_json(json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(sp, service_object(sp, service), APP_NAME, service.as_str()),
            "spec": {
                "maxUnavailable": 1,
                "selector": {"matchLabels": selector(sp, APP_NAME, service.as_str())},
            },
        }))
    })
}

/// Job running `shop migrate <service>` for the platform's version (services with a database).
pub fn migration_job(sp: &ShopPlatform, service: ServiceName) -> Option<Job> {
    if !service.has_database() {
        return None;
    }
    let component = format!("{}-migrate", service.as_str());
    let template = json!({
        "metadata": {"labels": labels(sp, APP_NAME, &component)},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "securityContext": pod_security_context(65532),
            "containers": [shop_container(sp, service, "migrate", json!(["migrate", service.as_str()]), false)],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    });
    let mut metadata = meta(sp, names::migration_job(sp, service), APP_NAME, &component);
    metadata.annotations = Some(BTreeMap::from([(
        TEMPLATE_HASH_ANNOTATION.to_string(),
        short_hash(&serde_json::to_vec(&template).expect("serializable")),
    )]));
    Some(from_json(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": {
            "backoffLimit": 4,
            "activeDeadlineSeconds": 900,
            "template": template,
        },
    })))
}

/// Ingress in front of the gateway, when enabled (and the gateway is).
pub fn ingress(sp: &ShopPlatform) -> Option<Ingress> {
    let spec = &sp.spec.ingress;
    if !spec.enabled || !sp.spec.service(ServiceName::Gateway).enabled {
        return None;
    }
    let host = spec.host.clone().unwrap_or_default();
    let mut meta = meta(sp, names::ingress(sp), APP_NAME, ServiceName::Gateway.as_str());
    if !spec.annotations.is_empty() {
        meta.annotations = Some(spec.annotations.clone());
    }
    let mut ing = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "rules": [{
                "host": host,
                "http": {"paths": [{
                    "path": "/",
                    "pathType": "Prefix",
                    "backend": {"service": {
                        "name": service_object(sp, ServiceName::Gateway),
                        "port": {"name": HTTP_PORT_NAME},
                    }},
                }]},
            }],
        },
    });
    if let Some(class) = &spec.class_name {
        ing["spec"]["ingressClassName"] = json!(class);
    }
    if let Some(tls) = &spec.tls_secret_name {
        ing["spec"]["tls"] = json!([{"hosts": [host], "secretName": tls}]);
    }
    Some(from_json(ing))
}

/// The public URL of the API, when there is an Ingress.
pub fn public_url(sp: &ShopPlatform) -> Option<String> {
    ingress(sp)?;
    let scheme = if sp.spec.ingress.tls_secret_name.is_some() { "https" } else { "http" };
    Some(format!("{scheme}://{}", sp.spec.ingress.host.as_deref().unwrap_or_default()))
}

/// A generated Secret (created once, never updated). `holds_data`: a credential that opens kept
/// data (the embedded database's admin password), owned only when [`owns_data`].
pub fn generated_secret(
    sp: &ShopPlatform,
    name: String,
    key: &str,
    value: String,
    holds_data: bool,
) -> Secret {
    let mut metadata = if holds_data {
        data_meta(sp, name, "shop-secret", "generated")
    } else {
        meta(sp, name, "shop-secret", "generated")
    };
    metadata.annotations = Some(BTreeMap::from([(
        "platform.shop/generated".to_string(),
        "created once by shop-operator; delete it to rotate".to_string(),
    )]));
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(key.to_string(), ByteString(value.into_bytes()))])),
        ..Secret::default()
    }
}

/// A Secret the operator generates once, and how to generate its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedSecretSpec {
    pub name: String,
    pub key: &'static str,
    pub kind: SecretKind,
    /// It opens data kept under `deletionPolicy: Retain` (see [`generated_secret`]).
    pub holds_data: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    /// Ed25519 PKCS#8 PEM.
    SigningKey,
    /// 32 random bytes, URL-safe base64.
    Token,
    /// 32 random alphanumeric characters (safe inside a URL).
    Password,
}

/// Every Secret the operator generates for this platform.
pub fn generated_secrets(sp: &ShopPlatform) -> Vec<GeneratedSecretSpec> {
    let mut out = Vec::new();
    let enabled = sp.spec.enabled_services();
    if enabled.contains(&ServiceName::Auth) {
        out.push(GeneratedSecretSpec {
            name: signing_key_secret(sp),
            key: SIGNING_KEY_KEY,
            kind: SecretKind::SigningKey,
            holds_data: false,
        });
    }
    out.push(GeneratedSecretSpec {
        name: internal_credential_secret(sp),
        key: INTERNAL_CREDENTIAL_KEY,
        kind: SecretKind::Token,
        holds_data: false,
    });
    if sp.spec.database.mode == DatabaseMode::Embedded {
        out.push(GeneratedSecretSpec {
            name: postgres_admin_secret(sp),
            key: PASSWORD_KEY,
            kind: SecretKind::Password,
            holds_data: true,
        });
    }
    for s in enabled.into_iter().filter(|s| s.has_database()) {
        out.push(GeneratedSecretSpec {
            name: db_password_secret(sp, s),
            key: PASSWORD_KEY,
            kind: SecretKind::Password,
            holds_data: false,
        });
    }
    out
}

/// A service's connection Secret (`DATABASE_URL`), written after its database is provisioned.
pub fn connection_secret(sp: &ShopPlatform, service: ServiceName, url: &str) -> Secret {
    Secret {
        metadata: meta(sp, db_connection_secret(sp, service), "shop-secret", service.as_str()),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(DATABASE_URL_KEY.to_string(), ByteString(url.as_bytes().to_vec()))])),
        ..Secret::default()
    }
}

const POSTGRES_PORT: i32 = 5432;
/// uid of `postgres` in the official Alpine images.
const POSTGRES_UID: i64 = 70;

/// Host and port of the embedded PostgreSQL.
pub fn postgres_host(sp: &ShopPlatform) -> (String, i32) {
    (format!("{}.{}.svc", names::postgres(sp), names::namespace(sp)), POSTGRES_PORT)
}

/// Embedded mode: the Service of the single PostgreSQL pod.
pub fn postgres_service(sp: &ShopPlatform) -> Option<Service> {
    (sp.spec.database.mode == DatabaseMode::Embedded).then(|| {
        from_json(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(sp, names::postgres(sp), "postgres", "database"),
            "spec": {
                "type": "ClusterIP",
                "selector": selector(sp, "postgres", "database"),
                "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": "postgres", "protocol": "TCP"}],
            },
        }))
    })
}

/// Embedded mode: one PostgreSQL pod with a volume (for development; no backups, no HA).
pub fn postgres_statefulset(sp: &ShopPlatform) -> Option<StatefulSet> {
    if sp.spec.database.mode != DatabaseMode::Embedded {
        return None;
    }
    let spec = sp.spec.database.embedded.clone().unwrap_or_default();
    let on_delete = match sp.spec.deletion_policy {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    };
    let mut claim_spec = json!({
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage_size}},
    });
    if let Some(class) = &spec.storage_class_name {
        claim_spec["storageClassName"] = json!(class);
    }
    Some(from_json(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(sp, names::postgres(sp), "postgres", "database"),
        "spec": {
            "replicas": 1,
            "serviceName": names::postgres(sp),
            "selector": {"matchLabels": selector(sp, "postgres", "database")},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": on_delete, "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": labels(sp, "postgres", "database")},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": pod_security_context(POSTGRES_UID),
                    "containers": [{
                        "name": "postgres",
                        "image": spec.image,
                        "imagePullPolicy": sp.spec.image_pull_policy.as_str(),
                        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
                        "env": [
                            {"name": "POSTGRES_PASSWORD", "valueFrom": {"secretKeyRef": {
                                "name": postgres_admin_secret(sp), "key": PASSWORD_KEY}}},
                            {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
                        ],
                        "readinessProbe": {
                            "exec": {"command": ["pg_isready", "-U", "postgres", "-h", "127.0.0.1"]},
                            "periodSeconds": 5, "timeoutSeconds": 3,
                        },
                        "livenessProbe": {
                            "exec": {"command": ["pg_isready", "-U", "postgres", "-h", "127.0.0.1"]},
                            "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6,
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "256Mi"},
                            "limits": {"memory": "1Gi"},
                        },
                        "securityContext": container_security_context(),
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/var/lib/postgresql/data"},
                            {"name": "run", "mountPath": "/var/run/postgresql"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [
                        {"name": "run", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
            "volumeClaimTemplates": [{
                "metadata": {"name": "data", "labels": selector(sp, "postgres", "database")},
                "spec": claim_spec,
            }],
        },
    })))
}

/// CloudNativePG `Cluster` (`postgresql.cnpg.io/v1`), when `database.mode` is `cloudnativepg`.
pub fn cnpg_cluster(sp: &ShopPlatform) -> Option<DynamicObject> {
    if sp.spec.database.mode != DatabaseMode::Cloudnativepg {
        return None;
    }
    let spec = sp.spec.database.cloudnativepg.clone().unwrap_or(crate::crd::CloudNativePgDatabase {
        instances: 1,
        storage_size: "10Gi".into(),
        storage_class_name: None,
    });
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"));
    let mut storage = json!({"size": spec.storage_size});
    if let Some(class) = spec.storage_class_name {
        storage["storageClass"] = json!(class);
    }
    let mut obj = DynamicObject::new(&names::cnpg_cluster(sp), &ar).data(json!({
        "spec": {
            "instances": spec.instances,
            "enableSuperuserAccess": true,
            "storage": storage,
        }
    }));
    obj.metadata = data_meta(sp, names::cnpg_cluster(sp), "postgres", "database");
    Some(obj)
}

const KAFKA_PORT: i32 = 9092;
const KAFKA_CONTROLLER_PORT: i32 = 9093;
/// uid of `appuser` in the official `apache/kafka` images.
const KAFKA_UID: i64 = 1000;
/// Fixed KRaft cluster id of the embedded broker: a Kafka `Uuid` (URL-safe base64 of 16 bytes,
/// here `shop-kafka-embed`); the storage is formatted with it at every start.
const KAFKA_CLUSTER_ID: &str = "c2hvcC1rYWZrYS1lbWJlZA";
const REDIS_PORT: i32 = 6379;
/// uid of `redis` in the official Alpine images.
const REDIS_UID: i64 = 999;

/// The Kafka bootstrap servers services and the operator use, per `kafka.mode`: the spec's
/// list (`external`), the Strimzi cluster's bootstrap Service (`strimzi`), or the embedded
/// broker's Service (`embedded`).
pub fn kafka_bootstrap_servers(sp: &ShopPlatform) -> String {
    let ns = names::namespace(sp);
    match sp.spec.kafka.mode {
        KafkaMode::External => sp.spec.kafka.bootstrap_servers.clone().unwrap_or_default(),
        KafkaMode::Strimzi => {
            let cluster = sp.spec.kafka.strimzi_cluster.clone().unwrap_or_else(|| "kafka".into());
            format!("{cluster}-kafka-bootstrap.{ns}.svc:{KAFKA_PORT}")
        }
        KafkaMode::Embedded => format!("{}.{ns}.svc:{KAFKA_PORT}", names::kafka(sp)),
    }
}

/// The URL of the embedded Redis.
pub fn redis_url(sp: &ShopPlatform) -> String {
    format!("redis://{}.{}.svc:{REDIS_PORT}", names::redis(sp), names::namespace(sp))
}

/// Embedded Kafka: the Service of the broker pod (clients use `kafka`; `controller` is the KRaft
/// quorum port, used by the pod itself).
pub fn kafka_service(sp: &ShopPlatform) -> Option<Service> {
    (sp.spec.kafka.mode == KafkaMode::Embedded).then(|| {
        from_json(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(sp, names::kafka(sp), "kafka", "events"),
            "spec": {
                "type": "ClusterIP",
                "selector": selector(sp, "kafka", "events"),
                "ports": [{"name": "kafka", "port": KAFKA_PORT, "targetPort": "kafka", "protocol": "TCP"}],
            },
        }))
    })
}

/// Embedded Kafka: one broker in KRaft combined mode (broker and controller), plaintext, data
/// in an emptyDir (development only: a restarted pod comes back empty and the operator
/// re-creates the topics on its next pass).
pub fn kafka_statefulset(sp: &ShopPlatform) -> Option<StatefulSet> {
    if sp.spec.kafka.mode != KafkaMode::Embedded {
        return None;
    }
    let spec = sp.spec.kafka.embedded.clone().unwrap_or_default();
    let host = format!("{}.{}.svc", names::kafka(sp), names::namespace(sp));
    let t = &sp.spec.kafka.topics;
    let env = |name: &str, value: String| json!({"name": name, "value": value});
    // The image writes its generated configuration below /opt/kafka/config, so its root file
    // system stays writable; everything else is restricted.
    let mut security = container_security_context();
    security["readOnlyRootFilesystem"] = json!(false);
    Some(from_json(json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(sp, names::kafka(sp), "kafka", "events"),
        "spec": {
            "replicas": 1,
            "serviceName": names::kafka(sp),
            "selector": {"matchLabels": selector(sp, "kafka", "events")},
            "template": {
                "metadata": {"labels": labels(sp, "kafka", "events")},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": pod_security_context(KAFKA_UID),
                    "containers": [{
                        "name": "kafka",
                        "image": spec.image,
                        "imagePullPolicy": sp.spec.image_pull_policy.as_str(),
                        "ports": [
                            {"name": "kafka", "containerPort": KAFKA_PORT, "protocol": "TCP"},
                            {"name": "controller", "containerPort": KAFKA_CONTROLLER_PORT, "protocol": "TCP"},
                        ],
                        "env": [
                            env("CLUSTER_ID", KAFKA_CLUSTER_ID.into()),
                            env("KAFKA_NODE_ID", "1".into()),
                            env("KAFKA_PROCESS_ROLES", "broker,controller".into()),
                            env("KAFKA_LISTENERS", format!("PLAINTEXT://:{KAFKA_PORT},CONTROLLER://:{KAFKA_CONTROLLER_PORT}")),
                            env("KAFKA_ADVERTISED_LISTENERS", format!("PLAINTEXT://{host}:{KAFKA_PORT}")),
                            env("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".into()),
                            env("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER".into()),
                            env("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT".into()),
                            env("KAFKA_CONTROLLER_QUORUM_VOTERS", format!("1@localhost:{KAFKA_CONTROLLER_PORT}")),
                            env("KAFKA_LOG_DIRS", "/var/lib/kafka/data".into()),
                            env("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false".into()),
                            env("KAFKA_NUM_PARTITIONS", t.partitions.to_string()),
                            env("KAFKA_DEFAULT_REPLICATION_FACTOR", "1".into()),
                            env("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1".into()),
                            env("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1".into()),
                            env("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1".into()),
                            env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0".into()),
                            env("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m".into()),
                        ],
                        "readinessProbe": {
                            "tcpSocket": {"port": "kafka"},
                            "initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 3,
                        },
                        "livenessProbe": {
                            "tcpSocket": {"port": "kafka"},
                            "initialDelaySeconds": 30, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6,
                        },
                        "resources": {
                            "requests": {"cpu": "100m", "memory": "512Mi"},
                            "limits": {"memory": "1Gi"},
                        },
                        "securityContext": security,
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/var/lib/kafka/data"},
                            {"name": "tmp", "mountPath": "/tmp"},
                        ],
                    }],
                    "volumes": [
                        {"name": "data", "emptyDir": {"sizeLimit": "2Gi"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    })))
}

/// Embedded Redis: the Service of the Redis pod.
pub fn redis_service(sp: &ShopPlatform) -> Option<Service> {
    (sp.spec.redis.mode == RedisMode::Embedded).then(|| {
        from_json(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta(sp, names::redis(sp), "redis", "cache"),
            "spec": {
                "type": "ClusterIP",
                "selector": selector(sp, "redis", "cache"),
                "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}],
            },
        }))
    })
}

/// Embedded Redis: one pod, no persistence (no RDB snapshots, no AOF), read-only root file
/// system, non-root (the image's `redis` user).
pub fn redis_deployment(sp: &ShopPlatform) -> Option<Deployment> {
    if sp.spec.redis.mode != RedisMode::Embedded {
        return None;
    }
    let spec = sp.spec.redis.embedded.clone().unwrap_or_default();
    let probe = |delay: i32| {
        json!({
            "exec": {"command": ["redis-cli", "ping"]},
            "initialDelaySeconds": delay, "periodSeconds": 10, "timeoutSeconds": 3,
        })
    };
    Some(from_json(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(sp, names::redis(sp), "redis", "cache"),
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 2,
            "selector": {"matchLabels": selector(sp, "redis", "cache")},
            "strategy": {"type": "Recreate"},
            "template": {
                "metadata": {"labels": labels(sp, "redis", "cache")},
                "spec": {
                    "automountServiceAccountToken": false,
                    "enableServiceLinks": false,
                    "securityContext": pod_security_context(REDIS_UID),
                    "containers": [{
                        "name": "redis",
                        "image": spec.image,
                        "imagePullPolicy": sp.spec.image_pull_policy.as_str(),
                        // No RDB snapshots; AOF is off by default (an explicit `--appendonly no`
                        // would render as YAML `no`, which YAML 1.1 readers take for `false`).
                        "args": ["redis-server", "--save", ""],
                        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
                        "readinessProbe": probe(2),
                        "livenessProbe": probe(10),
                        "resources": {
                            "requests": {"cpu": "50m", "memory": "64Mi"},
                            "limits": {"memory": "256Mi"},
                        },
                        "securityContext": container_security_context(),
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                    }],
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    })))
}

/// The `KafkaTopic` API version of Strimzi ≥ 1.0 (which no longer serves `v1beta2`).
pub const STRIMZI_VERSION: &str = "v1";
/// The `KafkaTopic` API version of Strimzi before 0.49, used only where nothing newer is served.
pub const STRIMZI_LEGACY_VERSION: &str = "v1beta2";

/// Strimzi `KafkaTopic` objects (`kafka.strimzi.io/<version>`: [`STRIMZI_VERSION`], or
/// [`STRIMZI_LEGACY_VERSION`] on clusters that serve nothing newer) for the platform's topics,
/// when `kafka.mode` is `strimzi`. The object name is the topic name (valid: lower case, `-` and
/// `.`), so Strimzi's topic operator creates the topic of that name. Owned by the platform only
/// with `deletionPolicy: Delete` (Strimzi deletes the topic with its `KafkaTopic`).
pub fn strimzi_topics(sp: &ShopPlatform, version: &str) -> Vec<DynamicObject> {
    if sp.spec.kafka.mode != KafkaMode::Strimzi {
        return Vec::new();
    }
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("kafka.strimzi.io", version, "KafkaTopic"));
    let t = &sp.spec.kafka.topics;
    let cluster = sp.spec.kafka.strimzi_cluster.clone().unwrap_or_else(|| "kafka".into());
    let retention_ms = i64::from(t.retention_hours) * 3_600_000;
    crate::provision::topic_names(sp)
        .into_iter()
        .map(|topic| {
            let mut obj = DynamicObject::new(&topic, &ar).data(json!({
                "spec": {
                    "topicName": topic,
                    "partitions": t.partitions,
                    "replicas": t.replication_factor,
                    "config": {"retention.ms": retention_ms.to_string(), "cleanup.policy": "delete"},
                }
            }));
            let mut m = data_meta(sp, topic.clone(), "kafka-topic", "events");
            m.labels.get_or_insert_with(BTreeMap::new).insert("strimzi.io/cluster".into(), cluster.clone());
            obj.metadata = m;
            obj
        })
        .collect()
}

/// Everything the operator would create for `sp`, in apply order, as plain JSON objects with
/// `apiVersion` and `kind` (generated Secrets carry a placeholder instead of their random
/// value). Used by the golden tests and `shop-operator render`.
pub fn render(sp: &ShopPlatform) -> Vec<Value> {
    fn typed<T: serde::Serialize + Resource<DynamicType = ()>>(o: T) -> Value {
        let mut v = serde_json::to_value(o).expect("serializable");
        v["apiVersion"] = json!(T::api_version(&()));
        v["kind"] = json!(T::kind(&()));
        let obj = v.as_object_mut().expect("object");
        // apiVersion and kind first, as kubectl prints them.
        let mut ordered = serde_json::Map::new();
        for k in ["apiVersion", "kind", "metadata"] {
            if let Some(x) = obj.remove(k) {
                ordered.insert(k.to_string(), x);
            }
        }
        ordered.extend(std::mem::take(obj));
        Value::Object(ordered)
    }
    fn dynamic(o: DynamicObject) -> Value {
        serde_json::to_value(o).expect("serializable")
    }
    let mut out = Vec::new();
    for g in generated_secrets(sp) {
        out.push(typed(generated_secret(sp, g.name, g.key, "<generated>".into(), g.holds_data)));
    }
    out.extend(postgres_service(sp).map(typed));
    out.extend(postgres_statefulset(sp).map(typed));
    out.extend(cnpg_cluster(sp).map(dynamic));
    out.extend(kafka_service(sp).map(typed));
    out.extend(kafka_statefulset(sp).map(typed));
    out.extend(strimzi_topics(sp, STRIMZI_VERSION).into_iter().map(dynamic));
    out.extend(redis_service(sp).map(typed));
    out.extend(redis_deployment(sp).map(typed));
    for s in sp.spec.enabled_services() {
        if s.has_database() {
            out.push(typed(connection_secret(sp, s, "postgres://<provisioned>")));
        }
        out.push(typed(config_map(sp, s)));
        out.extend(migration_job(sp, s).map(typed));
        out.push(typed(service(sp, s)));
        // Secret values are unknown offline: the hash of the names alone stands in.
        let placeholders: Vec<_> = consumed_secrets(sp, s).into_iter().map(|(n, k)| (n, k, None)).collect();
        out.push(typed(deployment(sp, s, &secrets_hash(&placeholders))));
        out.extend(pod_disruption_budget(sp, s).map(typed));
        out.extend(horizontal_pod_autoscaler(sp, s).map(typed));
    }
    out.extend(ingress(sp).map(typed));
    out
}

/// [`render`] as a multi-document YAML stream.
pub fn render_yaml(sp: &ShopPlatform) -> String {
    render(sp)
        .iter()
        .map(|v| format!("---\n{}", serde_yaml::to_string(v).expect("YAML")))
        .collect::<Vec<_>>()
        .concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ShopPlatform;

    fn sp(spec: Value) -> ShopPlatform {
        let mut sp: ShopPlatform = serde_json::from_value(json!({
            "apiVersion": "platform.shop/v1alpha1", "kind": "ShopPlatform",
            "metadata": {"name": "shop", "namespace": "ns", "uid": "u-1"},
            "spec": spec,
        }))
        .unwrap();
        sp.metadata.generation = Some(1);
        sp
    }

    #[test]
    fn pdb_only_with_several_replicas() {
        let one = sp(json!({"version": "1"}));
        assert!(ServiceName::ALL.iter().all(|s| pod_disruption_budget(&one, *s).is_none()));
        let three = sp(json!({"version": "1", "services": {"catalog": {"replicas": 3}}}));
        assert!(pod_disruption_budget(&three, ServiceName::Catalog).is_some());
        assert!(pod_disruption_budget(&three, ServiceName::Auth).is_none());
    }

    #[test]
    fn every_rendered_object_is_owned_and_labelled_but_data_only_under_delete() {
        for (policy, embedded) in [("Delete", false), ("Retain", false), ("Delete", true), ("Retain", true)] {
            let database =
                if embedded { json!({}) } else { json!({"mode": "cloudnativepg", "cloudnativepg": {}}) };
            let full = sp(json!({
                "version": "1", "services": {"gateway": {"replicas": 2}, "catalog": {"autoscaling": {"maxReplicas": 4}}},
                "database": database,
                "kafka": {"mode": "strimzi", "strimziCluster": "k"},
                "ingress": {"enabled": true, "host": "shop.example.com"},
                "deletionPolicy": policy,
            }));
            let objects = render(&full);
            assert!(objects.len() > 15);
            for o in objects {
                let m = &o["metadata"];
                let data = matches!(o["kind"].as_str(), Some("Cluster" | "KafkaTopic"))
                    || m["name"] == "shop-postgres-admin";
                if data && policy == "Retain" {
                    assert!(
                        m.get("ownerReferences").is_none(),
                        "{policy}: {} must outlive the platform",
                        m["name"]
                    );
                    continue;
                }
                assert_eq!(m["ownerReferences"][0]["uid"], "u-1", "{}", m["name"]);
                assert_eq!(m["ownerReferences"][0]["controller"], true);
                assert_eq!(m["labels"]["app.kubernetes.io/managed-by"], "shop-operator");
                assert_eq!(m["labels"]["app.kubernetes.io/part-of"], "shop-platform");
                assert_eq!(m["labels"]["app.kubernetes.io/instance"], "shop");
                assert!(m["labels"]["app.kubernetes.io/component"].is_string());
                assert!(m["labels"]["app.kubernetes.io/name"].is_string());
            }
        }
    }

    #[test]
    fn autoscaling_renders_an_hpa_and_leaves_replicas_out() {
        let p = sp(
            json!({"version": "1", "services": {"catalog": {"replicas": 3, "autoscaling": {"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 70}}}}),
        );
        let d = serde_json::to_value(deployment(&p, ServiceName::Catalog, "h")).unwrap();
        assert!(d["spec"].get("replicas").is_none(), "{}", d["spec"]);
        let hpa = serde_json::to_value(horizontal_pod_autoscaler(&p, ServiceName::Catalog).unwrap()).unwrap();
        assert_eq!(hpa["spec"]["minReplicas"], 2);
        assert_eq!(hpa["spec"]["maxReplicas"], 6);
        assert_eq!(
            hpa["spec"]["scaleTargetRef"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "shop-catalog"})
        );
        assert_eq!(hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"], 70);
        assert!(pod_disruption_budget(&p, ServiceName::Catalog).is_some(), "min 2: a PDB");
        assert!(horizontal_pod_autoscaler(&p, ServiceName::Auth).is_none());
        let d = serde_json::to_value(deployment(&p, ServiceName::Auth, "h")).unwrap();
        assert_eq!(d["spec"]["replicas"], 1);
    }

    #[test]
    fn a_rotated_secret_changes_the_pod_template() {
        let p = sp(json!({"version": "1"}));
        let refs = consumed_secrets(&p, ServiceName::Auth);
        assert!(
            refs.contains(&("shop-internal-credential".to_string(), "credential".to_string())),
            "{refs:?}"
        );
        assert!(
            refs.contains(&("shop-jwt-signing-key".to_string(), "private-key.pem".to_string())),
            "{refs:?}"
        );
        assert!(refs.contains(&("shop-auth-db".to_string(), "DATABASE_URL".to_string())), "{refs:?}");
        let values = |v: &str| {
            refs.iter().map(|(n, k)| (n.clone(), k.clone(), Some(v.to_string()))).collect::<Vec<_>>()
        };
        assert_ne!(secrets_hash(&values("a")), secrets_hash(&values("b")));
        let missing: Vec<_> = refs.iter().map(|(n, k)| (n.clone(), k.clone(), None)).collect();
        assert_ne!(secrets_hash(&values("")), secrets_hash(&missing), "a missing Secret is not an empty one");
        let hash = |h: &str| {
            deployment(&p, ServiceName::Auth, h).spec.template.metadata.unwrap().annotations.unwrap()
                [SECRETS_HASH_ANNOTATION]
                .clone()
        };
        assert_eq!(hash("x"), "x");
    }

    #[test]
    fn migration_jobs_carry_the_hash_of_their_template() {
        let a = migration_job(&sp(json!({"version": "1"})), ServiceName::Catalog).unwrap();
        let b =
            migration_job(&sp(json!({"version": "1", "imagePullPolicy": "Always"})), ServiceName::Catalog)
                .unwrap();
        let hash = |j: &Job| j.metadata.annotations.clone().unwrap()[TEMPLATE_HASH_ANNOTATION].clone();
        assert_eq!(a.metadata.name, b.metadata.name, "same version, same Job");
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn a_disabled_service_renders_nothing() {
        let no_catalog = sp(json!({"version": "1", "services": {"catalog": {"enabled": false}}}));
        let text = render_yaml(&no_catalog);
        assert!(!text.contains("shop-catalog"), "{text}");
        assert!(!service_config(&no_catalog, ServiceName::Gateway).contains_key("SHOP_CATALOG_URL"));
        assert!(!generated_secrets(&no_catalog).iter().any(|g| g.name.contains("catalog")));
    }

    #[test]
    fn containers_run_restricted() {
        let d = deployment(&sp(json!({"version": "1"})), ServiceName::Auth, "h");
        let pod = d.spec.template.spec.unwrap();
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
        let c = &pod.containers[0];
        let sc = c.security_context.clone().unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
        assert_eq!(c.volume_mounts.clone().unwrap()[0].mount_path, "/tmp");
        assert!(pod.volumes.unwrap()[0].empty_dir.is_some());
        assert_eq!(c.args, Some(vec!["serve".to_string(), "auth".to_string()]));
        assert_eq!(c.image.as_deref(), Some("shop:1"));
    }

    #[test]
    fn service_wiring_uses_contract_names() {
        let p = sp(json!({"version": "1"}));
        let gw = service_config(&p, ServiceName::Gateway);
        assert_eq!(gw[env::HTTP_ADDR], "0.0.0.0:8080");
        assert_eq!(gw[&ServiceName::Catalog.url_env_key()], "http://shop-catalog.ns.svc");
        assert_eq!(gw[env::JWKS_URL], "http://shop-auth.ns.svc/.well-known/jwks.json");
        let svc = service(&p, ServiceName::Auth).spec.unwrap();
        let port = &svc.ports.unwrap()[0];
        assert_eq!((port.port, port.name.as_deref()), (80, Some("http")));
        assert!(migration_job(&p, ServiceName::Gateway).is_none());
        let job = migration_job(&p, ServiceName::Catalog).unwrap();
        assert_eq!(
            job.spec.unwrap().template.spec.unwrap().containers[0].args,
            Some(vec!["migrate".into(), "catalog".into()])
        );
    }

    /// The `SHOP_<SERVICE>_URL` keys of a service's ConfigMap.
    fn peer_urls(p: &ShopPlatform, service: ServiceName) -> Vec<String> {
        let c = service_config(p, service);
        ServiceName::ALL.into_iter().map(|s| s.url_env_key()).filter(|k| c.contains_key(k)).collect()
    }

    fn env_of(c: &k8s_openapi::api::core::v1::Container) -> Value {
        serde_json::to_value(c.env.clone().unwrap_or_default()).unwrap()
    }

    #[test]
    fn services_get_the_urls_of_the_peers_they_call() {
        let p = sp(json!({"version": "1"}));
        let keys = |names: &[&str]| names.iter().map(|n| format!("SHOP_{n}_URL")).collect::<Vec<_>>();
        assert_eq!(peer_urls(&p, ServiceName::Order), keys(&["CATALOG", "CART", "INVENTORY"]));
        assert_eq!(peer_urls(&p, ServiceName::Payment), keys(&["ORDER"]));
        assert_eq!(peer_urls(&p, ServiceName::Cart), keys(&["CATALOG"]));
        for s in [ServiceName::Auth, ServiceName::Catalog, ServiceName::Inventory, ServiceName::Notification]
        {
            assert!(peer_urls(&p, s).is_empty(), "{s}");
        }
        assert_eq!(
            peer_urls(&p, ServiceName::Gateway),
            keys(&["AUTH", "CATALOG", "CART", "INVENTORY", "ORDER", "PAYMENT", "NOTIFICATION"])
        );
        let order = service_config(&p, ServiceName::Order);
        assert_eq!(order["SHOP_INVENTORY_URL"], "http://shop-inventory.ns.svc");
        assert_eq!(service_config(&p, ServiceName::Payment)["SHOP_ORDER_URL"], "http://shop-order.ns.svc");
        // A disabled peer is not named (it has no Service).
        let no_inventory = sp(json!({"version": "1", "services": {"inventory": {"enabled": false}}}));
        assert_eq!(peer_urls(&no_inventory, ServiceName::Order), keys(&["CATALOG", "CART"]));
        // Callers present the internal credential: every service gets it from its Secret.
        for s in ServiceName::ALL {
            let env = env_of(&deployment(&p, s, "h").spec.template.spec.unwrap().containers[0]);
            assert!(
                env.as_array().unwrap().iter().any(|e| e["name"] == env::INTERNAL_TOKEN
                    && e["valueFrom"]["secretKeyRef"]
                        == json!({"name": "shop-internal-credential", "key": "credential"})),
                "{s}: {env}"
            );
        }
    }

    #[test]
    fn stripe_credentials_come_from_the_referenced_secret() {
        let simulated = sp(json!({"version": "1"}));
        assert_eq!(service_config(&simulated, ServiceName::Payment)[env::PAYMENT_PROVIDER], "simulated");
        let text = render_yaml(&simulated);
        assert!(!text.contains("SHOP_PAYMENT__STRIPE") && !text.contains(env::PAYMENT_WEBHOOK_SECRET));

        let p = sp(json!({"version": "1", "stripe": {"secretName": "stripe-creds"}}));
        let config = service_config(&p, ServiceName::Payment);
        assert_eq!(config[env::PAYMENT_PROVIDER], "stripe");
        assert!(
            !config.contains_key(env::STRIPE_SECRET_KEY) && !config.contains_key(env::PAYMENT_WEBHOOK_SECRET)
        );
        let pod = deployment(&p, ServiceName::Payment, "h").spec.template.spec.unwrap();
        let env = env_of(&pod.containers[0]);
        let from = |name: &str| env.as_array().unwrap().iter().find(|e| e["name"] == name).cloned();
        assert_eq!(
            from(env::STRIPE_SECRET_KEY).unwrap(),
            json!({"name": env::STRIPE_SECRET_KEY, "valueFrom": {"secretKeyRef": {"name": "stripe-creds", "key": "apiKey"}}})
        );
        assert_eq!(
            from(env::PAYMENT_WEBHOOK_SECRET).unwrap(),
            json!({"name": env::PAYMENT_WEBHOOK_SECRET, "valueFrom": {"secretKeyRef": {"name": "stripe-creds", "key": "webhookSecret"}}})
        );
        // Only the payment service's pods, and not its migration Job.
        let job = migration_job(&p, ServiceName::Payment).unwrap().spec.unwrap().template.spec.unwrap();
        assert!(!env_of(&job.containers[0]).to_string().contains("stripe-creds"));
        for s in ServiceName::ALL.into_iter().filter(|s| *s != ServiceName::Payment) {
            let c = deployment(&p, s, "h").spec.template.spec.unwrap().containers[0].clone();
            assert!(!env_of(&c).to_string().contains("stripe-creds"), "{s}");
            assert!(!service_config(&p, s).contains_key(env::PAYMENT_PROVIDER), "{s}");
        }
    }

    #[test]
    fn extra_env_overrides_the_operators_secret_references() {
        let p = sp(
            json!({"version": "1", "stripe": {"secretName": "stripe-creds"}, "services": {"payment": {"env": [
                {"name": env::STRIPE_SECRET_KEY, "secretKeyRef": {"name": "other", "key": "restricted"}},
                {"name": env::PAYMENT_WEBHOOK_SECRET, "value": "whsec_test"},
            ]}}}),
        );
        let env = secret_env(&p, ServiceName::Payment, true);
        let named = |n: &str| env.iter().filter(|e| e["name"] == n).cloned().collect::<Vec<_>>();
        assert_eq!(
            named(env::STRIPE_SECRET_KEY),
            vec![
                json!({"name": env::STRIPE_SECRET_KEY, "valueFrom": {"secretKeyRef": {"name": "other", "key": "restricted"}}})
            ]
        );
        assert!(named(env::PAYMENT_WEBHOOK_SECRET).is_empty());
        assert_eq!(service_config(&p, ServiceName::Payment)[env::PAYMENT_WEBHOOK_SECRET], "whsec_test");
    }

    #[test]
    fn a_config_change_changes_the_pod_template() {
        let a = deployment(&sp(json!({"version": "1"})), ServiceName::Auth, "h");
        let b = deployment(
            &sp(
                json!({"version": "1", "services": {"auth": {"env": [{"name": "SHOP_LOG", "value": "debug"}]}}}),
            ),
            ServiceName::Auth,
            "h",
        );
        let hash = |d: &Deployment| {
            d.spec.template.metadata.clone().unwrap().annotations.unwrap()[CONFIG_HASH_ANNOTATION].clone()
        };
        assert_ne!(hash(&a), hash(&b));
    }

    #[test]
    fn every_service_gets_the_event_bus_from_the_kit_contract() {
        use contract::events::env as ev;
        for (kafka, brokers) in [
            (json!({}), "shop-kafka.ns.svc:9092"),
            (json!({"mode": "external", "bootstrapServers": "k1:9092,k2:9092"}), "k1:9092,k2:9092"),
            (json!({"mode": "strimzi", "strimziCluster": "events"}), "events-kafka-bootstrap.ns.svc:9092"),
        ] {
            let p = sp(json!({"version": "1", "kafka": kafka}));
            for s in ServiceName::ALL {
                let c = service_config(&p, s);
                assert_eq!(c[ev::BUS], "kafka");
                assert_eq!(c[ev::BROKERS], brokers, "{s}");
                assert_eq!(c[ev::TOPIC_PREFIX], "shop-");
            }
        }
    }

    #[test]
    fn embedded_kafka_is_a_single_kraft_node_advertising_its_service() {
        let p = sp(json!({"version": "1", "kafka": {"embedded": {"image": "apache/kafka:3.8.1"}}}));
        let sts = kafka_statefulset(&p).unwrap();
        let pod = sts.spec.template.spec.unwrap();
        assert_eq!(pod.security_context.clone().unwrap().run_as_non_root, Some(true));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("apache/kafka:3.8.1"));
        let env: BTreeMap<_, _> =
            c.env.clone().unwrap().into_iter().map(|e| (e.name, e.value.unwrap_or_default())).collect();
        assert_eq!(env["KAFKA_PROCESS_ROLES"], "broker,controller");
        assert_eq!(env["KAFKA_ADVERTISED_LISTENERS"], "PLAINTEXT://shop-kafka.ns.svc:9092");
        assert_eq!(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"], "false");
        assert_eq!(env["CLUSTER_ID"].len(), 22, "a Kafka Uuid is 22 base64 characters");
        assert_eq!(kafka_service(&p).unwrap().spec.unwrap().ports.unwrap()[0].port, 9092);
        let default = sp(json!({"version": "1"}));
        let image =
            kafka_statefulset(&default).unwrap().spec.template.spec.unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("apache/kafka:3.9.0"));
        assert!(kafka_statefulset(&sp(json!({"version": "1", "kafka": {"mode": "strimzi"}}))).is_none());
    }

    #[test]
    fn embedded_redis_runs_restricted_without_persistence() {
        let p = sp(json!({"version": "1"}));
        let d = redis_deployment(&p).unwrap();
        let pod = d.spec.template.spec.unwrap();
        assert_eq!(pod.security_context.unwrap().run_as_user, Some(999));
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("redis:7-alpine"));
        assert_eq!(c.security_context.clone().unwrap().read_only_root_filesystem, Some(true));
        assert_eq!(c.args, Some(vec!["redis-server".into(), "--save".into(), String::new()]));
        assert_eq!(
            service_config(&p, ServiceName::Catalog)[env::REDIS_URL],
            "redis://shop-redis.ns.svc:6379"
        );
        let ext = sp(
            json!({"version": "1", "redis": {"mode": "external", "urlSecretRef": {"name": "r", "key": "url"}}}),
        );
        assert!(redis_deployment(&ext).is_none());
        assert!(!service_config(&ext, ServiceName::Catalog).contains_key(env::REDIS_URL));
        let env = serde_json::to_value(secret_env(&ext, ServiceName::Catalog, true)).unwrap();
        assert!(env.as_array().unwrap().iter().any(|e| e["name"] == env::REDIS_URL
            && e["valueFrom"]["secretKeyRef"] == json!({"name": "r", "key": "url"})));
    }
}
