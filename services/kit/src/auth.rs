//! Access tokens: EdDSA (Ed25519) JWTs signed by the auth service, verified everywhere else
//! with public keys only (a JWKS). See `docs/adr/0003-access-tokens.md`.
//!
//! Verification accepts only the algorithm of the key named by the token's `kid` (never the
//! algorithm the token claims for itself), so `alg: none` and HMAC-confusion tokens fail; it
//! checks `exp`, `nbf`, `iss` and `aud`, and — with a [`Revocations`] cache — refuses tokens
//! issued before their user's "tokens valid after" instant (ADR 0016).
//!
//! The key set is cached for the `max-age` the JWKS answer carries (`Cache-Control`, clamped
//! to 10 s … 1 h; 5 min without one): a stale set keeps verifying while one background fetch
//! replaces it, so a key removed from the JWKS stops verifying within its `max-age`. An unknown
//! `kid` triggers at most one fetch per 10 s. Fetches run outside any lock that verifications of
//! known keys take, one at a time; failures are remembered with exponential backoff (1 s … 60 s),
//! during which unknown keys are refused at once instead of waiting for the auth service.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters,
    OctetKeyPairType, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use uuid::Uuid;

use crate::problem::{ApiError, ErrorCode};

mod revocation;
pub use revocation::{
    issued_at_ms, HttpRevocations, RevocationFeed, RevocationSource, Revocations, RevokedUser,
    REVOCATIONS_PATH,
};

/// Roles known to the platform.
pub mod roles {
    pub const CUSTOMER: &str = "customer";
    pub const ADMIN: &str = "admin";
    pub const VENDOR: &str = "vendor";
}

/// Claims of a platform access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Whether the user proved they own `email` (OIDC's `email_verified`). Absent is read as
    /// `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
    /// Token id.
    pub jti: Uuid,
}

/// The verified caller of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub user_id: Uuid,
    pub roles: Vec<String>,
    pub email: Option<String>,
    /// The token says the user verified their email address (`email_verified` claim).
    pub email_verified: bool,
}

impl Identity {
    pub fn is_admin(&self) -> bool {
        self.has_role(roles::ADMIN)
    }
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this operation requires the admin role"))
        }
    }
    /// The IDOR guard: a resource owned by someone else is reported as absent (404), unless
    /// the caller is an admin.
    pub fn can_see(&self, owner: Uuid) -> bool {
        self.user_id == owner || self.is_admin()
    }
}

impl From<Claims> for Identity {
    fn from(c: Claims) -> Self {
        Identity {
            user_id: c.sub,
            roles: c.roles,
            email: c.email,
            email_verified: c.email_verified.unwrap_or(false),
        }
    }
}

/// Why a token was refused. All map to 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued for another audience")]
    Audience,
    #[error("the token was issued by an unknown issuer")]
    Issuer,
    #[error("the token's claims are invalid")]
    Claims,
    #[error(
        "the token was revoked (signed out everywhere, password changed, roles changed or account disabled)"
    )]
    Revoked,
    /// The signing keys could not be fetched. The reason is for logs only: the public answer
    /// says nothing about where the keys live.
    #[error("the signing keys cannot be fetched: {0}")]
    KeysUnavailable(String),
}

impl TokenError {
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Missing => ErrorCode::TokenMissing,
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::Revoked => ErrorCode::TokenRevoked,
            TokenError::KeysUnavailable(_) => ErrorCode::ServiceUnavailable,
            _ => ErrorCode::TokenInvalid,
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        if let TokenError::KeysUnavailable(_) = e {
            // Generic on purpose: the reason (the JWKS URL, the transport error) is logged where
            // the fetch failed, never sent to clients.
            return ApiError::unavailable("access tokens cannot be verified right now; retry shortly")
                .header(header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        }
        let mut err = ApiError::unauthorized(e.to_string());
        err.code = e.code();
        err
    }
}

/// An Ed25519 signing key with its key id (RFC 7638 thumbprint of the public key).
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    kid: String,
    encoding: EncodingKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("key", &"[REDACTED]").finish()
    }
}

