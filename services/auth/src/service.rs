//! The auth domain: registration, login, refresh-token rotation with reuse detection, logout,
//! self-service (password change and reset, email verification, signing out everywhere),
//! revocation and the admin operations. HTTP-independent; handlers translate.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use kit::auth::{roles, JwksSource, RevocationFeed, RevocationSource, Revocations, RevokedUser};
use kit::db::Db;
use kit::problem::{ApiError, ErrorCode, FieldError};
use rand::RngCore;
use sha2::Digest;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::config::AuthConfig;
use crate::keys::KeyRing;
use crate::mail::{self, MailKind, Mailer, SecurityMail};
use crate::password::{self, Busy, Hasher};
use crate::store::{
    epoch_ms, now, InsertUserError, NewAccountToken, NewRefresh, NewUser, Rotation, Store, TokenPurpose,
    UserRow,
};
use crate::throttle::{retry_after_secs, DelayPolicy, FailureDelay, RedisFailures, SlidingWindow};

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
    /// Failures per (account, client address) and per account.
    pair_failures: FailureDelay,
    account_failures: FailureDelay,
    pair_policy: DelayPolicy,
    account_policy: DelayPolicy,
    /// The failure counters in Redis, when configured (shared by every replica).
    shared_failures: Option<RedisFailures>,
    /// Security emails per address (reset, verification, "already registered" notices).
    mails_per_address: SlidingWindow,
    mailer: Arc<dyn Mailer>,
    revocations: Arc<Revocations>,
}

/// A freshly issued token pair.
#[derive(Debug, Clone)]
pub struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub user: UserRow,
}

/// The revocation feed read straight from the auth database (the auth service's own process).
struct DbRevocations {
    store: Store,
    window_ms: i64,
}

#[async_trait::async_trait]
impl RevocationSource for DbRevocations {
    async fn fetch(&self, since_ms: Option<i64>) -> Result<RevocationFeed, String> {
        feed(&self.store, self.window_ms, since_ms).await.map_err(|e| e.to_string())
    }
}

/// The revocation feed: instants set after `since_ms`, never older than the window.
async fn feed(store: &Store, window_ms: i64, since_ms: Option<i64>) -> Result<RevocationFeed, sqlx::Error> {
    let as_of = epoch_ms(now());
    let floor = as_of.saturating_sub(window_ms);
    let since = since_ms.map_or(floor, |s| s.max(floor));
    let entries = store
        .revocations_since(since)
        .await?
        .into_iter()
        .map(|(user_id, valid_after)| RevokedUser { user_id, valid_after })
        .collect();
    Ok(RevocationFeed { as_of, window_ms, entries })
}

impl AuthState {
    /// Builds the state over a migrated database: parses the configured keys or loads (or
    /// generates and persists) the embedded-mode key, and prepares the password hasher. Security
    /// emails are not sent (see [`AuthState::with_mailer`]); failure counters stay in this
    /// process (see [`AuthState::connect`]).
    pub async fn new(db: Db, config: AuthConfig) -> anyhow::Result<Self> {
        Self::build(db, config, Arc::new(mail::NoMailer), None).await
    }

    /// [`AuthState::new`] with a mailer, and the failure counters in Redis when the
    /// configuration names one (connected now: an unreachable Redis fails the start).
    pub async fn connect(db: Db, config: AuthConfig, mailer: Arc<dyn Mailer>) -> anyhow::Result<Self> {
        let shared = match &config.redis_url {
            Some(url) => {
                Some(connect_redis(url, config.redis_ca_file.as_deref(), &config.redis_prefix).await?)
            }
            None => None,
        };
        Self::build(db, config, mailer, shared).await
    }

