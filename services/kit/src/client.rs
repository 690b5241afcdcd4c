//! Calls from one service to another: over HTTP when the services run apart, or straight into
//! the other service's router when they share a process — the same requests either way.
//!
//! Every call has a timeout. Idempotent calls (GET, and POSTs the caller marks idempotent
//! because the callee deduplicates them, such as a reservation keyed by order id) are retried
//! with exponential backoff on transport failures and 5xx answers. A circuit breaker per
//! target stops hammering a service that keeps failing: after [`BreakerConfig::failures`]
//! consecutive failures it answers [`CallError::CircuitOpen`] at once for
//! [`BreakerConfig::open_for`], then lets one probe through.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tower::ServiceExt;

/// Header carrying the internal service credential.
pub const INTERNAL_TOKEN_HEADER: &str = "x-internal-token";

/// Constant-time check of a presented internal credential (compares SHA-256 digests, so the
/// length leaks nothing either).
pub fn internal_token_matches(expected: &SecretString, given: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(expected.expose_secret().as_bytes()), Sha256::digest(given.as_bytes()));
    x.iter().zip(y.iter()).fold(0u8, |acc, (p, q)| acc | (p ^ q)) == 0
}

/// Checks the internal credential of a request, if it presents one: `None` without the header
/// (the caller is a user: check its bearer token instead), `Some(Ok(()))` for the right
/// credential, `Some(Err(401 problem))` for a wrong one or when none is configured here.
pub fn verify_internal(
    headers: &HeaderMap,
    expected: Option<&SecretString>,
) -> Option<Result<(), crate::ApiError>> {
    let given = headers.get(INTERNAL_TOKEN_HEADER)?;
    let ok = match (expected, given.to_str()) {
        (Some(expected), Ok(given)) => internal_token_matches(expected, given),
        _ => false,
    };
    Some(if ok {
        Ok(())
    } else {
        Err(crate::ApiError::new(crate::problem::ErrorCode::InvalidInternalToken)
            .detail("the internal service credential is not valid"))
    })
}

/// Why a call got no usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// Connection refused, timeout, 5xx after the retries, or an unreadable body.
    #[error("{service} is unavailable: {detail}")]
    Unavailable { service: &'static str, detail: String },
    /// Too many recent failures: the call was not attempted.
    #[error("{service} is unavailable (circuit open after repeated failures)")]
    CircuitOpen { service: &'static str },
}

impl CallError {
    /// The 503 problem a handler answers when a dependency is down.
    pub fn to_api_error(&self) -> crate::ApiError {
        crate::ApiError::unavailable(self.to_string())
    }
}

impl From<CallError> for crate::ApiError {
    fn from(e: CallError) -> Self {
        e.to_api_error()
    }
}

/// An answer of the other service (any status).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// Decodes the body as JSON.
    pub fn json<T: DeserializeOwned>(&self, service: &'static str) -> Result<T, CallError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| CallError::Unavailable { service, detail: format!("unreadable answer: {e}") })
    }
}

/// Timeouts, retries and the breaker of one client.
#[derive(Debug, Clone)]
pub struct ClientPolicy {
    pub timeout: Duration,
    /// Attempts of an idempotent call (1 = no retry).
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub breaker: BreakerConfig,
}

impl Default for ClientPolicy {
    fn default() -> Self {
        ClientPolicy {
            timeout: Duration::from_secs(3),
            attempts: 3,
            initial_backoff: Duration::from_millis(100),
            breaker: BreakerConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failures: u32,
    /// How long it stays open before one probe may pass.
    pub open_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig { failures: 5, open_for: Duration::from_secs(10) }
    }
}

#[derive(Debug, Default)]
struct BreakerState {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    /// Half-open: one probe is in flight until it reports back (or, should its caller give up
    /// without a verdict, until this instant, when another caller may probe).
    probe_until: Option<Instant>,
}

#[derive(Clone)]
enum Transport {
    Http { base: String, client: reqwest::Client },
    Router(Router),
}

/// A client of one other service.
#[derive(Clone)]
pub struct ServiceClient {
    service: &'static str,
    transport: Transport,
    internal_token: Option<Arc<SecretString>>,
    policy: ClientPolicy,
    breaker: Arc<std::sync::Mutex<BreakerState>>,
}

/// One request.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
    /// Safe to send twice (the callee deduplicates it).
    pub idempotent: bool,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Call {
        Call {
            method: Method::GET,
            path: path.into(),
            headers: HeaderMap::new(),
            body: None,
            idempotent: true,
        }
    }

    pub fn post<T: Serialize>(path: impl Into<String>, body: &T) -> Call {
        Call {
            method: Method::POST,
            path: path.into(),
            headers: HeaderMap::new(),
            body: Some(Bytes::from(serde_json::to_vec(body).unwrap_or_default())),
            idempotent: false,
        }
    }