impl SigningKey {
    pub fn generate() -> Self {
        Self::from_dalek(ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng))
    }

    /// From a PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| format!("not an Ed25519 PKCS#8 PEM private key: {e}"))?;
        Ok(Self::from_dalek(key))
    }

    pub fn to_pem(&self) -> String {
        self.key
            .to_pkcs8_pem(Default::default())
            .map(|p| p.to_string())
            .expect("Ed25519 keys encode as PKCS#8")
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> Self {
        let kid = ed25519_kid(&URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()));
        let der = key.to_pkcs8_der().expect("Ed25519 keys encode as PKCS#8");
        let encoding = EncodingKey::from_ed_der(der.as_bytes());
        SigningKey { key, kid, encoding }
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWK (`kty: OKP`, `crv: Ed25519`, `alg: EdDSA`, `use: sig`).
    pub fn public_jwk(&self) -> Jwk {
        ed25519_public_jwk(&self.key.verifying_key())
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("EdDSA signing cannot fail")
    }
}

/// The key id of an Ed25519 public key: its RFC 7638 thumbprint (SHA-256 over the required
/// members in lexicographic order), from the base64url `x` coordinate.
pub fn ed25519_kid(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()))
}

/// An Ed25519 public key as a signing JWK with its thumbprint `kid`.
pub fn ed25519_public_jwk(key: &ed25519_dalek::VerifyingKey) -> Jwk {
    let x = URL_SAFE_NO_PAD.encode(key.to_bytes());
    Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::EdDSA),
            key_id: Some(ed25519_kid(&x)),
            ..Default::default()
        },
        algorithm: AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
            key_type: OctetKeyPairType::OctetKeyPair,
            curve: EllipticCurve::Ed25519,
            x,
        }),
    }
}

/// A fetched key set and how long it may be used before it is fetched again.
#[derive(Debug, Clone)]
pub struct FetchedKeys {
    pub keys: JwkSet,
    /// `Cache-Control: max-age` of the answer; `None`: [`DEFAULT_KEYS_MAX_AGE`].
    pub max_age: Option<Duration>,
}

/// Where a verifier gets its public keys.
#[async_trait::async_trait]
pub trait JwksSource: Send + Sync {
    async fn fetch(&self) -> Result<FetchedKeys, String>;
}

/// A fixed key set (in-process composition and tests).
pub struct StaticJwks(pub JwkSet);

#[async_trait::async_trait]
impl JwksSource for StaticJwks {
    async fn fetch(&self) -> Result<FetchedKeys, String> {
        Ok(FetchedKeys { keys: self.0.clone(), max_age: None })
    }
}

/// Keys fetched from a JWKS URL (`http://auth:8080/.well-known/jwks.json`).
pub struct HttpJwks {
    pub url: String,
    pub client: reqwest::Client,
}

/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);

#[async_trait::async_trait]
impl JwksSource for HttpJwks {
    async fn fetch(&self) -> Result<FetchedKeys, String> {
        let res = self
            .client
            .get(&self.url)
            .timeout(FETCH_TIMEOUT)
            .send()
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        if !res.status().is_success() {
            return Err(format!("GET {}: status {}", self.url, res.status()));
        }
        let max_age = res
            .headers()
            .get(header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(cache_control_max_age);
        let keys = res.json::<JwkSet>().await.map_err(|e| format!("GET {}: {e}", self.url))?;
        Ok(FetchedKeys { keys, max_age })
    }
}

/// The `max-age` of a `Cache-Control` value (`no-store`/`no-cache` count as 0).
pub fn cache_control_max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(n) = lower.strip_prefix("max-age=") {
            age = n.trim_matches('"').parse::<u64>().ok().map(Duration::from_secs);
        }
    }
    age
}

struct VerifierKey {
    alg: Algorithm,
    key: DecodingKey,
}

/// Minimum time between two fetches: refreshes caused by unknown key ids, and the shortest
/// `max-age` honoured.
pub const MIN_KEYS_REFRESH: Duration = Duration::from_secs(10);
/// The longest `max-age` honoured (a key removed from the JWKS is refused within this).
pub const MAX_KEYS_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long a key set without `Cache-Control: max-age` is used.
pub const DEFAULT_KEYS_MAX_AGE: Duration = Duration::from_secs(300);
/// Backoff after failed fetches: 1 s doubling to this.
const MAX_KEYS_BACKOFF: Duration = Duration::from_secs(60);

/// The cached key set. Guarded by a synchronous lock that is never held across an await.
#[derive(Default)]
struct KeyState {
    keys: HashMap<String, Arc<VerifierKey>>,
    /// A set was fetched at least once.
    loaded: bool,
    /// The set may be used without a refresh until then.
    fresh_until: Option<Instant>,
    /// Start of the last fetch (successful or not).
    last_attempt: Option<Instant>,
    /// Consecutive failed fetches, and when the next one may start.
    failures: u32,
    retry_at: Option<Instant>,
}

