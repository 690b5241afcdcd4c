//! Signing keys: the current Ed25519 key (configured, or generated and persisted in embedded
//! mode) plus previous keys that stay published in the JWKS until their tokens expire.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::DecodePublicKey;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use kit::auth::{JwksSource, SigningKey, StaticJwks};
use secrecy::ExposeSecret;

use crate::config::AuthConfig;
use crate::store::Store;

/// The key that signs plus every key published in the JWKS (current first).
#[derive(Clone)]
pub struct KeyRing {
    pub current: SigningKey,
    pub jwks: JwkSet,
    source: Arc<dyn JwksSource>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<_> = self.jwks.keys.iter().filter_map(|k| k.common.key_id.as_deref()).collect();
        f.debug_struct("KeyRing").field("current", &self.current.kid()).field("published", &kids).finish()
    }
}

impl KeyRing {
    /// Builds the ring from the configuration; without a configured key, loads the newest key
    /// from the database or generates and persists one.
    pub async fn load(config: &AuthConfig, store: &Store) -> anyhow::Result<Self> {
        let current = match &config.jwt_signing_key {
            Some(pem) => SigningKey::from_pem(pem.expose_secret())
                .map_err(|e| anyhow::anyhow!("SHOP_AUTH__JWT_SIGNING_KEY: {e}"))?,
            None => load_or_generate(store).await?,
        };
        let mut keys = vec![current.public_jwk()];
        for (i, prev) in config.jwt_previous_keys.iter().enumerate() {
            let jwk = parse_public(prev.expose_secret())
                .map_err(|e| anyhow::anyhow!("SHOP_AUTH__JWT_PREVIOUS_KEYS[{i}]: {e}"))?;
            let kid = jwk.common.key_id.clone();
            if !keys.iter().any(|k| k.common.key_id == kid) {
                keys.push(jwk);
            }
        }
        Ok(Self::from_parts(current, keys))
    }

    pub fn from_parts(current: SigningKey, keys: Vec<Jwk>) -> Self {
        let jwks = JwkSet { keys };
        let source: Arc<dyn JwksSource> = Arc::new(StaticJwks(jwks.clone()));
        KeyRing { current, jwks, source }
    }

    pub fn source(&self) -> Arc<dyn JwksSource> {
        self.source.clone()
    }
}

async fn load_or_generate(store: &Store) -> anyhow::Result<SigningKey> {
    if let Some(pem) = store.newest_signing_key().await? {
        return SigningKey::from_pem(&pem).map_err(|e| anyhow::anyhow!("stored signing key: {e}"));
    }
    let key = SigningKey::generate();
    store.insert_signing_key(key.kid(), &key.to_pem()).await?;
    // Two instances starting at once on an empty database: both insert, the newest wins for
    // both on the next read; re-read so this process agrees with the database.
    let pem = store.newest_signing_key().await?.ok_or_else(|| anyhow::anyhow!("signing key vanished"))?;
    let key = SigningKey::from_pem(&pem).map_err(|e| anyhow::anyhow!("stored signing key: {e}"))?;
    tracing::info!(
        kid = key.kid(),
        "generated and persisted a new signing key (no SHOP_AUTH__JWT_SIGNING_KEY set)"
    );
    Ok(key)
}

/// The public JWK of a previous key given as a private PKCS#8 PEM, a public SPKI PEM or a JWK.
pub fn parse_public(text: &str) -> Result<Jwk, String> {
    let text = text.trim();
    if text.starts_with('{') {
        let mut jwk: Jwk = serde_json::from_str(text).map_err(|e| format!("not a JWK: {e}"))?;
        let AlgorithmParameters::OctetKeyPair(p) = &jwk.algorithm else {
            return Err("only Ed25519 (OKP) keys are supported".into());
        };
        if p.curve != EllipticCurve::Ed25519 {
            return Err("only Ed25519 (OKP) keys are supported".into());
        }
        let bytes = URL_SAFE_NO_PAD.decode(&p.x).map_err(|e| format!("bad `x`: {e}"))?;
        if bytes.len() != 32 {
            return Err("bad `x`: expected 32 bytes".into());
        }
        if jwk.common.key_id.is_none() {
            jwk.common.key_id = Some(kit::auth::ed25519_kid(&p.x));
        }
        jwk.common.key_algorithm = Some(KeyAlgorithm::EdDSA);
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        Ok(jwk)
    } else if text.contains("PUBLIC KEY") {
        let key = ed25519_dalek::VerifyingKey::from_public_key_pem(text)
            .map_err(|e| format!("not an Ed25519 SPKI PEM public key: {e}"))?;
        Ok(kit::auth::ed25519_public_jwk(&key))
    } else {
        SigningKey::from_pem(text).map(|k| k.public_jwk())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePublicKey};

    #[test]
    fn parses_every_previous_key_form_to_the_same_jwk() {
        let k = SigningKey::generate();
        let from_private = parse_public(&k.to_pem()).unwrap();
        assert_eq!(from_private, k.public_jwk());

        let dalek = ed25519_dalek::SigningKey::from_pkcs8_pem(&k.to_pem()).unwrap();
        let spki = dalek.verifying_key().to_public_key_pem(Default::default()).unwrap();
        assert_eq!(parse_public(&spki).unwrap(), k.public_jwk(), "kid computed like the kit's");

        let json = serde_json::to_string(&k.public_jwk()).unwrap();
        assert_eq!(parse_public(&json).unwrap(), k.public_jwk());

        let mut no_kid = k.public_jwk();
        no_kid.common.key_id = None;
        let json = serde_json::to_string(&no_kid).unwrap();
        assert_eq!(parse_public(&json).unwrap().common.key_id.as_deref(), Some(k.kid()));

        assert!(parse_public("garbage").is_err());
        assert!(parse_public("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----").is_err());
        assert!(parse_public(r#"{"kty":"oct","k":"abc"}"#).is_err());
    }
}
