//! The live event browser's API (admins only): the recent events of the bus and a stream of
//! new ones (server-sent events), from a read-only [`Tap`] — in one process the bus's own tap,
//! apart a Kafka reader that never joins a group nor commits (`kit::events::kafka::spawn_tap`).
//! Watching changes nothing for delivery: the tap never waits for a watcher, and a watcher that
//! cannot keep up is told how many events it missed (`event: dropped`).

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::Stream;
use kit::auth::Identity;
use kit::events::tap::Tap;
use kit::events::Envelope;
use kit::extract::Query;
use kit::openapi::responses as r;
use kit::ApiError;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

/// The event routes' state.
#[derive(Clone)]
pub struct Events {
    pub tap: Option<Tap>,
    /// Most streams open at once (each holds a place in the live channel).
    pub max_watchers: usize,
    watchers: Arc<AtomicUsize>,
    /// Ends the streams (the process is stopping).
    pub shutdown: CancellationToken,
}

impl Events {
    pub fn new(tap: Option<Tap>, max_watchers: usize, shutdown: CancellationToken) -> Events {
        Events { tap, max_watchers, watchers: Arc::default(), shutdown }
    }

    fn tap(&self) -> Result<&Tap, ApiError> {
        self.tap.as_ref().ok_or_else(|| ApiError::unavailable("this gateway has no view of the event bus"))
    }
}

/// Which events to show.
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// An event type (`order.placed`), or a prefix ending in `.` (`payment.`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub event_type: Option<String>,
    /// The aggregate id (`subject`).
    pub subject: Option<String>,
    /// Events of one chain.
    pub correlation_id: Option<String>,
    /// Events about one order: its own, and those whose data names it (`orderId`).
    pub order_id: Option<String>,
    /// How many recent events to answer (or to send first on a stream); at most the tap's
    /// capacity. Default 100 (a stream: 50).
    pub limit: Option<usize>,
}

impl EventFilter {
    fn matches(&self, e: &Envelope) -> bool {
        let some =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        if let Some(t) = some(&self.event_type) {
            let ok = if t.ends_with('.') { e.ty.starts_with(&t) } else { e.ty == t };
            if !ok {
                return false;
            }
        }
        if let Some(s) = some(&self.subject) {
            if e.subject != s {
                return false;
            }
        }
        if let Some(c) = some(&self.correlation_id) {
            if e.correlationid != c {
                return false;
            }
        }
        if let Some(o) = some(&self.order_id) {
            let in_data = e.data.get("orderId").and_then(|v| v.as_str()) == Some(o.as_str());
            if e.subject != o && !in_data {
                return false;
            }
        }
        true
    }
}

/// One event as the browser shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    /// The logical topic (`orders`, `payments`, …).
    pub topic: String,
    pub source: String,
    pub subject: String,
    /// RFC 3339.
    pub time: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<&Envelope> for EventView {
    fn from(e: &Envelope) -> Self {
        EventView {
            id: e.id.to_string(),
            event_type: e.ty.clone(),
            topic: e.topic().unwrap_or("unknown").to_string(),
            source: e.source.clone(),
            subject: e.subject.clone(),
            time: e.time.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            correlation_id: e.correlationid.clone(),
            causation_id: e.causationid.clone(),
            data: e.data.clone(),
        }
    }
}

/// The recent events and the tap's counters.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecentEvents {
    /// Newest first.
    pub items: Vec<EventView>,
    /// How many events the tap keeps.
    pub capacity: usize,
    /// Events seen since the process started.
    pub recorded: u64,
    /// Events live watchers missed because they were too slow.
    pub dropped: u64,
}

fn recent(tap: &Tap, filter: &EventFilter, default: usize) -> Vec<EventView> {
    let limit = filter.limit.unwrap_or(default).min(tap.capacity());
    let all = tap.recent();
    let mut out: Vec<EventView> =
        all.iter().rev().filter(|e| filter.matches(e)).take(limit).map(|e| EventView::from(&**e)).collect();
    out.shrink_to_fit();
    out
}

/// The recent events of the bus (admin), newest first.
#[utoipa::path(
    get, path = "/api/v1/events", tag = "console", params(EventFilter), security(("bearer" = [])),
    responses(
        (status = 200, description = "Recent events", body = RecentEvents),
        r::Read, r::Forbidden, r::ServiceUnavailable,
    )
)]
pub async fn list(
    State(ev): State<Events>,
    who: Identity,
    Query(filter): Query<EventFilter>,
) -> Result<Json<RecentEvents>, ApiError> {
    who.require_admin()?;
    let tap = ev.tap()?;
    Ok(Json(RecentEvents {
        items: recent(tap, &filter, 100),
        capacity: tap.capacity(),
        recorded: tap.recorded(),
        dropped: tap.dropped(),
    }))
}

/// Releases a watcher's place when its stream ends.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn sse_event(e: &Envelope) -> Event {
    let view = EventView::from(e);
    Event::default().event("event").id(view.id.clone()).json_data(&view).unwrap_or_else(|_| Event::default())
}