impl KeyState {
    fn in_backoff(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }
    fn recently_attempted(&self, now: Instant) -> bool {
        self.last_attempt.is_some_and(|t| now.duration_since(t) < MIN_KEYS_REFRESH)
    }
    /// No fetch now: in backoff after failures, or a successful fetch less than
    /// [`MIN_KEYS_REFRESH`] ago (after a failure, the backoff alone decides).
    fn hold_off(&self, now: Instant) -> bool {
        self.in_backoff(now) || (self.failures == 0 && self.recently_attempted(now))
    }
}

struct Inner {
    source: Arc<dyn JwksSource>,
    issuer: String,
    audience: String,
    keys: RwLock<KeyState>,
    /// Held while a fetch is in flight: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    revocations: Option<Arc<Revocations>>,
}

/// Verifies access tokens against a JWKS. Cheap to clone.
#[derive(Clone)]
pub struct Verifier(Arc<Inner>);

impl Verifier {
    pub fn new(source: Arc<dyn JwksSource>, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Verifier(Arc::new(Inner {
            source,
            issuer: issuer.into(),
            audience: audience.into(),
            keys: RwLock::new(KeyState::default()),
            fetching: tokio::sync::Mutex::new(()),
            revocations: None,
        }))
    }

    /// A verifier with the platform's default issuer and audience.
    pub fn with_defaults(source: Arc<dyn JwksSource>) -> Self {
        Self::new(source, crate::contract::DEFAULT_JWT_ISSUER, crate::contract::DEFAULT_JWT_AUDIENCE)
    }

    /// Also refuses tokens issued before their user's "valid after" instant.
    pub fn with_revocations(self, revocations: Arc<Revocations>) -> Self {
        let inner = Arc::try_unwrap(self.0).unwrap_or_else(|shared| Inner {
            source: shared.source.clone(),
            issuer: shared.issuer.clone(),
            audience: shared.audience.clone(),
            keys: RwLock::new(KeyState::default()),
            fetching: tokio::sync::Mutex::new(()),
            revocations: None,
        });
        Verifier(Arc::new(Inner { revocations: Some(revocations), ..inner }))
    }

    /// The revocation cache this verifier consults, if any.
    pub fn revocations(&self) -> Option<&Arc<Revocations>> {
        self.0.revocations.as_ref()
    }

