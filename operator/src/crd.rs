//! The `ShopPlatform` custom resource (`platform.shop/v1alpha1`): its spec, status and the CRD
//! generated from them. Every field carries a doc comment, which becomes its `description`
//! (`kubectl explain shopplatform.spec.database`).

use std::collections::BTreeMap;

use contract::ServiceName;
use kube::CustomResource;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

/// Desired state of one ShopPlatform: which image runs which services, and where their
/// databases, event bus and cache come from.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "platform.shop",
    doc = "A ShopPlatform: one running shop (its services, databases, event bus, cache and ingress), managed by shop-operator.",
    version = "v1alpha1",
    kind = "ShopPlatform",
    plural = "shopplatforms",
    singular = "shopplatform",
    shortname = "shop",
    category = "shop",
    namespaced,
    status = "ShopPlatformStatus",
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","description":"Ready services / enabled services","jsonPath":".status.readyServices"}"#,
    printcolumn = r#"{"name":"Version","type":"string","jsonPath":".spec.version"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.payment.provider != 'stripe' || has(self.stripe)", "message": "payment.provider stripe needs spec.stripe (the Secret with the Stripe keys)"},
    {"rule": "!has(self.database.tls) || self.database.mode != 'embedded'", "message": "database.tls is for modes external and cloudnativepg (the embedded PostgreSQL serves no TLS)"},
    {"rule": "!has(self.redis.tls) || self.redis.mode == 'external'", "message": "redis.tls is for mode external (the embedded Redis serves no TLS)"},
    {"rule": "!has(self.kafka.security) || self.kafka.mode == 'external'", "message": "kafka.security is for mode external (the embedded broker is plaintext; Strimzi listeners are configured on the Kafka resource)"}
]))]
pub struct ShopPlatformSpec {
    /// Container image repository of the `shop` binary, without a tag (the tag is `version`).
    #[serde(default = "default_image")]
    #[schemars(length(min = 1, max = 255))]
    pub image: String,
    /// Image tag to run, e.g. `0.1.0`. Changing it runs the migration Jobs of the new version,
    /// then rolls the Deployments.
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"))]
    pub version: String,
    /// Digest of the image of `version` (`sha256:…`): when set, the services and migration Jobs
    /// run `image@digest` (immutable) instead of `image:version`; `version` still names the
    /// release (labels, migration Job names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub image_digest: Option<String>,
    /// Image pull policy of every container the operator creates.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// Secrets (type `kubernetes.io/dockerconfigjson`) for pulling the images of every pod the
    /// operator creates, e.g. `[{name: registry-credentials}]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Where the service pods are scheduled: node selector, tolerations, affinity and topology
    /// spread (by zone and by host, unless turned off). `services.<name>.placement` overrides it
    /// per field.
    #[serde(default)]
    pub placement: PlacementSpec,
    /// The payment provider of the payment service (`SHOP_PAYMENT__PROVIDER`). Required: a shop
    /// takes real payments only when someone chose `stripe`.
    pub payment: PaymentSpec,
    /// Per-service settings, keyed by service name. A service not listed runs with the defaults
    /// (enabled, one replica).
    #[serde(default)]
    #[schemars(schema_with = "services_schema")]
    pub services: BTreeMap<ServiceName, ServiceSpec>,
    /// Where the per-service PostgreSQL databases come from.
    #[serde(default)]
    pub database: DatabaseSpec,
    /// The Kafka event bus and its topics.
    #[serde(default)]
    pub kafka: KafkaSpec,
    /// The Redis cache (cart storage).
    #[serde(default)]
    pub redis: RedisSpec,
    /// Stripe credentials of `payment.provider: stripe`: the payment pods read the keys of this
    /// Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe: Option<StripeSpec>,
    /// SMTP relay for outgoing email; without it email is captured by the notification service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSpec>,
    /// Public HTTP(S) entry point: an Ingress in front of the gateway.
    #[serde(default)]
    pub ingress: IngressSpec,
    /// NetworkPolicies of the platform's pods: deny by default, then exactly the connections the
    /// shop makes. On unless `enabled: false`.
    #[serde(default)]
    pub network_policies: NetworkPoliciesSpec,
    /// Prometheus Operator integration: a `ServiceMonitor` scraping every service's `ops` port.
    #[serde(default)]
    pub monitoring: MonitoringSpec,
    /// What happens to the data when the ShopPlatform is deleted. `Retain` (default) keeps the
    /// databases and roles, the CloudNativePG `Cluster` or the embedded database's volume and
    /// admin Secret, and the topics; `Delete` removes them.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_image() -> String {
    "shop".to_string()
}

