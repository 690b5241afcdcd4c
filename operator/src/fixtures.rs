//! Test helpers: a scripted API server behind `kube::Client` (tower-test), a scriptable database
//! provisioner, and sample ShopPlatforms. In the manner of kube-rs/controller-rs `fixtures.rs`,
//! but each scenario is a list of expected requests, checked in order.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

use crate::controller::Context;
use crate::crd::ShopPlatform;
use crate::provision::{
    DatabaseGrant, DatabaseProvisioner, KafkaTarget, ProvisionError, TopicProvisioner, TopicReport, TopicSpec,
};

pub const NS: &str = "testns";

/// A ShopPlatform as the API server would return it (namespace, uid, generation set).
pub fn platform(name: &str, spec: Value) -> ShopPlatform {
    serde_json::from_value(json!({
        "apiVersion": "platform.shop/v1alpha1",
        "kind": "ShopPlatform",
        "metadata": {"name": name, "namespace": NS, "uid": "uid-1", "generation": 1, "resourceVersion": "1"},
        "spec": spec,
    }))
    .unwrap()
}

/// What the reply to a request is.
pub enum Reply {
    /// 200 with the request body (what server-side apply and create answer, roughly).
    Echo,
    /// 200 with the request body changed by the function (e.g. a status added).
    EchoWith(Box<dyn Fn(Value) -> Value + Send>),
    /// This status and body.
    Json(u16, Value),
}

/// One expected request.
pub struct Step {
    pub method: Method,
    pub path: String,
    /// Substrings the query must contain.
    pub query: Vec<&'static str>,
    /// Values the body must hold, by JSON pointer (e.g. `/metadata/name`).
    pub body: Vec<(&'static str, Value)>,
    pub reply: Reply,
}

impl Step {
    pub fn new(method: Method, path: impl Into<String>, reply: Reply) -> Self {
        Step { method, path: path.into(), query: Vec::new(), body: Vec::new(), reply }
    }
    fn query(mut self, q: &'static str) -> Self {
        self.query.push(q);
        self
    }
    /// The body must hold `value` at `pointer`.
    pub fn body(mut self, pointer: &'static str, value: impl Into<Value>) -> Self {
        self.body.push((pointer, value.into()));
        self
    }
}

/// How many topics the operator must create: every logical topic of the contract, plus one
/// dead-letter topic per (consumer group, topic) pair (`contract::consumer_subscriptions`).
pub fn expected_topic_count() -> usize {
    contract::events::topics::ALL.len() + contract::consumer_subscriptions().count()
}

fn not_found(name: &str) -> Reply {
    Reply::Json(
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
               "message": format!("\"{name}\" not found"), "code": 404}),
    )
}

pub fn core(kind: &str, name: &str) -> String {
    format!("/api/v1/namespaces/{NS}/{kind}/{name}")
}

pub fn group(group: &str, kind: &str, name: &str) -> String {
    format!("/apis/{group}/namespaces/{NS}/{kind}/{name}")
}

pub fn platform_path(name: &str) -> String {
    group("platform.shop/v1alpha1", "shopplatforms", name)
}

/// GET of a Secret that does not exist, then its creation.
pub fn create_secret(name: &str) -> Vec<Step> {
    vec![
        Step::new(Method::GET, core("secrets", name), not_found(name)),
        Step::new(Method::POST, format!("/api/v1/namespaces/{NS}/secrets"), Reply::Echo)
            .query("fieldManager=shop-operator")
            .body("/kind", "Secret")
            .body("/metadata/name", name),
    ]
}

/// GET of a Secret that exists with `key: value`.
pub fn existing_secret(name: &str, key: &str, value: &str) -> Step {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(value);
    Step::new(
        Method::GET,
        core("secrets", name),
        Reply::Json(
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS},
                   "data": {key: data}}),
        ),
    )
}

/// A server-side apply (PATCH with the operator's field manager, forced). The applied object
/// must be the one the path names (a status patch carries no metadata).
pub fn apply(path: String, reply: Reply) -> Step {
    let step =
        Step::new(Method::PATCH, path.clone(), reply).query("fieldManager=shop-operator").query("force=true");
    if path.ends_with("/status") {
        return step.body("/kind", "ShopPlatform");
    }
    let name = path.rsplit('/').next().unwrap_or_default().to_string();
    step.body("/metadata/name", name)
}

/// Reply adding a status to the applied object.
pub fn with_status(status: Value) -> Reply {
    Reply::EchoWith(Box::new(move |mut v| {
        v["status"] = status.clone();
        v
    }))
}

pub fn event() -> Step {
    Step::new(Method::POST, format!("/apis/events.k8s.io/v1/namespaces/{NS}/events"), Reply::Echo)
        .body("/kind", "Event")
}