    async fn build(
        db: Db,
        config: AuthConfig,
        mailer: Arc<dyn Mailer>,
        shared_failures: Option<RedisFailures>,
    ) -> anyhow::Result<Self> {
        let store = Store::new(db);
        let keys = KeyRing::load(&config, &store).await?;
        let hasher = Hasher::new(&config)?;
        tracing::info!(
            kid = keys.current.kid(),
            published = keys.jwks.keys.len(),
            argon2_permits = hasher.permits(),
            argon2_memory_bound_mib = hasher.memory_bound_bytes() / (1024 * 1024),
            shared_failures = shared_failures.is_some(),
            "auth signing keys loaded"
        );
        let max_keys = config.login_throttle_max_keys.max(2);
        let ip_attempts = SlidingWindow::new(
            config.login_max_attempts_per_ip,
            Duration::from_secs(config.login_ip_window_secs),
            max_keys,
        );
        let window = Duration::from_secs(config.login_failure_window_secs.max(1));
        let base = Duration::from_millis(config.login_delay_base_ms.max(1));
        let pair_policy = DelayPolicy {
            free: config.login_free_failures,
            base,
            max: Duration::from_secs(config.login_delay_max_secs),
            window,
        };
        let account_policy = DelayPolicy {
            free: config.login_account_free_failures,
            base,
            max: Duration::from_secs(config.login_account_delay_max_secs),
            window,
        };
        let mails_per_address =
            SlidingWindow::new(config.mails_per_address_per_hour, Duration::from_secs(3600), max_keys);
        let revocations = Revocations::new(Arc::new(DbRevocations {
            store: store.clone(),
            window_ms: config.revocation_window_ms(),
        }));
        Ok(AuthState {
            inner: Arc::new(Inner {
                pair_failures: FailureDelay::new(pair_policy, max_keys),
                account_failures: FailureDelay::new(account_policy, max_keys),
                pair_policy,
                account_policy,
                shared_failures,
                store,
                config,
                keys,
                hasher,
                ip_attempts,
                mails_per_address,
                mailer,
                revocations,
            }),
        })
    }

    /// The public keys, for verifiers in the same process (no HTTP round trip).
    pub fn jwks_source(&self) -> Arc<dyn JwksSource> {
        self.inner.keys.source()
    }

    /// The revocation cache this service writes as it revokes (and pulls from its database);
    /// verifiers in the same process read it.
    pub fn revocations(&self) -> Arc<Revocations> {
        self.inner.revocations.clone()
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

    pub fn hasher(&self) -> &Hasher {
        &self.inner.hasher
    }

    /// The revocation feed (`GET /internal/v1/revocations`).
    pub async fn revocation_feed(&self, since_ms: Option<i64>) -> Result<RevocationFeed, ApiError> {
        Ok(feed(&self.inner.store, self.inner.config.revocation_window_ms(), since_ms).await?)
    }

    // ------------------------------------------------------------------ register / login

    /// Creates an unverified account and mails a verification link — or, when the address
    /// already has an account, mails its owner instead. The caller cannot tell which: the same
    /// answer, the same work (one argon2 hash, one insert attempt) and the mail sent later.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        first_name: Option<String>,
        last_name: Option<String>,
        ip: Option<&str>,
    ) -> Result<(), ApiError> {
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
        let hash = self.hash_password(password).await?;
        let new = NewUser {
            email: email.clone(),
            password_hash: hash,
            first_name: first_name.clone(),
            last_name,
            roles: vec![roles::CUSTOMER.into()],
            email_verified: false,
        };
        match self.inner.store.insert_user(&new).await {
            Ok(user) => {
                tracing::info!(user_id = %user.id, "user registered (unverified)");
                self.mail_verification_later(user);
            }
            Err(InsertUserError::EmailTaken) => {
                tracing::info!("registration for an address that has an account; its owner is told");
                if self.mail_allowed(&email) {
                    mail::send_later(
                        &self.inner.mailer,
                        SecurityMail {
                            id: Uuid::now_v7(),
                            kind: MailKind::AccountExists,
                            user_id: None,
                            recipient: email,
                            name: None,
                            token: None,
                            expires_at: None,
                        },
                    );
                }
            }
            Err(InsertUserError::Db(e)) => return Err(e.into()),
        }
        Ok(())
    }

    /// The argon2id hash of `password`, on the bounded hashing threads (503 while they are full).
    async fn hash_password(&self, password: &str) -> Result<String, ApiError> {
        self.inner.hasher.hash(password.to_string()).await.map_err(busy)?.map_err(ApiError::internal)
    }

    /// Verifies credentials. `ip` is the client address used for throttling.
    pub async fn login(&self, email: &str, password: &str, ip: Option<&str>) -> Result<Issued, ApiError> {
        let email = normalize_email(email);
        if let Some(ip) = ip {
            self.inner.ip_attempts.hit(ip).map_err(throttled)?;
        }
        let user = self.check_password(&email, password, ip).await?;
        if user.disabled {
            return Err(account_disabled());
        }
        if self.inner.config.login_requires_verified_email && !user.email_verified() {
            // The same answer as a wrong password (no enumeration through a register-then-login
            // probe); the owner, who typed the right password, gets a new link.
            self.mail_verification_later(user);
            return Err(invalid_credentials());
        }
        self.issue(user, Uuid::now_v7(), now()).await
    }

