//! The composition matches the contract: every service, composed in one process and apart,
//! registers exactly the subscriptions the contract gives it (which the operator turns into
//! consumer groups and dead-letter topics) and relays an outbox exactly when the contract says
//! it publishes.

use kit::contract::ServiceName;
use shop::compose::{self, Wiring};

mod support;
use support::*;

fn expected(service: ServiceName) -> Wiring {
    let topics = service.subscriptions();
    Wiring {
        service,
        subscriptions: if topics.is_empty() {
            Vec::new()
        } else {
            vec![(service.as_str().to_string(), topics.iter().map(|t| t.to_string()).collect())]
        },
        outbox: !service.publishes().is_empty(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_is_wired_as_the_contract_says_in_one_process() {
    let dir = temp_dir();
    let running = compose::embedded(&test_settings(&dir), false).await.unwrap();
    let wiring = running.wiring.clone();
    running.stop().await;
    let services: Vec<ServiceName> = wiring.iter().map(|w| w.service).collect();
    assert_eq!(services, ServiceName::ALL.to_vec(), "every service, in start-up order");
    for w in wiring {
        assert_eq!(w, expected(w.service));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_service_is_wired_as_the_contract_says_apart() {
    let dir = temp_dir();
    for service in ServiceName::ALL {
        // Each service on its own SQLite file and its own in-process bus: the wiring, not the
        // traffic, is under test here (checkout_apart.rs runs them on PostgreSQL and Kafka).
        let mut settings = test_settings(&dir.join(service.as_str()));
        settings.database_url =
            Some(format!("sqlite://{}", dir.join(format!("{service}.db")).display()).into());
        let running = compose::single(&settings, service).await.unwrap();
        assert_eq!(running.wiring, vec![expected(service)], "{service}");
        running.stop().await;
    }
}
