//! Desired state as pure functions: each builder takes the `ShopPlatform` and returns the object
//! the operator applies, with the owner reference and standard labels. No I/O, no clock, no
//! randomness — the golden tests pin their output byte for byte.
//!
//! The Kubernetes kinds are `k8s-openapi`'s typed structs, so a misspelt or misplaced field does
//! not compile. A field left `None` is absent from the apply; `Some(vec![])` is an empty list,
//! which server-side apply takes as "this manager wants the list empty" — the builders set a list
//! only where they mean it. The custom resources of other operators stay JSON: see
//! [`cnpg_cluster`].

use std::collections::BTreeMap;

use contract::events::env as events_env;
use contract::{env, ServiceName, KUBERNETES_OPS_PORT, KUBERNETES_PORT};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment, StatefulSet,
    StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMap, ConfigMapEnvSource, ConfigMapVolumeSource, Container, ContainerPort,
    EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, ExecAction, HTTPGetAction, KeyToPath,
    Lifecycle, LifecycleHandler, LocalObjectReference, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, Secret,
    SecretKeySelector, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, SleepAction,
    TCPSocketAction, Toleration, TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, IPBlock, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyEgressRule,
    NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta, OwnerReference,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::ByteString;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::crd::{CaSource, DatabaseMode, DeletionPolicy, KafkaMode, PlacementSpec, RedisMode, ShopPlatform};
use crate::names::{self, *};

/// Component and `app.kubernetes.io/name` of the service workloads.
const APP_NAME: &str = "shop";

/// A selector of the objects carrying all of `labels`.
fn label_selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector { match_labels: Some(labels), ..LabelSelector::default() }
}

/// Resource quantities (`requests`, `limits`, `storage`) by name.
fn quantities<V: Into<String>, const N: usize>(entries: [(&str, V); N]) -> BTreeMap<String, Quantity> {
    entries.into_iter().map(|(k, v)| (k.to_string(), Quantity(v.into()))).collect()
}

/// A port by its name (`targetPort`, probes, NetworkPolicies).
fn named_port(name: &str) -> IntOrString {
    IntOrString::String(name.to_string())
}

fn env_value(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar { name: name.to_string(), value: Some(value.into()), ..EnvVar::default() }
}

fn env_from_secret(name: &str, secret: String, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector { name: secret, key: key.to_string(), optional: None }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn volume_mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount { name: name.to_string(), mount_path: path.to_string(), ..VolumeMount::default() }
}

/// An `emptyDir` volume, with a size limit or none.
fn empty_dir(name: &str, size_limit: Option<&str>) -> Volume {
    Volume {
        name: name.to_string(),
        empty_dir: Some(EmptyDirVolumeSource {
            size_limit: size_limit.map(|s| Quantity(s.to_string())),
            ..EmptyDirVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A pod template: its labels (and annotations) and pod.
fn pod_template(
    labels: BTreeMap<String, String>,
    annotations: Option<BTreeMap<String, String>>,
    pod: PodSpec,
) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta { labels: Some(labels), annotations, ..ObjectMeta::default() }),
        spec: Some(pod),
    }
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
    // Operations endpoints on their own port (probes, Prometheus), drain before stop.
    data.insert(env::OPS_ADDR.to_string(), format!("0.0.0.0:{KUBERNETES_OPS_PORT}"));
    data.insert(env::SHUTDOWN_DELAY_SECS.to_string(), SHUTDOWN_DELAY_SECS.to_string());
    data.insert(env::LOG_FORMAT.to_string(), env::LOG_FORMAT_JSON.to_string());
    // The client address: the gateway sits behind the Ingress controller (one proxy) when there
    // is an Ingress; the auth service behind the gateway, one more.
    let gateway_hops = gateway_trusted_proxy_hops(sp);
    match service {
        ServiceName::Gateway => {
            data.insert(env::GATEWAY_TRUSTED_PROXY_HOPS.to_string(), gateway_hops.to_string());
        }
        ServiceName::Auth => {
            data.insert(env::AUTH_TRUSTED_PROXY_HOPS.to_string(), (gateway_hops + 1).to_string());
        }
        _ => {}
    }
    if ingress(sp).is_some() && sp.spec.ingress.tls_secret_name.is_some() {
        data.insert(env::HSTS_MAX_AGE_SECS.to_string(), HSTS_MAX_AGE_SECS.to_string());
    }
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
        // The spec's choice (required); Stripe's keys come from `spec.stripe` (see `secret_env`).
        data.insert(env::PAYMENT_PROVIDER.to_string(), sp.spec.payment.provider.as_str().to_string());
    }
    // The event bus (`kit::events::EventsConfig`): Kafka, with the platform's topic prefix.
    data.insert(events_env::BUS.to_string(), events_env::BUS_KAFKA.to_string());
    data.insert(events_env::BROKERS.to_string(), kafka_bootstrap_servers(sp));
    data.insert(events_env::TOPIC_PREFIX.to_string(), names::topic_prefix(sp));
    if let Some(sec) = kafka_security(sp) {
        data.insert(events_env::SECURITY_PROTOCOL.to_string(), sec.protocol.as_str().to_string());
        if sec.ca.is_some() {
            data.insert(events_env::SSL_CA_FILE.to_string(), format!("{KAFKA_CA_DIR}/{CA_FILE}"));
        }
        if let Some(sasl) = &sec.sasl {
            data.insert(events_env::SASL_MECHANISM.to_string(), sasl.mechanism.as_str().to_string());
            data.insert(events_env::SASL_USERNAME.to_string(), sasl.username.clone());
        }
    }
    if sp.spec.redis.mode == RedisMode::Embedded {
        data.insert(env::REDIS_URL.to_string(), redis_url(sp));
    }
    if redis_ca(sp).is_some() {
        data.insert(env::REDIS_CA_FILE.to_string(), format!("{REDIS_CA_DIR}/{CA_FILE}"));
    }
    if service.has_database() && database_ca(sp).is_some() {
        data.insert(env::DATABASE_CA_FILE.to_string(), format!("{POSTGRES_CA_DIR}/{CA_FILE}"));
    }
    for var in sp.spec.service(service).env {
        if let Some(value) = var.value {
            data.insert(var.name, value);
        }
    }
    data
}

/// `SHOP_GATEWAY__RATE_LIMIT__TRUSTED_PROXY_HOPS`: 1 behind the platform's Ingress, else 0 (the
/// TCP peer is the client: a `kubectl port-forward`, a load balancer without proxy).
pub fn gateway_trusted_proxy_hops(sp: &ShopPlatform) -> u32 {
    u32::from(ingress(sp).is_some())
}

/// The Kafka security settings in effect (mode `external` only).
pub fn kafka_security(sp: &ShopPlatform) -> Option<&crate::crd::KafkaSecurity> {
    (sp.spec.kafka.mode == KafkaMode::External).then_some(sp.spec.kafka.security.as_ref()).flatten()
}

/// The CA of the PostgreSQL servers, when the spec names one (not in mode `embedded`).
pub fn database_ca(sp: &ShopPlatform) -> Option<&CaSource> {
    if sp.spec.database.mode == DatabaseMode::Embedded {
        return None;
    }
    sp.spec.database.tls.as_ref().and_then(|t| t.ca.as_ref())
}

/// The CA of a `rediss://` Redis, when the spec names one (mode `external`).
pub fn redis_ca(sp: &ShopPlatform) -> Option<&CaSource> {
    (sp.spec.redis.mode == RedisMode::External).then_some(sp.spec.redis.tls.as_ref()).flatten().map(|t| &t.ca)
}

/// The Kafka brokers' CA, when the spec names one.
pub fn kafka_ca(sp: &ShopPlatform) -> Option<&CaSource> {
    kafka_security(sp).and_then(|s| s.ca.as_ref())
}