    /// The throttled password check of login and password change: waits imposed on the
    /// (account, address) pair and on the account, argon2 always (against a dummy hash for
    /// unknown accounts), failures recorded, cleared on success.
    async fn check_password(
        &self,
        email: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<UserRow, ApiError> {
        let pair_key = format!("pair:{email}\u{0}{}", ip.unwrap_or("-"));
        let account_key = format!("account:{email}");
        self.failure_check(&pair_key, &account_key).await?;
        let user = if email.is_empty() { None } else { self.inner.store.user_by_email(email).await? };
        // Over-long passwords never match (registration refuses them) and are not hashed.
        let ok = if password.chars().count() > password::MAX_LEN {
            false
        } else {
            let hash = user.as_ref().map(|u| u.password_hash.clone());
            self.inner.hasher.verify(password.to_string(), hash).await.map_err(busy)?
        };
        match (ok, user) {
            (true, Some(user)) => {
                self.failure_clear(&pair_key).await;
                Ok(user)
            }
            _ => {
                self.failure_record(&pair_key, &account_key).await;
                Err(invalid_credentials())
            }
        }
    }

    async fn failure_check(&self, pair_key: &str, account_key: &str) -> Result<(), ApiError> {
        let i = &self.inner;
        if let Some(shared) = &i.shared_failures {
            let pair = shared.check(pair_key, &i.pair_policy).await;
            let account = shared.check(account_key, &i.account_policy).await;
            match (pair, account) {
                (Ok(p), Ok(a)) => return p.and(a).map_err(throttled),
                (Err(e), _) | (_, Err(e)) => redis_fallback(&e),
            }
        }
        i.pair_failures.check(pair_key).and(i.account_failures.check(account_key)).map_err(throttled)
    }

    async fn failure_record(&self, pair_key: &str, account_key: &str) {
        let i = &self.inner;
        if let Some(shared) = &i.shared_failures {
            let pair = shared.record(pair_key, &i.pair_policy).await;
            let account = shared.record(account_key, &i.account_policy).await;
            match pair.and(account) {
                Ok(()) => return,
                Err(e) => redis_fallback(&e),
            }
        }
        i.pair_failures.record(pair_key);
        i.account_failures.record(account_key);
    }

    async fn failure_clear(&self, pair_key: &str) {
        if let Some(shared) = &self.inner.shared_failures {
            if let Err(e) = shared.clear(pair_key).await {
                redis_fallback(&e);
            }
        }
        self.inner.pair_failures.clear(pair_key);
    }

    // ------------------------------------------------------------------ refresh / logout

    /// Exchanges a refresh token for a new pair (single use; reuse revokes the family; never
    /// beyond the session's absolute lifetime).
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
        let session_end = row.session_start() + self.session_max();
        if session_end <= t {
            store.revoke_family(row.user_id, row.family_id).await?;
            return Err(refresh_problem(
                ErrorCode::SessionExpired,
                "the session reached its maximum lifetime; sign in again",
            ));
        }
        let Some(user) = store.user_by_id(row.user_id).await? else {
            return Err(invalid_refresh());
        };
        if user.disabled {
            store.revoke_family(user.id, row.family_id).await?;
            return Err(account_disabled());
        }
        let (token, next) = self.new_refresh(user.id, row.family_id, row.session_start());
        match store.rotate_refresh(row.id, &next).await? {
            Rotation::Rotated => {}
            // Lost a race with a concurrent refresh of the same token, or revoked meanwhile:
            // both mean this token was presented twice or is no longer valid.
            Rotation::Lost => return Err(self.reused(row.family_id, row.user_id).await),
            Rotation::Disabled => return Err(account_disabled()),
        }
        Ok(Issued {
            access_token: self.access_token(&user),
            refresh_token: token,
            expires_in: self.inner.config.access_token_ttl_secs,
            user,
        })
    }

    fn session_max(&self) -> Duration {
        Duration::from_secs(self.inner.config.session_max_lifetime_secs.max(1))
    }