/// The longest ShopPlatform name. Every name the operator derives from it stays valid: Services
/// `<name>-notification` (DNS-1035 labels, at most 63), the StatefulSets `<name>-postgres` whose
/// pods carry a `controller-revision-hash` label of `<statefulset>-<10 characters>` (a label value,
/// at most 63), migration Jobs (shortened with a hash).
pub const MAX_NAME_LEN: usize = 40;

/// The CRD: the one derived from [`ShopPlatformSpec`] plus rules on `metadata.name` (CEL at the
/// schema's root, where `self.metadata.name` is visible) that make every derived name valid.
pub fn crd() -> k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition {
    use kube::CustomResourceExt;
    let mut crd = ShopPlatform::crd();
    let rules = serde_json::json!([
        {
            "rule": format!("self.metadata.name.size() <= {MAX_NAME_LEN}"),
            "message": format!("metadata.name must be at most {MAX_NAME_LEN} characters: the operator derives longer names from it (the Service <name>-notification, the revision labels of the StatefulSet <name>-postgres's pods)"),
        },
        {
            "rule": "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
            "message": "metadata.name must be a DNS-1035 label: lower-case letters, digits and '-', start with a lower-case letter and end with a letter or digit (it begins every Service name)",
        },
    ]);
    for version in &mut crd.spec.versions {
        if let Some(schema) = version.schema.as_mut().and_then(|s| s.open_api_v3_schema.as_mut()) {
            schema.x_kubernetes_validations =
                Some(serde_json::from_value(rules.clone()).expect("validation rules"));
        }
    }
    crd
}

/// Image pull policy.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    #[default]
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// The `services` map: one optional entry per known service, nothing else.
fn services_schema(generator: &mut SchemaGenerator) -> Schema {
    let service = generator.subschema_for::<ServiceSpec>();
    let mut properties = serde_json::Map::new();
    for name in ServiceName::ALL {
        properties.insert(name.as_str().to_string(), service.clone().into());
    }
    json_schema!({
        "type": "object",
        "description": "Per-service settings, keyed by service name. A service not listed runs with the defaults (enabled, one replica).",
        "properties": properties,
        "additionalProperties": false,
    })
}

/// Settings of one service.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Whether the service runs. A disabled service gets no Deployment, Service or database.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Number of pods. More than one also gets a PodDisruptionBudget. Ignored when `autoscaling`
    /// is set: the HorizontalPodAutoscaler (or `kubectl scale`) decides.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// Scale the service with a HorizontalPodAutoscaler on CPU utilization instead of a fixed
    /// `replicas`: the operator then leaves the Deployment's replica count alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
    /// CPU and memory requests and limits of the service's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesSpec>,
    /// Extra environment variables of the service's container (e.g. `SHOP_LOG=debug`). They
    /// come after the operator's own, so they can override them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVarSpec>,
    /// Scheduling of this service's pods; each field set here replaces the platform's
    /// `placement` field of the same name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<PlacementSpec>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec {
            enabled: true,
            replicas: 1,
            autoscaling: None,
            resources: None,
            env: Vec::new(),
            placement: None,
        }
    }
}

/// A HorizontalPodAutoscaler (`autoscaling/v2`) for one service's Deployment.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.minReplicas <= self.maxReplicas", "message": "minReplicas must not be greater than maxReplicas"}
]))]
pub struct AutoscalingSpec {
    /// Fewest pods. Above 1 the service also gets a PodDisruptionBudget.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    /// Most pods.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU utilization to aim at, in percent of the pods' CPU request.
    #[serde(default = "default_cpu_target", rename = "targetCPUUtilizationPercentage")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
}