    pub fn delete(path: impl Into<String>) -> Call {
        Call {
            method: Method::DELETE,
            path: path.into(),
            headers: HeaderMap::new(),
            body: None,
            idempotent: true,
        }
    }

    /// Marks the call as safe to retry.
    pub fn idempotent(mut self) -> Call {
        self.idempotent = true;
        self
    }

    /// Forwards a header of the incoming request (e.g. the caller's `Authorization`).
    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Call {
        self.headers.insert(name, value);
        self
    }
}

impl ServiceClient {
    /// A client calling `base` (e.g. `http://catalog:8080`) over HTTP.
    pub fn http(service: &'static str, base: &str, policy: ClientPolicy) -> ServiceClient {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout.min(Duration::from_secs(2)))
            .build()
            .expect("HTTP client");
        let transport = Transport::Http { base: base.trim_end_matches('/').to_string(), client };
        ServiceClient::new(service, transport, policy)
    }

    /// A client calling the service's router in this process.
    pub fn router(service: &'static str, router: Router, policy: ClientPolicy) -> ServiceClient {
        ServiceClient::new(service, Transport::Router(router), policy)
    }

    fn new(service: &'static str, transport: Transport, policy: ClientPolicy) -> ServiceClient {
        ServiceClient {
            service,
            transport,
            internal_token: None,
            policy,
            breaker: Arc::new(std::sync::Mutex::new(BreakerState::default())),
        }
    }

    /// Sends `x-internal-token` on every call.
    pub fn with_internal_token(mut self, token: Option<SecretString>) -> ServiceClient {
        self.internal_token = token.map(Arc::new);
        self
    }