/// A live stream of the bus's events (admin), as server-sent events: first the recent events
/// that match (oldest first, `limit`, default 50), then each new one as it is published
/// (`event: event`, `id:` the event id, `data:` an [`EventView`]). A watcher too slow to keep
/// up gets `event: dropped` with `{"dropped": n}` and goes on with newer events. A comment is
/// sent every 15 s to keep proxies from closing the stream.
#[utoipa::path(
    get, path = "/api/v1/events/stream", tag = "console", params(EventFilter), security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`", content_type = "text/event-stream", body = String),
        r::Read, r::Forbidden, r::ServiceUnavailable,
    )
)]
pub async fn stream(
    State(ev): State<Events>,
    who: Identity,
    Query(filter): Query<EventFilter>,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let tap = ev.tap()?.clone();
    if ev.watchers.fetch_add(1, Ordering::SeqCst) >= ev.max_watchers {
        ev.watchers.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError::unavailable(format!(
            "{} event streams are open already; close one and try again",
            ev.max_watchers
        )));
    }
    let place = Place(ev.watchers.clone());
    // Subscribe before reading the backlog: an event published in between comes twice at
    // worst (the page drops duplicates by id), never not at all.
    let live = tap.subscribe();
    let mut backlog = recent(&tap, &filter, 50);
    backlog.reverse();
    let stop = ev.shutdown.clone();
    let process_stop = kit::http::stopping();
    struct St {
        backlog: std::vec::IntoIter<EventView>,
        live: tokio::sync::broadcast::Receiver<Arc<Envelope>>,
        tap: Tap,
        filter: EventFilter,
        stop: CancellationToken,
        process_stop: CancellationToken,
        _place: Place,
    }
    let state = St { backlog: backlog.into_iter(), live, tap, filter, stop, process_stop, _place: place };
    let events: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(futures::stream::unfold(state, |mut st| async move {
            if let Some(v) = st.backlog.next() {
                let e = Event::default().event("event").id(v.id.clone()).json_data(&v).unwrap_or_default();
                return Some((Ok(e), st));
            }
            loop {
                let next = tokio::select! {
                    _ = st.stop.cancelled() => return None,
                    _ = st.process_stop.cancelled() => return None,
                    n = st.live.recv() => n,
                };
                match next {
                    Ok(e) if st.filter.matches(&e) => return Some((Ok(sse_event(&e)), st)),
                    Ok(_) => continue,
                    Err(RecvError::Lagged(n)) => {
                        st.tap.note_dropped(n);
                        let data = serde_json::json!({ "dropped": n, "total": st.tap.dropped() });
                        let e = Event::default().event("dropped").json_data(&data).unwrap_or_default();
                        return Some((Ok(e), st));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }));
    let mut res =
        Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Proxies that buffer (nginx) would hold the stream back.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// `/api/v1/events` and `/api/v1/events/stream`.
pub fn routes(events: Events) -> Router {
    Router::new()
        .route("/api/v1/events", get(list))
        .route("/api/v1/events/stream", get(stream))
        .with_state(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_documents_the_console_routes() {
        let doc = serde_json::to_value(crate::aggregate::openapi()).unwrap();
        for (path, method) in [
            ("/api/v1/console/session", "post"),
            ("/api/v1/console/session", "get"),
            ("/api/v1/console/session", "delete"),
            ("/api/v1/console/session/refresh", "post"),
            ("/api/v1/events", "get"),
            ("/api/v1/events/stream", "get"),
        ] {
            assert_eq!(doc["paths"][path][method]["tags"][0], "console", "{method} {path}");
        }
        assert_eq!(doc["paths"]["/api/v1/events"]["get"]["security"][0]["bearer"], serde_json::json!([]));
        for schema in ["SessionView", "EventView", "RecentEvents"] {
            assert!(doc["components"]["schemas"][schema].is_object(), "{schema}");
        }
    }
    use kit::events::payloads::{OrderShipped, PaymentRefunded};
    use kit::money::Money;
    use uuid::Uuid;

    #[test]
    fn filters_by_type_subject_chain_and_order() {
        let order = Uuid::now_v7();
        let shipped = Envelope::new(
            "/shop/order",
            &OrderShipped {
                order_id: order,
                user_id: Uuid::now_v7(),
                shipment_id: Uuid::now_v7(),
                carrier: None,
                tracking_number: None,
            },
        )
        .unwrap();
        let refunded = Envelope::new(
            "/shop/payment",
            &PaymentRefunded {
                order_id: order,
                payment_id: Uuid::now_v7(),
                amount: Money { amount: 500, currency: "USD".into() },
                refund_id: Uuid::now_v7(),
            },
        )
        .unwrap()
        .caused_by(&shipped);
        let f = |t: Option<&str>, o: Option<String>, c: Option<String>| EventFilter {
            event_type: t.map(str::to_string),
            order_id: o,
            correlation_id: c,
            ..Default::default()
        };
        assert!(f(Some("payment."), None, None).matches(&refunded));
        assert!(!f(Some("payment."), None, None).matches(&shipped));
        assert!(f(Some("order.shipped"), None, None).matches(&shipped));
        assert!(!f(Some("order.ship"), None, None).matches(&shipped), "a prefix ends with a dot");
        for e in [&shipped, &refunded] {
            assert!(f(None, Some(order.to_string()), None).matches(e), "{}", e.ty);
            assert!(f(None, None, Some(shipped.correlationid.clone())).matches(e));
            assert!(!f(None, Some(Uuid::now_v7().to_string()), None).matches(e));
        }
        let v = EventView::from(&refunded);
        assert_eq!((v.topic.as_str(), v.causation_id), ("payments", Some(shipped.id.to_string())));
    }
}
