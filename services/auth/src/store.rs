//! The auth store: users, refresh tokens and generated signing keys, one SQL text per query
//! for PostgreSQL and SQLite.

use kit::db::{Backend, Db};
use kit::with_db;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;

/// Current time, truncated to microseconds (PostgreSQL's precision) so values read back
/// equal values written.
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(t.nanosecond() / 1_000 * 1_000).unwrap_or(t)
}

/// A user row.
#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// JSON text array.
    pub roles: String,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When the owner proved the address is theirs; `None`: not verified.
    pub email_verified_at: Option<OffsetDateTime>,
    /// Access tokens issued before this instant (ms since the epoch) are refused.
    pub tokens_valid_after_ms: Option<i64>,
}

impl UserRow {
    pub fn roles(&self) -> Vec<String> {
        serde_json::from_str(&self.roles).unwrap_or_default()
    }

    pub fn email_verified(&self) -> bool {
        self.email_verified_at.is_some()
    }
}

/// A user to insert.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub roles: Vec<String>,
    /// Created verified (seeded accounts); registrations start unverified.
    pub email_verified: bool,
}

/// A refresh token row (the token itself is never stored, only its SHA-256).
#[derive(Debug, Clone, FromRow)]
pub struct RefreshRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
    /// When the session began (`None` for tokens older than this column: `created_at`).
    pub session_started_at: Option<OffsetDateTime>,
}

impl RefreshRow {
    /// When the session this token belongs to began.
    pub fn session_start(&self) -> OffsetDateTime {
        self.session_started_at.unwrap_or(self.created_at)
    }
}

/// A refresh token to insert.
#[derive(Debug, Clone)]
pub struct NewRefresh {
    pub id: Uuid,
    pub user_id: Uuid,
    pub family_id: Uuid,
    pub token_hash: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub session_started_at: OffsetDateTime,
}

/// What a refresh-token rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The old token is used, its successor stored.
    Rotated,
    /// The old token was used or revoked meanwhile (a concurrent refresh or a revocation).
    Lost,
    /// The user is disabled (or gone).
    Disabled,
}

/// What a single-use mailed token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPurpose {
    PasswordReset,
    EmailVerification,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenPurpose::PasswordReset => "password_reset",
            TokenPurpose::EmailVerification => "email_verification",
        }
    }
}

/// A mailed token to insert (only its hash is stored).
#[derive(Debug, Clone)]
pub struct NewAccountToken {
    pub user_id: Uuid,
    pub purpose: TokenPurpose,
    pub token_hash: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
}

