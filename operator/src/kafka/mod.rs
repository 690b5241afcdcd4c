//! A small Kafka admin client on the `kafka-protocol` crate: what the operator needs to manage
//! the platform's topics, and nothing more.
//!
//! - [`Connection`]: one broker; TCP with timeouts, optional TLS (rustls, CA PEM) and SASL
//!   (`PLAIN`, `SCRAM-SHA-256`, `SCRAM-SHA-512`), `ApiVersions` negotiation (each API in the
//!   highest version both sides support);
//! - [`AdminClient`]: `Metadata` (topics with partition and replica counts, the controller),
//!   `CreateTopics` with configs, `CreatePartitions`, `DeleteTopics` — sent to the controller —
//!   and `DescribeConfigs`, `IncrementalAlterConfigs` (or, on brokers without it, `AlterConfigs`
//!   stating every key).
//!
//! Errors of single topics come back per topic ([`TopicError`]); errors of the exchange
//! ([`KafkaError`]) name the API, e.g. "the broker does not offer CreatePartitions".

mod conn;
pub mod sasl;

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource as AlterResource, AlterableConfig as AlterConfig,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterConfigsRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
    DescribeConfigsRequest, IncrementalAlterConfigsRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

pub use conn::{api_name, pick_version, Connection, ConnectionConfig, TlsConfig};
pub use sasl::{SaslConfig, SaslMechanism};

/// A failed exchange with the brokers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaError {
    #[error("connection: {0}")]
    Connect(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("SASL: {0}")]
    Sasl(String),
    /// The broker does not offer the API, or no version this client speaks.
    #[error("the broker does not offer {api} (broker versions: {}, client versions: {ours})", broker.as_deref().unwrap_or("none"))]
    Unsupported { api: String, broker: Option<String>, ours: String },
    #[error("protocol: {0}")]
    Protocol(String),
    /// An error code for the whole request.
    #[error("{api}: {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Broker { api: String, code: ResponseError, message: Option<String> },
}

impl KafkaError {
    fn broker(api: &str, code: ResponseError, message: Option<String>) -> KafkaError {
        KafkaError::Broker { api: api.to_string(), code, message }
    }

    /// Whether the broker lacks the API (as the test broker lacks `CreatePartitions`).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, KafkaError::Unsupported { .. })
    }
}

/// The error of one topic (or config resource) in a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    pub code: ResponseError,
    pub message: Option<String>,
}

impl std::fmt::Display for TopicError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        match &self.message {
            Some(m) if !m.is_empty() => write!(f, " ({m})"),
            _ => Ok(()),
        }
    }
}

fn topic_error(code: i16, message: Option<&StrBytes>) -> Result<(), TopicError> {
    match ResponseError::try_from_code(code) {
        None => Ok(()),
        Some(code) => Err(TopicError { code, message: message.map(|m| m.as_str().to_string()) }),
    }
}

/// A broker of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

impl Broker {
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// A topic in the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub partitions: i32,
    /// Replicas of the first partition (0 when unknown).
    pub replication_factor: i32,
}

/// What `Metadata` says about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    pub brokers: Vec<Broker>,
    /// The controller's broker id (-1: unknown).
    pub controller_id: i32,
    /// Topics without error.
    pub topics: BTreeMap<String, TopicMetadata>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: i32,
    pub replication_factor: i16,
    /// Topic configs, e.g. `retention.ms`, `cleanup.policy`.
    pub configs: Vec<(String, String)>,
}

/// Broker-side timeout of the topic operations (the broker answers by then).
fn operation_timeout_ms(config: &ConnectionConfig) -> i32 {
    i32::try_from(config.timeout.as_millis()).unwrap_or(i32::MAX)
}

/// `DescribeConfigs` / `AlterConfigs` resource type of topics.
const RESOURCE_TOPIC: i8 = 2;
/// `IncrementalAlterConfigs` operation SET.
const OP_SET: i8 = 0;

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Admin operations against a cluster, through its bootstrap servers. One `AdminClient` per
/// reconcile: connections live as long as it does.
#[derive(Debug)]
pub struct AdminClient {
    config: ConnectionConfig,
    /// The first bootstrap server that answered.
    bootstrap: Connection,
    /// The controller, when it is another broker than the bootstrap connection.
    controller: Option<(i32, Connection)>,
}

impl AdminClient {
    /// Connects to the first reachable of `bootstrap_servers` (comma-separated `host:port`).
    pub async fn connect(
        bootstrap_servers: &str,
        config: ConnectionConfig,
    ) -> Result<AdminClient, KafkaError> {
        let mut last = None;
        for addr in bootstrap_servers.split(',').map(str::trim).filter(|a| !a.is_empty()) {
            match Connection::open(addr, &config).await {
                Ok(bootstrap) => return Ok(AdminClient { config, bootstrap, controller: None }),
                // Authentication and TLS failures are not a reason to try another broker.
                Err(e @ (KafkaError::Sasl(_) | KafkaError::Tls(_))) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| KafkaError::Connect("no bootstrap servers given".into())))
    }