fn default_cpu_target() -> i32 {
    80
}

fn default_true() -> bool {
    true
}

fn default_replicas() -> i32 {
    1
}

/// CPU and memory requests and limits (Kubernetes quantities, e.g. `250m`, `256Mi`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ResourcesSpec {
    /// Guaranteed resources, used for scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceAmounts>,
    /// Upper bounds; a container above its memory limit is killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
}

/// An amount of CPU and memory.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct ResourceAmounts {
    /// CPU quantity, e.g. `100m` or `1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?m?$"))]
    pub cpu: Option<String>,
    /// Memory quantity, e.g. `128Mi` or `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$"))]
    pub memory: Option<String>,
}

/// One extra environment variable: a literal value or a key of a Secret.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.value) != has(self.secretKeyRef)", "message": "set exactly one of value and secretKeyRef"}
]))]
pub struct EnvVarSpec {
    /// Variable name, e.g. `SHOP_LOG`.
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"))]
    pub name: String,
    /// Literal value (goes into the service's ConfigMap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Take the value from a key of a Secret in the same namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
}

/// A key of a Secret in the ShopPlatform's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Where the databases come from. Every service with a database gets its own database and
/// login role, whatever the mode.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode != 'external' || has(self.external)", "message": "mode external needs database.external"},
    {
        "rule": "self.mode != 'embedded' || (has(self.embedded) && has(self.embedded.storageSize) ? self.embedded.storageSize : '1Gi') == (has(oldSelf.embedded) && has(oldSelf.embedded.storageSize) ? oldSelf.embedded.storageSize : '1Gi')",
        "message": "database.embedded.storageSize is immutable (the StatefulSet's volume claim template cannot change; resize the PersistentVolumeClaim data-<name>-postgres-0 instead)"
    },
    {
        "rule": "self.mode != 'embedded' || (has(self.embedded) && has(self.embedded.storageClassName) ? self.embedded.storageClassName : '') == (has(oldSelf.embedded) && has(oldSelf.embedded.storageClassName) ? oldSelf.embedded.storageClassName : '')",
        "message": "database.embedded.storageClassName is immutable (the StatefulSet's volume claim template cannot change)"
    }
]))]
pub struct DatabaseSpec {
    /// `external`: an existing PostgreSQL server reached with an admin DSN; `cloudnativepg`: a
    /// CloudNativePG `Cluster` the operator creates; `embedded`: one PostgreSQL pod for
    /// development. Immutable once set.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "database.mode is immutable"}
    ]))]
    pub mode: DatabaseMode,
    /// Settings of mode `external`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalDatabase>,
    /// Settings of mode `cloudnativepg`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloudnativepg: Option<CloudNativePgDatabase>,
    /// Settings of mode `embedded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedDatabase>,
    /// TLS to PostgreSQL (modes `external` and `cloudnativepg`): the `sslmode` of every service's
    /// connection URL and of the operator's own connections, and the CA that verifies the
    /// server (mounted into the service pods as `SHOP_DATABASE_CA_FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<DatabaseTls>,
}

/// TLS to PostgreSQL.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode == 'require' || has(self.ca)", "message": "database.tls modes verify-ca and verify-full need database.tls.ca"}
]))]
pub struct DatabaseTls {
    /// libpq's `sslmode`: `require` (encrypted, the server not verified), `verify-ca` (the
    /// server's certificate chains to `ca`) or `verify-full` (and names the host).
    #[serde(default)]
    pub mode: DatabaseSslMode,
    /// The CA certificate(s) that verify the server (PEM). CloudNativePG: its Secret
    /// `<platform>-db-ca`, key `ca.crt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaSource>,
}

/// libpq's `sslmode` values that encrypt.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseSslMode {
    Require,
    VerifyCa,
    #[default]
    VerifyFull,
}

impl DatabaseSslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseSslMode::Require => "require",
            DatabaseSslMode::VerifyCa => "verify-ca",
            DatabaseSslMode::VerifyFull => "verify-full",
        }
    }
}