    pub fn service(&self) -> &'static str {
        self.service
    }

    /// Sends `call`; 4xx answers are returned as they are (they are the callee's verdict).
    pub async fn send(&self, call: Call) -> Result<Reply, CallError> {
        self.check_breaker()?;
        let attempts = if call.idempotent { self.policy.attempts.max(1) } else { 1 };
        let mut last = String::new();
        for attempt in 1..=attempts {
            match self.once(&call).await {
                Ok(reply) if !reply.status.is_server_error() => {
                    self.record(true);
                    return Ok(reply);
                }
                Ok(reply) => last = format!("answered {}", reply.status),
                Err(e) => last = e,
            }
            if attempt < attempts {
                tokio::time::sleep(crate::backoff::exponential(
                    self.policy.initial_backoff,
                    Duration::from_secs(2),
                    attempt,
                ))
                .await;
            }
        }
        self.record(false);
        metrics::counter!(crate::contract::metrics::CLIENT_FAILURES.name, "service" => self.service)
            .increment(1);
        Err(CallError::Unavailable { service: self.service, detail: last })
    }

    /// Sends `call` and decodes a 2xx answer as JSON; other statuses come back as `Err(reply)`.
    pub async fn json<T: DeserializeOwned>(&self, call: Call) -> Result<Result<T, Reply>, CallError> {
        let reply = self.send(call).await?;
        if reply.status.is_success() {
            Ok(Ok(reply.json(self.service)?))
        } else {
            Ok(Err(reply))
        }
    }

    fn check_breaker(&self) -> Result<(), CallError> {
        let mut b = self.breaker.lock().expect("breaker lock");
        let now = Instant::now();
        match b.open_until {
            Some(until) if now < until => Err(CallError::CircuitOpen { service: self.service }),
            // Half-open: exactly one caller probes; the others are refused until it reports.
            Some(_) if b.probe_until.is_some_and(|p| now < p) => {
                Err(CallError::CircuitOpen { service: self.service })
            }
            Some(_) => {
                b.probe_until = Some(now + self.policy.breaker.open_for);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock().expect("breaker lock");
        b.probe_until = None;
        if ok {
            b.consecutive_failures = 0;
            b.open_until = None;
            return;
        }
        b.consecutive_failures += 1;
        // A failed probe re-opens at once; otherwise the threshold opens the circuit.
        if b.open_until.is_some() || b.consecutive_failures >= self.policy.breaker.failures {
            b.open_until = Some(Instant::now() + self.policy.breaker.open_for);
            tracing::warn!(service = self.service, "circuit opened after repeated failures");
        }
    }

    async fn once(&self, call: &Call) -> Result<Reply, String> {
        let mut headers = call.headers.clone();
        if let Some(t) = &self.internal_token {
            if let Ok(v) = HeaderValue::from_str(t.expose_secret()) {
                headers.insert(INTERNAL_TOKEN_HEADER, v);
            }
        }
        if call.body.is_some() {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        match &self.transport {
            Transport::Http { base, client } => {
                let mut req =
                    client.request(call.method.clone(), format!("{base}{}", call.path)).headers(headers);
                if let Some(b) = &call.body {
                    req = req.body(b.clone());
                }
                let resp = req.send().await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let body = resp.bytes().await.map_err(|e| e.to_string())?;
                Ok(Reply { status, body })
            }
            Transport::Router(router) => {
                let mut req = Request::builder().method(call.method.clone()).uri(&call.path);
                if let Some(h) = req.headers_mut() {
                    *h = headers;
                }
                let req = req
                    .body(call.body.clone().map(Body::from).unwrap_or_else(Body::empty))
                    .map_err(|e| e.to_string())?;
                let fut = router.clone().oneshot(req);
                let resp = tokio::time::timeout(self.policy.timeout, fut)
                    .await
                    .map_err(|_| format!("no answer within {:?}", self.policy.timeout))?
                    .map_err(|e| e.to_string())?;
                let status = resp.status();
                let body = resp.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                Ok(Reply { status, body })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> ClientPolicy {
        ClientPolicy {
            timeout: Duration::from_millis(200),
            attempts: 3,
            initial_backoff: Duration::from_millis(1),
            breaker: BreakerConfig { failures: 2, open_for: Duration::from_millis(100) },
        }
    }

    #[tokio::test]
    async fn retries_idempotent_calls_then_opens_the_circuit() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let router = Router::new().route(
            "/flaky",
            get(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) < 2 {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::OK
                    }
                }
            }),
        );
        let c = ServiceClient::router("flaky", router.clone(), policy());
        // Two 503s, then 200: one call succeeds after retries.
        assert_eq!(c.send(Call::get("/flaky")).await.unwrap().status, StatusCode::OK);
        assert_eq!(hits.load(Ordering::SeqCst), 3);

        // A non-idempotent POST is not retried.
        let c = ServiceClient::router(
            "down",
            Router::new().route("/x", axum::routing::post(|| async { StatusCode::BAD_GATEWAY })),
            policy(),
        );
        assert!(c.send(Call::post("/x", &1)).await.is_err());
        assert!(c.send(Call::post("/x", &1)).await.is_err());
        // Two failures: open.
        assert!(matches!(c.send(Call::post("/x", &1)).await, Err(CallError::CircuitOpen { .. })));
        tokio::time::sleep(Duration::from_millis(120)).await;
        // Half-open probe fails: open again at once.
        assert!(matches!(c.send(Call::post("/x", &1)).await, Err(CallError::Unavailable { .. })));
        assert!(matches!(c.send(Call::post("/x", &1)).await, Err(CallError::CircuitOpen { .. })));
    }

    #[tokio::test]
    async fn a_half_open_circuit_lets_one_probe_through() {
        let hits = Arc::new(AtomicU32::new(0));
        let h = hits.clone();
        let router = Router::new().route(
            "/slow",
            get(move || {
                let h = h.clone();
                async move {
                    if h.fetch_add(1, Ordering::SeqCst) < 2 {
                        return StatusCode::SERVICE_UNAVAILABLE;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    StatusCode::OK
                }
            }),
        );
        let p = ClientPolicy { attempts: 1, ..policy() };
        let c = ServiceClient::router("slow", router, p);
        assert!(c.send(Call::get("/slow")).await.is_err());
        assert!(c.send(Call::get("/slow")).await.is_err());
        tokio::time::sleep(Duration::from_millis(120)).await;
        // Ten concurrent callers after the open period: one probe reaches the service.
        let calls = (0..10).map(|_| c.send(Call::get("/slow")));
        let results = futures::future::join_all(calls).await;
        assert_eq!(hits.load(Ordering::SeqCst), 3, "one probe, not ten");
        assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(results
            .iter()
            .filter(|r| r.is_err())
            .all(|r| matches!(r, Err(CallError::CircuitOpen { .. }))));
        // The probe succeeded: closed again.
        assert_eq!(c.send(Call::get("/slow")).await.unwrap().status, StatusCode::OK);
    }

    #[tokio::test]
    async fn four_hundreds_are_answers_and_http_failures_are_unavailable() {
        let router = Router::new().route("/missing", get(|| async { StatusCode::NOT_FOUND }));
        let c = ServiceClient::router("svc", router, policy());
        let r = c.json::<serde_json::Value>(Call::get("/missing")).await.unwrap();
        assert_eq!(r.unwrap_err().status, StatusCode::NOT_FOUND);
        // Nothing listens there.
        let c = ServiceClient::http("nobody", "http://127.0.0.1:9", policy());
        let e = c.send(Call::get("/")).await.unwrap_err();
        assert!(matches!(e, CallError::Unavailable { service: "nobody", .. }), "{e:?}");
        assert_eq!(crate::ApiError::from(e).status, StatusCode::SERVICE_UNAVAILABLE);
    }
}
