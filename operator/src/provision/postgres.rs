//! PostgreSQL connections of the database provisioner: `tokio-postgres`, with TLS through rustls
//! following the admin DSN's `sslmode` the way libpq does.
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (default) | when the server offers it, else plaintext | not verified |
//! | `require` | always | not verified; with a CA, verified like `verify-ca` (as libpq does with a root certificate) |
//! | `verify-ca` | always | chain verified against the CA (or, without one, the Mozilla roots) |
//! | `verify-full` | always | chain and host name verified |
//!
//! The CA is a PEM bundle given to [`PgProvisioner`](super::PgProvisioner) (the operator's
//! `--postgres-ca-file`). `sslrootcert`, `sslcert`, `sslkey` and other libpq-only parameters of
//! the DSN are not read (client certificates are not supported).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use super::ProvisionError;
use crate::overrides::ConnectOverrides;
use crate::tls::{provider, roots};

/// The DSN's `sslmode` (libpq's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub fn parse(value: &str) -> Result<SslMode, ProvisionError> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(ProvisionError::InvalidDsn(format!(
                    "sslmode `{other}` (expected disable, allow, prefer, require, verify-ca or verify-full)"
                )))
            }
        })
    }
}

/// A DSN split into what `tokio-postgres` understands and the TLS settings it does not.
#[derive(Debug)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub sslmode: SslMode,
}

/// Parses a `postgres://` URL. `sslmode` (default `prefer`) is taken out and interpreted here
/// (`tokio-postgres` knows only `disable`, `prefer` and `require`); libpq-only TLS file
/// parameters are dropped.
pub fn parse_dsn(dsn: &str) -> Result<Target, ProvisionError> {
    parse_dsn_with(dsn, &ConnectOverrides::default())
}

/// [`parse_dsn`], connecting to the override of the DSN's `host:port` when there is one (the
/// host name stays the one TLS verifies).
pub fn parse_dsn_with(dsn: &str, overrides: &ConnectOverrides) -> Result<Target, ProvisionError> {
    let mut url = url::Url::parse(dsn).map_err(|e| ProvisionError::InvalidDsn(e.to_string()))?;
    if !matches!(url.scheme(), "postgres" | "postgresql") || url.host_str().is_none() {
        return Err(ProvisionError::InvalidDsn("expected postgres://user@host[:port]/db".into()));
    }
    let mut hostaddr = None;
    let addr = format!("{}:{}", url.host_str().unwrap_or_default(), url.port().unwrap_or(5432));
    let target = overrides.resolve(&addr);
    if target != addr {
        let (host, port) = target.rsplit_once(':').expect("overrides are host:port");
        let bad = |_| ProvisionError::InvalidDsn(format!("connect override {target}"));
        url.set_port(port.parse().ok()).map_err(bad)?;
        match host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>() {
            Ok(ip) => hostaddr = Some(ip),
            Err(_) => url
                .set_host(Some(host))
                .map_err(|_| ProvisionError::InvalidDsn(format!("connect override {target}")))?,
        }
    }
    let mut sslmode = SslMode::Prefer;
    let mut kept = Vec::new();
    for (k, v) in url.query_pairs() {
        match k.as_ref() {
            "sslmode" => sslmode = SslMode::parse(&v)?,
            "sslrootcert"
            | "sslcert"
            | "sslkey"
            | "sslpassword"
            | "sslcrl"
            | "sslcrldir"
            | "sslsni"
            | "sslnegotiation"
            | "sslcompression"
            | "ssl_min_protocol_version"
            | "ssl_max_protocol_version" => {}
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    url.set_query(None);
    if !kept.is_empty() {
        url.query_pairs_mut().extend_pairs(kept);
    }
    let mut config: tokio_postgres::Config =
        url.as_str().parse().map_err(|e: tokio_postgres::Error| ProvisionError::InvalidDsn(e.to_string()))?;
    if let Some(ip) = hostaddr {
        config.hostaddr(ip);
    }
    Ok(Target { config, sslmode })
}

/// Opens one connection to `dsn`; the connection task runs until the client is dropped.
pub async fn connect(
    dsn: &str,
    ca_pem: Option<&[u8]>,
    overrides: &ConnectOverrides,
) -> Result<tokio_postgres::Client, ProvisionError> {
    let Target { mut config, sslmode } = parse_dsn_with(dsn, overrides)?;
    config.connect_timeout(std::time::Duration::from_secs(15));
    let client = match sslmode {
        SslMode::Disable => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            spawn_connection(conn);
            client
        }
        mode => {
            config.ssl_mode(if matches!(mode, SslMode::Allow | SslMode::Prefer) {
                tokio_postgres::config::SslMode::Prefer
            } else {
                tokio_postgres::config::SslMode::Require
            });
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(mode, ca_pem)?);
            let (client, conn) = config.connect(tls).await?;
            spawn_connection(conn);
            client
        }
    };
    Ok(client)
}