/// A PEM file from a key of a Secret or of a ConfigMap in the platform's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.secretRef) != has(self.configMapRef)", "message": "set exactly one of secretRef and configMapRef"}
]))]
pub struct CaSource {
    /// A key of a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretKeyRef>,
    /// A key of a ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ConfigMapKeyRef>,
}

/// A key of a ConfigMap in the ShopPlatform's namespace.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// How the databases are provided.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseMode {
    External,
    Cloudnativepg,
    #[default]
    Embedded,
}

impl DatabaseMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DatabaseMode::External => "external",
            DatabaseMode::Cloudnativepg => "cloudnativepg",
            DatabaseMode::Embedded => "embedded",
        }
    }
}

/// An existing PostgreSQL server.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalDatabase {
    /// Secret key holding an admin DSN (`postgres://admin:pw@host:5432/postgres?sslmode=require`)
    /// of a role with CREATEDB and CREATEROLE. The operator uses it to create one database and
    /// one login role per service; services never see it.
    pub admin_secret_ref: SecretKeyRef,
}

/// A CloudNativePG cluster (needs the CloudNativePG operator in the cluster).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudNativePgDatabase {
    /// Number of PostgreSQL instances (1 primary + replicas).
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 9))]
    pub instances: i32,
    /// Size of each instance's volume.
    #[serde(default = "default_cnpg_storage")]
    pub storage_size: String,
    /// StorageClass of the volumes (the cluster default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Continuous backup to an S3-compatible object store (base backups and WAL archive,
    /// CloudNativePG's `barmanObjectStore`) plus a `ScheduledBackup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<CnpgBackup>,
    /// Create the cluster from a backup in an object store instead of empty
    /// (`bootstrap.recovery`). Read only when the `Cluster` is created: set it on a new
    /// ShopPlatform (or after deleting the Cluster) to restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<CnpgRecovery>,
}

/// An S3-compatible object store of CloudNativePG's barman-cloud.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStore {
    /// Where the backups go, e.g. `s3://shop-backups/prod`.
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^(s3|gs|https?)://.+"))]
    pub destination_path: String,
    /// Endpoint of an S3-compatible store other than AWS (e.g. MinIO), `https://…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "endpointURL")]
    pub endpoint_url: Option<String>,
    /// The access key id and secret access key, from Secrets in the platform's namespace.
    pub s3_credentials: S3Credentials,
}

/// S3 credentials from Secret keys.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: SecretKeyRef,
    /// The secret access key.
    pub secret_access_key: SecretKeyRef,
}

/// Backups of the CloudNativePG cluster.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CnpgBackup {
    /// The object store of base backups and the WAL archive.
    pub object_store: ObjectStore,
    /// How long backups are kept, e.g. `30d` (CloudNativePG's `retentionPolicy`).
    #[serde(default = "default_backup_retention")]
    #[schemars(regex(pattern = r"^[1-9][0-9]*[dwm]$"))]
    pub retention_policy: String,
    /// When base backups run: a cron expression with seconds (CloudNativePG's
    /// `ScheduledBackup`), e.g. `0 0 2 * * *` for 02:00 daily.
    #[serde(default = "default_backup_schedule")]
    #[schemars(length(min = 9, max = 100))]
    pub schedule: String,
}

fn default_backup_retention() -> String {
    "30d".to_string()
}

fn default_backup_schedule() -> String {
    "0 0 2 * * *".to_string()
}

/// A restore of the CloudNativePG cluster from an object store.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CnpgRecovery {
    /// The object store holding the backups (its `destinationPath` as the backed-up cluster
    /// wrote it).
    pub object_store: ObjectStore,
    /// The backed-up cluster's name in the store (its `Cluster` name: `<platform>-db`).
    #[schemars(length(min = 1, max = 63))]
    pub server_name: String,
    /// Point in time to recover to (RFC 3339, e.g. `2025-01-31T12:00:00Z`); the end of the WAL
    /// archive when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_time: Option<String>,
}

fn default_cnpg_storage() -> String {
    "10Gi".to_string()
}