    fn state(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.0.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, KeyState> {
        self.0.keys.write().unwrap_or_else(|p| p.into_inner())
    }

    async fn key(&self, kid: &str) -> Result<Arc<VerifierKey>, TokenError> {
        let now = Instant::now();
        {
            let state = self.state();
            if let Some(k) = state.keys.get(kid) {
                let stale = state.fresh_until.is_none_or(|t| now >= t);
                if stale && !state.hold_off(now) {
                    self.refresh_in_background();
                }
                return Ok(k.clone());
            }
            if let Some(refusal) = self.refusal(&state, now) {
                return Err(refusal);
            }
        }
        // An unknown key id: fetch (or wait for the fetch in flight), at most once per interval.
        let _guard = self.0.fetching.lock().await;
        {
            let state = self.state();
            if let Some(k) = state.keys.get(kid) {
                return Ok(k.clone());
            }
            if let Some(refusal) = self.refusal(&state, Instant::now()) {
                return Err(refusal);
            }
        }
        self.fetch_now().await;
        let state = self.state();
        match state.keys.get(kid) {
            Some(k) => Ok(k.clone()),
            None if state.loaded => Err(TokenError::UnknownKey),
            None => Err(TokenError::KeysUnavailable("no key set could be fetched yet".into())),
        }
    }

    /// Why an unknown key is refused without fetching: in backoff after failures, or fetched
    /// too recently.
    fn refusal(&self, state: &KeyState, now: Instant) -> Option<TokenError> {
        if state.hold_off(now) {
            Some(if state.loaded {
                TokenError::UnknownKey
            } else {
                TokenError::KeysUnavailable("the key set could not be fetched (backing off)".into())
            })
        } else {
            None
        }
    }

    /// Replaces a stale set in the background; verifications meanwhile use the stale set.
    fn refresh_in_background(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else { return };
        let this = self.clone();
        handle.spawn(async move {
            let Ok(_guard) = this.0.fetching.try_lock() else { return }; // one is in flight
            let now = Instant::now();
            {
                let state = this.state();
                let fresh = state.fresh_until.is_some_and(|t| now < t);
                if fresh || state.hold_off(now) {
                    return;
                }
            }
            this.fetch_now().await;
        });
    }

    /// Fetches the set (the caller holds `fetching`) and records the outcome.
    async fn fetch_now(&self) {
        let started = Instant::now();
        self.state_mut().last_attempt = Some(started);
        let result = self.0.source.fetch().await;
        let mut state = self.state_mut();
        match result {
            Ok(fetched) => {
                let age =
                    fetched.max_age.unwrap_or(DEFAULT_KEYS_MAX_AGE).clamp(MIN_KEYS_REFRESH, MAX_KEYS_MAX_AGE);
                state.keys = decoding_keys(&fetched.keys);
                state.loaded = true;
                state.fresh_until = Some(started + age);
                state.failures = 0;
                state.retry_at = None;
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let wait =
                    crate::backoff::exponential(Duration::from_secs(1), MAX_KEYS_BACKOFF, state.failures);
                state.retry_at = Some(Instant::now() + wait);
                tracing::warn!(error = %e, failures = state.failures, retry_in_ms = wait.as_millis() as u64,
                    "token signing keys could not be fetched; known keys stay in use");
            }
        }
    }

    /// Verifies a compact JWS and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithmName => TokenError::Algorithm,
            _ => TokenError::Malformed,
        })?;
        if !matches!(header.alg, Algorithm::EdDSA | Algorithm::RS256) {
            return Err(TokenError::Algorithm);
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = self.key(&kid).await?;
        if key.alg != header.alg {
            return Err(TokenError::Algorithm);
        }
        let mut v = Validation::new(key.alg);
        v.set_issuer(&[&self.0.issuer]);
        v.set_audience(&[&self.0.audience]);
        v.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = 30;
        let claims = jsonwebtoken::decode::<Claims>(token, &key.key, &v).map(|d| d.claims).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            match e.kind() {
                K::ExpiredSignature => TokenError::Expired,
                K::ImmatureSignature => TokenError::NotYetValid,
                K::InvalidAudience => TokenError::Audience,
                K::InvalidIssuer => TokenError::Issuer,
                K::InvalidSignature => TokenError::Signature,
                K::InvalidAlgorithm => TokenError::Algorithm,
                K::MissingRequiredClaim(_) | K::Json(_) => TokenError::Claims,
                _ => TokenError::Malformed,
            }
        })?;
        if let Some(revocations) = &self.0.revocations {
            if revocations.is_revoked(&claims) {
                return Err(TokenError::Revoked);
            }
        }
        Ok(claims)
    }

    /// Verifies the `Authorization: Bearer …` header of a request.
    pub async fn verify_headers(&self, headers: &axum::http::HeaderMap) -> Result<Claims, TokenError> {
        let token = bearer(headers).ok_or(TokenError::Missing)?;
        self.verify(token).await
    }
}

fn decoding_keys(set: &JwkSet) -> HashMap<String, Arc<VerifierKey>> {
    set.keys
        .iter()
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
                (AlgorithmParameters::OctetKeyPair(_), Some(KeyAlgorithm::EdDSA) | None) => Algorithm::EdDSA,
                (AlgorithmParameters::RSA(_), Some(KeyAlgorithm::RS256) | None) => Algorithm::RS256,
                _ => return None,
            };
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some((kid, Arc::new(VerifierKey { alg, key })))
        })
        .collect()
}

/// The bearer token of `Authorization: Bearer <token>`, if any.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim()).filter(|t| !t.is_empty())
}

/// Extracting an [`Identity`] requires a valid bearer token; services install their
/// [`Verifier`] as a request extension (`Extension(verifier)`).
impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(id) = parts.extensions.get::<Identity>() {
            return Ok(id.clone());
        }
        let verifier = parts
            .extensions
            .get::<Verifier>()
            .cloned()
            .ok_or_else(|| ApiError::internal("no token verifier installed on this router"))?;
        let claims = verifier.verify_headers(&parts.headers).await?;
        let id = Identity::from(claims);
        parts.extensions.insert(id.clone());
        Ok(id)
    }
}

/// An identity when a valid token is present, `None` when there is no token at all.
/// A token that is present but invalid is still refused.
#[derive(Debug, Clone)]
pub struct MaybeIdentity(pub Option<Identity>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeIdentity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if bearer(&parts.headers).is_none() {
            return Ok(MaybeIdentity(None));
        }
        Identity::from_request_parts(parts, state).await.map(|i| MaybeIdentity(Some(i)))
    }
}

