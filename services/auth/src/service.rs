//! The auth domain: registration, login, refresh-token rotation with reuse detection,
//! logout, and the admin operations. HTTP-independent; handlers translate.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kit::auth::{roles, JwksSource};
use kit::db::Db;
use kit::problem::{ApiError, ErrorCode, FieldError};
use rand::RngCore;
use sha2::Digest;
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::keys::KeyRing;
use crate::password::{self, Hasher};
use crate::store::{now, InsertUserError, NewRefresh, NewUser, Store, UserRow};
use crate::throttle::{retry_after_secs, SlidingWindow};

/// Roles an admin may assign.
pub const KNOWN_ROLES: [&str; 3] = [roles::CUSTOMER, roles::VENDOR, roles::ADMIN];

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AuthState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: AuthConfig,
    keys: KeyRing,
    hasher: Hasher,
    ip_attempts: SlidingWindow,
    account_failures: SlidingWindow,
}

/// A freshly issued token pair.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user: UserRow,
}

impl AuthState {
    /// Builds the state over a migrated database: parses the configured keys or loads (or
    /// generates and persists) the embedded-mode key, and prepares the password hasher.
    pub async fn new(db: Db, config: AuthConfig) -> anyhow::Result<Self> {
        let store = Store::new(db);
        let keys = KeyRing::load(&config, &store).await?;
        let hasher = Hasher::new(&config)?;
        tracing::info!(
            kid = keys.current.kid(),
            published = keys.jwks.keys.len(),
            "auth signing keys loaded"
        );
        let ip_attempts = SlidingWindow::new(
            config.login_max_attempts_per_ip,
            Duration::from_secs(config.login_ip_window_secs),
        );
        let account_failures = SlidingWindow::new(
            config.login_max_failures_per_account,
            Duration::from_secs(config.login_account_window_secs),
        );
        Ok(AuthState {
            inner: Arc::new(Inner { store, config, keys, hasher, ip_attempts, account_failures }),
        })
    }

    /// The public keys, for verifiers in the same process (no HTTP round trip).
    pub fn jwks_source(&self) -> Arc<dyn JwksSource> {
        self.inner.keys.source()
    }

    /// The published key set (`/.well-known/jwks.json`).
    pub fn jwks(&self) -> &jsonwebtoken::jwk::JwkSet {
        &self.inner.keys.jwks
    }

    /// Key id of the key that signs new tokens.
    pub fn current_kid(&self) -> &str {
        self.inner.keys.current.kid()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn config(&self) -> &AuthConfig {
        &self.inner.config
    }

    // ------------------------------------------------------------------ register / login

    pub async fn register(
        &self,
        email: &str,
        password: &str,
        first_name: Option<String>,
        last_name: Option<String>,
        ip: Option<&str>,
    ) -> Result<Issued, ApiError> {
        // Registration hashes a password too: it spends the same per-IP budget as logins.
        if let Some(ip) = ip {
            self.inner.ip_attempts.hit(ip).map_err(throttled)?;
        }
        let mut errors = Vec::new();
        if let Err(m) = validate_email(email) {
            errors.push(FieldError { field: "email".into(), message: m.into() });
        }
        let email = normalize_email(email);
        errors.extend(password::policy_errors("password", password));
        let first_name = clean_name("firstName", first_name, &mut errors);
        let last_name = clean_name("lastName", last_name, &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::invalid_fields(errors));
        }
        let hash = self.inner.hasher.hash(password.to_string()).await.map_err(ApiError::internal)?;
        let new = NewUser {
            email,
            password_hash: hash,
            first_name,
            last_name,
            roles: vec![roles::CUSTOMER.into()],
        };
        let user = match self.inner.store.insert_user(&new).await {
            Ok(u) => u,
            Err(InsertUserError::EmailTaken) => {
                return Err(ApiError::conflict(
                    ErrorCode::EmailTaken,
                    "an account with this email already exists",
                )
                .field("email", "is already registered"))
            }
            Err(InsertUserError::Db(e)) => return Err(e.into()),
        };
        tracing::info!(user_id = %user.id, "user registered");
        self.issue(user, Uuid::now_v7()).await
    }

    /// Verifies credentials. `ip` is the client address used for per-IP throttling.
    pub async fn login(&self, email: &str, password: &str, ip: Option<&str>) -> Result<Issued, ApiError> {
        let email = normalize_email(email);
        if let Some(ip) = ip {
            self.inner.ip_attempts.hit(ip).map_err(throttled)?;
        }
        let account_key = format!("account:{email}");
        self.inner.account_failures.check(&account_key).map_err(throttled)?;

        let user = if email.is_empty() { None } else { self.inner.store.user_by_email(&email).await? };
        // Over-long passwords never match (registration refuses them) and are not hashed.
        let ok = if password.chars().count() > password::MAX_LEN {
            false
        } else {
            // Always run argon2, against a dummy hash for unknown accounts (no timing oracle).
            let hash = user.as_ref().map(|u| u.password_hash.clone());
            self.inner.hasher.verify(password.to_string(), hash).await
        };
        let user = match (ok, user) {
            (true, Some(user)) => user,
            _ => {
                self.inner.account_failures.record(&account_key);
                return Err(invalid_credentials());
            }
        };
        if user.disabled {
            return Err(account_disabled());
        }
        self.inner.account_failures.clear(&account_key);
        self.issue(user, Uuid::now_v7()).await
    }