/// A single PostgreSQL pod for development: no backups, no high availability.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedDatabase {
    /// PostgreSQL image.
    #[serde(default = "default_postgres_image")]
    pub image: String,
    /// Size of the data volume. Immutable (resize the PersistentVolumeClaim instead).
    #[serde(default = "default_embedded_storage")]
    pub storage_size: String,
    /// StorageClass of the data volume (the cluster default when unset). Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for EmbeddedDatabase {
    fn default() -> Self {
        EmbeddedDatabase {
            image: default_postgres_image(),
            storage_size: default_embedded_storage(),
            storage_class_name: None,
        }
    }
}

fn default_postgres_image() -> String {
    "postgres:17-alpine".to_string()
}

fn default_embedded_storage() -> String {
    "1Gi".to_string()
}

/// The Kafka event bus. The operator creates the topics of the event contract (and their
/// dead-letter topics) and points every service at the brokers (`SHOP_EVENTS__*`); condition
/// `KafkaReady` reports the outcome.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode != 'external' || has(self.bootstrapServers)", "message": "mode external needs kafka.bootstrapServers"}
]))]
pub struct KafkaSpec {
    /// `external`: an existing cluster at `bootstrapServers`; `strimzi`: topics as Strimzi
    /// `KafkaTopic` objects of the Kafka cluster `strimziCluster`; `embedded`: a single-node
    /// broker for development.
    #[serde(default)]
    pub mode: KafkaMode,
    /// Comma-separated `host:port` list (mode `external`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// Name of the Strimzi `Kafka` resource in this namespace (mode `strimzi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strimzi_cluster: Option<String>,
    /// Settings of mode `embedded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedKafka>,
    /// Settings of every topic the platform creates (names are prefixed by the platform name).
    /// Partitions can be increased later, never decreased.
    #[serde(default)]
    pub topics: TopicSettings,
    /// TLS and SASL to the brokers (mode `external`), for the services (`SHOP_EVENTS__*`) and
    /// the operator's own topic provisioning alike.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<KafkaSecurity>,
}

/// How clients talk to the brokers.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(self.protocol == 'sasl_plaintext' || self.protocol == 'sasl_ssl') == has(self.sasl)", "message": "kafka.security.sasl is needed by, and only by, protocols sasl_plaintext and sasl_ssl"},
    {"rule": "!has(self.ca) || self.protocol == 'ssl' || self.protocol == 'sasl_ssl'", "message": "kafka.security.ca needs protocol ssl or sasl_ssl"}
]))]
pub struct KafkaSecurity {
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl` (librdkafka's `security.protocol`).
    pub protocol: KafkaProtocol,
    /// CA certificate(s) of the brokers (PEM); the public roots when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaSource>,
    /// SASL authentication (protocols `sasl_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl: Option<KafkaSasl>,
}

/// librdkafka's `security.protocol`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KafkaProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl KafkaProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaProtocol::Plaintext => "plaintext",
            KafkaProtocol::Ssl => "ssl",
            KafkaProtocol::SaslPlaintext => "sasl_plaintext",
            KafkaProtocol::SaslSsl => "sasl_ssl",
        }
    }
    pub fn is_tls(self) -> bool {
        matches!(self, KafkaProtocol::Ssl | KafkaProtocol::SaslSsl)
    }
}

/// SASL credentials.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KafkaSasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: SaslMechanismSpec,
    /// The user name.
    #[schemars(length(min = 1, max = 255))]
    pub username: String,
    /// The password, from a Secret key (never copied into a ConfigMap).
    pub password_secret_ref: SecretKeyRef,
}

/// SASL mechanisms both the services and the operator speak.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum SaslMechanismSpec {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanismSpec {
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanismSpec::Plain => "PLAIN",
            SaslMechanismSpec::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanismSpec::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// How Kafka is provided.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KafkaMode {
    External,
    Strimzi,
    #[default]
    Embedded,
}

impl KafkaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaMode::External => "external",
            KafkaMode::Strimzi => "strimzi",
            KafkaMode::Embedded => "embedded",
        }
    }
}