/// A request as the verifier saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

/// Answers the client's requests from a script, asserting each one.
pub struct ApiServerVerifier(Handle<Request<Body>, Response<Body>>);

impl ApiServerVerifier {
    /// Runs the script; the handle resolves to every request seen.
    pub fn run(self, steps: Vec<Step>) -> JoinHandle<Vec<Seen>> {
        let mut handle = self.0;
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let total = steps.len();
            for (i, step) in steps.into_iter().enumerate() {
                let next = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
                let (request, send) = match next {
                    Ok(Some(r)) => r,
                    _ => panic!(
                        "request {}/{total} ({} {}) was never made; seen so far: {:#?}",
                        i + 1,
                        step.method,
                        step.path,
                        seen.iter().map(|s: &Seen| format!("{} {}", s.method, s.path)).collect::<Vec<_>>()
                    ),
                };
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value =
                    if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
                assert_eq!(
                    (&method, path.as_str()),
                    (&step.method, step.path.as_str()),
                    "request {}/{total}: unexpected request (query {query}, body {body})",
                    i + 1
                );
                for q in &step.query {
                    assert!(query.contains(q), "request {} {path}: query `{query}` lacks `{q}`", i + 1);
                }
                for (pointer, want) in &step.body {
                    assert_eq!(
                        body.pointer(pointer),
                        Some(want),
                        "request {} {method} {path}: body at `{pointer}` (body {body})",
                        i + 1
                    );
                }
                let (status, reply) = match step.reply {
                    Reply::Echo => (200, body.clone()),
                    Reply::EchoWith(f) => (200, f(body.clone())),
                    Reply::Json(status, v) => (status, v),
                };
                seen.push(Seen { method, path, query, body });
                send.send_response(
                    Response::builder()
                        .status(StatusCode::from_u16(status).unwrap())
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
            seen
        })
    }
}

/// A scriptable database provisioner that records its calls.
#[derive(Default)]
pub struct FakeDb {
    pub calls: Mutex<Vec<String>>,
    pub fail: bool,
}

#[async_trait]
impl DatabaseProvisioner for FakeDb {
    async fn ensure(&self, admin_dsn: &str, grant: &DatabaseGrant) -> Result<String, ProvisionError> {
        self.calls.lock().unwrap().push(format!("ensure {} via {admin_dsn}", grant.name));
        if self.fail {
            return Err(ProvisionError::InvalidDsn("scripted failure".into()));
        }
        crate::provision::service_url(admin_dsn, grant)
    }

    async fn drop_database(&self, admin_dsn: &str, name: &str) -> Result<(), ProvisionError> {
        self.calls.lock().unwrap().push(format!("drop {name} via {admin_dsn}"));
        Ok(())
    }
}

/// A scriptable topic provisioner that records its calls (`bootstrap: topic/partitions/rf/ms …`).
#[derive(Default)]
pub struct FakeTopics {
    pub calls: Mutex<Vec<(String, Vec<TopicSpec>)>>,
    /// Answer with this error.
    pub fail: Option<String>,
    /// Answer with this report.
    pub report: TopicReport,
    /// `delete_topics` calls: bootstrap servers and names.
    pub deleted: Mutex<Vec<(String, Vec<String>)>>,
}

#[async_trait]
impl TopicProvisioner for FakeTopics {
    async fn ensure_topics(&self, target: &KafkaTarget, topics: &[TopicSpec]) -> Result<TopicReport, String> {
        self.calls.lock().unwrap().push((target.bootstrap_servers.clone(), topics.to_vec()));
        match &self.fail {
            Some(e) => Err(e.clone()),
            None => Ok(self.report.clone()),
        }
    }

    async fn delete_topics(&self, target: &KafkaTarget, names: &[String]) -> Result<Vec<String>, String> {
        self.deleted.lock().unwrap().push((target.bootstrap_servers.clone(), names.to_vec()));
        match &self.fail {
            Some(e) => Err(e.clone()),
            None => Ok(names.to_vec()),
        }
    }
}

impl Context {
    /// A context whose client talks to the returned verifier (topics always succeed).
    pub fn test(db: Arc<FakeDb>) -> (Arc<Context>, ApiServerVerifier) {
        Context::test_with(db, Arc::new(FakeTopics::default()))
    }

    /// A context with a scripted topic provisioner.
    pub fn test_with(db: Arc<FakeDb>, topics: Arc<FakeTopics>) -> (Arc<Context>, ApiServerVerifier) {
        let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(service, NS);
        (Arc::new(Context::new(client, db, topics)), ApiServerVerifier(handle))
    }
}
