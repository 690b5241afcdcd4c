//! TLS pieces shared by the PostgreSQL and Kafka connections: rustls with the `ring` provider,
//! trust anchors from a CA PEM bundle or the Mozilla roots.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The crypto provider of every TLS connection of the operator (`ring`; no process default).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trust anchors: the certificates of the CA PEM bundle when given, else the Mozilla roots.
pub fn roots(ca_pem: Option<&[u8]>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match ca_pem {
        Some(pem) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("CA certificate PEM: {e}"))?;
            if certs.is_empty() {
                return Err("CA certificate PEM holds no certificate".into());
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("CA certificate: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// A client configuration that verifies the server's chain and name against [`roots`].
pub fn verifying_client_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig, String> {
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots(ca_pem)?)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_come_from_the_pem_or_the_mozilla_list() {
        assert!(roots(None).unwrap().len() > 50);
        let ca = include_bytes!("../tests/data/ca.pem");
        assert_eq!(roots(Some(ca)).unwrap().len(), 1);
        assert!(roots(Some(b"no certificate here")).is_err());
        verifying_client_config(Some(ca)).unwrap();
    }
}