/// Builds claims for `user` valid for `ttl` from now (used by the auth service and tests).
pub fn claims_for(user: Uuid, roles: &[&str], email: Option<&str>, ttl: Duration) -> Claims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Claims {
        sub: user,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        email: email.map(str::to_string),
        // Tests of other services act as verified customers; the auth service sets the truth.
        email_verified: Some(true),
        iss: crate::contract::DEFAULT_JWT_ISSUER.into(),
        aud: crate::contract::DEFAULT_JWT_AUDIENCE.into(),
        iat: now,
        nbf: Some(now),
        exp: now + ttl.as_secs() as i64,
        jti: Uuid::now_v7(),
    }
}

/// A signing key plus a verifier that trusts it: for tests of services that need tokens.
pub fn test_keys() -> (SigningKey, Verifier) {
    let key = SigningKey::generate();
    let set = JwkSet { keys: vec![key.public_jwk()] };
    (key.clone(), Verifier::with_defaults(Arc::new(StaticJwks(set))))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[tokio::test]
    async fn accepts_a_valid_token() {
        let (key, v) = test_keys();
        let user = Uuid::now_v7();
        let t = key.sign(&claims_for(user, &[roles::ADMIN], Some("a@example.com"), HOUR));
        let c = v.verify(&t).await.unwrap();
        assert_eq!(c.sub, user);
        assert!(Identity::from(c).is_admin());
    }

    #[tokio::test]
    async fn rejects_bad_tokens() {
        let (key, v) = test_keys();
        let user = Uuid::now_v7();
        let mut c = claims_for(user, &[roles::CUSTOMER], None, HOUR);
        c.exp = c.iat - 3600;
        assert_eq!(v.verify(&key.sign(&c)).await.unwrap_err(), TokenError::Expired);

        let mut c = claims_for(user, &[], None, HOUR);
        c.nbf = Some(c.iat + 3600);
        assert_eq!(v.verify(&key.sign(&c)).await.unwrap_err(), TokenError::NotYetValid);

        let mut c = claims_for(user, &[], None, HOUR);
        c.aud = "someone-else".into();
        assert_eq!(v.verify(&key.sign(&c)).await.unwrap_err(), TokenError::Audience);

        let mut c = claims_for(user, &[], None, HOUR);
        c.iss = "evil".into();
        assert_eq!(v.verify(&key.sign(&c)).await.unwrap_err(), TokenError::Issuer);

        // Signed by a key the verifier does not know.
        let other = SigningKey::generate();
        assert_eq!(
            v.verify(&other.sign(&claims_for(user, &[], None, HOUR))).await.unwrap_err(),
            TokenError::UnknownKey
        );

        // alg: none — same claims, no signature.
        let good = key.sign(&claims_for(user, &[roles::ADMIN], None, HOUR));
        let payload = good.split('.').nth(1).unwrap();
        let none_header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, key.kid()));
        let err = v.verify(&format!("{none_header}.{payload}.")).await.unwrap_err();
        assert!(matches!(err, TokenError::Algorithm | TokenError::Malformed), "{err:?}");

        // HMAC confusion: HS256 signed with the public key bytes as the secret.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(key.kid().to_string());
        let jwk = key.public_jwk();
        let AlgorithmParameters::OctetKeyPair(p) = &jwk.algorithm else { unreachable!() };
        let forged = jsonwebtoken::encode(
            &h,
            &claims_for(user, &[roles::ADMIN], None, HOUR),
            &EncodingKey::from_secret(p.x.as_bytes()),
        )
        .unwrap();
        assert_eq!(v.verify(&forged).await.unwrap_err(), TokenError::Algorithm);

        // Tampered payload.
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims_for(Uuid::now_v7(), &[roles::ADMIN], None, HOUR)).unwrap());
        parts[1] = &evil;
        assert_eq!(v.verify(&parts.join(".")).await.unwrap_err(), TokenError::Signature);

        assert_eq!(v.verify("not-a-token").await.unwrap_err(), TokenError::Malformed);
    }

    #[test]
    fn pem_round_trip_keeps_kid() {
        let k = SigningKey::generate();
        let again = SigningKey::from_pem(&k.to_pem()).unwrap();
        assert_eq!(k.kid(), again.kid());
        assert!(!format!("{k:?}").contains("BEGIN"));
        assert!(SigningKey::from_pem("garbage").is_err());
    }

    #[test]
    fn parses_bearer() {
        let mut h = axum::http::HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