    /// The bootstrap connection (e.g. to check which APIs the broker offers).
    pub fn bootstrap(&self) -> &Connection {
        &self.bootstrap
    }

    /// `Metadata` of `topics` (`None`: every topic).
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<ClusterMetadata, KafkaError> {
        let mut req = MetadataRequest::default();
        req.topics = topics.map(|names| {
            names
                .iter()
                .map(|n| {
                    let mut t = MetadataRequestTopic::default();
                    t.name = Some(topic_name(n));
                    t
                })
                .collect()
        });
        req.allow_auto_topic_creation = false;
        let res = self.bootstrap.send(&req).await?;
        if let Some(code) = ResponseError::try_from_code(res.error_code) {
            return Err(KafkaError::broker("Metadata", code, None));
        }
        Ok(ClusterMetadata {
            brokers: res
                .brokers
                .iter()
                .map(|b| Broker { id: b.node_id.0, host: b.host.as_str().to_string(), port: b.port })
                .collect(),
            controller_id: res.controller_id.0,
            topics: res
                .topics
                .iter()
                .filter(|t| t.error_code == 0)
                .filter_map(|t| {
                    let name = t.name.as_ref()?.0.as_str().to_string();
                    let replication_factor =
                        t.partitions.first().map(|p| p.replica_nodes.len() as i32).unwrap_or(0);
                    Some((name, TopicMetadata { partitions: t.partitions.len() as i32, replication_factor }))
                })
                .collect(),
        })
    }

    /// The connection to the controller: topic creation, partitions, deletion and config
    /// changes go there (KRaft brokers would forward them; ZooKeeper-era brokers require it).
    async fn controller(&mut self) -> Result<&mut Connection, KafkaError> {
        let md = self.metadata(Some(&[])).await?;
        let controller = md.brokers.iter().find(|b| b.id == md.controller_id);
        let Some(broker) = controller else { return Ok(&mut self.bootstrap) };
        // The bootstrap connection is the controller when it reaches the same address, or when
        // the cluster has only this broker.
        if broker.addr() == self.bootstrap.addr || md.brokers.len() == 1 {
            return Ok(&mut self.bootstrap);
        }
        if !matches!(&self.controller, Some((id, _)) if *id == broker.id) {
            let conn = Connection::open(&broker.addr(), &self.config).await?;
            self.controller = Some((broker.id, conn));
        }
        Ok(&mut self.controller.as_mut().expect("just set").1)
    }

    /// `CreateTopics`: the result per topic ("already exists" comes back as an error code).
    pub async fn create_topics(
        &mut self,
        topics: &[NewTopic],
    ) -> Result<Vec<(String, Result<(), TopicError>)>, KafkaError> {
        let mut req = CreateTopicsRequest::default();
        req.timeout_ms = operation_timeout_ms(&self.config);
        req.topics = topics
            .iter()
            .map(|t| {
                let mut c = CreatableTopic::default();
                c.name = topic_name(&t.name);
                c.num_partitions = t.partitions;
                c.replication_factor = t.replication_factor;
                c.configs = t
                    .configs
                    .iter()
                    .map(|(k, v)| {
                        let mut cfg = CreatableTopicConfig::default();
                        cfg.name = StrBytes::from_string(k.clone());
                        cfg.value = Some(StrBytes::from_string(v.clone()));
                        cfg
                    })
                    .collect();
                c
            })
            .collect();
        let res = self.controller().await?.send(&req).await?;
        Ok(res
            .topics
            .iter()
            .map(|t| (t.name.0.as_str().to_string(), topic_error(t.error_code, t.error_message.as_ref())))
            .collect())
    }

    /// `CreatePartitions`: raises each topic's partition count to the given total.
    pub async fn create_partitions(
        &mut self,
        totals: &[(String, i32)],
    ) -> Result<Vec<(String, Result<(), TopicError>)>, KafkaError> {
        let mut req = CreatePartitionsRequest::default();
        req.timeout_ms = operation_timeout_ms(&self.config);
        req.topics = totals
            .iter()
            .map(|(name, count)| {
                let mut t = CreatePartitionsTopic::default();
                t.name = topic_name(name);
                t.count = *count;
                t.assignments = None;
                t
            })
            .collect();
        let conn = self.controller().await?;
        let res = conn.send(&req).await?;
        Ok(res
            .results
            .iter()
            .map(|r| (r.name.0.as_str().to_string(), topic_error(r.error_code, r.error_message.as_ref())))
            .collect())
    }

