//! One connection to one broker: TCP (optionally TLS), size-prefixed frames, correlation ids,
//! `ApiVersions` negotiation and SASL authentication.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, Message, Request, StrBytes, VersionRange,
};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::sasl::{self, SaslConfig, SaslMechanism, ScramClient};
use super::KafkaError;

/// How to reach brokers: timeouts, TLS, SASL.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// `client.id` in every request header.
    pub client_id: String,
    /// Timeout of the TCP connect, the TLS handshake, and of each request's round trip.
    pub timeout: Duration,
    /// TLS (Kafka's `SSL` / `SASL_SSL`); `None`: plaintext.
    pub tls: Option<TlsConfig>,
    /// SASL authentication (Kafka's `SASL_PLAINTEXT` / `SASL_SSL`); `None`: none.
    pub sasl: Option<SaslConfig>,
    /// Addresses to connect to instead of brokers' `host:port` (the operator's
    /// `--connect-override`); TLS still verifies the broker's own host name.
    pub overrides: crate::overrides::ConnectOverrides,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "shop-operator".into(),
            timeout: Duration::from_secs(15),
            tls: None,
            sasl: None,
            overrides: Default::default(),
        }
    }
}

/// TLS to the brokers: the server's chain and name are always verified.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM bundle of the CA(s) to trust; `None`: the Mozilla roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The name to verify instead of each broker's host (e.g. when connecting by IP address).
    pub server_name: Option<String>,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connection to one broker after `ApiVersions` (and SASL, when configured).