    // ------------------------------------------------------------------ refresh / logout

    /// Exchanges a refresh token for a new pair (single use; reuse revokes the family).
    pub async fn refresh(&self, token: &str) -> Result<Issued, ApiError> {
        let store = &self.inner.store;
        let row = store.refresh_by_hash(&hash_token(token)).await?.ok_or_else(invalid_refresh)?;
        if row.used_at.is_some() {
            return Err(self.reused(row.family_id, row.user_id).await);
        }
        if row.revoked_at.is_some() {
            return Err(invalid_refresh().detail("the refresh token has been revoked"));
        }
        let t = now();
        if row.expires_at <= t {
            return Err(refresh_problem(ErrorCode::RefreshTokenExpired, "the refresh token has expired"));
        }
        let Some(user) = store.user_by_id(row.user_id).await? else {
            return Err(invalid_refresh());
        };
        if user.disabled {
            store.revoke_family(row.family_id).await?;
            return Err(account_disabled());
        }
        let (token, next) = self.new_refresh(user.id, row.family_id);
        if !store.rotate_refresh(row.id, &next).await? {
            // Lost a race with a concurrent refresh of the same token (or it was revoked
            // meanwhile): both mean this token was presented twice.
            return Err(self.reused(row.family_id, row.user_id).await);
        }
        Ok(Issued {
            access_token: self.access_token(&user),
            refresh_token: token,
            expires_in: self.inner.config.access_token_ttl_secs,
            user,
        })
    }

    async fn reused(&self, family: Uuid, user: Uuid) -> ApiError {
        match self.inner.store.revoke_family(family).await {
            Ok(n) => {
                tracing::warn!(%user, %family, revoked = n, "refresh token reuse detected; family revoked")
            }
            Err(e) => return e.into(),
        }
        refresh_problem(
            ErrorCode::RefreshTokenReused,
            "the refresh token was already used; all tokens of its session are revoked",
        )
    }

    /// Revokes the family of `token`. Unknown or already revoked tokens are accepted
    /// (idempotent). When `caller` is known it must own the token.
    pub async fn logout(&self, token: &str, caller: Option<Uuid>) -> Result<(), ApiError> {
        let Some(row) = self.inner.store.refresh_by_hash(&hash_token(token)).await? else {
            return Ok(());
        };
        if caller.is_some_and(|c| c != row.user_id) {
            return Err(ApiError::forbidden("the refresh token belongs to another user"));
        }
        self.inner.store.revoke_family(row.family_id).await?;
        Ok(())
    }

    // ------------------------------------------------------------------ admin

    pub async fn set_roles(&self, actor: Uuid, id: Uuid, requested: &[String]) -> Result<UserRow, ApiError> {
        let mut roles: Vec<String> = Vec::new();
        let mut errors = Vec::new();
        for (i, r) in requested.iter().enumerate() {
            if !KNOWN_ROLES.contains(&r.as_str()) {
                errors.push(FieldError {
                    field: format!("roles[{i}]"),
                    message: format!("unknown role `{r}` (known: {})", KNOWN_ROLES.join(", ")),
                });
            } else if !roles.contains(r) {
                roles.push(r.clone());
            }
        }
        if requested.is_empty() {
            errors.push(FieldError { field: "roles".into(), message: "must name at least one role".into() });
        }
        if !errors.is_empty() {
            return Err(ApiError::invalid_fields(errors));
        }
        if actor == id && !roles.iter().any(|r| r == roles::ADMIN) {
            return Err(ApiError::conflict(
                ErrorCode::CannotDemoteSelf,
                "an admin cannot remove their own admin role",
            ));
        }
        self.inner.store.set_roles(id, &roles).await?.ok_or_else(|| user_not_found(id))
    }

    pub async fn set_disabled(&self, actor: Uuid, id: Uuid, disabled: bool) -> Result<UserRow, ApiError> {
        if disabled && actor == id {
            return Err(ApiError::conflict(
                ErrorCode::CannotDisableSelf,
                "an admin cannot disable their own account",
            ));
        }
        let user = self.inner.store.set_disabled(id, disabled).await?.ok_or_else(|| user_not_found(id))?;
        tracing::info!(user_id = %id, disabled, "user account status changed");
        Ok(user)
    }

    // ------------------------------------------------------------------ tokens

    async fn issue(&self, user: UserRow, family: Uuid) -> Result<Issued, ApiError> {
        let (token, row) = self.new_refresh(user.id, family);
        self.inner.store.insert_refresh(&row).await?;
        Ok(Issued {
            access_token: self.access_token(&user),
            refresh_token: token,
            expires_in: self.inner.config.access_token_ttl_secs,
            user,
        })
    }