    /// `DescribeConfigs` of topics: every config's current value (`keys`: only these).
    pub async fn describe_topic_configs(
        &mut self,
        topics: &[String],
        keys: Option<&[&str]>,
    ) -> Result<Vec<(String, Result<BTreeMap<String, Option<String>>, TopicError>)>, KafkaError> {
        let mut req = DescribeConfigsRequest::default();
        req.resources = topics
            .iter()
            .map(|name| {
                let mut r = DescribeConfigsResource::default();
                r.resource_type = RESOURCE_TOPIC;
                r.resource_name = StrBytes::from_string(name.clone());
                r.configuration_keys =
                    keys.map(|ks| ks.iter().map(|k| StrBytes::from_string(k.to_string())).collect());
                r
            })
            .collect();
        let res = self.bootstrap.send(&req).await?;
        Ok(res
            .results
            .iter()
            .map(|r| {
                let configs = topic_error(r.error_code, r.error_message.as_ref()).map(|()| {
                    r.configs
                        .iter()
                        .map(|c| {
                            (c.name.as_str().to_string(), c.value.as_ref().map(|v| v.as_str().to_string()))
                        })
                        .collect()
                });
                (r.resource_name.as_str().to_string(), configs)
            })
            .collect())
    }

    /// Sets topic configs. `IncrementalAlterConfigs` (SET of each key) when the broker offers
    /// it; otherwise `AlterConfigs`, which replaces the topic's whole dynamic configuration — so
    /// `configs` must state every key the topic should keep.
    pub async fn alter_topic_configs(
        &mut self,
        configs: &[(String, Vec<(String, String)>)],
    ) -> Result<Vec<(String, Result<(), TopicError>)>, KafkaError> {
        let conn = self.controller().await?;
        let results: Vec<(String, i16, Option<StrBytes>)> =
            if conn.supports::<IncrementalAlterConfigsRequest>() {
                let mut req = IncrementalAlterConfigsRequest::default();
                req.resources = configs
                    .iter()
                    .map(|(topic, kvs)| {
                        let mut r = AlterConfigsResource::default();
                        r.resource_type = RESOURCE_TOPIC;
                        r.resource_name = StrBytes::from_string(topic.clone());
                        r.configs = kvs
                            .iter()
                            .map(|(k, v)| {
                                let mut c = AlterableConfig::default();
                                c.name = StrBytes::from_string(k.clone());
                                c.config_operation = OP_SET;
                                c.value = Some(StrBytes::from_string(v.clone()));
                                c
                            })
                            .collect();
                        r
                    })
                    .collect();
                let res = conn.send(&req).await?;
                res.responses
                    .iter()
                    .map(|r| (r.resource_name.as_str().to_string(), r.error_code, r.error_message.clone()))
                    .collect()
            } else {
                let mut req = AlterConfigsRequest::default();
                req.resources = configs
                    .iter()
                    .map(|(topic, kvs)| {
                        let mut r = AlterResource::default();
                        r.resource_type = RESOURCE_TOPIC;
                        r.resource_name = StrBytes::from_string(topic.clone());
                        r.configs = kvs
                            .iter()
                            .map(|(k, v)| {
                                let mut c = AlterConfig::default();
                                c.name = StrBytes::from_string(k.clone());
                                c.value = Some(StrBytes::from_string(v.clone()));
                                c
                            })
                            .collect();
                        r
                    })
                    .collect();
                // Neither API offered: the error names IncrementalAlterConfigs's fallback.
                let res = conn.send(&req).await?;
                res.responses
                    .iter()
                    .map(|r| (r.resource_name.as_str().to_string(), r.error_code, r.error_message.clone()))
                    .collect()
            };
        Ok(results
            .into_iter()
            .map(|(name, code, message)| (name, topic_error(code, message.as_ref())))
            .collect())
    }

    /// `DeleteTopics` by name: the result per topic (an unknown topic comes back as
    /// `UnknownTopicOrPartition`).
    pub async fn delete_topics(
        &mut self,
        names: &[String],
    ) -> Result<Vec<(String, Result<(), TopicError>)>, KafkaError> {
        let timeout_ms = operation_timeout_ms(&self.config);
        let conn = self.controller().await?;
        let version = conn.version::<DeleteTopicsRequest>()?;
        let mut req = DeleteTopicsRequest::default();
        req.timeout_ms = timeout_ms;
        // Up to version 5 topics are named in `topic_names`, from 6 in `topics`.
        if version >= 6 {
            req.topics = names
                .iter()
                .map(|n| {
                    let mut t = DeleteTopicState::default();
                    t.name = Some(topic_name(n));
                    t
                })
                .collect();
        } else {
            req.topic_names = names.iter().map(|n| topic_name(n)).collect();
        }
        let res = conn.send(&req).await?;
        Ok(res
            .responses
            .iter()
            .map(|r| {
                let name = r.name.as_ref().map(|n| n.0.as_str().to_string()).unwrap_or_default();
                (name, topic_error(r.error_code, r.error_message.as_ref()))
            })
            .collect())
    }
}