    async fn reused(&self, family: Uuid, user: Uuid) -> ApiError {
        match self.inner.store.revoke_family(user, family).await {
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
        self.inner.store.revoke_family(row.user_id, row.family_id).await?;
        Ok(())
    }

    /// Signs the user out everywhere: every refresh token revoked, every access token refused
    /// within seconds wherever it is verified.
    pub async fn logout_everywhere(&self, user: Uuid) -> Result<(), ApiError> {
        let at = epoch_ms(now());
        self.inner
            .store
            .revoke_sessions(user, at, None, None, false)
            .await?
            .ok_or_else(|| user_not_found(user))?;
        self.inner.revocations.record(user, at);
        tracing::info!(user_id = %user, "signed out everywhere");
        Ok(())
    }

    // ------------------------------------------------------------------ self-service

    /// Changes the caller's password (the current one is checked with the same throttles and
    /// answers as a login) and signs out every session; the answer is a new pair for this one.
    pub async fn change_password(
        &self,
        user_id: Uuid,
        current: &str,
        new_password: &str,
        ip: Option<&str>,
    ) -> Result<Issued, ApiError> {
        if let Some(ip) = ip {
            self.inner.ip_attempts.hit(ip).map_err(throttled)?;
        }
        let errors = password::policy_errors("newPassword", new_password);
        if !errors.is_empty() {
            return Err(ApiError::invalid_fields(errors));
        }
        let me = self.inner.store.user_by_id(user_id).await?.ok_or_else(|| user_not_found(user_id))?;
        let user = self.check_password(&me.email, current, ip).await?;
        if user.disabled {
            return Err(account_disabled());
        }
        if current == new_password {
            return Err(ApiError::invalid_fields(vec![FieldError {
                field: "newPassword".into(),
                message: "must differ from the current password".into(),
            }]));
        }
        let hash = self.hash_password(new_password).await?;
        let t = now();
        let at = epoch_ms(t);
        let user = self
            .inner
            .store
            .revoke_sessions(user.id, at, None, Some(&hash), false)
            .await?
            .ok_or_else(|| user_not_found(user_id))?;
        self.inner.revocations.record(user.id, at);
        tracing::info!(user_id = %user.id, "password changed; every other session signed out");
        self.notice_later(&user, MailKind::PasswordChanged);
        // Issued after the instant: `issue` waits for a later millisecond.
        self.issue(user, Uuid::now_v7(), now()).await
    }

    /// Starts a password reset: when the address has an enabled account, a single-use link
    /// valid `password_reset_ttl_secs` is mailed to it. The answer is the same either way and
    /// comes before any of that work.
    pub fn request_password_reset(&self, email: &str, ip: Option<&str>) -> Result<(), ApiError> {
        if let Some(ip) = ip {
            self.inner.ip_attempts.hit(ip).map_err(throttled)?;
        }
        let email = normalize_email(email);
        if let Err(m) = validate_email(&email) {
            return Err(ApiError::invalid_fields(vec![FieldError {
                field: "email".into(),
                message: m.into(),
            }]));
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.mail_reset(&email).await {
                tracing::error!(error = %e, "password reset mail failed");
            }
        });
        Ok(())
    }

    async fn mail_reset(&self, email: &str) -> Result<(), ApiError> {
        let Some(user) = self.inner.store.user_by_email(email).await? else { return Ok(()) };
        if user.disabled || !self.mail_allowed(email) {
            return Ok(());
        }
        let ttl = Duration::from_secs(self.inner.config.password_reset_ttl_secs.max(60));
        let (token, expires_at) = self.new_account_token(user.id, TokenPurpose::PasswordReset, ttl).await?;
        mail::send_later(
            &self.inner.mailer,
            SecurityMail {
                id: Uuid::now_v7(),
                kind: MailKind::PasswordReset,
                user_id: Some(user.id),
                recipient: user.email.clone(),
                name: user.first_name.clone(),
                token: Some(token),
                expires_at: Some(expires_at),
            },
        );
        Ok(())
    }

    /// Sets a new password with a mailed reset token: the token is used up, every session
    /// signed out, the address counts as verified (the mail reached its owner).
    pub async fn confirm_password_reset(
        &self,
        token: &str,
        new_password: &str,
        ip: Option<&str>,
    ) -> Result<(), ApiError> {
        if let Some(ip) = ip {
            self.inner.ip_attempts.hit(ip).map_err(throttled)?;
        }
        let errors = password::policy_errors("newPassword", new_password);
        if !errors.is_empty() {
            return Err(ApiError::invalid_fields(errors));
        }
        // Hash first: a bad token costs the same as a good one.
        let hash = self.hash_password(new_password).await?;
        let t = now();
        let user = self
            .inner
            .store
            .consume_account_token(&hash_token(token), TokenPurpose::PasswordReset, epoch_ms(t))
            .await?
            .ok_or_else(invalid_account_token)?;
        let at = epoch_ms(t);
        let user = self
            .inner
            .store
            .revoke_sessions(user, at, None, Some(&hash), true)
            .await?
            .ok_or_else(invalid_account_token)?;
        self.inner.revocations.record(user.id, at);
        tracing::info!(user_id = %user.id, "password reset; every session signed out");
        self.notice_later(&user, MailKind::PasswordChanged);
        Ok(())
    }