/// The CA volumes and mounts of `service`'s pods: `(volume, mount)` pairs.
fn ca_volumes(sp: &ShopPlatform, service: ServiceName) -> Vec<(Volume, VolumeMount)> {
    let mut out = Vec::new();
    let mut add = |name: &str, source: &CaSource, dir: &str| {
        let items = |key: &str| {
            Some(vec![KeyToPath { key: key.to_string(), path: CA_FILE.to_string(), ..KeyToPath::default() }])
        };
        let volume = match (&source.secret_ref, &source.config_map_ref) {
            (Some(r), _) => Volume {
                name: name.to_string(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(r.name.clone()),
                    items: items(&r.key),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            (None, Some(r)) => Volume {
                name: name.to_string(),
                config_map: Some(ConfigMapVolumeSource {
                    name: r.name.clone(),
                    items: items(&r.key),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            (None, None) => return,
        };
        out.push((volume, VolumeMount { read_only: Some(true), ..volume_mount(name, dir) }));
    };
    if service.has_database() {
        if let Some(ca) = database_ca(sp) {
            add("postgres-ca", ca, POSTGRES_CA_DIR);
        }
    }
    if let Some(ca) = redis_ca(sp) {
        add("redis-ca", ca, REDIS_CA_DIR);
    }
    if let Some(ca) = kafka_ca(sp) {
        add("kafka-ca", ca, KAFKA_CA_DIR);
    }
    out
}

/// The image of the services and migration Jobs: `image@digest` when a digest is given.
pub fn shop_image(sp: &ShopPlatform) -> String {
    match &sp.spec.image_digest {
        Some(digest) => format!("{}@{digest}", sp.spec.image),
        None => format!("{}:{}", sp.spec.image, sp.spec.version),
    }
}

/// The placement of `service`'s pods (the platform's for `None`): the service's fields over the
/// platform's.
fn placement(sp: &ShopPlatform, service: Option<ServiceName>) -> PlacementSpec {
    sp.spec
        .placement
        .overlay(service.and_then(|s| sp.spec.services.get(&s)).and_then(|s| s.placement.as_ref()))
}

/// What makes the placement of `service` (the platform's for `None`) impossible to render: an
/// `affinity` that is no Kubernetes `Affinity`. The CRD keeps the field free-form (the full
/// schema would triple the CRD), so the reconcile checks it and says so in the status.
pub fn placement_problem(sp: &ShopPlatform, service: Option<ServiceName>) -> Option<String> {
    let p = placement(sp, service);
    let affinity = p.affinity?;
    let at = match service {
        Some(s) => format!("services.{s}.placement.affinity (or placement.affinity)"),
        None => "placement.affinity".to_string(),
    };
    serde_json::from_value::<Affinity>(affinity)
        .err()
        .map(|e| format!("{at} is not a Kubernetes Affinity: {e}"))
}

/// Sets the scheduling fields of `pod`: image pull secrets, node selector, tolerations, affinity,
/// and, with `spread` (the Deployment's selector), topology spread by zone and host.
fn place(
    sp: &ShopPlatform,
    service: Option<ServiceName>,
    spread: Option<&BTreeMap<String, String>>,
    pod: &mut PodSpec,
) {
    let p = placement(sp, service);
    if !sp.spec.image_pull_secrets.is_empty() {
        pod.image_pull_secrets = Some(
            sp.spec
                .image_pull_secrets
                .iter()
                .map(|r| LocalObjectReference { name: r.name.clone() })
                .collect(),
        );
    }
    if let Some(ns) = p.node_selector.filter(|m| !m.is_empty()) {
        pod.node_selector = Some(ns);
    }
    if let Some(t) = p.tolerations.filter(|t| !t.is_empty()) {
        pod.tolerations = Some(
            t.into_iter()
                .map(|t| Toleration {
                    key: t.key,
                    operator: t.operator,
                    value: t.value,
                    effect: t.effect,
                    toleration_seconds: t.toleration_seconds,
                })
                .collect(),
        );
    }
    if let Some(a) = p.affinity {
        // Free-form in the CRD (the API server validates it in the pod template); an object that
        // is no `Affinity` at all cannot be rendered: the reconcile refuses it first
        // ([`placement_problem`]), and it is left out here rather than panic.
        pod.affinity = serde_json::from_value::<Affinity>(a).ok();
    }
    if let (Some(selector), true) = (spread, p.topology_spread.unwrap_or(true)) {
        let constraint = |key: &str| TopologySpreadConstraint {
            max_skew: 1,
            topology_key: key.to_string(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(label_selector(selector.clone())),
            match_label_keys: Some(vec!["pod-template-hash".into()]),
            ..TopologySpreadConstraint::default()
        };
        pod.topology_spread_constraints =
            Some(vec![constraint("topology.kubernetes.io/zone"), constraint("kubernetes.io/hostname")]);
    }
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
fn secret_env(sp: &ShopPlatform, service: ServiceName, serving: bool) -> Vec<EnvVar> {
    let mut out = Vec::new();
    if service.has_database() {
        out.push(env_from_secret(env::DATABASE_URL, db_connection_secret(sp, service), DATABASE_URL_KEY));
    }
    if service == ServiceName::Auth {
        out.push(env_from_secret(env::JWT_SIGNING_KEY, signing_key_secret(sp), SIGNING_KEY_KEY));
    }
    out.push(env_from_secret(env::INTERNAL_TOKEN, internal_credential_secret(sp), INTERNAL_CREDENTIAL_KEY));
    if let (RedisMode::External, Some(r)) = (sp.spec.redis.mode, &sp.spec.redis.url_secret_ref) {
        out.push(env_from_secret(env::REDIS_URL, r.name.clone(), &r.key));
    }
    if let Some(sasl) = kafka_security(sp).and_then(|s| s.sasl.as_ref()) {
        let r = &sasl.password_secret_ref;
        out.push(env_from_secret(events_env::SASL_PASSWORD, r.name.clone(), &r.key));
    }
    if let (ServiceName::Payment, true, Some(stripe)) = (service, serving, &sp.spec.stripe) {
        out.push(env_from_secret(env::STRIPE_SECRET_KEY, stripe.secret_name.clone(), STRIPE_API_KEY_KEY));
        out.push(env_from_secret(
            env::PAYMENT_WEBHOOK_SECRET,
            stripe.secret_name.clone(),
            STRIPE_WEBHOOK_SECRET_KEY,
        ));
    }
    // The spec's extra env overrides the operator's: a variable it names (by value or from a
    // Secret) replaces the operator's secret reference (which would shadow a ConfigMap value,
    // and a name twice in `env` is refused by server-side apply).
    let extra = sp.spec.service(service).env;
    out.retain(|e| !extra.iter().any(|v| e.name == v.name));
    for var in extra {
        if let Some(r) = var.secret_key_ref {
            out.push(env_from_secret(&var.name, r.name, &r.key));
        }
    }
    out
}

fn resources(sp: &ShopPlatform, service: ServiceName) -> ResourceRequirements {
    let spec = sp.spec.service(service).resources.unwrap_or_default();
    let requests = spec.requests.unwrap_or_default();
    let limits = spec.limits.unwrap_or_default();
    let memory_limit = limits.memory.unwrap_or_else(|| "512Mi".into());
    ResourceRequirements {
        requests: Some(quantities([
            ("cpu", requests.cpu.unwrap_or_else(|| "100m".into())),
            ("memory", requests.memory.unwrap_or_else(|| "128Mi".into())),
        ])),
        limits: Some(match limits.cpu {
            Some(cpu) => quantities([("cpu", cpu), ("memory", memory_limit)]),
            None => quantities([("memory", memory_limit)]),
        }),
        ..ResourceRequirements::default()
    }
}

/// Restricted-profile security context of every service container.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }
}

fn pod_security_context(uid: i64) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..PodSecurityContext::default()
    }
}

/// The container running `shop <args…>`; `probes`: the serving container of a Deployment (ports,
/// probes, every secret of the service), otherwise a migration Job's.
fn shop_container(
    sp: &ShopPlatform,
    service: ServiceName,
    name: &str,
    args: [&str; 2],
    probes: bool,
) -> Container {
    let mut mounts = vec![volume_mount("tmp", "/tmp")];
    mounts.extend(ca_volumes(sp, service).into_iter().map(|(_, m)| m));
    let mut c = Container {
        name: name.to_string(),
        image: Some(shop_image(sp)),
        image_pull_policy: Some(sp.spec.image_pull_policy.as_str().to_string()),
        args: Some(args.map(String::from).to_vec()),
        env_from: Some(vec![EnvFromSource {
            config_map_ref: Some(ConfigMapEnvSource { name: names::config_map(sp, service), optional: None }),
            ..EnvFromSource::default()
        }]),
        env: Some(secret_env(sp, service, probes)),
        resources: Some(resources(sp, service)),
        security_context: Some(container_security_context()),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    if probes {
        c.ports = Some(vec![
            container_port(HTTP_PORT_NAME, i32::from(KUBERNETES_PORT)),
            container_port(OPS_PORT_NAME, i32::from(KUBERNETES_OPS_PORT)),
        ]);
        // The operations listener (`SHOP_OPS_ADDR`): the API port serves no `/readyz`.
        let ops = |path: &str| {
            Some(HTTPGetAction {
                path: Some(path.to_string()),
                port: named_port(OPS_PORT_NAME),
                ..HTTPGetAction::default()
            })
        };
        c.liveness_probe = Some(Probe {
            http_get: ops("/healthz"),
            period_seconds: Some(10),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..Probe::default()
        });
        c.readiness_probe = Some(Probe {
            http_get: ops("/readyz"),
            period_seconds: Some(5),
            timeout_seconds: Some(2),
            failure_threshold: Some(3),
            ..Probe::default()
        });
        c.startup_probe = Some(Probe {
            http_get: ops("/healthz"),
            period_seconds: Some(2),
            failure_threshold: Some(30),
            ..Probe::default()
        });
        // Endpoints drop the pod while it sleeps; then SIGTERM, `/readyz` says `draining` for
        // SHOP_SHUTDOWN_DELAY_SECS, in-flight requests finish.
        c.lifecycle = Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                sleep: Some(SleepAction { seconds: SHUTDOWN_DELAY_SECS }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        });
    }
    c
}

/// The pod volumes of a service's pods: `/tmp` and the CAs it reads.
fn pod_volumes(sp: &ShopPlatform, service: ServiceName) -> Vec<Volume> {
    let mut v = vec![empty_dir("tmp", Some("64Mi"))];
    v.extend(ca_volumes(sp, service).into_iter().map(|(v, _)| v));
    v
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
        .into_iter()
        .filter_map(|e| {
            let r = e.value_from?.secret_key_ref?;
            Some((r.name, r.key))
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
    let selector = selector(sp, APP_NAME, service.as_str());
    let mut pod = PodSpec {
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(pod_security_context(65532)),
        termination_grace_period_seconds: Some(TERMINATION_GRACE_SECS),
        containers: vec![shop_container(sp, service, service.as_str(), ["serve", service.as_str()], true)],
        volumes: Some(pod_volumes(sp, service)),
        ..PodSpec::default()
    };
    place(sp, Some(service), Some(&selector), &mut pod);
    let annotations = BTreeMap::from([
        (CONFIG_HASH_ANNOTATION.to_string(), config_hash(sp, service)),
        (SECRETS_HASH_ANNOTATION.to_string(), secrets_hash.to_string()),
    ]);
    Deployment {
        metadata: meta(sp, service_object(sp, service), APP_NAME, service.as_str()),
        spec: DeploymentSpec {
            replicas: spec.autoscaling.is_none().then_some(spec.replicas),
            revision_history_limit: Some(5),
            selector: label_selector(selector),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: pod_template(labels(sp, APP_NAME, service.as_str()), Some(annotations), pod),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    }
}

/// HorizontalPodAutoscaler (`autoscaling/v2`, CPU utilization) of a service with `autoscaling`.
pub fn horizontal_pod_autoscaler(sp: &ShopPlatform, service: ServiceName) -> Option<HorizontalPodAutoscaler> {
    let spec = sp.spec.service(service);
    let a = spec.autoscaling.filter(|_| spec.enabled)?;
    Some(HorizontalPodAutoscaler {
        metadata: meta(sp, service_object(sp, service), APP_NAME, service.as_str()),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: service_object(sp, service),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(a.target_cpu_utilization_percentage),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            ..HorizontalPodAutoscalerSpec::default()
        },
        ..HorizontalPodAutoscaler::default()
    })
}

/// A `ClusterIP` Service of the pods matching `selector`.
fn cluster_ip_service(
    metadata: ObjectMeta,
    selector: BTreeMap<String, String>,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A TCP Service port to the pods' port of the same name.
fn service_port(name: &str, port: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port,
        target_port: Some(named_port(name)),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}

/// Service `<platform>-<service>`: port 80 → the pods' `http` port (8080), and `ops` (9090,
/// `/metrics` for a ServiceMonitor; the Ingress uses only `http`).
pub fn service(sp: &ShopPlatform, service: ServiceName) -> Service {
    cluster_ip_service(
        meta(sp, service_object(sp, service), APP_NAME, service.as_str()),
        selector(sp, APP_NAME, service.as_str()),
        vec![
            service_port(HTTP_PORT_NAME, SERVICE_PORT),
            service_port(OPS_PORT_NAME, i32::from(KUBERNETES_OPS_PORT)),
        ],
    )
}

/// PodDisruptionBudget keeping all but one pod up, only when the service has several replicas
/// (with `autoscaling`: when its minimum is above one).
pub fn pod_disruption_budget(sp: &ShopPlatform, service: ServiceName) -> Option<PodDisruptionBudget> {
    let spec = sp.spec.service(service);
    let several = match &spec.autoscaling {
        Some(a) => a.min_replicas > 1,
        None => spec.replicas > 1,
    };
    (spec.enabled && several).then(|| PodDisruptionBudget {
        metadata: meta(sp, service_object(sp, service), APP_NAME, service.as_str()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(label_selector(selector(sp, APP_NAME, service.as_str()))),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

/// Job running `shop migrate <service>` for the platform's version (services with a database).
pub fn migration_job(sp: &ShopPlatform, service: ServiceName) -> Option<Job> {
    if !service.has_database() {
        return None;
    }
    let component = format!("{}-migrate", service.as_str());
    let mut pod = PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(pod_security_context(65532)),
        containers: vec![shop_container(sp, service, "migrate", ["migrate", service.as_str()], false)],
        volumes: Some(pod_volumes(sp, service)),
        ..PodSpec::default()
    };
    place(sp, Some(service), None, &mut pod);
    let template = pod_template(labels(sp, APP_NAME, &component), None, pod);
    // The hash of the template as a JSON value (object keys sorted), not of the struct's own
    // field order.
    let canonical = serde_json::to_value(&template).expect("serializable");
    let mut metadata = meta(sp, names::migration_job(sp, service), APP_NAME, &component);
    metadata.annotations = Some(BTreeMap::from([(
        TEMPLATE_HASH_ANNOTATION.to_string(),
        short_hash(&serde_json::to_vec(&canonical).expect("serializable")),
    )]));
    Some(Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(4),
            active_deadline_seconds: Some(900),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    })
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
    let gateway = IngressBackend {
        service: Some(IngressServiceBackend {
            name: service_object(sp, ServiceName::Gateway),
            port: Some(ServiceBackendPort { name: Some(HTTP_PORT_NAME.into()), number: None }),
        }),
        resource: None,
    };
    Some(Ingress {
        metadata: meta,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: gateway,
                    }],
                }),
            }]),
            tls: spec
                .tls_secret_name
                .as_ref()
                .map(|tls| vec![IngressTLS { hosts: Some(vec![host]), secret_name: Some(tls.clone()) }]),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
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
        cluster_ip_service(
            meta(sp, names::postgres(sp), "postgres", "database"),
            selector(sp, "postgres", "database"),
            vec![service_port("postgres", POSTGRES_PORT)],
        )
    })
}

/// A probe running `command` in the container.
fn exec_probe(command: &[&str]) -> Probe {
    Probe {
        exec: Some(ExecAction { command: Some(command.iter().map(|s| s.to_string()).collect()) }),
        ..Probe::default()
    }
}

/// A single-replica StatefulSet of the embedded backing services (no spread: one pod).
fn single_pod_statefulset(
    sp: &ShopPlatform,
    name: String,
    app: &str,
    component: &str,
    mut pod: PodSpec,
) -> StatefulSet {
    place(sp, None, None, &mut pod);
    StatefulSet {
        metadata: meta(sp, name.clone(), app, component),
        spec: StatefulSetSpec {
            replicas: Some(1),
            service_name: Some(name),
            selector: label_selector(selector(sp, app, component)),
            template: pod_template(labels(sp, app, component), None, pod),
            ..StatefulSetSpec::default()
        },
        ..StatefulSet::default()
    }
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
    let pg_isready = ["pg_isready", "-U", "postgres", "-h", "127.0.0.1"];
    let pod = PodSpec {
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(pod_security_context(POSTGRES_UID)),
        containers: vec![Container {
            name: "postgres".into(),
            image: Some(spec.image),
            image_pull_policy: Some(sp.spec.image_pull_policy.as_str().to_string()),
            ports: Some(vec![container_port("postgres", POSTGRES_PORT)]),
            env: Some(vec![
                env_from_secret("POSTGRES_PASSWORD", postgres_admin_secret(sp), PASSWORD_KEY),
                env_value("PGDATA", "/var/lib/postgresql/data/pgdata"),
            ]),
            readiness_probe: Some(Probe {
                period_seconds: Some(5),
                timeout_seconds: Some(3),
                ..exec_probe(&pg_isready)
            }),
            liveness_probe: Some(Probe {
                period_seconds: Some(10),
                timeout_seconds: Some(3),
                failure_threshold: Some(6),
                ..exec_probe(&pg_isready)
            }),
            resources: Some(ResourceRequirements {
                requests: Some(quantities([("cpu", "100m"), ("memory", "256Mi")])),
                limits: Some(quantities([("memory", "1Gi")])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(container_security_context()),
            volume_mounts: Some(vec![
                volume_mount("data", "/var/lib/postgresql/data"),
                volume_mount("run", "/var/run/postgresql"),
                volume_mount("tmp", "/tmp"),
            ]),
            ..Container::default()
        }],
        volumes: Some(vec![empty_dir("run", None), empty_dir("tmp", None)]),
        ..PodSpec::default()
    };
    let mut sts = single_pod_statefulset(sp, names::postgres(sp), "postgres", "database", pod);
    sts.spec.persistent_volume_claim_retention_policy =
        Some(StatefulSetPersistentVolumeClaimRetentionPolicy {
            when_deleted: Some(on_delete.into()),
            when_scaled: Some("Retain".into()),
        });
    sts.spec.volume_claim_templates = Some(vec![PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(selector(sp, "postgres", "database")),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(quantities([("storage", spec.storage_size)])),
                limits: None,
            }),
            storage_class_name: spec.storage_class_name,
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }]);
    Some(sts)
}

// The custom resources of other operators — CloudNativePG's `Cluster` and `ScheduledBackup`,
// Strimzi's `KafkaTopic`, the Prometheus Operator's `ServiceMonitor` — are `DynamicObject`s with
// a `json!` spec rather than typed structs: `k8s-openapi` has no types for them, the operator
// sets a handful of their fields, and types generated from their CRDs (thousands of fields, a
// new run per upstream release, two `KafkaTopic` versions) would be code to keep current for a
// check the API server makes anyway — it validates each object against the installed CRD's
// schema on apply — while the golden tests pin exactly what the operator sends.

/// CloudNativePG `Cluster` (`postgresql.cnpg.io/v1`), when `database.mode` is `cloudnativepg`.
pub fn cnpg_cluster(sp: &ShopPlatform) -> Option<DynamicObject> {
    if sp.spec.database.mode != DatabaseMode::Cloudnativepg {
        return None;
    }
    let spec = sp.spec.database.cloudnativepg.clone().unwrap_or(crate::crd::CloudNativePgDatabase {
        instances: 1,
        storage_size: "10Gi".into(),
        storage_class_name: None,
        backup: None,
        recovery: None,
    });
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster"));
    let mut storage = json!({"size": spec.storage_size});
    if let Some(class) = spec.storage_class_name {
        storage["storageClass"] = json!(class);
    }
    let mut cluster = json!({
        "instances": spec.instances,
        "enableSuperuserAccess": true,
        "storage": storage,
    });
    if !sp.spec.image_pull_secrets.is_empty() {
        cluster["imagePullSecrets"] = json!(sp.spec.image_pull_secrets);
    }
    if let Some(b) = &spec.backup {
        cluster["backup"] = json!({
            "barmanObjectStore": barman_object_store(&b.object_store),
            "retentionPolicy": b.retention_policy,
        });
    }
    if let Some(r) = &spec.recovery {
        let mut recovery = json!({"source": CNPG_RECOVERY_SOURCE});
        if let Some(t) = &r.target_time {
            recovery["recoveryTarget"] = json!({"targetTime": t});
        }
        cluster["bootstrap"] = json!({"recovery": recovery});
        let mut store = barman_object_store(&r.object_store);
        store["serverName"] = json!(r.server_name);
        cluster["externalClusters"] = json!([{"name": CNPG_RECOVERY_SOURCE, "barmanObjectStore": store}]);
    }
    let mut obj = DynamicObject::new(&names::cnpg_cluster(sp), &ar).data(json!({"spec": cluster}));
    obj.metadata = data_meta(sp, names::cnpg_cluster(sp), "postgres", "database");
    Some(obj)
}

/// The name of the backed-up cluster in a recovering Cluster's `externalClusters`.
const CNPG_RECOVERY_SOURCE: &str = "origin";

/// CloudNativePG's `barmanObjectStore` of an [`ObjectStore`](crate::crd::ObjectStore): S3
/// credentials by Secret reference, WAL and data gzip-compressed.
fn barman_object_store(store: &crate::crd::ObjectStore) -> Value {
    let c = &store.s3_credentials;
    let mut v = json!({
        "destinationPath": store.destination_path,
        "s3Credentials": {
            "accessKeyId": {"name": c.access_key_id.name, "key": c.access_key_id.key},
            "secretAccessKey": {"name": c.secret_access_key.name, "key": c.secret_access_key.key},
        },
        "wal": {"compression": "gzip"},
        "data": {"compression": "gzip"},
    });
    if let Some(e) = &store.endpoint_url {
        v["endpointURL"] = json!(e);
    }
    v
}

/// CloudNativePG mode with `backup`: a `ScheduledBackup` (`postgresql.cnpg.io/v1`) of the
/// Cluster, on the object store, owned by it (`backupOwnerReference: self`). Carries the data
/// policy's owner reference like the Cluster.
pub fn cnpg_scheduled_backup(sp: &ShopPlatform) -> Option<DynamicObject> {
    if sp.spec.database.mode != DatabaseMode::Cloudnativepg {
        return None;
    }
    let backup = sp.spec.database.cloudnativepg.as_ref()?.backup.as_ref()?;
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "ScheduledBackup"));
    let mut obj = DynamicObject::new(&names::cnpg_scheduled_backup(sp), &ar).data(json!({
        "spec": {
            "schedule": backup.schedule,
            "cluster": {"name": names::cnpg_cluster(sp)},
            "method": "barmanObjectStore",
            "backupOwnerReference": "self",
            "immediate": true,
        }
    }));
    obj.metadata = data_meta(sp, names::cnpg_scheduled_backup(sp), "postgres", "backup");
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
        cluster_ip_service(
            meta(sp, names::kafka(sp), "kafka", "events"),
            selector(sp, "kafka", "events"),
            vec![service_port("kafka", KAFKA_PORT)],
        )
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
    // The image writes its generated configuration below /opt/kafka/config, so its root file
    // system stays writable; everything else is restricted.
    let security = SecurityContext { read_only_root_filesystem: Some(false), ..container_security_context() };
    let tcp_probe = |port: &str| Probe {
        tcp_socket: Some(TCPSocketAction { port: named_port(port), host: None }),
        ..Probe::default()
    };
    let pod = PodSpec {
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(pod_security_context(KAFKA_UID)),
        containers: vec![Container {
            name: "kafka".into(),
            image: Some(spec.image),
            image_pull_policy: Some(sp.spec.image_pull_policy.as_str().to_string()),
            ports: Some(vec![
                container_port("kafka", KAFKA_PORT),
                container_port("controller", KAFKA_CONTROLLER_PORT),
            ]),
            env: Some(vec![
                env_value("CLUSTER_ID", KAFKA_CLUSTER_ID),
                env_value("KAFKA_NODE_ID", "1"),
                env_value("KAFKA_PROCESS_ROLES", "broker,controller"),
                env_value(
                    "KAFKA_LISTENERS",
                    format!("PLAINTEXT://:{KAFKA_PORT},CONTROLLER://:{KAFKA_CONTROLLER_PORT}"),
                ),
                env_value("KAFKA_ADVERTISED_LISTENERS", format!("PLAINTEXT://{host}:{KAFKA_PORT}")),
                env_value("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"),
                env_value("KAFKA_CONTROLLER_LISTENER_NAMES", "CONTROLLER"),
                env_value("KAFKA_INTER_BROKER_LISTENER_NAME", "PLAINTEXT"),
                env_value("KAFKA_CONTROLLER_QUORUM_VOTERS", format!("1@localhost:{KAFKA_CONTROLLER_PORT}")),
                env_value("KAFKA_LOG_DIRS", "/var/lib/kafka/data"),
                env_value("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "false"),
                env_value("KAFKA_NUM_PARTITIONS", t.partitions.to_string()),
                env_value("KAFKA_DEFAULT_REPLICATION_FACTOR", "1"),
                env_value("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
                env_value("KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR", "1"),
                env_value("KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
                env_value("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0"),
                env_value("KAFKA_HEAP_OPTS", "-Xms256m -Xmx512m"),
            ]),
            readiness_probe: Some(Probe {
                initial_delay_seconds: Some(5),
                period_seconds: Some(5),
                timeout_seconds: Some(3),
                ..tcp_probe("kafka")
            }),
            liveness_probe: Some(Probe {
                initial_delay_seconds: Some(30),
                period_seconds: Some(10),
                timeout_seconds: Some(3),
                failure_threshold: Some(6),
                ..tcp_probe("kafka")
            }),
            resources: Some(ResourceRequirements {
                requests: Some(quantities([("cpu", "100m"), ("memory", "512Mi")])),
                limits: Some(quantities([("memory", "1Gi")])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(security),
            volume_mounts: Some(vec![
                volume_mount("data", "/var/lib/kafka/data"),
                volume_mount("tmp", "/tmp"),
            ]),
            ..Container::default()
        }],
        volumes: Some(vec![empty_dir("data", Some("2Gi")), empty_dir("tmp", None)]),
        ..PodSpec::default()
    };
    Some(single_pod_statefulset(sp, names::kafka(sp), "kafka", "events", pod))
}

/// Embedded Redis: the Service of the Redis pod.
pub fn redis_service(sp: &ShopPlatform) -> Option<Service> {
    (sp.spec.redis.mode == RedisMode::Embedded).then(|| {
        cluster_ip_service(
            meta(sp, names::redis(sp), "redis", "cache"),
            selector(sp, "redis", "cache"),
            vec![service_port("redis", REDIS_PORT)],
        )
    })
}

/// Embedded Redis: one pod, no persistence (no RDB snapshots, no AOF), read-only root file
/// system, non-root (the image's `redis` user).
pub fn redis_deployment(sp: &ShopPlatform) -> Option<Deployment> {
    if sp.spec.redis.mode != RedisMode::Embedded {
        return None;
    }
    let spec = sp.spec.redis.embedded.clone().unwrap_or_default();
    let probe = |delay: i32| Probe {
        initial_delay_seconds: Some(delay),
        period_seconds: Some(10),
        timeout_seconds: Some(3),
        ..exec_probe(&["redis-cli", "ping"])
    };
    let mut pod = PodSpec {
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(pod_security_context(REDIS_UID)),
        containers: vec![Container {
            name: "redis".into(),
            image: Some(spec.image),
            image_pull_policy: Some(sp.spec.image_pull_policy.as_str().to_string()),
            // No RDB snapshots; AOF is off by default (an explicit `--appendonly no` would render
            // as YAML `no`, which YAML 1.1 readers take for `false`).
            args: Some(vec!["redis-server".into(), "--save".into(), String::new()]),
            ports: Some(vec![container_port("redis", REDIS_PORT)]),
            readiness_probe: Some(probe(2)),
            liveness_probe: Some(probe(10)),
            resources: Some(ResourceRequirements {
                requests: Some(quantities([("cpu", "50m"), ("memory", "64Mi")])),
                limits: Some(quantities([("memory", "256Mi")])),
                ..ResourceRequirements::default()
            }),
            security_context: Some(container_security_context()),
            volume_mounts: Some(vec![volume_mount("data", "/data")]),
            ..Container::default()
        }],
        volumes: Some(vec![empty_dir("data", Some("256Mi"))]),
        ..PodSpec::default()
    };
    place(sp, None, None, &mut pod);
    Some(Deployment {
        metadata: meta(sp, names::redis(sp), "redis", "cache"),
        spec: DeploymentSpec {
            replicas: Some(1),
            revision_history_limit: Some(2),
            selector: label_selector(selector(sp, "redis", "cache")),
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), rolling_update: None }),
            template: pod_template(labels(sp, "redis", "cache"), None, pod),
            ..DeploymentSpec::default()
        },
        ..Deployment::default()
    })
}

// --- NetworkPolicies ------------------------------------------------------------------------------

/// A selector of other namespaces' pods (`from`/`to` entry).
fn peer(sel: &crate::crd::PeerSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(label_selector(sel.namespace_labels.clone())),
        pod_selector: Some(label_selector(sel.pod_labels.clone())),
        ip_block: None,
    }
}

fn default_peer(ns: &str, pods: &[(&str, &str)]) -> crate::crd::PeerSelector {
    crate::crd::PeerSelector {
        namespace_labels: if ns.is_empty() {
            BTreeMap::new()
        } else {
            BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())])
        },
        pod_labels: pods.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// The ingress controller's pods ([`NetworkPoliciesSpec::ingress_controller`](crate::crd::NetworkPoliciesSpec)).
pub fn ingress_controller_peer(sp: &ShopPlatform) -> crate::crd::PeerSelector {
    sp.spec.network_policies.ingress_controller.clone().unwrap_or_else(|| default_peer("ingress-nginx", &[]))
}

/// Prometheus's pods.
pub fn prometheus_peer(sp: &ShopPlatform) -> crate::crd::PeerSelector {
    sp.spec.network_policies.prometheus.clone().unwrap_or_else(|| default_peer("monitoring", &[]))
}

/// The operator's pods.
pub fn operator_peer(sp: &ShopPlatform) -> crate::crd::PeerSelector {
    sp.spec
        .network_policies
        .operator
        .clone()
        .unwrap_or_else(|| default_peer("", &[("app.kubernetes.io/name", "shop-operator")]))
}

/// The pods (of the platform's namespace) matching `selector`.
fn pods_matching(selector: LabelSelector) -> NetworkPolicyPeer {
    NetworkPolicyPeer { pod_selector: Some(selector), ..NetworkPolicyPeer::default() }
}

fn pods(sp: &ShopPlatform, name: &str, component: &str) -> NetworkPolicyPeer {
    pods_matching(label_selector(selector(sp, name, component)))
}

fn tcp(port: IntOrString) -> NetworkPolicyPort {
    NetworkPolicyPort { protocol: Some("TCP".into()), port: Some(port), end_port: None }
}

fn dns_egress() -> NetworkPolicyEgressRule {
    let dns = |protocol: &str| NetworkPolicyPort {
        protocol: Some(protocol.to_string()),
        port: Some(IntOrString::Int(53)),
        end_port: None,
    };
    NetworkPolicyEgressRule { ports: Some(vec![dns("UDP"), dns("TCP")]), to: None }
}

/// Ingress from `from` to the TCP `port`.
fn allow_from(from: Vec<NetworkPolicyPeer>, port: IntOrString) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule { from: Some(from), ports: Some(vec![tcp(port)]) }
}