pub struct Connection {
    io: Box<dyn Io>,
    /// `host:port` as connected.
    pub addr: String,
    client_id: StrBytes,
    timeout: Duration,
    correlation_id: i32,
    /// API key → the broker's (min, max) version.
    versions: HashMap<i16, VersionRange>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Largest response accepted (a metadata response of a big cluster is a few MiB).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// The name of an API for messages, e.g. `CreatePartitions`.
pub fn api_name(key: i16) -> String {
    ApiKey::try_from(key).map(|k| format!("{k:?}")).unwrap_or_else(|_| format!("API {key}"))
}

/// The highest version both sides support, from the broker's range and ours.
pub fn pick_version(broker: Option<VersionRange>, ours: VersionRange) -> Option<i16> {
    let common = broker?.intersect(&ours);
    (!common.is_empty()).then_some(common.max)
}

fn host_of(addr: &str) -> &str {
    let host = match addr.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Connection {
    /// Connects to `addr` (`host:port`), negotiates versions and authenticates.
    pub async fn open(addr: &str, config: &ConnectionConfig) -> Result<Connection, KafkaError> {
        let timeout = config.timeout;
        let target = config.overrides.resolve(addr);
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(target))
            .await
            .map_err(|_| KafkaError::Connect(format!("{addr}: connect timed out after {timeout:?}")))?
            .map_err(|e| KafkaError::Connect(format!("{addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let io: Box<dyn Io> = match &config.tls {
            None => Box::new(tcp),
            Some(tls) => {
                let client =
                    crate::tls::verifying_client_config(tls.ca_pem.as_deref()).map_err(KafkaError::Tls)?;
                let name = tls.server_name.clone().unwrap_or_else(|| host_of(addr).to_string());
                let server_name = rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| KafkaError::Tls(format!("server name `{name}`: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
                let stream = tokio::time::timeout(timeout, connector.connect(server_name, tcp))
                    .await
                    .map_err(|_| KafkaError::Tls(format!("{addr}: handshake timed out after {timeout:?}")))?
                    .map_err(|e| KafkaError::Tls(format!("{addr}: {e}")))?;
                Box::new(stream)
            }
        };
        let mut conn = Connection {
            io,
            addr: addr.to_string(),
            client_id: StrBytes::from_string(config.client_id.clone()),
            timeout,
            correlation_id: 0,
            versions: HashMap::new(),
        };
        conn.negotiate().await?;
        if let Some(sasl) = &config.sasl {
            conn.authenticate(sasl).await?;
        }
        Ok(conn)
    }

    /// The version of `R` this connection uses: the highest both sides support.
    pub fn version<R: Request>(&self) -> Result<i16, KafkaError> {
        pick_version(self.versions.get(&R::KEY).copied(), R::VERSIONS).ok_or_else(|| {
            KafkaError::Unsupported {
                api: api_name(R::KEY),
                broker: self.versions.get(&R::KEY).map(|r| r.to_string()),
                ours: R::VERSIONS.to_string(),
            }
        })
    }

    /// Whether the broker offers `R` in a version this client speaks.
    pub fn supports<R: Request>(&self) -> bool {
        self.version::<R>().is_ok()
    }

    /// Sends `req` in the negotiated version and decodes its response.
    pub async fn send<R: Request>(&mut self, req: &R) -> Result<R::Response, KafkaError> {
        let version = self.version::<R>()?;
        let mut body = self.round_trip(req, version).await?;
        R::Response::decode(&mut body, version)
            .map_err(|e| KafkaError::Protocol(format!("decoding the {} response: {e}", api_name(R::KEY))))
    }

    /// Encodes and sends one request, returns the response body after its header.
    async fn round_trip<R: Request>(&mut self, req: &R, version: i16) -> Result<Bytes, KafkaError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let api = api_name(R::KEY);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(self.client_id.clone());
        let mut buf = BytesMut::with_capacity(256);
        buf.put_i32(0);
        header
            .encode(&mut buf, R::header_version(version))
            .and_then(|_| req.encode(&mut buf, version))
            .map_err(|e| KafkaError::Protocol(format!("encoding the {api} request: {e}")))?;
        let len = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&len.to_be_bytes());

        let timeout = self.timeout;
        let addr = self.addr.clone();
        let io = &mut self.io;
        let exchange = async move {
            io.write_all(&buf).await?;
            io.flush().await?;
            let mut size = [0u8; 4];
            io.read_exact(&mut size).await?;
            let size = i32::from_be_bytes(size);
            if size < 0 || size as usize > MAX_FRAME {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("frame of {size} bytes"),
                ));
            }
            let mut frame = vec![0u8; size as usize];
            io.read_exact(&mut frame).await?;
            Ok::<_, std::io::Error>(Bytes::from(frame))
        };
        let mut frame = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| KafkaError::Timeout(format!("{api} to {addr}: no answer within {timeout:?}")))?
            .map_err(|e| KafkaError::Connect(format!("{api} to {addr}: {e}")))?;
        let header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| KafkaError::Protocol(format!("decoding the {api} response header: {e}")))?;
        if header.correlation_id != correlation_id {
            return Err(KafkaError::Protocol(format!(
                "{api} to {addr}: response for request {} instead of {correlation_id}",
                header.correlation_id
            )));
        }
        Ok(frame)
    }

    /// `ApiVersions`: in our highest version; a broker that does not know it answers in version 0
    /// with `UNSUPPORTED_VERSION` and its own range, and we ask again in that.
    async fn negotiate(&mut self) -> Result<(), KafkaError> {
        let mut req = ApiVersionsRequest::default();
        req.client_software_name = StrBytes::from_static_str("shop-operator");
        req.client_software_version = StrBytes::from_static_str(env!("CARGO_PKG_VERSION"));
        let mut version = ApiVersionsRequest::VERSIONS.max;
        for _ in 0..2 {
            let body = self.round_trip(&req, version).await?;
            let response = ApiVersionsResponse::decode(&mut body.clone(), version)
                .ok()
                .filter(|r| r.error_code == 0)
                .map(Ok)
                .unwrap_or_else(|| ApiVersionsResponse::decode(&mut body.clone(), 0));
            let response = response
                .map_err(|e| KafkaError::Protocol(format!("decoding the ApiVersions response: {e}")))?;
            let broker: HashMap<i16, VersionRange> = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, VersionRange { min: k.min_version, max: k.max_version }))
                .collect();
            match ResponseError::try_from_code(response.error_code) {
                None => {
                    self.versions = broker;
                    return Ok(());
                }
                Some(ResponseError::UnsupportedVersion) => {
                    let theirs = broker.get(&ApiVersionsRequest::KEY).copied();
                    match pick_version(theirs, ApiVersionsRequest::VERSIONS) {
                        Some(v) if v < version => version = v,
                        _ => break,
                    }
                }
                Some(e) => return Err(KafkaError::broker("ApiVersions", e, None)),
            }
        }
        Err(KafkaError::Protocol(format!("{}: no common ApiVersions version", self.addr)))
    }

    /// SASL: `SaslHandshake` names the mechanism, `SaslAuthenticate` carries its messages.
    async fn authenticate(&mut self, sasl: &SaslConfig) -> Result<(), KafkaError> {
        let mut handshake = SaslHandshakeRequest::default();
        handshake.mechanism = StrBytes::from_static_str(sasl.mechanism.name());
        let answer = self.send(&handshake).await?;
        if let Some(e) = ResponseError::try_from_code(answer.error_code) {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(KafkaError::Sasl(format!(
                "{}: the broker refused mechanism {} ({e}); it offers: {}",
                self.addr,
                sasl.mechanism.name(),
                offered.join(", ")
            )));
        }
        match sasl.mechanism {
            SaslMechanism::Plain => {
                self.sasl_step(sasl::plain_message(&sasl.username, &sasl.password)).await?;
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let mut scram = ScramClient::new(sasl.mechanism, &sasl.username, &sasl.password)
                    .map_err(KafkaError::Sasl)?;
                let server_first = self.sasl_step(scram.client_first()).await?;
                let client_final = scram.client_final(&server_first).map_err(KafkaError::Sasl)?;
                let server_final = self.sasl_step(client_final).await?;
                scram.verify_server_final(&server_final).map_err(KafkaError::Sasl)?;
            }
        }
        Ok(())
    }

    async fn sasl_step(&mut self, message: Vec<u8>) -> Result<Bytes, KafkaError> {
        let mut req = SaslAuthenticateRequest::default();
        req.auth_bytes = Bytes::from(message);
        let answer = self.send(&req).await?;
        if let Some(e) = ResponseError::try_from_code(answer.error_code) {
            let detail =
                answer.error_message.as_ref().map(|m| format!(": {}", m.as_str())).unwrap_or_default();
            return Err(KafkaError::Sasl(format!("{}: authentication failed ({e}){detail}", self.addr)));
        }
        Ok(answer.auth_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{CreatePartitionsRequest, MetadataRequest};

    #[test]
    fn the_highest_common_version_is_picked() {
        let v = |min, max| VersionRange { min, max };
        assert_eq!(pick_version(Some(v(0, 12)), v(0, 13)), Some(12));
        assert_eq!(pick_version(Some(v(0, 20)), v(0, 13)), Some(13));
        assert_eq!(pick_version(Some(v(5, 9)), v(0, 3)), None);
        assert_eq!(pick_version(None, v(0, 3)), None);
        assert_eq!(api_name(CreatePartitionsRequest::KEY), "CreatePartitions");
        assert_eq!(api_name(MetadataRequest::KEY), "Metadata");
    }

    #[test]
    fn tls_names_come_from_the_address() {
        assert_eq!(host_of("kafka-0.example:9093"), "kafka-0.example");
        assert_eq!(host_of("[::1]:9093"), "::1");
        assert_eq!(host_of("broker"), "broker");
    }
}