    /// Proves the address with a mailed verification token.
    pub async fn verify_email(&self, token: &str, ip: Option<&str>) -> Result<(), ApiError> {
        if let Some(ip) = ip {
            self.inner.ip_attempts.hit(ip).map_err(throttled)?;
        }
        let user = self
            .inner
            .store
            .consume_account_token(&hash_token(token), TokenPurpose::EmailVerification, epoch_ms(now()))
            .await?
            .ok_or_else(invalid_account_token)?;
        self.inner.store.mark_email_verified(user).await?;
        tracing::info!(user_id = %user, "email address verified");
        Ok(())
    }

    /// Mails a new verification link to the caller, unless the address is verified already.
    pub async fn resend_verification(&self, user: Uuid) -> Result<(), ApiError> {
        let user = self.inner.store.user_by_id(user).await?.ok_or_else(|| user_not_found(user))?;
        if !user.email_verified() && !user.disabled {
            self.mail_verification_later(user);
        }
        Ok(())
    }

    fn mail_verification_later(&self, user: UserRow) {
        if !self.mail_allowed(&user.email) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let ttl = Duration::from_secs(this.inner.config.email_verification_ttl_secs.max(60));
            match this.new_account_token(user.id, TokenPurpose::EmailVerification, ttl).await {
                Ok((token, expires_at)) => mail::send_later(
                    &this.inner.mailer,
                    SecurityMail {
                        id: Uuid::now_v7(),
                        kind: MailKind::EmailVerification,
                        user_id: Some(user.id),
                        recipient: user.email.clone(),
                        name: user.first_name.clone(),
                        token: Some(token),
                        expires_at: Some(expires_at),
                    },
                ),
                Err(e) => {
                    tracing::error!(user_id = %user.id, error = ?e.detail, "verification token not stored")
                }
            }
        });
    }

    fn notice_later(&self, user: &UserRow, kind: MailKind) {
        mail::send_later(
            &self.inner.mailer,
            SecurityMail {
                id: Uuid::now_v7(),
                kind,
                user_id: Some(user.id),
                recipient: user.email.clone(),
                name: user.first_name.clone(),
                token: None,
                expires_at: None,
            },
        );
    }

    /// Whether another security email may go to `email` this hour.
    fn mail_allowed(&self, email: &str) -> bool {
        let ok = self.inner.mails_per_address.hit(email).is_ok();
        if !ok {
            tracing::info!("security email suppressed: too many for this address this hour");
        }
        ok
    }

    /// A random single-use token for `user`, stored hashed.
    async fn new_account_token(
        &self,
        user: Uuid,
        purpose: TokenPurpose,
        ttl: Duration,
    ) -> Result<(String, OffsetDateTime), ApiError> {
        let token = random_token();
        let t = now();
        let expires_at = t + ttl;
        self.inner
            .store
            .insert_account_token(&NewAccountToken {
                user_id: user,
                purpose,
                token_hash: hash_token(&token),
                created_at_ms: epoch_ms(t),
                expires_at_ms: epoch_ms(expires_at),
            })
            .await?;
        Ok((token, expires_at))
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
        let at = epoch_ms(now());
        let user = self.inner.store.set_roles(id, &roles, at).await?.ok_or_else(|| user_not_found(id))?;
        // Access tokens with the old roles are refused; a refresh gives the new ones.
        self.inner.revocations.record(id, at);
        tracing::info!(user_id = %id, ?roles, "roles changed; access tokens revoked");
        Ok(user)
    }

    pub async fn set_disabled(&self, actor: Uuid, id: Uuid, disabled: bool) -> Result<UserRow, ApiError> {
        if disabled && actor == id {
            return Err(ApiError::conflict(
                ErrorCode::CannotDisableSelf,
                "an admin cannot disable their own account",
            ));
        }
        let user = self.inner.store.set_disabled(id, disabled).await?.ok_or_else(|| user_not_found(id))?;
        if let (true, Some(at)) = (disabled, user.tokens_valid_after_ms) {
            self.inner.revocations.record(id, at);
        }
        tracing::info!(user_id = %id, disabled, "user account status changed");
        Ok(user)
    }

    // ------------------------------------------------------------------ tokens

    async fn issue(
        &self,
        user: UserRow,
        family: Uuid,
        session_start: OffsetDateTime,
    ) -> Result<Issued, ApiError> {
        // Tokens issued in the millisecond of a revocation count as revoked: wait for the next.
        let after = self.inner.revocations.valid_after(user.id).max(user.tokens_valid_after_ms);
        if let Some(after) = after {
            while epoch_ms(now()) <= after {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        let (token, row) = self.new_refresh(user.id, family, session_start);
        self.inner.store.insert_refresh(&row).await?;
        Ok(Issued {
            access_token: self.access_token(&user),
            refresh_token: token,
            expires_in: self.inner.config.access_token_ttl_secs,
            user,
        })
    }

    fn new_refresh(&self, user: Uuid, family: Uuid, session_start: OffsetDateTime) -> (String, NewRefresh) {
        let token = random_token();
        let t = now();
        let ttl_end = t + Duration::from_secs(self.inner.config.refresh_token_ttl_secs);
        let row = NewRefresh {
            id: Uuid::now_v7(),
            user_id: user,
            family_id: family,
            token_hash: hash_token(&token),
            created_at: t,
            expires_at: ttl_end.min(session_start + self.session_max()),
            session_started_at: session_start,
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
        claims.email_verified = Some(user.email_verified());
        claims.iss = cfg.issuer.clone();
        claims.aud = cfg.audience.clone();
        self.inner.keys.current.sign(&claims)
    }
}

async fn connect_redis(
    url: &secrecy::SecretString,
    ca: Option<&std::path::Path>,
    prefix: &str,
) -> anyhow::Result<RedisFailures> {
    let ca = ca.map(|file| kit::redis::Ca { file, key: "SHOP_AUTH__REDIS_CA_FILE / SHOP_REDIS_CA_FILE" });
    let (conn, shown) =
        kit::redis::connect(url, "SHOP_AUTH__REDIS_URL / SHOP_REDIS_URL", "the auth service's Redis", ca)
            .await?;
    tracing::info!(redis = %shown, "login failure counters shared through Redis");
    Ok(RedisFailures::new(conn, prefix.to_string()))
}

fn redis_fallback(e: &redis::RedisError) {
    metrics::counter!(kit::contract::metrics::AUTH_THROTTLE_FALLBACK.name).increment(1);
    tracing::warn!(error = %e, "login throttle Redis failed; counting in this process");
}

/// 32 random bytes from the OS RNG, base64url without padding (43 characters).
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
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
/// that neither starts nor ends it; no whitespace, control character, second `@` or any of
/// `<>,;"` inside.
pub const EMAIL_PATTERN: &str = concat!(
    r"^[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*",
    r#"[^@<>,;"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]{1,64}@"#,
    r#"[^@.<>,;"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"#,
    r#"[^@<>,;"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*\."#,
    r#"[^@<>,;"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*"#,
    r#"[^@.<>,;"\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"#,
    r"[\t-\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$",
);

/// A deliberately simple syntactic check of an address as sent (the address is not verified
/// by mail): at most 254 characters; once trimmed, a local part of 1–64 characters, `@`, a
/// domain containing a dot that neither starts nor ends it, no whitespace or control
/// characters, none of `<>,;"` (they would make a mail header name several or other addresses)
/// and one `@` ([`EMAIL_PATTERN`]).
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
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | ';' | '"'))
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

/// Hex SHA-256 of a refresh, reset or verification token (what the database stores).
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

fn invalid_account_token() -> ApiError {
    ApiError::new(ErrorCode::InvalidToken).detail("the link is unknown, used or expired; ask for a new one")
}

/// 503 while every argon2 permit is taken (the bound that keeps the service's memory in check).
fn busy(_: Busy) -> ApiError {
    ApiError::unavailable("too many sign-ins are being checked right now; retry in a moment")
        .header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

fn throttled(wait: Duration) -> ApiError {
    let secs = retry_after_secs(wait);
    ApiError::new(ErrorCode::TooManyRequests)
        .detail(format!("too many attempts; retry in {secs} s"))
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
            // A mail header would read these as several addresses or a display name.
            "a<b@example.com",
            "\"ada\"@example.com",
            "a,b@example.com",
            "a;b@example.com",
            "ada@exa>mple.com",
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
