//! The CloudEvents 1.0 envelope, typed payloads, and the Kafka protocol binding (binary mode).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use super::contract::{self, headers};
use super::EventError;

pub const SPEC_VERSION: &str = "1.0";
pub const JSON: &str = "application/json";

/// A typed event body. Each payload type names its CloudEvents `type` and the aggregate it
/// belongs to (the CloudEvents `subject` and the Kafka message key, so that one aggregate's
/// events stay in order).
pub trait EventPayload: Serialize + DeserializeOwned {
    /// The CloudEvents `type`, one of [`contract::types`].
    const TYPE: &'static str;
    /// Schema version of the payload; rendered as `dataschema` `urn:shop:event:<type>:v<N>`.
    const VERSION: u32 = 1;
    fn aggregate_id(&self) -> String;
}

/// A CloudEvents 1.0 event with the `correlationid`/`causationid` extensions and a JSON body.
///
/// Its structured JSON form (used by the outbox table) follows the CloudEvents JSON format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    pub specversion: String,
    pub id: Uuid,
    pub source: String,
    #[serde(rename = "type")]
    pub ty: String,
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The aggregate id; also the Kafka message key.
    pub subject: String,
    pub datacontenttype: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    /// The id of the first event (or request) of the chain; equals `id` for a chain's root.
    pub correlationid: String,
    /// The id of the event that caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
    pub data: serde_json::Value,
}

impl Envelope {
    /// A new event (UUIDv7 id, current UTC time) from `source` (e.g. `/shop/order`).
    /// Fails when the payload's type is not in the contract table.
    pub fn new<P: EventPayload>(source: &str, payload: &P) -> Result<Envelope, EventError> {
        if contract::topic_for(P::TYPE).is_none() {
            return Err(EventError::UnknownType(P::TYPE.to_string()));
        }
        let id = Uuid::now_v7();
        let now = OffsetDateTime::now_utc();
        Ok(Envelope {
            specversion: SPEC_VERSION.into(),
            id,
            source: source.into(),
            ty: P::TYPE.into(),
            // RFC 3339 at microsecond precision (what both SQL backends and Kafka headers keep).
            time: now.replace_nanosecond(now.nanosecond() / 1000 * 1000).unwrap_or(now),
            subject: payload.aggregate_id(),
            datacontenttype: JSON.into(),
            dataschema: Some(format!("urn:shop:event:{}:v{}", P::TYPE, P::VERSION)),
            correlationid: id.to_string(),
            causationid: None,
            data: serde_json::to_value(payload).map_err(|e| EventError::Malformed(e.to_string()))?,
        })
    }

    /// Marks this event as caused by `cause`: same correlation id, causation id = cause's id.
    pub fn caused_by(mut self, cause: &Envelope) -> Envelope {
        self.correlationid = cause.correlationid.clone();
        self.causationid = Some(cause.id.to_string());
        self
    }

    /// Sets the correlation id (e.g. from the HTTP request that started the chain).
    pub fn with_correlation(mut self, correlation_id: impl Into<String>) -> Envelope {
        self.correlationid = correlation_id.into();
        self
    }

    /// The typed payload; fails when the type differs or the body does not parse.
    pub fn decode<P: EventPayload>(&self) -> Result<P, EventError> {
        if self.ty != P::TYPE {
            return Err(EventError::Malformed(format!("expected type {}, got {}", P::TYPE, self.ty)));
        }
        serde_json::from_value(self.data.clone())
            .map_err(|e| EventError::Malformed(format!("{}: {e}", self.ty)))
    }

