//! The real topic provisioner (the operator's Kafka admin client) against a Kafka-protocol
//! broker: `SHOP_TEST_KAFKA_BROKERS` (CI sets it; locally `scripts/kafka-test-broker start` and
//! `export "$(scripts/kafka-test-broker env)"`). The tests fail when it is unset. Every test uses
//! its own topic names. What the test broker (tansu 0.6.0) cannot answer is listed in
//! docs/operator.md. TLS is tested through a TLS-terminating proxy in front of that broker (tansu
//! 0.6.0 cannot serve TLS itself); SASL against `SHOP_TEST_KAFKA_SASL_BROKERS`, a tansu with
//! `--authentication`, when set.

use std::sync::Arc;
use std::time::Duration;

use shop_operator::kafka::{AdminClient, ConnectionConfig, KafkaError, SaslConfig, SaslMechanism, TlsConfig};
use shop_operator::provision::{KafkaTarget, KafkaTopicProvisioner, TopicProvisioner, TopicSpec};

fn brokers() -> String {
    match std::env::var("SHOP_TEST_KAFKA_BROKERS") {
        Ok(b) if !b.trim().is_empty() => b,
        _ => panic!(
            "SHOP_TEST_KAFKA_BROKERS is not set: start a broker with `scripts/kafka-test-broker start` \
             and `export \"$(scripts/kafka-test-broker env)\"`"
        ),
    }
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("optest-{tag}-{}-{nanos}-", std::process::id())
}

fn spec(name: String, partitions: i32, retention_hours: i64) -> TopicSpec {
    TopicSpec { name, partitions, replication_factor: 1, retention_ms: retention_hours * 3_600_000 }
}

fn provisioner() -> KafkaTopicProvisioner {
    KafkaTopicProvisioner::with_timeout(Duration::from_secs(10))
}

fn target() -> KafkaTarget {
    KafkaTarget { bootstrap_servers: brokers(), secured: false, security: None }
}

fn config() -> ConnectionConfig {
    ConnectionConfig { timeout: Duration::from_secs(10), ..Default::default() }
}

/// Partition count of `topic` as the broker's metadata reports it (0: no such topic).
async fn partitions(topic: &str) -> i32 {
    let mut admin = AdminClient::connect(&brokers(), config()).await.unwrap();
    let md = admin.metadata(Some(&[topic.to_string()])).await.unwrap();
    md.topics.get(topic).map(|t| t.partitions).unwrap_or(0)
}

async fn delete(names: &[String]) {
    let mut admin = AdminClient::connect(&brokers(), config()).await.unwrap();
    let _ = admin.delete_topics(names).await;
}

#[tokio::test]
async fn creates_the_platform_topics_and_is_idempotent() {
    let prefix = unique("create");
    let sp = shop_operator::load_sample(&format!(
        "apiVersion: platform.shop/v1alpha1\nkind: ShopPlatform\nmetadata: {{name: {}}}\n\
         spec: {{version: '1', payment: {{provider: simulated}}, kafka: {{mode: external, bootstrapServers: x, topics: {{partitions: 3, retentionHours: 24}}}}}}\n",
        prefix.trim_end_matches('-')
    ))
    .unwrap();
    let topics = shop_operator::provision::topics(&sp);
    // Every contract topic, plus one dead-letter topic per (consumer group, topic) pair.
    assert_eq!(
        topics.len(),
        contract::events::topics::ALL.len() + contract::consumer_subscriptions().count()
    );
    assert!(topics.iter().any(|t| t.name == format!("{prefix}orders")));
    assert!(topics.iter().any(|t| t.name == format!("{prefix}orders.dlq.payment")));
    assert!(topics.iter().any(|t| t.name == format!("{prefix}payments.dlq.order")));
    assert!(topics.iter().any(|t| t.name == format!("{prefix}shipments.dlq.notification")));
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();

    let p = provisioner();
    let first = p.ensure_topics(&target(), &topics).await.unwrap();
    let mut created = first.created.clone();
    created.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(created, expected);
    assert_eq!(partitions(&names[0]).await, 3);

    // A second pass finds everything in place and changes nothing.
    let second = p.ensure_topics(&target(), &topics).await.unwrap();
    assert!(second.created.is_empty(), "{second:?}");
    assert!(second.partitions_increased.is_empty(), "{second:?}");
    assert!(second.not_decreased.is_empty(), "{second:?}");
    assert!(second.retention_updated.is_empty(), "retention already as specified: {second:?}");

    // The deletion policy `Delete`: every topic of the platform goes; a second pass finds none.
    let deleted = p.delete_topics(&target(), &names).await.unwrap();
    let mut deleted_sorted = deleted.clone();
    deleted_sorted.sort();
    assert_eq!(deleted_sorted, expected);
    for name in &names {
        assert_eq!(partitions(name).await, 0, "{name} deleted");
    }
    assert!(p.delete_topics(&target(), &names).await.unwrap().is_empty());
}