/// Milliseconds since the epoch of `t`.
pub fn epoch_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Filters of the admin user list.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Exact role name.
    pub role: Option<String>,
    /// Case-insensitive substring of the email.
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InsertUserError {
    #[error("email already registered")]
    EmailTaken,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

const USER_COLUMNS: &str = "id, email, password_hash, first_name, last_name, roles, disabled, created_at, \
                            updated_at, email_verified_at, tokens_valid_after_ms";
const REFRESH_COLUMNS: &str =
    "id, user_id, family_id, token_hash, created_at, expires_at, used_at, revoked_at, session_started_at";

/// Moves `tokens_valid_after_ms` forward to `$1` (never back), portable to both backends.
const MOVE_VALID_AFTER: &str = "tokens_valid_after_ms = CASE WHEN tokens_valid_after_ms IS NULL \
                                OR tokens_valid_after_ms < $1 THEN $1 ELSE tokens_valid_after_ms END";

const INSERT_REFRESH: &str =
    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, created_at, expires_at, session_started_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Locks a user's row for the rest of the transaction (every revocation and every rotation
/// take it first, so they serialise per user).
const LOCK_USER: &str = "UPDATE users SET updated_at = updated_at WHERE id = $1";
const LOCK_ENABLED_USER: &str = "UPDATE users SET updated_at = updated_at WHERE id = $1 AND disabled = FALSE";

#[derive(Clone, Debug)]
pub struct Store {
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Self {
        Store { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    // ---------------------------------------------------------------- users

    pub async fn insert_user(&self, new: &NewUser) -> Result<UserRow, InsertUserError> {
        let t = now();
        let row = UserRow {
            id: Uuid::now_v7(),
            email: new.email.clone(),
            password_hash: new.password_hash.clone(),
            first_name: new.first_name.clone(),
            last_name: new.last_name.clone(),
            roles: serde_json::to_string(&new.roles).expect("strings serialise"),
            disabled: false,
            created_at: t,
            updated_at: t,
            email_verified_at: if new.email_verified { Some(t) } else { None },
            tokens_valid_after_ms: None,
        };
        let sql = format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        );
        let res = with_db!(&self.db, pool => sqlx::query(&sql)
            .bind(row.id)
            .bind(&row.email)
            .bind(&row.password_hash)
            .bind(&row.first_name)
            .bind(&row.last_name)
            .bind(&row.roles)
            .bind(row.disabled)
            .bind(row.created_at)
            .bind(row.updated_at)
            .bind(row.email_verified_at)
            .bind(row.tokens_valid_after_ms)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()));
        match res {
            Ok(_) => Ok(row),
            Err(e) if kit::db::is_unique_violation(&e) => Err(InsertUserError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// Inserts unless the email exists; true when inserted (idempotent seeding).
    pub async fn insert_user_if_absent(&self, new: &NewUser) -> Result<bool, sqlx::Error> {
        let t = now();
        let roles = serde_json::to_string(&new.roles).expect("strings serialise");
        let sql = format!(
            "INSERT INTO users ({USER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $7, $8, NULL) \
             ON CONFLICT (email) DO NOTHING"
        );
        let verified = new.email_verified.then_some(t);
        let res = with_db!(&self.db, pool => sqlx::query(&sql)
            .bind(Uuid::now_v7())
            .bind(&new.email)
            .bind(&new.password_hash)
            .bind(&new.first_name)
            .bind(&new.last_name)
            .bind(&roles)
            .bind(t)
            .bind(verified)
            .execute(pool)
            .await.map(|r| r.rows_affected()))?;
        Ok(res == 1)
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        with_db!(&self.db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(email).fetch_optional(pool).await)
    }

    pub async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRow>, sqlx::Error> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        with_db!(&self.db, pool => sqlx::query_as::<_, UserRow>(&sql).bind(id).fetch_optional(pool).await)
    }

    /// The emails among `emails` that already exist.
    pub async fn existing_emails(&self, emails: &[String]) -> Result<Vec<String>, sqlx::Error> {
        let mut found = Vec::new();
        // Chunks keep the parameter count well under both backends' limits.
        for chunk in emails.chunks(200) {
            let params: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!("SELECT email FROM users WHERE email IN ({})", params.join(", "));
            let rows: Vec<(String,)> = with_db!(&self.db, pool => {
                let mut q = sqlx::query_as(&sql);
                for e in chunk {
                    q = q.bind(e);
                }
                q.fetch_all(pool).await
            })?;
            found.extend(rows.into_iter().map(|(e,)| e));
        }
        Ok(found)
    }

    /// One page of users ordered by creation (ids are UUIDv7, so by id), and the total matching `filter`.
    pub async fn list_users(
        &self,
        filter: &UserFilter,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<UserRow>, i64), sqlx::Error> {
        let email = filter.email.as_ref().map(|e| format!("%{}%", kit::db::like_escape(&e.to_lowercase())));
        // Roles are a JSON array of plain names, so `"name"` appears exactly when the role does.
        let role = filter.role.as_ref().map(|r| format!("%\"{}\"%", kit::db::like_escape(r)));
        let cond = "($1 IS NULL OR email LIKE $1 ESCAPE '\\') AND ($2 IS NULL OR roles LIKE $2 ESCAPE '\\')";
        let count_sql = format!("SELECT COUNT(*) FROM users WHERE {cond}");
        let page_sql =
            format!("SELECT {USER_COLUMNS} FROM users WHERE {cond} ORDER BY id LIMIT $3 OFFSET $4");
        let (total,): (i64,) = with_db!(&self.db, pool => sqlx::query_as(&count_sql)
            .bind(&email).bind(&role).fetch_one(pool).await)?;
        let rows = with_db!(&self.db, pool => sqlx::query_as::<_, UserRow>(&page_sql)
            .bind(&email).bind(&role).bind(limit).bind(offset).fetch_all(pool).await)?;
        Ok((rows, total))
    }

    /// Sets the roles and moves the user's "tokens valid after" to `valid_after_ms` (access
    /// tokens carrying the old roles are refused; refresh gives tokens with the new ones);
    /// `None` when the user does not exist.
    pub async fn set_roles(
        &self,
        id: Uuid,
        roles: &[String],
        valid_after_ms: i64,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let roles = serde_json::to_string(roles).expect("strings serialise");
        let sql = format!("UPDATE users SET roles = $2, updated_at = $3, {MOVE_VALID_AFTER} WHERE id = $4");
        let n = with_db!(&self.db, pool => sqlx::query(&sql)
            .bind(valid_after_ms).bind(&roles).bind(now()).bind(id).execute(pool).await.map(|r| r.rows_affected()))?;
        if n == 0 {
            return Ok(None);
        }
        self.user_by_id(id).await
    }

    /// Enables or disables a user; disabling moves the user's "tokens valid after" to now and
    /// revokes every refresh token of the user in the same transaction. `None` when the user
    /// does not exist.
    pub async fn set_disabled(&self, id: Uuid, disabled: bool) -> Result<Option<UserRow>, sqlx::Error> {
        let t = now();
        let n = with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let n = if disabled {
                let sql = format!("UPDATE users SET disabled = TRUE, updated_at = $2, {MOVE_VALID_AFTER} WHERE id = $3");
                let n = sqlx::query(&sql)
                    .bind(epoch_ms(t)).bind(t).bind(id).execute(&mut *tx).await?.rows_affected();
                if n > 0 {
                    sqlx::query("UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
                        .bind(t).bind(id).execute(&mut *tx).await?;
                }
                n
            } else {
                sqlx::query("UPDATE users SET disabled = FALSE, updated_at = $1 WHERE id = $2")
                    .bind(t).bind(id).execute(&mut *tx).await?.rows_affected()
            };
            tx.commit().await?;
            n
        });
        if n == 0 {
            return Ok(None);
        }
        self.user_by_id(id).await
    }

    // ---------------------------------------------------------------- refresh tokens

    pub async fn insert_refresh(&self, new: &NewRefresh) -> Result<(), sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query(INSERT_REFRESH)
            .bind(new.id).bind(new.user_id).bind(new.family_id).bind(&new.token_hash)
            .bind(new.created_at).bind(new.expires_at).bind(new.session_started_at)
            .execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn refresh_by_hash(&self, hash: &str) -> Result<Option<RefreshRow>, sqlx::Error> {
        let sql = format!("SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = $1");
        with_db!(&self.db, pool => sqlx::query_as::<_, RefreshRow>(&sql).bind(hash).fetch_optional(pool).await)
    }

    /// Marks `old` used and inserts its successor, atomically and only if `old` was neither
    /// used nor revoked and the user is enabled: of two concurrent rotations of one token
    /// exactly one rotates.
    ///
    /// The transaction first locks the user's row (a no-op update), as every revocation does
    /// before it revokes tokens: a revocation and a rotation of the same user therefore never
    /// interleave, so a successor cannot slip past a revocation that did not see it.
    pub async fn rotate_refresh(&self, old: Uuid, new: &NewRefresh) -> Result<Rotation, sqlx::Error> {
        with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let enabled = sqlx::query(LOCK_ENABLED_USER)
                .bind(new.user_id).execute(&mut *tx).await?.rows_affected();
            if enabled != 1 {
                tx.rollback().await?;
                return Ok(Rotation::Disabled);
            }
            let n = sqlx::query(
                "UPDATE refresh_tokens SET used_at = $1 WHERE id = $2 AND used_at IS NULL AND revoked_at IS NULL",
            )
            .bind(new.created_at).bind(old).execute(&mut *tx).await?.rows_affected();
            if n != 1 {
                tx.rollback().await?;
                return Ok(Rotation::Lost);
            }
            sqlx::query(INSERT_REFRESH)
                .bind(new.id).bind(new.user_id).bind(new.family_id).bind(&new.token_hash)
                .bind(new.created_at).bind(new.expires_at).bind(new.session_started_at)
                .execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(Rotation::Rotated)
        })
    }

    /// Revokes every token of a family of `user`; returns how many were still unrevoked.
    pub async fn revoke_family(&self, user: Uuid, family: Uuid) -> Result<u64, sqlx::Error> {
        with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(LOCK_USER).bind(user).execute(&mut *tx).await?;
            let n = sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL")
                .bind(now()).bind(family).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(n)
        })
    }

    /// Signs a user out everywhere: moves "tokens valid after" to `valid_after_ms` and revokes
    /// every refresh token of the user, except those of `keep` (the session that asked), in
    /// one transaction. `new_password_hash` also replaces the password (change, reset), and
    /// `verify_email` marks the address verified (a reset proves the mailbox). Returns the
    /// user, or `None` when it does not exist.
    pub async fn revoke_sessions(
        &self,
        user: Uuid,
        valid_after_ms: i64,
        keep: Option<Uuid>,
        new_password_hash: Option<&str>,
        verify_email: bool,
    ) -> Result<Option<UserRow>, sqlx::Error> {
        let t = now();
        let sql = format!(
            "UPDATE users SET updated_at = $2, {MOVE_VALID_AFTER}, password_hash = COALESCE($3, password_hash), \
             email_verified_at = CASE WHEN $4 AND email_verified_at IS NULL THEN $2 ELSE email_verified_at END \
             WHERE id = $5"
        );
        let n = with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(&sql)
                .bind(valid_after_ms).bind(t).bind(new_password_hash).bind(verify_email).bind(user)
                .execute(&mut *tx).await?.rows_affected();
            if n == 1 {
                sqlx::query(
                    "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
                     AND ($3 IS NULL OR family_id <> $3)")
                    .bind(t).bind(user).bind(keep).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            n
        });
        if n == 0 {
            return Ok(None);
        }
        self.user_by_id(user).await
    }

    /// Users whose "tokens valid after" is later than `since_ms` (the revocation feed).
    pub async fn revocations_since(&self, since_ms: i64) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query_as(
            "SELECT id, tokens_valid_after_ms FROM users WHERE tokens_valid_after_ms > $1 ORDER BY tokens_valid_after_ms")
            .bind(since_ms).fetch_all(pool).await)
    }

    /// Marks the address verified (idempotent); false when the user does not exist.
    pub async fn mark_email_verified(&self, user: Uuid) -> Result<bool, sqlx::Error> {
        let n = with_db!(&self.db, pool => sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $1), updated_at = $1 WHERE id = $2")
            .bind(now()).bind(user).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    // ---------------------------------------------------------------- mailed tokens

    pub async fn insert_account_token(&self, new: &NewAccountToken) -> Result<(), sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query(
            "INSERT INTO account_tokens (id, user_id, purpose, token_hash, created_at_ms, expires_at_ms) \
             VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(Uuid::now_v7()).bind(new.user_id).bind(new.purpose.as_str()).bind(&new.token_hash)
            .bind(new.created_at_ms).bind(new.expires_at_ms)
            .execute(pool).await.map(|_| ()))
    }

    /// Uses a mailed token: marks it used if it exists for `purpose`, is unused and unexpired
    /// at `now_ms` — one conditional UPDATE, so of two concurrent uses exactly one succeeds —
    /// and then every other unused token of the same user and purpose (a reset link mailed
    /// earlier dies with the one used). The token's user, or `None`.
    pub async fn consume_account_token(
        &self,
        token_hash: &str,
        purpose: TokenPurpose,
        now_ms: i64,
    ) -> Result<Option<Uuid>, sqlx::Error> {
        with_db!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let user: Option<Uuid> = sqlx::query_scalar(
                "UPDATE account_tokens SET used_at_ms = $1 WHERE token_hash = $2 AND purpose = $3 \
                 AND used_at_ms IS NULL AND expires_at_ms > $1 RETURNING user_id")
                .bind(now_ms).bind(token_hash).bind(purpose.as_str())
                .fetch_optional(&mut *tx).await?;
            if let Some(user) = user {
                sqlx::query("UPDATE account_tokens SET used_at_ms = $1 WHERE user_id = $2 AND purpose = $3 AND used_at_ms IS NULL")
                    .bind(now_ms).bind(user).bind(purpose.as_str()).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(user)
        })
    }

    /// How many tokens of `purpose` were issued to `user` since `since_ms` (mail throttling).
    pub async fn count_account_tokens_since(
        &self,
        user: Uuid,
        purpose: TokenPurpose,
        since_ms: i64,
    ) -> Result<i64, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query_scalar(
            "SELECT COUNT(*) FROM account_tokens WHERE user_id = $1 AND purpose = $2 AND created_at_ms > $3")
            .bind(user).bind(purpose.as_str()).bind(since_ms).fetch_one(pool).await)
    }

    /// Deletes mailed tokens that can no longer be used (used tokens expire too), once
    /// `keep_ms` has passed since they expired.
    pub async fn delete_spent_account_tokens(&self, now_ms: i64, keep_ms: i64) -> Result<u64, sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query(
            "DELETE FROM account_tokens WHERE expires_at_ms < $1")
            .bind(now_ms.saturating_sub(keep_ms)).execute(pool).await.map(|r| r.rows_affected()))
    }

    /// Deletes tokens that expired before `before` (housekeeping).
    pub async fn delete_expired_refresh(&self, before: OffsetDateTime) -> Result<u64, sqlx::Error> {
        // Backend-specific: sqlx stores `OffsetDateTime` on SQLite as RFC 3339 text with a
        // variable number of fractional digits, which does not order as text.
        let sql = match self.db.backend() {
            Backend::Postgres => "DELETE FROM refresh_tokens WHERE expires_at < $1",
            Backend::Sqlite => "DELETE FROM refresh_tokens WHERE julianday(expires_at) < julianday($1)",
        };
        with_db!(&self.db, pool => sqlx::query(sql)
            .bind(before).execute(pool).await.map(|r| r.rows_affected()))
    }

    // ---------------------------------------------------------------- signing keys

    /// The most recently created key (compared in Rust: SQLite timestamps do not order as text).
    pub async fn newest_signing_key(&self) -> Result<Option<String>, sqlx::Error> {
        let rows: Vec<(String, String, OffsetDateTime)> = with_db!(&self.db, pool => sqlx::query_as(
            "SELECT kid, private_key_pem, created_at FROM signing_keys")
            .fetch_all(pool).await)?;
        Ok(rows.into_iter().max_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0))).map(|(_, pem, _)| pem))
    }

    pub async fn insert_signing_key(&self, kid: &str, pem: &str) -> Result<(), sqlx::Error> {
        with_db!(&self.db, pool => sqlx::query(
            "INSERT INTO signing_keys (kid, private_key_pem, created_at) VALUES ($1, $2, $3) ON CONFLICT (kid) DO NOTHING")
            .bind(kid).bind(pem).bind(now()).execute(pool).await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn new_user(email: &str, roles: &[&str]) -> NewUser {
        NewUser {
            email: email.into(),
            password_hash: "$argon2id$dummy".into(),
            first_name: Some("Ada".into()),
            last_name: None,
            roles: roles.iter().map(|r| r.to_string()).collect(),
            email_verified: false,
        }
    }

    fn new_refresh(user: Uuid, family: Uuid, hash: &str, ttl: Duration) -> NewRefresh {
        let t = now();
        NewRefresh {
            id: Uuid::now_v7(),
            user_id: user,
            family_id: family,
            token_hash: hash.into(),
            created_at: t,
            expires_at: t + ttl,
            session_started_at: t,
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    kit::db_tests! { crate::MIGRATIONS;
        async fn users_round_trip(db) {
            let s = Store::new(db);
            let u = s.insert_user(&new_user("ada@example.com", &["customer"])).await.unwrap();
            let by_email = s.user_by_email("ada@example.com").await.unwrap().unwrap();
            assert_eq!(by_email.id, u.id);
            assert_eq!(by_email.created_at, u.created_at, "timestamps round-trip exactly");
            assert_eq!(by_email.roles(), vec!["customer"]);
            assert!(!by_email.disabled);
            assert_eq!(by_email.first_name.as_deref(), Some("Ada"));
            assert!(by_email.last_name.is_none());
            assert!(s.user_by_id(Uuid::now_v7()).await.unwrap().is_none());
            assert!(matches!(
                s.insert_user(&new_user("ada@example.com", &[])).await,
                Err(InsertUserError::EmailTaken)
            ));
            assert!(!s.insert_user_if_absent(&new_user("ada@example.com", &[])).await.unwrap());
            assert!(s.insert_user_if_absent(&new_user("bob@example.com", &[])).await.unwrap());
            let mut existing = s.existing_emails(&["bob@example.com".into(), "x@y.z".into(), "ada@example.com".into()]).await.unwrap();
            existing.sort();
            assert_eq!(existing, vec!["ada@example.com", "bob@example.com"]);
        }

        async fn lists_and_filters_users(db) {
            let s = Store::new(db);
            for i in 0..5 {
                s.insert_user(&new_user(&format!("cust{i}@example.com"), &["customer"])).await.unwrap();
            }
            s.insert_user(&new_user("boss_1@shop.test", &["admin", "customer"])).await.unwrap();
            s.insert_user(&new_user("boss%2@shop.test", &["vendor"])).await.unwrap();
            let (rows, total) = s.list_users(&UserFilter::default(), 3, 0).await.unwrap();
            assert_eq!((rows.len(), total), (3, 7));
            assert_eq!(rows[0].email, "cust0@example.com", "ordered by creation");
            let (rows, _) = s.list_users(&UserFilter::default(), 3, 6).await.unwrap();
            assert_eq!(rows.len(), 1);
            let f = UserFilter { role: Some("customer".into()), email: None };
            assert_eq!(s.list_users(&f, 100, 0).await.unwrap().1, 6);
            let f = UserFilter { role: Some("admin".into()), email: Some("BOSS".into()) };
            let (rows, total) = s.list_users(&f, 100, 0).await.unwrap();
            assert_eq!((total, rows[0].email.as_str()), (1, "boss_1@shop.test"));
            // LIKE wildcards in the filter are literal.
            let f = UserFilter { role: None, email: Some("%".into()) };
            assert_eq!(s.list_users(&f, 100, 0).await.unwrap().1, 1);
            let f = UserFilter { role: None, email: Some("s_".into()) };
            assert_eq!(s.list_users(&f, 100, 0).await.unwrap().1, 1);
            let f = UserFilter { role: Some("cust".into()), email: None };
            assert_eq!(s.list_users(&f, 100, 0).await.unwrap().1, 0, "roles match whole names");
        }

        async fn roles_and_disable(db) {
            let s = Store::new(db);
            let u = s.insert_user(&new_user("ada@example.com", &["customer"])).await.unwrap();
            let after = s.set_roles(u.id, &["vendor".into(), "admin".into()], 1_000).await.unwrap().unwrap();
            assert_eq!(after.roles(), vec!["vendor", "admin"]);
            assert_eq!(after.tokens_valid_after_ms, Some(1_000), "a role change revokes access tokens");
            assert!(s.set_roles(Uuid::now_v7(), &[], 1).await.unwrap().is_none());
            let back = s.set_roles(u.id, &["vendor".into()], 500).await.unwrap().unwrap();
            assert_eq!(back.tokens_valid_after_ms, Some(1_000), "the instant never moves back");

            let fam = Uuid::now_v7();
            s.insert_refresh(&new_refresh(u.id, fam, "h1", DAY)).await.unwrap();
            let disabled = s.set_disabled(u.id, true).await.unwrap().unwrap();
            assert!(disabled.disabled);
            assert!(disabled.tokens_valid_after_ms.unwrap() > 1_000, "disabling revokes access tokens");
            assert_eq!(s.revocations_since(1_000).await.unwrap(), vec![(u.id, disabled.tokens_valid_after_ms.unwrap())]);
            assert!(s.revocations_since(disabled.tokens_valid_after_ms.unwrap()).await.unwrap().is_empty());
            assert!(s.refresh_by_hash("h1").await.unwrap().unwrap().revoked_at.is_some(), "disabling revokes");
            assert!(!s.set_disabled(u.id, false).await.unwrap().unwrap().disabled);
            assert!(s.set_disabled(Uuid::now_v7(), true).await.unwrap().is_none());
        }

        async fn rotation_is_single_use_and_revocation_is_per_family(db) {
            let s = Store::new(db);
            let u = s.insert_user(&new_user("ada@example.com", &["customer"])).await.unwrap();
            let fam = Uuid::now_v7();
            let first = new_refresh(u.id, fam, "h1", DAY);
            s.insert_refresh(&first).await.unwrap();
            let other = new_refresh(u.id, Uuid::now_v7(), "other", DAY);
            s.insert_refresh(&other).await.unwrap();

            let row = s.refresh_by_hash("h1").await.unwrap().unwrap();
            assert_eq!((row.id, row.family_id, row.user_id), (first.id, fam, u.id));
            assert!(row.used_at.is_none() && row.revoked_at.is_none());
            assert_eq!(row.expires_at, first.expires_at);

            assert_eq!(s.rotate_refresh(first.id, &new_refresh(u.id, fam, "h2", DAY)).await.unwrap(), Rotation::Rotated);
            assert_eq!(s.rotate_refresh(first.id, &new_refresh(u.id, fam, "h3", DAY)).await.unwrap(), Rotation::Lost, "single use");
            assert!(s.refresh_by_hash("h3").await.unwrap().is_none(), "the loser inserted nothing");
            assert!(s.refresh_by_hash("h1").await.unwrap().unwrap().used_at.is_some());

            assert_eq!(s.revoke_family(u.id, fam).await.unwrap(), 2);
            assert!(s.refresh_by_hash("h2").await.unwrap().unwrap().revoked_at.is_some());
            assert!(s.refresh_by_hash("other").await.unwrap().unwrap().revoked_at.is_none(), "other family untouched");
            let h2 = s.refresh_by_hash("h2").await.unwrap().unwrap();
            assert_eq!(s.rotate_refresh(h2.id, &new_refresh(u.id, fam, "h4", DAY)).await.unwrap(), Rotation::Lost, "revoked");
            let live = new_refresh(u.id, Uuid::now_v7(), "h5", DAY);
            s.insert_refresh(&live).await.unwrap();
            s.set_disabled(u.id, true).await.unwrap();
            s.set_disabled(u.id, false).await.unwrap();
            let mut again = new_refresh(u.id, live.family_id, "h6", DAY);
            again.session_started_at = live.session_started_at;
            assert_eq!(s.rotate_refresh(live.id, &again).await.unwrap(), Rotation::Lost, "disabling revoked it");
        }

        async fn concurrent_rotations_exactly_one_wins(db) {
            let s = Store::new(db);
            let u = s.insert_user(&new_user("ada@example.com", &["customer"])).await.unwrap();
            for round in 0..5 {
                let fam = Uuid::now_v7();
                let first = new_refresh(u.id, fam, &format!("r{round}"), DAY);
                s.insert_refresh(&first).await.unwrap();
                let tasks: Vec<_> = (0..4).map(|i| {
                    let s = s.clone();
                    let next = new_refresh(u.id, fam, &format!("r{round}-{i}"), DAY);
                    tokio::spawn(async move { s.rotate_refresh(first.id, &next).await.unwrap() == Rotation::Rotated })
                }).collect();
                let mut wins = 0;
                for t in tasks {
                    if t.await.unwrap() {
                        wins += 1;
                    }
                }
                assert_eq!(wins, 1, "round {round}");
            }
        }

        async fn sessions_are_revoked_but_one_and_passwords_replaced(db) {
            let s = Store::new(db);
            let u = s.insert_user(&new_user("ada@example.com", &["customer"])).await.unwrap();
            assert!(!u.email_verified());
            let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
            s.insert_refresh(&new_refresh(u.id, a, "a1", DAY)).await.unwrap();
            s.insert_refresh(&new_refresh(u.id, b, "b1", DAY)).await.unwrap();
            let after = s.revoke_sessions(u.id, 42, Some(b), Some("$argon2id$new"), true).await.unwrap().unwrap();
            assert_eq!((after.tokens_valid_after_ms, after.password_hash.as_str()), (Some(42), "$argon2id$new"));
            assert!(after.email_verified(), "a reset proves the mailbox");
            assert!(s.refresh_by_hash("a1").await.unwrap().unwrap().revoked_at.is_some());
            assert!(s.refresh_by_hash("b1").await.unwrap().unwrap().revoked_at.is_none(), "the session kept");
            let all = s.revoke_sessions(u.id, 43, None, None, false).await.unwrap().unwrap();
            assert_eq!(all.password_hash, "$argon2id$new", "no password: unchanged");
            assert!(s.refresh_by_hash("b1").await.unwrap().unwrap().revoked_at.is_some());
            assert!(s.revoke_sessions(Uuid::now_v7(), 1, None, None, false).await.unwrap().is_none());
            assert_eq!(s.revocations_since(0).await.unwrap(), vec![(u.id, 43)]);
        }

        async fn mailed_tokens_are_single_use_and_expire(db) {
            let s = Store::new(db);
            let u = s.insert_user(&new_user("ada@example.com", &["customer"])).await.unwrap();
            let token = |hash: &str, purpose, expires| NewAccountToken {
                user_id: u.id, purpose, token_hash: hash.into(), created_at_ms: 1_000, expires_at_ms: expires,
            };
            s.insert_account_token(&token("r1", TokenPurpose::PasswordReset, 10_000)).await.unwrap();
            s.insert_account_token(&token("r2", TokenPurpose::PasswordReset, 10_000)).await.unwrap();
            s.insert_account_token(&token("v1", TokenPurpose::EmailVerification, 10_000)).await.unwrap();
            s.insert_account_token(&token("old", TokenPurpose::PasswordReset, 2_000)).await.unwrap();
            assert_eq!(s.count_account_tokens_since(u.id, TokenPurpose::PasswordReset, 0).await.unwrap(), 3);
            assert_eq!(s.consume_account_token("v1", TokenPurpose::PasswordReset, 5_000).await.unwrap(), None, "wrong purpose");
            assert_eq!(s.consume_account_token("old", TokenPurpose::PasswordReset, 5_000).await.unwrap(), None, "expired");
            assert_eq!(s.consume_account_token("r1", TokenPurpose::PasswordReset, 5_000).await.unwrap(), Some(u.id));
            assert_eq!(s.consume_account_token("r1", TokenPurpose::PasswordReset, 5_001).await.unwrap(), None, "single use");
            assert_eq!(s.consume_account_token("r2", TokenPurpose::PasswordReset, 5_001).await.unwrap(), None, "the others died with it");
            assert_eq!(s.consume_account_token("v1", TokenPurpose::EmailVerification, 5_001).await.unwrap(), Some(u.id));
            assert!(s.mark_email_verified(u.id).await.unwrap());
            assert!(s.user_by_id(u.id).await.unwrap().unwrap().email_verified());
            assert_eq!(s.delete_spent_account_tokens(10_400, 500).await.unwrap(), 1, "only `old` expired long enough ago");
            assert_eq!(s.delete_spent_account_tokens(20_000, 500).await.unwrap(), 3);
        }

        async fn expired_tokens_are_deleted(db) {
            let s = Store::new(db);
            let u = s.insert_user(&new_user("ada@example.com", &["customer"])).await.unwrap();
            let mut old = new_refresh(u.id, Uuid::now_v7(), "old", DAY);
            old.expires_at = now() - DAY;
            s.insert_refresh(&old).await.unwrap();
            s.insert_refresh(&new_refresh(u.id, Uuid::now_v7(), "fresh", DAY)).await.unwrap();
            assert_eq!(s.delete_expired_refresh(now()).await.unwrap(), 1);
            assert!(s.refresh_by_hash("fresh").await.unwrap().is_some());
        }

        async fn signing_keys_newest_wins(db) {
            let s = Store::new(db);
            assert!(s.newest_signing_key().await.unwrap().is_none());
            s.insert_signing_key("k1", "pem1").await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            s.insert_signing_key("k2", "pem2").await.unwrap();
            s.insert_signing_key("k2", "pem2-again").await.unwrap();
            assert_eq!(s.newest_signing_key().await.unwrap().as_deref(), Some("pem2"));
        }
    }
}