    fn new_refresh(&self, user: Uuid, family: Uuid) -> (String, NewRefresh) {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let t = now();
        let row = NewRefresh {
            id: Uuid::now_v7(),
            user_id: user,
            family_id: family,
            token_hash: hash_token(&token),
            created_at: t,
            expires_at: t + Duration::from_secs(self.inner.config.refresh_token_ttl_secs),
        };
        (token, row)
    }

    /// Signs an access token for `user` with the current key.
    pub fn access_token(&self, user: &UserRow) -> String {
        let cfg = &self.inner.config;
        let roles = user.roles();
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        let mut claims = kit::auth::claims_for(
            user.id,
            &roles,
            Some(&user.email),
            Duration::from_secs(cfg.access_token_ttl_secs),
        );
        claims.iss = cfg.issuer.clone();
        claims.aud = cfg.audience.clone();
        self.inner.keys.current.sign(&claims)
    }
}

/// Trims and lower-cases an email address.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Longest email address accepted, in characters, as sent (surrounding whitespace included).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest local part (before the `@`), in characters.
pub const MAX_EMAIL_LOCAL_LEN: usize = 64;
/// Longest first or last name, in characters, as sent.
pub const MAX_NAME_LEN: usize = 100;

/// The email rule as a JSON Schema pattern (what [`validate_email`] checks): surrounding
/// whitespace (trimmed), then a local part of 1–64 characters, `@`, and a domain with a dot
/// that neither starts nor ends it; no whitespace, control character or second `@` inside.
pub const EMAIL_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
    r"[^@\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{1,64}@",
    r"[^@.\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[^@\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*\.",
    r"[^@\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
    r"[^@.\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
    r"[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
);

/// A deliberately simple syntactic check of an address as sent (the address is not verified
/// by mail): at most 254 characters; once trimmed, a local part of 1–64 characters, `@`, a
/// domain containing a dot that neither starts nor ends it, no whitespace or control
/// characters and one `@` ([`EMAIL_PATTERN`]).
pub fn validate_email(raw: &str) -> Result<(), &'static str> {
    let email = raw.trim();
    if email.is_empty() {
        return Err("is required");
    }
    if raw.chars().count() > MAX_EMAIL_LEN {
        return Err("must be at most 254 characters long");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return Err("is not a valid email address");
    };
    let valid = !local.is_empty()
        && local.chars().count() <= MAX_EMAIL_LOCAL_LEN
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !local.contains('@');
    if valid {
        Ok(())
    } else {
        Err("is not a valid email address")
    }
}

fn clean_name(field: &str, name: Option<String>, errors: &mut Vec<FieldError>) -> Option<String> {
    let name = name?;
    if name.chars().count() > MAX_NAME_LEN {
        errors
            .push(FieldError { field: field.into(), message: "must be at most 100 characters long".into() });
    }
    if name.chars().any(char::is_control) {
        errors
            .push(FieldError { field: field.into(), message: "must not contain control characters".into() });
    }
    Some(name.trim().to_string()).filter(|n| !n.is_empty())
}

/// Hex SHA-256 of a refresh token (what the database stores).
pub fn hash_token(token: &str) -> String {
    let digest = sha2::Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn invalid_credentials() -> ApiError {
    ApiError::new(ErrorCode::InvalidCredentials).detail("the email or password is incorrect")
}

fn account_disabled() -> ApiError {
    ApiError::new(ErrorCode::AccountDisabled).detail("this account is disabled")
}

fn refresh_problem(code: ErrorCode, detail: &str) -> ApiError {
    ApiError::new(code).detail(detail)
}

fn invalid_refresh() -> ApiError {
    refresh_problem(ErrorCode::InvalidRefreshToken, "the refresh token is unknown or no longer valid")
}

fn user_not_found(id: Uuid) -> ApiError {
    ApiError::not_found(format!("no user with id {id}"))
}

fn throttled(wait: Duration) -> ApiError {
    let secs = retry_after_secs(wait);
    ApiError::new(ErrorCode::TooManyRequests)
        .detail(format!("too many login attempts; retry in {secs} s"))
        .header(header::RETRY_AFTER, HeaderValue::from(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(normalize_email("  Ada@Example.COM "), "ada@example.com");
        assert!(validate_email("ada@example.com").is_ok());
        assert!(validate_email("  Ada@Example.COM ").is_ok());
        for bad in [
            "",
            " ",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "a da@example.com",
            "ada@.com",
            "a@b@c.com",
            "ada@example.com.",
            "a\u{1}a@example.com",
        ] {
            assert!(validate_email(bad).is_err(), "{bad}");
        }
        assert!(validate_email(&format!("{}@example.com", "a".repeat(65))).is_err());
        assert!(validate_email(&format!("{}@example.com", "é".repeat(64))).is_ok(), "characters, not bytes");
        assert!(validate_email(&format!("{}a@example.com", " ".repeat(242))).is_err(), "the length as sent");
        assert!(
            validate_email(&format!("{}a@example.com", " ".repeat(241))).is_ok(),
            "254 characters as sent"
        );
    }

    #[test]
    fn token_hash_is_hex_sha256() {
        assert_eq!(hash_token("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