fn spawn_connection<S, T>(conn: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
}

/// The rustls configuration of `mode` (not `Disable`).
pub fn client_config(mode: SslMode, ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, ProvisionError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ProvisionError::Tls(e.to_string()))?;
    let verify = match mode {
        SslMode::Require if ca_pem.is_some() => SslMode::VerifyCa,
        m => m,
    };
    let config = match verify {
        SslMode::VerifyCa | SslMode::VerifyFull => {
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(ca_pem).map_err(ProvisionError::Tls)?),
                provider(),
            )
            .build()
            .map_err(|e| ProvisionError::Tls(e.to_string()))?;
            let verifier: Arc<dyn ServerCertVerifier> =
                if verify == SslMode::VerifyCa { Arc::new(ChainOnly(webpki)) } else { webpki };
            builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider())))
            .with_no_client_auth(),
    };
    Ok(config)
}

/// `verify-ca`: the chain must lead to a trusted root; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<rustls::client::WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer`/`require` without a CA: encrypted, the certificate not verified (libpq's behaviour;
/// the handshake signatures still are).
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_follows_libpq_names_and_defaults_to_prefer() {
        for (v, m) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(SslMode::parse(v).unwrap(), m);
            let t = parse_dsn(&format!("postgres://u:p@db.example:6432/postgres?sslmode={v}")).unwrap();
            assert_eq!(t.sslmode, m);
        }
        assert!(SslMode::parse("verify_full").is_err());
        assert!(SslMode::parse("").is_err());
        assert_eq!(parse_dsn("postgres://u@h/db").unwrap().sslmode, SslMode::Prefer);
    }

    #[test]
    fn the_rest_of_the_dsn_reaches_tokio_postgres() {
        let t = parse_dsn(
            "postgresql://admin:s%40cret@db.example:6432/shop?sslmode=verify-full&sslrootcert=/ca.pem&application_name=op",
        )
        .unwrap();
        assert_eq!(t.sslmode, SslMode::VerifyFull);
        assert_eq!(t.config.get_user(), Some("admin"));
        assert_eq!(t.config.get_password(), Some(&b"s@cret"[..]));
        assert_eq!(t.config.get_dbname(), Some("shop"));
        assert_eq!(t.config.get_ports(), &[6432]);
        assert_eq!(t.config.get_application_name(), Some("op"));
        assert!(
            matches!(&t.config.get_hosts()[0], tokio_postgres::config::Host::Tcp(h) if h == "db.example")
        );
        assert!(parse_dsn("mysql://x@y/z").is_err());
        assert!(parse_dsn("postgres://u@h/db?sslmode=sometimes").is_err());
    }

    #[test]
    fn tls_configurations_build_for_every_verifying_mode() {
        for mode in
            [SslMode::Allow, SslMode::Prefer, SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull]
        {
            client_config(mode, None).unwrap();
        }
        assert!(client_config(SslMode::VerifyCa, Some(b"not a pem")).is_err());
    }
}