/// Egress to the TCP `port` of `to`.
fn allow_to(to: Vec<NetworkPolicyPeer>, port: IntOrString) -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule { to: Some(to), ports: Some(vec![tcp(port)]) }
}

/// The callers of `service` among the enabled services: those that name it as a peer
/// (`contract::ServiceName::peers`; the gateway calls every service) and, for `auth`, every
/// other service (they fetch its JWKS).
pub fn callers(sp: &ShopPlatform, service: ServiceName) -> Vec<ServiceName> {
    sp.spec
        .enabled_services()
        .into_iter()
        .filter(|c| *c != service && (c.peers().contains(&service) || service == ServiceName::Auth))
        .collect()
}

/// The services `service` calls over HTTP among the enabled ones: its peers, and `auth` (JWKS).
pub fn callees(sp: &ShopPlatform, service: ServiceName) -> Vec<ServiceName> {
    sp.spec.enabled_services().into_iter().filter(|s| callers(sp, *s).contains(&service)).collect()
}

/// Egress to the database, event bus and cache the platform runs or names, for a pod that
/// uses them (`database`: the service has one).
fn backing_egress(sp: &ShopPlatform, database: bool, events_and_cache: bool) -> Vec<NetworkPolicyEgressRule> {
    let mut out = vec![dns_egress()];
    let labelled = |key: &str, value: String| {
        vec![pods_matching(label_selector(BTreeMap::from([(key.to_string(), value)])))]
    };
    if database {
        match sp.spec.database.mode {
            DatabaseMode::Embedded => {
                out.push(allow_to(vec![pods(sp, "postgres", "database")], named_port("postgres")))
            }
            DatabaseMode::Cloudnativepg => out.push(allow_to(
                labelled("cnpg.io/cluster", names::cnpg_cluster(sp)),
                IntOrString::Int(POSTGRES_PORT),
            )),
            DatabaseMode::External => {}
        }
    }
    if events_and_cache {
        match sp.spec.kafka.mode {
            KafkaMode::Embedded => out.push(allow_to(vec![pods(sp, "kafka", "events")], named_port("kafka"))),
            KafkaMode::Strimzi => {
                let cluster = sp.spec.kafka.strimzi_cluster.clone().unwrap_or_else(|| "kafka".into());
                out.push(allow_to(labelled("strimzi.io/cluster", cluster), IntOrString::Int(KAFKA_PORT)));
            }
            KafkaMode::External => {}
        }
        if sp.spec.redis.mode == RedisMode::Embedded {
            out.push(allow_to(vec![pods(sp, "redis", "cache")], named_port("redis")));
        }
    }
    for e in &sp.spec.network_policies.external_egress {
        out.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock { cidr: e.cidr.clone(), except: None }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: (!e.ports.is_empty())
                .then(|| e.ports.iter().map(|p| tcp(IntOrString::Int(i32::from(*p)))).collect()),
        });
    }
    out
}