/// A single-node Kafka broker (KRaft, combined broker and controller) for development: no
/// persistence (topics are re-created by the operator after a restart), no replication.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedKafka {
    /// Kafka image; the official `apache/kafka` images configure themselves from `KAFKA_*`
    /// environment variables.
    #[serde(default = "default_kafka_image")]
    #[schemars(length(min = 1, max = 255))]
    pub image: String,
}

impl Default for EmbeddedKafka {
    fn default() -> Self {
        EmbeddedKafka { image: default_kafka_image() }
    }
}

fn default_kafka_image() -> String {
    "apache/kafka:3.9.0".to_string()
}

/// Topic settings.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopicSettings {
    /// Partitions per topic (the unit of consumer parallelism).
    #[serde(default = "default_partitions")]
    #[schemars(range(min = 1, max = 1000))]
    pub partitions: i32,
    /// Replication factor of every topic.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 7))]
    pub replication_factor: i32,
    /// Retention of every topic, in hours.
    #[serde(default = "default_retention_hours")]
    #[schemars(range(min = 1, max = 87600))]
    pub retention_hours: i32,
}

impl Default for TopicSettings {
    fn default() -> Self {
        TopicSettings {
            partitions: default_partitions(),
            replication_factor: 1,
            retention_hours: default_retention_hours(),
        }
    }
}

fn default_partitions() -> i32 {
    6
}

fn default_retention_hours() -> i32 {
    168
}

/// The Redis cache (cart storage). Services get its URL as `SHOP_REDIS_URL`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.mode != 'external' || has(self.urlSecretRef)", "message": "mode external needs redis.urlSecretRef"}
]))]
pub struct RedisSpec {
    /// `external`: an existing Redis reached at the URL in `urlSecretRef`; `embedded`: one
    /// Redis pod for development.
    #[serde(default)]
    pub mode: RedisMode,
    /// Secret key holding `redis://…` or `rediss://…` (TLS) (mode `external`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// CA certificate(s) that verify a `rediss://` server (mounted into the service pods as
    /// `SHOP_REDIS_CA_FILE`); the public roots when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RedisTls>,
    /// Settings of mode `embedded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedded: Option<EmbeddedRedis>,
}

/// TLS to Redis.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedisTls {
    /// The CA certificate(s) (PEM).
    pub ca: CaSource,
}

/// One Redis pod for development: no persistence, no replication.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedRedis {
    /// Redis image.
    #[serde(default = "default_redis_image")]
    #[schemars(length(min = 1, max = 255))]
    pub image: String,
}

impl Default for EmbeddedRedis {
    fn default() -> Self {
        EmbeddedRedis { image: default_redis_image() }
    }
}

fn default_redis_image() -> String {
    "redis:7-alpine".to_string()
}

/// How Redis is provided.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RedisMode {
    External,
    #[default]
    Embedded,
}

/// Stripe credentials of the payment service: it runs with `SHOP_PAYMENT__PROVIDER=stripe` and
/// reads both keys from the Secret (`secretKeyRef`, never copied into the ConfigMap).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StripeSpec {
    /// Secret in the platform's namespace with the keys `apiKey` (secret API key, `sk_live_…`;
    /// becomes `SHOP_PAYMENT__STRIPE__SECRET_KEY`) and `webhookSecret` (the webhook endpoint's
    /// signing secret, `whsec_…`; becomes `SHOP_PAYMENT__WEBHOOK_SECRET`). The payment pods do
    /// not start while the Secret or a key is missing.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}

/// SMTP relay.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpSpec {
    /// Secret with the keys `host`, `port`, `username` and `password`.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
    /// Sender address of outgoing email, e.g. `Shop <no-reply@shop.example>`.
    #[schemars(length(min = 3, max = 320))]
    pub from: String,
}

/// The Ingress in front of the gateway.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "!self.enabled || has(self.host)", "message": "an enabled ingress needs a host"}
]))]
pub struct IngressSpec {
    /// Whether to create the Ingress.
    #[serde(default)]
    pub enabled: bool,
    /// IngressClass to use (the cluster default when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Public host name, e.g. `shop.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"))]
    pub host: Option<String>,
    /// Secret holding the TLS certificate of `host`; enables HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Annotations of the Ingress (e.g. for cert-manager or the ingress controller).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The payment service's provider.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentSpec {
    /// `stripe` (real payments; needs `spec.stripe`) or `simulated` (no money moves: every
    /// payment succeeds; the payment service announces it as a warning and on `/info`).
    pub provider: PaymentProvider,
}

