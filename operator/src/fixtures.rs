//! Test helpers: a scripted API server behind `kube::Client` (tower-test), a small stateful fake
//! of one, scriptable database and topic provisioners, and sample ShopPlatforms. In the manner
//! of kube-rs/controller-rs `fixtures.rs`: a strict scenario is a list of expected requests,
//! checked in order; [`FakeApi`] answers whatever comes (for scenarios about one step's outcome).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use http::{Method, Request, Response, StatusCode};
use kube::client::Body;
use kube::Client;
use serde_json::{json, Map, Value};
use tokio::task::JoinHandle;
use tower_test::mock::{self, Handle};

use crate::controller::Context;
use crate::crd::ShopPlatform;
use crate::provision::{
    DatabaseGrant, DatabaseProvisioner, KafkaTarget, ProvisionError, TopicProvisioner, TopicReport, TopicSpec,
};

pub const NS: &str = "testns";

/// A ShopPlatform as the API server would return it (namespace, uid, generation set).
pub fn platform(name: &str, mut spec: Value) -> ShopPlatform {
    if spec.get("payment").is_none() {
        spec["payment"] = json!({"provider": "simulated"});
    }
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
    /// 200 with the request body, carrying the operator's `managedFields` (what server-side apply
    /// and create answer, roughly).
    Echo,
    /// [`Reply::Echo`] changed by the function (e.g. a status added).
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

pub fn not_found_body(name: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound",
           "message": format!("\"{name}\" not found"), "code": 404})
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

/// A GET answered 404.
pub fn get_missing(path: impl Into<String>) -> Step {
    let path = path.into();
    let name = path.rsplit('/').next().unwrap_or_default().to_string();
    Step::new(Method::GET, path, Reply::Json(404, not_found_body(&name)))
}

/// A GET answered with `obj`.
pub fn get_found(path: impl Into<String>, obj: Value) -> Step {
    Step::new(Method::GET, path, Reply::Json(200, obj))
}

/// GET of a Secret that does not exist, then its creation.
pub fn create_secret(name: &str) -> Vec<Step> {
    vec![
        get_missing(core("secrets", name)),
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
    get_found(
        core("secrets", name),
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": NS}, "data": {key: data}}),
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

/// An object that does not exist yet: read (404), then applied.
pub fn applied(path: String, reply: Reply) -> Vec<Step> {
    vec![get_missing(path.clone()), apply(path, reply)]
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

/// The pods of a service, listed while its Deployment is not available (answered: none).
/// The platform's NetworkPolicies listed (metadata only): none.
pub fn network_policies_listed() -> Step {
    Step::new(
        Method::GET,
        format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies"),
        Reply::Json(
            200,
            json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "items": []}),
        ),
    )
    .query("labelSelector=")
}

pub fn pods_listed() -> Step {
    Step::new(
        Method::GET,
        format!("/api/v1/namespaces/{NS}/pods"),
        Reply::Json(200, json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []})),
    )
    .query("labelSelector=")
}

/// A Deployment's status as the Deployment controller reports a complete rollout (`ready` of
/// `replicas` available; fewer: a first start under way).
pub fn rollout_status(replicas: i32, ready: i32) -> Value {
    let reason = if ready >= replicas { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" };
    json!({
        "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
        "readyReplicas": ready, "availableReplicas": ready,
        "conditions": [{"type": "Progressing", "status": "True", "reason": reason}],
    })
}

/// The field set of an applied object as server-side apply records it (every field of an
/// object is an `f:` entry; lists and scalars are owned whole), without the identity fields.
pub fn fields_of(v: &Value) -> Value {
    match v {
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, child) in o {
                m.insert(format!("f:{k}"), fields_of(child));
            }
            Value::Object(m)
        }
        _ => json!({}),
    }
}

/// `obj` as the API server returns it after the operator applied it: with the operator's
/// `managedFields` entry for what it applied.
pub fn with_managed_fields(mut obj: Value) -> Value {
    let mut applied = obj.clone();
    if let Some(o) = applied.as_object_mut() {
        for k in ["apiVersion", "kind", "status"] {
            o.remove(k);
        }
        if let Some(Value::Object(m)) = o.get_mut("metadata") {
            for k in ["name", "namespace", "managedFields", "resourceVersion", "uid", "generation"] {
                m.remove(k);
            }
        }
    }
    obj["metadata"]["managedFields"] = json!([{
        "manager": "shop-operator", "operation": "Apply", "apiVersion": obj["apiVersion"].clone(),
        "fieldsType": "FieldsV1", "fieldsV1": fields_of(&applied),
    }]);
    obj
}

/// A request as the verifier saw it, and what it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
    pub reply: Value,
}

/// The objects a run left behind, by path: what it read, applied or created (with the reply's
/// status and the operator's `managedFields`), for the next run's reads.
pub fn store_of(seen: &[Seen]) -> BTreeMap<String, Value> {
    let mut store = BTreeMap::new();
    for s in seen.iter().filter(|s| !s.path.ends_with("/status")) {
        let path = match s.method {
            Method::PATCH | Method::GET => s.path.clone(),
            Method::POST if s.path.ends_with("/secrets") => {
                format!("{}/{}", s.path, s.body["metadata"]["name"].as_str().unwrap_or_default())
            }
            _ => continue,
        };
        if s.reply.is_object() && s.reply.get("kind").is_some_and(|k| k != "Status") {
            store.insert(path, s.reply.clone());
        }
    }
    store
}