/// A NetworkPolicy of both directions for the pods `selector` matches: what `ingress` and
/// `egress` allow (nothing when `None`).
fn network_policy_object(
    sp: &ShopPlatform,
    what: &str,
    component: &str,
    selector: LabelSelector,
    ingress: Option<Vec<NetworkPolicyIngressRule>>,
    egress: Option<Vec<NetworkPolicyEgressRule>>,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(sp, names::network_policy(sp, what), "network-policy", component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress,
            egress,
        }),
    }
}

/// The platform's NetworkPolicies (none with `networkPolicies.enabled: false`): every pod of
/// the platform denied by default, then exactly the connections the shop makes — the ingress
/// controller to the gateway's `http` port; each service's callers to its `http` port (the
/// gateway to every service, the contract's peers, every service to `auth` for the JWKS);
/// Prometheus to every `ops` port; DNS; the services and migration Jobs to the embedded or
/// operator-run PostgreSQL, Kafka and Redis (and the operator to the embedded PostgreSQL and
/// Kafka); `externalEgress` to what lives outside the cluster.
pub fn network_policies(sp: &ShopPlatform) -> Vec<NetworkPolicy> {
    if !sp.spec.network_policies.enabled {
        return Vec::new();
    }
    let instance = sp.name_any();
    let label = |k: &str, v: &str| (k.to_string(), v.to_string());
    let mut out = vec![network_policy_object(
        sp,
        "default-deny",
        "default-deny",
        label_selector(BTreeMap::from([
            label("app.kubernetes.io/instance", &instance),
            label("app.kubernetes.io/part-of", "shop-platform"),
        ])),
        None,
        None,
    )];
    let http = || named_port(HTTP_PORT_NAME);
    let enabled = sp.spec.enabled_services();
    let prometheus = peer(&prometheus_peer(sp));
    for s in &enabled {
        let mut ingress = Vec::new();
        if *s == ServiceName::Gateway {
            ingress.push(allow_from(vec![peer(&ingress_controller_peer(sp))], http()));
        }
        let from: Vec<_> = callers(sp, *s).into_iter().map(|c| pods(sp, APP_NAME, c.as_str())).collect();
        if !from.is_empty() {
            ingress.push(allow_from(from, http()));
        }
        ingress.push(allow_from(vec![prometheus.clone()], named_port(OPS_PORT_NAME)));
        let mut egress = backing_egress(sp, s.has_database(), true);
        let to: Vec<_> = callees(sp, *s).into_iter().map(|c| pods(sp, APP_NAME, c.as_str())).collect();
        if !to.is_empty() {
            egress.insert(1, allow_to(to, http()));
        }
        out.push(network_policy_object(
            sp,
            s.as_str(),
            s.as_str(),
            label_selector(selector(sp, APP_NAME, s.as_str())),
            Some(ingress),
            Some(egress),
        ));
    }
    let migrating: Vec<String> =
        enabled.iter().filter(|s| s.has_database()).map(|s| format!("{}-migrate", s.as_str())).collect();
    let shop_labels = || {
        BTreeMap::from([
            label("app.kubernetes.io/name", APP_NAME),
            label("app.kubernetes.io/instance", &instance),
        ])
    };
    // The migration Jobs' pods: the shop's, of a `<service>-migrate` component.
    let migration_pods = || LabelSelector {
        match_labels: Some(shop_labels()),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "app.kubernetes.io/component".into(),
            operator: "In".into(),
            values: Some(migrating.clone()),
        }]),
    };
    if !migrating.is_empty() {
        out.push(network_policy_object(
            sp,
            "migrations",
            "migrations",
            migration_pods(),
            None,
            Some(backing_egress(sp, true, false)),
        ));
    }
    let shop_pods = pods_matching(label_selector(shop_labels()));
    let operator = peer(&operator_peer(sp));
    if sp.spec.database.mode == DatabaseMode::Embedded && !migrating.is_empty() {
        let mut from: Vec<_> =
            enabled.iter().filter(|s| s.has_database()).map(|s| pods(sp, APP_NAME, s.as_str())).collect();
        from.push(pods_matching(migration_pods()));
        from.push(operator.clone());
        out.push(network_policy_object(
            sp,
            "postgres",
            "database",
            label_selector(selector(sp, "postgres", "database")),
            Some(vec![allow_from(from, named_port("postgres"))]),
            None,
        ));
    }
    if sp.spec.kafka.mode == KafkaMode::Embedded {
        let kafka = || named_port("kafka");
        out.push(network_policy_object(
            sp,
            "kafka",
            "events",
            label_selector(selector(sp, "kafka", "events")),
            Some(vec![allow_from(
                vec![shop_pods.clone(), operator.clone(), pods(sp, "kafka", "events")],
                kafka(),
            )]),
            // The broker reaches itself at its advertised address (the Service).
            Some(vec![dns_egress(), allow_to(vec![pods(sp, "kafka", "events")], kafka())]),
        ));
    }
    if sp.spec.redis.mode == RedisMode::Embedded {
        out.push(network_policy_object(
            sp,
            "redis",
            "cache",
            label_selector(selector(sp, "redis", "cache")),
            Some(vec![allow_from(vec![shop_pods], named_port("redis"))]),
            None,
        ));
    }
    out
}