/// Whether `err` says the broker does not offer the admin API (tansu 0.6.0 offers neither
/// CreatePartitions nor AlterConfigs/IncrementalAlterConfigs; see docs/operator.md).
fn unsupported(err: &str) -> bool {
    err.contains("the broker does not offer")
}

#[tokio::test]
async fn partitions_are_never_decreased() {
    let name = format!("{}orders", unique("shrink"));
    let p = provisioner();
    p.ensure_topics(&target(), &[spec(name.clone(), 4, 24)]).await.unwrap();
    let fewer = p.ensure_topics(&target(), &[spec(name.clone(), 3, 24)]).await.unwrap();
    assert!(fewer.partitions_increased.is_empty());
    assert_eq!(fewer.not_decreased, vec![(name.clone(), 4, 3)]);
    assert!(fewer.summary(1).contains(&format!("{name} has 4, spec asks 3")), "{}", fewer.summary(1));
    assert_eq!(partitions(&name).await, 4);
    delete(&[name]).await;
}

/// More partitions in the spec: `CreatePartitions`. A broker without that API (the test broker)
/// gives an error naming the operation, which the reconcile reports in `KafkaReady`.
#[tokio::test]
async fn partitions_grow_through_create_partitions() {
    let name = format!("{}orders", unique("grow"));
    let p = provisioner();
    p.ensure_topics(&target(), &[spec(name.clone(), 2, 24)]).await.unwrap();
    assert_eq!(partitions(&name).await, 2);
    match p.ensure_topics(&target(), &[spec(name.clone(), 4, 24)]).await {
        Ok(grown) => {
            assert_eq!(grown.partitions_increased, vec![(name.clone(), 2, 4)]);
            assert_eq!(partitions(&name).await, 4);
        }
        Err(e) if unsupported(&e) => {
            eprintln!("NOTE: this broker has no CreatePartitions API; growth not verified: {e}");
            assert!(e.starts_with("create partitions: the broker does not offer CreatePartitions"), "{e}");
            assert_eq!(partitions(&name).await, 2);
        }
        Err(e) => panic!("{e}"),
    }
    delete(&[name]).await;
}

/// A changed retention: read with `DescribeConfigs`, set with `IncrementalAlterConfigs` (or
/// `AlterConfigs`) only when it differs. The test broker (tansu 0.6.0) offers
/// IncrementalAlterConfigs, so the change is verified there.
#[tokio::test]
async fn retention_follows_the_spec() {
    let name = format!("{}payments", unique("retention"));
    let p = provisioner();
    p.ensure_topics(&target(), &[spec(name.clone(), 1, 24)]).await.unwrap();
    // The retention set at creation reads back equal: nothing to alter.
    let same = p.ensure_topics(&target(), &[spec(name.clone(), 1, 24)]).await.unwrap();
    assert!(same.retention_updated.is_empty(), "{same:?}");
    match p.ensure_topics(&target(), &[spec(name.clone(), 1, 48)]).await {
        Ok(changed) => {
            assert_eq!(changed.retention_updated, vec![name.clone()]);
            let again = p.ensure_topics(&target(), &[spec(name.clone(), 1, 48)]).await.unwrap();
            assert!(again.retention_updated.is_empty(), "{again:?}");
            // Read back from the broker: 48 h, and the cleanup policy kept.
            let mut admin = AdminClient::connect(&brokers(), config()).await.unwrap();
            let described = admin.describe_topic_configs(std::slice::from_ref(&name), None).await.unwrap();
            let configs = described[0].1.as_ref().unwrap();
            assert_eq!(
                configs.get("retention.ms").cloned().flatten().as_deref(),
                Some("172800000"),
                "{configs:?}"
            );
            assert_eq!(
                configs.get("cleanup.policy").cloned().flatten().as_deref(),
                Some("delete"),
                "{configs:?}"
            );
            let api =
                if admin.bootstrap().supports::<kafka_protocol::messages::IncrementalAlterConfigsRequest>() {
                    "IncrementalAlterConfigs"
                } else {
                    "AlterConfigs"
                };
            eprintln!("retention changed through {api}");
        }
        Err(e) if unsupported(&e) => {
            eprintln!("NOTE: this broker has no AlterConfigs API; retention change not verified: {e}");
            assert!(e.starts_with("alter configs: the broker does not offer AlterConfigs"), "{e}");
        }
        Err(e) => panic!("{e}"),
    }
    delete(&[name]).await;
}