    /// The logical topic of this event's type (see [`contract::EVENT_TOPICS`]).
    pub fn topic(&self) -> Result<&'static str, EventError> {
        contract::topic_for(&self.ty).ok_or_else(|| EventError::UnknownType(self.ty.clone()))
    }

    /// The Kafka message key: the aggregate id.
    pub fn key(&self) -> &str {
        &self.subject
    }

    /// Kafka protocol binding, binary mode: the `ce_*` and `content-type` headers.
    pub fn to_kafka_headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            (headers::SPECVERSION, self.specversion.clone()),
            (headers::ID, self.id.to_string()),
            (headers::SOURCE, self.source.clone()),
            (headers::TYPE, self.ty.clone()),
            (headers::TIME, self.time.format(&Rfc3339).unwrap_or_default()),
            (headers::SUBJECT, self.subject.clone()),
            (headers::CORRELATIONID, self.correlationid.clone()),
            (headers::CONTENT_TYPE, self.datacontenttype.clone()),
        ];
        if let Some(s) = &self.dataschema {
            h.push((headers::DATASCHEMA, s.clone()));
        }
        if let Some(c) = &self.causationid {
            h.push((headers::CAUSATIONID, c.clone()));
        }
        h
    }

    /// The message value in binary mode: the JSON `data`.
    pub fn to_kafka_value(&self) -> Vec<u8> {
        serde_json::to_vec(&self.data).unwrap_or_default()
    }

    /// Reads a binary-mode message back: `header(name)` yields a header's value.
    pub fn from_kafka<'a>(
        header: impl Fn(&str) -> Option<&'a [u8]>,
        value: Option<&[u8]>,
    ) -> Result<Envelope, EventError> {
        let text = |name: &str| -> Result<Option<String>, EventError> {
            header(name)
                .map(|v| {
                    String::from_utf8(v.to_vec())
                        .map_err(|_| EventError::Malformed(format!("header {name} is not UTF-8")))
                })
                .transpose()
        };
        let required = |name: &str| -> Result<String, EventError> {
            text(name)?.ok_or_else(|| EventError::Malformed(format!("missing header {name}")))
        };
        let specversion = required(headers::SPECVERSION)?;
        if specversion != SPEC_VERSION {
            return Err(EventError::Malformed(format!("unsupported ce_specversion {specversion}")));
        }
        let id = required(headers::ID)?;
        let id = Uuid::parse_str(&id).map_err(|e| EventError::Malformed(format!("ce_id {id}: {e}")))?;
        let time = required(headers::TIME)?;
        let time = OffsetDateTime::parse(&time, &Rfc3339)
            .map_err(|e| EventError::Malformed(format!("ce_time {time}: {e}")))?;
        let data = match value {
            Some(v) if !v.is_empty() => serde_json::from_slice(v)
                .map_err(|e| EventError::Malformed(format!("body is not JSON: {e}")))?,
            _ => serde_json::Value::Null,
        };
        Ok(Envelope {
            specversion,
            id,
            source: required(headers::SOURCE)?,
            ty: required(headers::TYPE)?,
            time,
            subject: text(headers::SUBJECT)?.unwrap_or_default(),
            datacontenttype: text(headers::CONTENT_TYPE)?.unwrap_or_else(|| JSON.into()),
            dataschema: text(headers::DATASCHEMA)?,
            correlationid: text(headers::CORRELATIONID)?.unwrap_or_else(|| id.to_string()),
            causationid: text(headers::CAUSATIONID)?,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::payloads::OrderPlaced;
    use crate::money::Money;

    fn placed() -> OrderPlaced {
        OrderPlaced {
            order_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            items: vec![],
            total: Money::new(1299, "USD"),
            customer_email: None,
            customer_name: None,
        }
    }

    #[test]
    fn binary_mode_round_trip() {
        let p = placed();
        let root = Envelope::new(contract::sources::ORDER, &p).unwrap();
        let ev = Envelope::new(contract::sources::ORDER, &p).unwrap().caused_by(&root);
        assert_eq!(ev.subject, p.order_id.to_string());
        assert_eq!(ev.topic().unwrap(), "orders");
        assert_eq!(ev.id.get_version_num(), 7);
        let hs = ev.to_kafka_headers();
        let value = ev.to_kafka_value();
        let back = Envelope::from_kafka(
            |n| hs.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_bytes()),
            Some(&value),
        )
        .unwrap();
        assert_eq!(back, ev);
        assert_eq!(back.causationid.as_deref(), Some(root.id.to_string().as_str()));
        assert_eq!(back.correlationid, root.correlationid);
        assert_eq!(back.decode::<OrderPlaced>().unwrap(), p);
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["type"], "order.placed");
        assert_eq!(json["specversion"], "1.0");
        assert!(json["time"].as_str().unwrap().ends_with('Z'), "UTC: {}", json["time"]);
    }

    #[test]
    fn rejects_malformed_messages() {
        let err = Envelope::from_kafka(|_| None, Some(b"{}")).unwrap_err();
        assert!(err.to_string().contains("ce_specversion"), "{err}");
    }
}
