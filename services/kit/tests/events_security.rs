//! Kafka TLS and SASL settings against the real test broker (`SHOP_TEST_KAFKA_BROKERS`, tansu
//! 0.6.0). That broker offers neither a TLS listener nor a SASL exchange that can complete
//! (docs/events.md, "Tests and the test broker"), so these tests prove what can be proved with
//! it: the clients really use the configured protocol, and a client that cannot connect fails
//! start-up with an error naming the brokers and the keys instead of hanging. The rendering of
//! the settings into librdkafka properties is tested in `kit::events` (unit tests).

#[path = "events_support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kit::events::kafka::KafkaBus;
use kit::events::{contract, handler_fn, EventBus, EventsConfig, SaslMechanism, SecurityProtocol};
use support::*;
use tokio_util::sync::CancellationToken;

/// A CA file: the TLS test servers' (`scripts/tls-test-servers env`), which signed nothing
/// the Kafka test broker presents.
fn ca_file() -> String {
    std::env::var("SHOP_TEST_TLS_CA_FILE").unwrap_or_else(|_| {
        panic!(
            "SHOP_TEST_TLS_CA_FILE is not set: run `scripts/tls-test-servers start` and export the \
             lines of `scripts/tls-test-servers env`"
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_against_the_plaintext_broker_fails_at_start_naming_the_keys() {
    let brokers = kafka_brokers();
    let cfg = EventsConfig {
        security_protocol: Some(SecurityProtocol::Ssl),
        ssl_ca_file: Some(ca_file().into()),
        connect_timeout: Duration::from_secs(3),
        ..kafka_config(&brokers)
    };
    let started = Instant::now();
    let err = KafkaBus::connect(cfg).await.err().expect("no TLS handshake with a plaintext listener");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "fails within the connect timeout, not hanging: {took:?}");
    let msg = err.to_string();
    for want in [
        brokers.as_str(),
        "SHOP_EVENTS__BROKERS",
        "security.protocol=ssl",
        "SHOP_EVENTS__SECURITY_PROTOCOL",
        "SHOP_EVENTS__SSL_CA_FILE",
        "SHOP_EVENTS__CONNECT_TIMEOUT",
        "no TLS handshake completed",
    ] {
        assert!(msg.contains(want), "names `{want}`: {msg}");
    }
    assert!(msg.contains(&ca_file()), "names the CA file: {msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sasl_client_fails_fast_naming_the_keys_never_the_password() {
    let brokers = kafka_brokers();
    for mechanism in [SaslMechanism::ScramSha512, SaslMechanism::ScramSha256, SaslMechanism::Plain] {
        let cfg = EventsConfig {
            security_protocol: Some(SecurityProtocol::SaslPlaintext),
            sasl_mechanism: Some(mechanism),
            sasl_username: Some("shop".into()),
            sasl_password: Some("hunter2".into()),
            // Long: the failure must come from the broker's refusal, not from the timeout.
            connect_timeout: Duration::from_secs(60),
            ..kafka_config(&brokers)
        };
        let started = Instant::now();
        let err = KafkaBus::connect(cfg).await.err().expect("the test broker completes no SASL exchange");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(15), "an authentication failure ends start-up at once: {took:?}");
        let msg = err.to_string();
        for want in [
            brokers.as_str(),
            "security.protocol=sasl_plaintext",
            "SHOP_EVENTS__SASL_MECHANISM",
            mechanism.as_str(),
            "SHOP_EVENTS__SASL_USERNAME=shop",
            "SHOP_EVENTS__SASL_PASSWORD",
            "mechanism handshake failed",
        ] {
            assert!(msg.contains(want), "names `{want}`: {msg}");
        }
        assert!(!msg.contains("hunter2"), "never the password: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_check_the_brokers_at_start_too() {
    let brokers = kafka_brokers();
    // The producer (and the admin client) connect in plaintext; the consumers are told to use
    // SASL through the pass-through properties, which the broker refuses.
    let mut cfg = kafka_config(&brokers);
    cfg.consumer_properties.extend(BTreeMap::from([
        ("security.protocol".to_string(), "sasl_plaintext".to_string()),
        ("sasl.mechanism".to_string(), "PLAIN".to_string()),
        ("sasl.username".to_string(), "shop".to_string()),
        ("sasl.password".to_string(), "hunter2".to_string()),
    ]));
    cfg.connect_timeout = Duration::from_secs(60);
    let bus = KafkaBus::connect(cfg).await.expect("the producer connects in plaintext");
    let handler = handler_fn(|_| async { Ok(()) });
    bus.subscribe(&group(), &[contract::topics::INVENTORY], handler.clone()).unwrap();
    let started = Instant::now();
    let err = bus.start(CancellationToken::new()).await.err().expect("the consumers cannot authenticate");
    assert!(started.elapsed() < Duration::from_secs(15), "{:?}", started.elapsed());
    let msg = err.to_string();
    assert!(msg.contains("the Kafka consumers") && msg.contains(&brokers), "{msg}");
    assert!(msg.contains("mechanism handshake failed"), "{msg}");
    assert!(!msg.contains("hunter2"), "never the password: {msg}");
    // A failed start leaves the bus open for another one.
    bus.subscribe(&group(), &[contract::topics::INVENTORY], handler).expect("registry reopened");
}