/// `SHOP_PAYMENT__PROVIDER`.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PaymentProvider {
    Stripe,
    Simulated,
}

impl PaymentProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentProvider::Stripe => "stripe",
            PaymentProvider::Simulated => "simulated",
        }
    }
}

/// A Secret in the ShopPlatform's namespace, by name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct LocalObjectReference {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Where pods are scheduled. Unset fields: the platform's (for a service), or nothing.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlacementSpec {
    /// Labels a node must carry, e.g. `{kubernetes.io/arch: amd64}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    /// A Kubernetes `Affinity` (`nodeAffinity`, `podAffinity`, `podAntiAffinity`), passed to the
    /// pods as given (the API server validates it when the operator applies the Deployment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "any_object")]
    pub affinity: Option<serde_json::Value>,
    /// Spread each service's pods over zones (`topology.kubernetes.io/zone`) and nodes
    /// (`kubernetes.io/hostname`), `maxSkew: 1`, `ScheduleAnyway` (a preference: single-zone
    /// clusters and small ones still schedule). Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread: Option<bool>,
}

/// A free-form object (validated where it is used).
fn any_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

impl PlacementSpec {
    /// `self` with the fields `over` sets replaced.
    pub fn overlay(&self, over: Option<&PlacementSpec>) -> PlacementSpec {
        let Some(o) = over else { return self.clone() };
        PlacementSpec {
            node_selector: o.node_selector.clone().or_else(|| self.node_selector.clone()),
            tolerations: o.tolerations.clone().or_else(|| self.tolerations.clone()),
            affinity: o.affinity.clone().or_else(|| self.affinity.clone()),
            topology_spread: o.topology_spread.or(self.topology_spread),
        }
    }
}

/// A toleration of a node taint.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    /// The taint key (all keys when empty, with operator `Exists`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// `Equal` (default) or `Exists`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Equal|Exists)$"))]
    pub operator: Option<String>,
    /// The taint value (operator `Equal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; every effect when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(NoSchedule|PreferNoSchedule|NoExecute)$"))]
    pub effect: Option<String>,
    /// With `NoExecute`: how long the pod stays bound after the taint appears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

/// The platform's NetworkPolicies.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPoliciesSpec {
    /// Render them (default). `false` removes them; the pods then accept and open any
    /// connection the cluster's network allows.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The pods of the ingress controller, allowed to the gateway's `http` port. Default: every
    /// pod of the namespace `ingress-nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_controller: Option<PeerSelector>,
    /// The Prometheus pods, allowed to every service's `ops` port (9090). Default: every pod of
    /// the namespace `monitoring`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PeerSelector>,
    /// The operator's pods, allowed to the embedded PostgreSQL and Kafka (it provisions
    /// databases and topics). Default: pods labelled `app.kubernetes.io/name: shop-operator` in
    /// any namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<PeerSelector>,
    /// Destinations outside the cluster the services may reach, e.g. the external PostgreSQL,
    /// Kafka and Redis, Stripe, SMTP: `{cidr: 10.20.0.0/16, ports: [5432]}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub external_egress: Vec<ExternalEgress>,
}

impl Default for NetworkPoliciesSpec {
    fn default() -> Self {
        NetworkPoliciesSpec {
            enabled: true,
            ingress_controller: None,
            prometheus: None,
            operator: None,
            external_egress: Vec::new(),
        }
    }
}

/// Pods in other namespaces, by namespace labels and pod labels (both must match; an empty map
/// matches everything).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerSelector {
    /// Labels of the namespace, e.g. `{kubernetes.io/metadata.name: ingress-nginx}`.
    #[serde(default)]
    pub namespace_labels: BTreeMap<String, String>,
    /// Labels of the pods, e.g. `{app.kubernetes.io/name: ingress-nginx}`.
    #[serde(default)]
    pub pod_labels: BTreeMap<String, String>,
}