// --- ServiceMonitor -------------------------------------------------------------------------------

/// A `ServiceMonitor` (`monitoring.coreos.com/v1`) of every shop service's `ops` port
/// (`/metrics`), when `monitoring.serviceMonitor.enabled`.
pub fn service_monitor(sp: &ShopPlatform) -> Option<DynamicObject> {
    let m = &sp.spec.monitoring.service_monitor;
    if !m.enabled {
        return None;
    }
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("monitoring.coreos.com", "v1", "ServiceMonitor"));
    let mut obj = DynamicObject::new(&names::service_monitor(sp), &ar).data(json!({
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/instance": sp.name_any()}},
            "namespaceSelector": {"matchNames": [names::namespace(sp)]},
            // honorLabels: the services' own `service` label (auth, order…) wins over the
            // scrape's (the Kubernetes Service's name), which the dashboards and alerts group by.
            "endpoints": [{"port": OPS_PORT_NAME, "path": "/metrics", "interval": m.interval, "honorLabels": true}],
        }
    }));
    let mut metadata = meta(sp, names::service_monitor(sp), APP_NAME, "metrics");
    metadata.labels.get_or_insert_with(BTreeMap::new).extend(m.labels.clone());
    obj.metadata = metadata;
    Some(obj)
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
    out.extend(cnpg_scheduled_backup(sp).map(dynamic));
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
    out.extend(network_policies(sp).into_iter().map(typed));
    out.extend(service_monitor(sp).map(dynamic));
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

    /// The operator's secret env as JSON, the form these tests compare.
    fn secret_env(sp: &ShopPlatform, service: ServiceName, serving: bool) -> Vec<Value> {
        super::secret_env(sp, service, serving)
            .into_iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect()
    }

    fn sp(mut spec: Value) -> ShopPlatform {
        if spec.get("payment").is_none() {
            let provider = if spec.get("stripe").is_some() { "stripe" } else { "simulated" };
            spec["payment"] = json!({"provider": provider});
        }
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
        // The auth service mails reset and verification links through the notification service.
        assert_eq!(peer_urls(&p, ServiceName::Auth), keys(&["NOTIFICATION"]));
        for s in [ServiceName::Catalog, ServiceName::Inventory, ServiceName::Notification] {
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
    #[test]
    fn production_settings_ops_port_drain_proxy_hops_hsts() {
        let p = sp(
            json!({"version": "1", "ingress": {"enabled": true, "host": "shop.example.com", "tlsSecretName": "tls"}}),
        );
        let gw = service_config(&p, ServiceName::Gateway);
        assert_eq!(gw[env::OPS_ADDR], "0.0.0.0:9090");
        assert_eq!(gw[env::SHUTDOWN_DELAY_SECS], "5");
        assert_eq!(gw[env::GATEWAY_TRUSTED_PROXY_HOPS], "1");
        assert_eq!(gw[env::HSTS_MAX_AGE_SECS], "31536000");
        assert_eq!(service_config(&p, ServiceName::Auth)[env::AUTH_TRUSTED_PROXY_HOPS], "2");
        let plain = sp(json!({"version": "1"}));
        assert_eq!(service_config(&plain, ServiceName::Gateway)[env::GATEWAY_TRUSTED_PROXY_HOPS], "0");
        assert_eq!(service_config(&plain, ServiceName::Auth)[env::AUTH_TRUSTED_PROXY_HOPS], "1");
        assert!(!service_config(&plain, ServiceName::Gateway).contains_key(env::HSTS_MAX_AGE_SECS));
        let d = serde_json::to_value(deployment(&p, ServiceName::Gateway, "h")).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["terminationGracePeriodSeconds"], 45);
        let c = &pod["containers"][0];
        assert_eq!(c["readinessProbe"]["httpGet"], json!({"path": "/readyz", "port": "ops"}));
        assert_eq!(c["livenessProbe"]["httpGet"]["port"], "ops");
        assert_eq!(c["startupProbe"]["httpGet"]["port"], "ops");
        assert_eq!(c["lifecycle"]["preStop"]["sleep"]["seconds"], 5);
        assert_eq!(c["ports"][1], json!({"name": "ops", "containerPort": 9090, "protocol": "TCP"}));
        let svc = serde_json::to_value(service(&p, ServiceName::Gateway)).unwrap();
        assert_eq!(svc["spec"]["ports"][1]["name"], "ops");
        // The Ingress routes to the http port only.
        let ing = serde_json::to_value(ingress(&p).unwrap()).unwrap();
        assert_eq!(ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["name"], "http");
        // Spread by zone and host by default, off per service.
        assert_eq!(pod["topologySpreadConstraints"].as_array().unwrap().len(), 2);
        let off =
            sp(json!({"version": "1", "services": {"gateway": {"placement": {"topologySpread": false}}}}));
        let d = serde_json::to_value(deployment(&off, ServiceName::Gateway, "h")).unwrap();
        assert!(d["spec"]["template"]["spec"].get("topologySpreadConstraints").is_none());
    }

    #[test]
    fn the_payment_provider_is_the_specs() {
        let p =
            sp(json!({"version": "1", "payment": {"provider": "simulated"}, "stripe": {"secretName": "s"}}));
        assert_eq!(service_config(&p, ServiceName::Payment)[env::PAYMENT_PROVIDER], "simulated");
        let p = sp(json!({"version": "1", "payment": {"provider": "stripe"}, "stripe": {"secretName": "s"}}));
        assert_eq!(service_config(&p, ServiceName::Payment)[env::PAYMENT_PROVIDER], "stripe");
        let missing: Result<ShopPlatform, _> = serde_json::from_value(json!({
            "apiVersion": "platform.shop/v1alpha1", "kind": "ShopPlatform",
            "metadata": {"name": "shop", "namespace": "ns"}, "spec": {"version": "1"},
        }));
        assert!(missing.unwrap_err().to_string().contains("payment"));
    }

    #[test]
    fn tls_to_backing_services_mounts_the_cas_and_names_them() {
        use contract::events::env as ev;
        let p = sp(json!({
            "version": "1",
            "database": {"mode": "external", "external": {"adminSecretRef": {"name": "pg", "key": "dsn"}},
                         "tls": {"mode": "verify-full", "ca": {"secretRef": {"name": "pg-ca", "key": "ca.crt"}}}},
            "kafka": {"mode": "external", "bootstrapServers": "k:9093", "security": {
                "protocol": "sasl_ssl", "ca": {"configMapRef": {"name": "kafka-ca", "key": "ca.pem"}},
                "sasl": {"mechanism": "SCRAM-SHA-512", "username": "shop", "passwordSecretRef": {"name": "kafka", "key": "password"}}}},
            "redis": {"mode": "external", "urlSecretRef": {"name": "r", "key": "url"}, "tls": {"ca": {"secretRef": {"name": "redis-ca", "key": "ca.crt"}}}},
        }));
        let c = service_config(&p, ServiceName::Catalog);
        assert_eq!(c[env::DATABASE_CA_FILE], "/etc/shop/ca/postgres/ca.crt");
        assert_eq!(c[env::REDIS_CA_FILE], "/etc/shop/ca/redis/ca.crt");
        assert_eq!(c[ev::SECURITY_PROTOCOL], "sasl_ssl");
        assert_eq!(c[ev::SSL_CA_FILE], "/etc/shop/ca/kafka/ca.crt");
        assert_eq!(c[ev::SASL_MECHANISM], "SCRAM-SHA-512");
        assert_eq!(c[ev::SASL_USERNAME], "shop");
        assert!(!c.contains_key(ev::SASL_PASSWORD));
        assert!(!service_config(&p, ServiceName::Gateway).contains_key(env::DATABASE_CA_FILE), "no database");
        let d = serde_json::to_value(deployment(&p, ServiceName::Catalog, "h")).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        let env = pod["containers"][0]["env"].as_array().unwrap();
        assert!(env.iter().any(|e| e["name"] == ev::SASL_PASSWORD
            && e["valueFrom"]["secretKeyRef"] == json!({"name": "kafka", "key": "password"})));
        let volumes = pod["volumes"].as_array().unwrap();
        assert!(volumes.contains(&json!({"name": "postgres-ca", "secret": {"secretName": "pg-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}})));
        assert!(volumes.contains(&json!({"name": "kafka-ca", "configMap": {"name": "kafka-ca", "items": [{"key": "ca.pem", "path": "ca.crt"}]}})));
        let mounts = pod["containers"][0]["volumeMounts"].as_array().unwrap();
        assert!(mounts
            .contains(&json!({"name": "redis-ca", "mountPath": "/etc/shop/ca/redis", "readOnly": true})));
        // The migration Job reads the database CA too.
        let job = serde_json::to_value(migration_job(&p, ServiceName::Catalog).unwrap()).unwrap();
        assert!(job["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["name"] == "postgres-ca"));
        assert!(consumed_secrets(&p, ServiceName::Catalog)
            .contains(&("kafka".to_string(), "password".to_string())));
    }

    #[test]
    fn digest_pull_secrets_and_placement() {
        let digest = format!("sha256:{}", "a".repeat(64));
        let p = sp(json!({
            "version": "1", "imageDigest": digest, "imagePullSecrets": [{"name": "reg"}],
            "placement": {"nodeSelector": {"pool": "shop"}, "tolerations": [{"key": "k", "operator": "Exists"}]},
            "services": {"catalog": {"placement": {"nodeSelector": {"pool": "catalog"}}}},
        }));
        let d = serde_json::to_value(deployment(&p, ServiceName::Catalog, "h")).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["containers"][0]["image"], format!("shop@{digest}"));
        assert_eq!(pod["imagePullSecrets"], json!([{"name": "reg"}]));
        assert_eq!(pod["nodeSelector"], json!({"pool": "catalog"}), "the service's field wins");
        assert_eq!(
            pod["tolerations"],
            json!([{"key": "k", "operator": "Exists"}]),
            "the platform's otherwise"
        );
        let auth = serde_json::to_value(deployment(&p, ServiceName::Auth, "h")).unwrap();
        assert_eq!(auth["spec"]["template"]["spec"]["nodeSelector"], json!({"pool": "shop"}));
        let pg = serde_json::to_value(postgres_statefulset(&p).unwrap()).unwrap();
        assert_eq!(pg["spec"]["template"]["spec"]["imagePullSecrets"], json!([{"name": "reg"}]));
    }

    /// A free-form affinity that is no `Affinity` is named, not rendered (and nothing panics).
    #[test]
    fn a_malformed_affinity_is_a_problem_not_a_panic() {
        let good = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["shop"]}]}]}}});
        let p = sp(json!({"version": "1", "placement": {"affinity": good},
            "services": {"catalog": {"placement": {"affinity": {"nodeAffinity": "everywhere"}}}}}));
        assert_eq!(placement_problem(&p, None), None);
        assert_eq!(placement_problem(&p, Some(ServiceName::Auth)), None);
        let problem = placement_problem(&p, Some(ServiceName::Catalog)).unwrap();
        assert!(problem.starts_with("services.catalog.placement.affinity"), "{problem}");
        let d = serde_json::to_value(deployment(&p, ServiceName::Catalog, "h")).unwrap();
        assert!(d["spec"]["template"]["spec"].get("affinity").is_none());
        let auth = serde_json::to_value(deployment(&p, ServiceName::Auth, "h")).unwrap();
        assert_eq!(
            auth["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]
                ["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
                ["matchExpressions"][0]["key"],
            "pool"
        );
    }

    /// The pods a policy's rule admits, as the component labels of the platform's pods.
    fn components(rule: &Value, key: &str) -> Vec<String> {
        rule[key]
            .as_array()
            .map(|peers| {
                peers
                    .iter()
                    .filter_map(|p| {
                        p["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
                            .as_str()
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn network_policies_allow_exactly_the_edges_used() {
        let p = sp(json!({"version": "1"}));
        let nps: Vec<Value> =
            network_policies(&p).into_iter().map(|n| serde_json::to_value(n).unwrap()).collect();
        let by_name = |n: &str| {
            nps.iter().find(|x| x["metadata"]["name"] == n).cloned().unwrap_or_else(|| panic!("{n}"))
        };
        let deny = by_name("shop-default-deny");
        assert_eq!(deny["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert!(deny["spec"].get("ingress").is_none() && deny["spec"].get("egress").is_none());
        // The catalog: called by the gateway, the cart and the order service.
        let catalog = by_name("shop-catalog");
        let http_from = components(&catalog["spec"]["ingress"][0], "from");
        assert_eq!(http_from, vec!["cart", "order", "gateway"]);
        assert_eq!(catalog["spec"]["ingress"][1]["ports"][0]["port"], "ops");
        assert_eq!(
            catalog["spec"]["ingress"][1]["from"][0]["namespaceSelector"]["matchLabels"],
            json!({"kubernetes.io/metadata.name": "monitoring"})
        );
        // The order service calls auth (JWKS), catalog, cart, inventory; reaches PostgreSQL, Kafka, Redis.
        let order = by_name("shop-order");
        assert_eq!(
            components(&order["spec"]["egress"][1], "to"),
            vec!["auth", "catalog", "cart", "inventory"]
        );
        let egress_to: Vec<String> =
            order["spec"]["egress"].as_array().unwrap().iter().flat_map(|r| components(r, "to")).collect();
        for backing in ["database", "events", "cache"] {
            assert!(egress_to.contains(&backing.to_string()), "{backing}: {egress_to:?}");
        }
        // The gateway: from the ingress controller; it calls every other service.
        let gateway = by_name("shop-gateway");
        assert_eq!(
            gateway["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"],
            json!({"kubernetes.io/metadata.name": "ingress-nginx"})
        );
        assert_eq!(components(&gateway["spec"]["egress"][1], "to").len(), 7);
        // Auth is called by every service (JWKS, revocations); it calls the notification
        // service alone (security emails).
        assert_eq!(components(&by_name("shop-auth")["spec"]["ingress"][0], "from").len(), 7);
        let auth_calls: Vec<String> = by_name("shop-auth")["spec"]["egress"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["ports"][0]["port"] == "http")
            .flat_map(|r| components(r, "to"))
            .collect();
        assert_eq!(auth_calls, vec!["notification"]);
        assert!(components(&by_name("shop-notification")["spec"]["ingress"][0], "from")
            .contains(&"auth".to_string()));
        // The embedded PostgreSQL: the database services, their migrations and the operator.
        let pg = by_name("shop-postgres");
        let from = pg["spec"]["ingress"][0]["from"].as_array().unwrap();
        assert!(from
            .iter()
            .any(|f| f["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "shop-operator"));
        assert!(!components(&pg["spec"]["ingress"][0], "from").contains(&"gateway".to_string()));
        assert!(by_name("shop-kafka")["spec"]["ingress"][0]["from"].is_array());
        assert!(by_name("shop-redis")["spec"]["ingress"][0]["from"].is_array());
        // A disabled service is no edge.
        let no_cart = sp(json!({"version": "1", "services": {"cart": {"enabled": false}}}));
        let nps: Vec<Value> =
            network_policies(&no_cart).into_iter().map(|n| serde_json::to_value(n).unwrap()).collect();
        let order = nps.iter().find(|x| x["metadata"]["name"] == "shop-order").unwrap();
        assert_eq!(components(&order["spec"]["egress"][1], "to"), vec!["auth", "catalog", "inventory"]);
        assert!(!nps.iter().any(|x| x["metadata"]["name"] == "shop-cart"));
        // External egress, and the opt-out.
        let ext = sp(
            json!({"version": "1", "networkPolicies": {"externalEgress": [{"cidr": "10.0.0.0/8", "ports": [5432]}]}}),
        );
        let auth = serde_json::to_value(&network_policies(&ext)[1]).unwrap();
        assert!(auth["spec"]["egress"].as_array().unwrap().contains(&json!({"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}], "ports": [{"protocol": "TCP", "port": 5432}]})));
        assert!(
            network_policies(&sp(json!({"version": "1", "networkPolicies": {"enabled": false}}))).is_empty()
        );
    }

    #[test]
    fn cloudnativepg_backups_and_recovery() {
        let store = json!({"destinationPath": "s3://b/p", "s3Credentials": {
            "accessKeyId": {"name": "s3", "key": "id"}, "secretAccessKey": {"name": "s3", "key": "key"}}});
        let p = sp(json!({"version": "1", "database": {"mode": "cloudnativepg", "cloudnativepg": {
            "backup": {"objectStore": store},
            "recovery": {"objectStore": store, "serverName": "old-db", "targetTime": "2025-01-31T12:00:00Z"}}}}));
        let c = serde_json::to_value(cnpg_cluster(&p).unwrap()).unwrap();
        assert_eq!(c["spec"]["backup"]["retentionPolicy"], "30d");
        assert_eq!(
            c["spec"]["backup"]["barmanObjectStore"]["s3Credentials"]["accessKeyId"],
            json!({"name": "s3", "key": "id"})
        );
        assert_eq!(
            c["spec"]["bootstrap"]["recovery"],
            json!({"source": "origin", "recoveryTarget": {"targetTime": "2025-01-31T12:00:00Z"}})
        );
        assert_eq!(c["spec"]["externalClusters"][0]["barmanObjectStore"]["serverName"], "old-db");
        let b = serde_json::to_value(cnpg_scheduled_backup(&p).unwrap()).unwrap();
        assert_eq!(b["spec"]["cluster"]["name"], "shop-db");
        assert_eq!(b["spec"]["schedule"], "0 0 2 * * *");
        assert!(cnpg_scheduled_backup(&sp(json!({"version": "1"}))).is_none());
    }

    #[test]
    fn a_service_monitor_only_when_enabled() {
        assert!(service_monitor(&sp(json!({"version": "1"}))).is_none());
        let p = sp(
            json!({"version": "1", "monitoring": {"serviceMonitor": {"enabled": true, "labels": {"release": "prom"}}}}),
        );
        let m = serde_json::to_value(service_monitor(&p).unwrap()).unwrap();
        assert_eq!(m["spec"]["endpoints"][0]["port"], "ops");
        assert_eq!(m["metadata"]["labels"]["release"], "prom");
    }
}