#[tokio::test]
async fn an_unreachable_broker_is_an_error_not_a_hang() {
    let p = KafkaTopicProvisioner::with_timeout(Duration::from_secs(2));
    let started = std::time::Instant::now();
    let unreachable = KafkaTarget { bootstrap_servers: "127.0.0.1:1".into(), secured: false, security: None };
    let err = p.ensure_topics(&unreachable, &[spec("never".into(), 1, 1)]).await.unwrap_err();
    assert!(err.contains("metadata"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// `ApiVersions`: every API the provisioner uses is negotiated in the highest version both sides
/// support; what the broker lacks is known before any request.
#[tokio::test]
async fn versions_are_negotiated_per_api() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Message, Request};
    let admin = AdminClient::connect(&brokers(), config()).await.unwrap();
    let conn = admin.bootstrap();
    for (name, version, ours) in [
        ("Metadata", conn.version::<MetadataRequest>(), MetadataRequest::VERSIONS),
        ("CreateTopics", conn.version::<CreateTopicsRequest>(), CreateTopicsRequest::VERSIONS),
        ("DescribeConfigs", conn.version::<DescribeConfigsRequest>(), DescribeConfigsRequest::VERSIONS),
        ("DeleteTopics", conn.version::<DeleteTopicsRequest>(), DeleteTopicsRequest::VERSIONS),
    ] {
        let v = version.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(v >= ours.min && v <= ours.max, "{name} v{v}");
        eprintln!("{name}: v{v}");
    }
    // Optional APIs: tansu 0.6.0 offers IncrementalAlterConfigs but neither CreatePartitions nor
    // AlterConfigs; other brokers may offer all three.
    for (name, version) in [
        ("CreatePartitions", conn.version::<CreatePartitionsRequest>()),
        ("AlterConfigs", conn.version::<AlterConfigsRequest>()),
        ("IncrementalAlterConfigs", conn.version::<IncrementalAlterConfigsRequest>()),
    ] {
        match version {
            Ok(v) => eprintln!("{name}: v{v}"),
            Err(e) => {
                assert!(e.is_unsupported(), "{e}");
                assert!(e.to_string().contains(&format!("does not offer {name}")), "{e}");
                eprintln!("{name}: not offered");
            }
        }
    }
    assert_eq!(kafka_protocol::messages::ApiKey::CreatePartitions as i16, CreatePartitionsRequest::KEY);
}

/// A TLS-terminating proxy on 127.0.0.1 in front of the plaintext test broker, with the test
/// certificate of `tests/data` (CA `ca.pem`; server `localhost`, `127.0.0.1`).
async fn tls_proxy() -> (String, tokio::task::JoinHandle<()>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_slice_iter(include_bytes!("data/server.pem"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(include_bytes!("data/server.key")).unwrap();
    let server =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let upstream = brokers().split(',').next().unwrap().trim().to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let upstream = upstream.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(&upstream).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, task)
}

fn tls(server_name: Option<&str>, ca: bool) -> KafkaTopicProvisioner {
    let mut p = provisioner();
    p.connection.tls = Some(TlsConfig {
        ca_pem: ca.then(|| include_bytes!("data/ca.pem").to_vec()),
        server_name: server_name.map(str::to_string),
    });
    p
}

/// TLS with the CA PEM: the whole provisioning runs over TLS (the broker advertises itself,
/// but a single-broker cluster is reached through the bootstrap connection).
#[tokio::test]
async fn topics_over_tls_with_the_ca_and_the_name_verified() {
    let (proxy, task) = tls_proxy().await;
    let secured = KafkaTarget { bootstrap_servers: proxy.clone(), secured: true, security: None };
    let name = format!("{}orders", unique("tls"));
    let report = tls(None, true).ensure_topics(&secured, &[spec(name.clone(), 2, 24)]).await.unwrap();
    assert_eq!(report.created, vec![name.clone()]);
    assert_eq!(partitions(&name).await, 2);

    // Not secured (the embedded broker): the TLS settings are not used, so TLS at the proxy fails.
    let plain = KafkaTarget { bootstrap_servers: proxy.clone(), secured: false, security: None };
    assert!(tls(None, true).ensure_topics(&plain, &[spec(name.clone(), 2, 24)]).await.is_err());
    // An unknown CA (the Mozilla roots do not include the test CA) is refused…
    let err = tls(None, false).ensure_topics(&secured, &[spec(name.clone(), 2, 24)]).await.unwrap_err();
    assert!(err.contains("TLS") && err.contains("UnknownIssuer"), "{err}");
    eprintln!("unknown CA: {err}");
    // …and so is a name the certificate does not carry.
    let err = tls(Some("kafka.example"), true)
        .ensure_topics(&secured, &[spec(name.clone(), 2, 24)])
        .await
        .unwrap_err();
    assert!(err.contains("TLS") && err.contains("not valid for name \"kafka.example\""), "{err}");
    // The name of the certificate instead of the address's IP works too.
    tls(Some("localhost"), true).ensure_topics(&secured, &[spec(name.clone(), 2, 24)]).await.unwrap();
    task.abort();
    delete(&[name]).await;
}

/// SASL against a tansu with `--authentication` (`SHOP_TEST_KAFKA_SASL_BROKERS`). tansu keeps its
/// SCRAM users in its storage and refuses to create one over an unauthenticated connection, so an
/// in-memory test broker has no user: what is verified is the exchange up to the broker's verdict
/// — the handshake accepts each SCRAM mechanism, the client-first message is answered, and an
/// unknown user is an authentication error (`e=unknown-user` in the server-first message), not an
/// I/O or protocol error. PLAIN is refused (tansu offers SCRAM only and drops the connection).
#[tokio::test]
async fn sasl_handshake_and_scram_against_an_authenticating_broker() {
    let Ok(brokers) = std::env::var("SHOP_TEST_KAFKA_SASL_BROKERS") else {
        eprintln!("NOTE: SHOP_TEST_KAFKA_SASL_BROKERS is not set: SASL not verified against a broker");
        return;
    };
    let sasl = |mechanism| ConnectionConfig {
        sasl: Some(SaslConfig { mechanism, username: "nobody".into(), password: "wrong".into() }),
        ..config()
    };
    // Without SASL the broker refuses the metadata request.
    let unauthenticated = AdminClient::connect(&brokers, config()).await;
    let refused = match unauthenticated {
        Ok(mut admin) => admin.metadata(None).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "an authenticating broker must refuse an unauthenticated client");
    for mechanism in [SaslMechanism::ScramSha256, SaslMechanism::ScramSha512] {
        let err = AdminClient::connect(&brokers, sasl(mechanism)).await.unwrap_err();
        assert!(matches!(err, KafkaError::Sasl(_)), "{mechanism:?}: {err}");
        eprintln!("{mechanism:?}: {err}");
    }
    // PLAIN: a Kafka broker answers the handshake with UNSUPPORTED_SASL_MECHANISM; tansu 0.6.0
    // closes the connection instead.
    let err = AdminClient::connect(&brokers, sasl(SaslMechanism::Plain)).await.unwrap_err();
    assert!(matches!(err, KafkaError::Sasl(_) | KafkaError::Connect(_)), "PLAIN: {err}");
    eprintln!("PLAIN: {err}");
}