/// An address block outside the cluster and the TCP ports open to it.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalEgress {
    /// CIDR, e.g. `10.20.0.0/16` or `0.0.0.0/0`.
    #[schemars(regex(pattern = r"^[0-9a-fA-F:.]+/[0-9]{1,3}$"))]
    pub cidr: String,
    /// TCP ports; every port when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
}

/// Monitoring.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// A `ServiceMonitor` (`monitoring.coreos.com/v1`) for the shop services' `/metrics` on
    /// their `ops` port; applied only where the cluster serves that API.
    #[serde(default)]
    pub service_monitor: ServiceMonitorSpec,
}

/// The `ServiceMonitor`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    /// Create it (default `false`).
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval, e.g. `30s`.
    #[serde(default = "default_scrape_interval")]
    #[schemars(regex(pattern = r"^[0-9]+(ms|s|m|h)$"))]
    pub interval: String,
    /// Extra labels of the ServiceMonitor (e.g. the `release` label a Prometheus selects).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

impl Default for ServiceMonitorSpec {
    fn default() -> Self {
        ServiceMonitorSpec { enabled: false, interval: default_scrape_interval(), labels: BTreeMap::new() }
    }
}

fn default_scrape_interval() -> String {
    "30s".to_string()
}

/// What deleting the ShopPlatform does to its data.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Keep the data: databases and roles, the CloudNativePG `Cluster`, the embedded database's
    /// volume and its admin Secret, the topics and Strimzi `KafkaTopic`s (they carry no owner
    /// reference to the ShopPlatform); everything else is garbage-collected. A new ShopPlatform
    /// of the same name uses them again.
    #[default]
    Retain,
    /// Also drop the per-service databases and roles (external and CloudNativePG modes), the
    /// CloudNativePG `Cluster`, the embedded database's volume, and the topics.
    Delete,
}

/// Observed state, written by the operator.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShopPlatformStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Summary: Pending, Provisioning, Ready, Progressing, Degraded or Deleting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    /// Detailed conditions: Ready, SecretsReady, DatabaseReady, KafkaReady, MigrationsReady,
    /// ServicesReady.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Replica counts per enabled service.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub services: BTreeMap<String, ServiceStatus>,
    /// `ready/enabled` services, e.g. `3/3` (printer column).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_services: Option<String>,
    /// Public URL of the API when the ingress is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Summary of a ShopPlatform's state.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Phase {
    /// Waiting for something only the user can provide (e.g. the admin Secret).
    Pending,
    /// First creation: not everything is ready yet.
    Provisioning,
    Ready,
    /// A platform that was ready is changing: migrations of a new version, a rollout.
    Progressing,
    /// Something failed, or a service lost pods it had.
    Degraded,
    Deleting,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Provisioning => "Provisioning",
            Phase::Ready => "Ready",
            Phase::Progressing => "Progressing",
            Phase::Degraded => "Degraded",
            Phase::Deleting => "Deleting",
        }
    }
}

/// A condition in the Kubernetes style.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Condition type, e.g. `DatabaseReady`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason in CamelCase.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The `metadata.generation` the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// Replica counts of one service.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// Desired replicas (the autoscaler's, for an autoscaled service).
    pub replicas: i32,
    /// Ready replicas.
    pub ready_replicas: i32,
    /// Replicas running the current pod template.
    #[serde(default)]
    pub updated_replicas: i32,
    /// Available replicas (ready, of any template).
    #[serde(default)]
    pub available_replicas: i32,
}

impl ShopPlatformSpec {
    /// The settings of `service` (defaults when not listed).
    pub fn service(&self, service: ServiceName) -> ServiceSpec {
        self.services.get(&service).cloned().unwrap_or_default()
    }

    /// Enabled services, in the contract's order.
    pub fn enabled_services(&self) -> Vec<ServiceName> {
        ServiceName::ALL.into_iter().filter(|s| self.service(*s).enabled).collect()
    }
}