fn response(status: u16, body: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}

async fn read(request: Request<Body>) -> (Method, String, String, Value) {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or_default().to_string();
    let bytes = request.into_body().collect_bytes().await.unwrap();
    let body: Value = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
    (method, path, query, body)
}

/// A small stateful stand-in for the API server: objects by path. GET answers the object (404
/// when absent) or, for a collection, its items; PATCH and POST store the body (with the
/// operator's `managedFields`; `status` may add a status) and echo it; DELETE removes.
/// `overrides` answer a method and path with a fixed reply first.
pub struct FakeApi {
    pub objects: BTreeMap<String, Value>,
    #[allow(clippy::type_complexity)]
    pub status: Box<dyn Fn(&str, &Value) -> Option<Value> + Send>,
    pub overrides: Vec<(Method, String, u16, Value)>,
}

impl FakeApi {
    pub fn new(objects: BTreeMap<String, Value>) -> FakeApi {
        FakeApi { objects, status: Box::new(|_, _| None), overrides: Vec::new() }
    }

    fn answer(&mut self, method: &Method, path: &str, query: &str, body: &Value) -> (u16, Value) {
        if let Some((_, _, code, v)) = self.overrides.iter().find(|(m, p, _, _)| m == method && p == path) {
            return (*code, v.clone());
        }
        let name = path.rsplit('/').next().unwrap_or_default().to_string();
        match *method {
            Method::GET if query.contains("labelSelector") || path.ends_with("/pods") => {
                let items: Vec<Value> = self
                    .objects
                    .iter()
                    .filter(|(p, _)| p.starts_with(&format!("{path}/")))
                    .map(|(_, v)| v.clone())
                    .collect();
                (200, json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}))
            }
            Method::GET => match self.objects.get(path) {
                Some(v) => (200, v.clone()),
                None => (404, not_found_body(&name)),
            },
            Method::PATCH if path.ends_with("/status") => {
                let object = path.trim_end_matches("/status").to_string();
                let object_name = object.rsplit('/').next().unwrap_or_default();
                let mut v = self.objects.get(&object).cloned().unwrap_or_else(|| {
                    json!({"apiVersion": body["apiVersion"], "kind": body["kind"],
                           "metadata": {"name": object_name, "namespace": NS}})
                });
                v["status"] = body["status"].clone();
                self.objects.insert(object, v.clone());
                (200, v)
            }
            Method::PATCH | Method::POST => {
                let object = if *method == Method::POST {
                    format!("{path}/{}", body["metadata"]["name"].as_str().unwrap_or_default())
                } else {
                    path.to_string()
                };
                if !body.is_object() || body.get("kind").is_none() {
                    // A JSON or merge patch (finalizers, owner references): answer the object.
                    return (200, self.objects.get(&object).cloned().unwrap_or(json!({})));
                }
                let mut v = with_managed_fields(body.clone());
                // Applying the main resource leaves the status as it was.
                if let Some(status) = self.objects.get(&object).and_then(|o| o.get("status")) {
                    v["status"] = status.clone();
                }
                if let Some(status) = (self.status)(&object, body) {
                    v["status"] = status;
                }
                self.objects.insert(object, v.clone());
                (200, v)
            }
            Method::DELETE => match self.objects.remove(path) {
                Some(v) => (200, v),
                None => (404, not_found_body(&name)),
            },
            _ => (405, json!({})),
        }
    }
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
                let (method, path, query, body) = read(request).await;
                assert_eq!(
                    (&method, path.as_str()),
                    (&step.method, step.path.as_str()),
                    "request {}/{total}: unexpected request (query {query}, body {body}); seen before: {:#?}",
                    i + 1,
                    seen.iter().map(|s: &Seen| format!("{} {}", s.method, s.path)).collect::<Vec<_>>()
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
                    Reply::Echo => (200, with_managed_fields(body.clone())),
                    Reply::EchoWith(f) => (200, f(with_managed_fields(body.clone()))),
                    Reply::Json(status, v) => (status, v),
                };
                send.send_response(response(status, &reply));
                seen.push(Seen { method, path, query, body, reply });
            }
            seen
        })
    }

    /// Answers with `fake` until the client has been quiet for 300 ms; resolves to every request.
    pub fn serve(self, mut fake: FakeApi) -> JoinHandle<(Vec<Seen>, FakeApi)> {
        let mut handle = self.0;
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while let Ok(Some((request, send))) =
                tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
            {
                let (method, path, query, body) = read(request).await;
                let (status, reply) = fake.answer(&method, &path, &query, &body);
                send.send_response(response(status, &reply));
                seen.push(Seen { method, path, query, body, reply });
            }
            (seen, fake)
        })
    }
}

/// A scriptable database provisioner that records its calls.
#[derive(Default)]
pub struct FakeDb {
    /// `ensure <name> via <dsn>` (with ` (password current)` when the grant says so) and
    /// `drop <name> via <dsn>`.
    pub calls: Mutex<Vec<String>>,
    pub fail: bool,
}

#[async_trait]
impl DatabaseProvisioner for FakeDb {
    async fn ensure(&self, admin_dsn: &str, grant: &DatabaseGrant) -> Result<String, ProvisionError> {
        let current = if grant.password_current { " (password current)" } else { "" };
        self.calls.lock().unwrap().push(format!("ensure {} via {admin_dsn}{current}", grant.name));
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
