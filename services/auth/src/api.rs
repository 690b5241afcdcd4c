//! HTTP handlers, request/response bodies and the OpenAPI document.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use kit::auth::{Identity, MaybeIdentity};
use kit::extract::{Json, Path, Query};
use kit::openapi::{responses as r, strings, BearerSecurity, Problems};
use kit::pagination::{Page, PageParams};
use kit::problem::{ApiError, ApiResult, ErrorCode};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::service::{AuthState, Issued, EMAIL_PATTERN, KNOWN_ROLES, MAX_EMAIL_LEN, MAX_NAME_LEN};
use crate::store::{UserFilter, UserRow};

// ---------------------------------------------------------------------- bodies

/// A user account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    /// Normalised (trimmed, lower-case) email address.
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Some of `customer`, `vendor`, `admin`.
    #[schema(value_type = Vec<Role>)]
    pub roles: Vec<String>,
    pub disabled: bool,
    /// The owner proved the address is theirs (a verification or reset link). Unverified
    /// accounts may sign in, browse and fill a cart, but not check out.
    pub email_verified: bool,
    /// RFC 3339, UTC.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<UserRow> for User {
    fn from(u: UserRow) -> Self {
        User {
            roles: u.roles(),
            email_verified: u.email_verified(),
            id: u.id,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            disabled: u.disabled,
            created_at: u.created_at,
        }
    }
}

/// A role a user may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Customer,
    Vendor,
    Admin,
}

fn email_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    strings::string(
        EMAIL_PATTERN,
        1,
        MAX_EMAIL_LEN,
        false,
        "Trimmed and lower-cased before use; must be unique. At most 254 characters, a local part of \
         1–64 characters, `@`, a domain with a dot; no whitespace, control characters or `<>,;\"` inside.",
    )
}

fn name_schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
    strings::string(
        strings::NO_CONTROL,
        0,
        MAX_NAME_LEN,
        true,
        "At most 100 characters, no control characters; trimmed (blank means none).",
    )
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(schema_with = email_schema, example = "ada@example.com")]
    pub email: String,
    /// 8–128 characters with an upper-case letter (A–Z), a lower-case letter (a–z) and a digit.
    #[schema(
        example = "Secret123",
        min_length = 8,
        max_length = 128,
        pattern = r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])[\s\S]{8,128}$"
    )]
    pub password: String,
    #[serde(default)]
    #[schema(schema_with = name_schema)]
    pub first_name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = name_schema)]
    pub last_name: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "customer@example.com")]
    pub email: String,
    #[schema(example = "Customer123!")]
    pub password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RefreshRequest {
    /// The opaque refresh token of the last token response.
    pub refresh_token: String,
}

/// A token pair and the user it was issued to.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse {
    /// EdDSA-signed JWT, sent as `Authorization: Bearer …`.
    pub access_token: String,
    /// Opaque, single-use; exchange it at `/api/v1/auth/refresh`.
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(pattern = "^Bearer$")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: User,
}

impl From<Issued> for TokenResponse {
    fn from(i: Issued) -> Self {
        TokenResponse {
            access_token: i.access_token,
            refresh_token: i.refresh_token,
            token_type: "Bearer".into(),
            expires_in: i.expires_in,
            user: i.user.into(),
        }
    }
}

/// The answer of requests whose outcome must not be told (registration, reset requests):
/// the same whether or not the address has an account.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Accepted {
    /// Always `accepted`.
    pub status: String,
    /// What happens next, for people.
    pub detail: String,
}

impl Accepted {
    fn new(detail: &str) -> Self {
        Accepted { status: "accepted".into(), detail: detail.into() }
    }
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    /// 8–128 characters with an upper-case letter (A–Z), a lower-case letter (a–z) and a digit;
    /// not the current one.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])[\s\S]{8,128}$"
    )]
    pub new_password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(schema_with = email_schema, example = "ada@example.com")]
    pub email: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PasswordResetConfirm {
    /// The token of the mailed link.
    #[schema(max_length = 128)]
    pub token: String,
    /// 8–128 characters with an upper-case letter (A–Z), a lower-case letter (a–z) and a digit.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^(?=[\s\S]*[A-Z])(?=[\s\S]*[a-z])(?=[\s\S]*[0-9])[\s\S]{8,128}$"
    )]
    pub new_password: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token of the mailed link.
    #[schema(max_length = 128)]
    pub token: String,
}

/// `GET /internal/v1/revocations` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FeedQuery {
    /// Only instants set after this one (ms since the epoch).
    pub since: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesRequest {
    /// Replaces the user's roles (at least one; duplicates count once).
    #[schema(value_type = Vec<Role>, min_items = 1)]
    pub roles: Vec<String>,
}

/// `GET /api/v1/users` query (nothing else).
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<u32>,
    /// Only users with this role.
    #[param(value_type = Option<Role>)]
    pub role: Option<String>,
    /// Only users whose email contains this text (case-insensitive).
    pub email: Option<String>,
}

/// A page of users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserPage {
    pub items: Vec<User>,
    pub page: u32,
    pub page_size: u32,
    pub total: i64,
    pub total_pages: i64,
}

/// A JSON Web Key Set (RFC 7517) of Ed25519 public keys.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Jwks {
    /// `{kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig"}` per key.
    keys: Vec<serde_json::Value>,
}

// ---------------------------------------------------------------------- client IP

/// The client address for throttling: [`kit::http::client_ip`] with
/// `AuthConfig::trusted_proxy_hops` (the TCP peer by default; behind N proxies of our own, the
/// N-th `X-Forwarded-For` entry from the right).
pub struct ClientIp(pub Option<String>);

impl FromRequestParts<AuthState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AuthState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let hops = state.config().trusted_proxy_hops as usize;
        Ok(ClientIp(kit::http::client_ip(&parts.headers, peer, hops).map(|ip| ip.to_string())))
    }
}

// ---------------------------------------------------------------------- handlers

/// Create an account (role `customer`, email unverified) and mail a verification link.
///
/// The answer is the same whether or not the address already has an account (its owner is
/// mailed instead): registration tells nobody which addresses are registered. Sign in next.
/// 422 for an invalid email, password or name; 429 `too_many_requests` shares the per-IP
/// sign-in budget; 503 while password hashing is saturated.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 202, description = "Accepted: check the inbox (whether the account is new or not)", body = Accepted),
        r::Write, r::ServiceUnavailable,
    ))]
pub async fn register(
    State(s): State<AuthState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<RegisterRequest>,
) -> ApiResult<impl IntoResponse> {
    s.register(&req.email, &req.password, req.first_name, req.last_name, ip.as_deref()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted::new("check your inbox: we sent a message to this address; then sign in")),
    ))
}

/// Change the caller's password; every other session is signed out.
///
/// The current password is checked with the same answers and throttles as a login. The answer
/// is a new token pair for this session: the old access and refresh tokens stop working, here
/// and everywhere else, within seconds. 401 `invalid_credentials` for a wrong current password;
/// 403 `account_disabled`; 422 when the new password breaks the policy or equals the current
/// one; 503 while password hashing is saturated.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = ChangePasswordRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed; a new pair for this session", body = TokenResponse),
        r::Write, r::Forbidden, r::ServiceUnavailable,
    ))]
pub async fn change_password(
    State(s): State<AuthState>,
    id: Identity,
    ClientIp(ip): ClientIp,
    Json(req): Json<ChangePasswordRequest>,
) -> ApiResult<Json<TokenResponse>> {
    let issued =
        s.change_password(id.user_id, &req.current_password, &req.new_password, ip.as_deref()).await?;
    Ok(Json(issued.into()))
}

/// Ask for a password-reset link.
///
/// When the address has an enabled account, a single-use link valid 30 minutes is mailed to
/// it. The answer is the same either way, and comes before any of that work. 422 for what is
/// not an email address.
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted (whether or not the address has an account)", body = Accepted),
        r::Write,
    ))]
pub async fn request_password_reset(
    State(s): State<AuthState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<PasswordResetRequest>,
) -> ApiResult<impl IntoResponse> {
    s.request_password_reset(&req.email, ip.as_deref())?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted::new("if this address has an account, a link to set a new password is on its way")),
    ))
}

/// Set a new password with the token of a reset link.
///
/// The token is used up; every session of the account is signed out; the address counts as
/// verified. Sign in with the new password next. 400 `invalid_token`: unknown, used or expired
/// (one answer for all three); 422 when the new password breaks the policy.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", request_body = PasswordResetConfirm,
    responses(
        (status = 204, description = "The password is set"),
        r::Write, r::ServiceUnavailable,
    ))]
pub async fn confirm_password_reset(
    State(s): State<AuthState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<PasswordResetConfirm>,
) -> ApiResult<StatusCode> {
    s.confirm_password_reset(&req.token, &req.new_password, ip.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Verify the email address with the token of a verification link.
///
/// Access tokens issued from now on say `email_verified: true` (refresh to get one). 400
/// `invalid_token`: unknown, used or expired.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = VerifyEmailRequest,
    responses(
        (status = 204, description = "Verified"),
        r::Write,
    ))]
pub async fn verify_email(
    State(s): State<AuthState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<VerifyEmailRequest>,
) -> ApiResult<StatusCode> {
    s.verify_email(&req.token, ip.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mail the caller a new verification link (nothing when the address is verified).
#[utoipa::path(post, path = "/api/v1/auth/verify-email/resend", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted", body = Accepted),
        r::Always,
    ))]
pub async fn resend_verification(State(s): State<AuthState>, id: Identity) -> ApiResult<impl IntoResponse> {
    s.resend_verification(id.user_id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted::new("if the address is not verified yet, a new link is on its way")),
    ))
}

/// Sign out everywhere: every session's refresh token is revoked and every access token of the
/// caller is refused within seconds, by every service.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Signed out everywhere"),
        r::Always,
    ))]
pub async fn logout_all(State(s): State<AuthState>, id: Identity) -> ApiResult<StatusCode> {
    s.logout_everywhere(id.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The revocation feed (services only, `x-internal-token`; not in the public API document, and
/// the gateway routes no `/internal/` path): every user whose tokens issued before an instant
/// are refused, for the instants still within the access-token lifetime.
pub async fn revocation_feed(
    State(s): State<AuthState>,
    headers: axum::http::HeaderMap,
    Query(q): Query<FeedQuery>,
) -> ApiResult<Json<kit::auth::RevocationFeed>> {
    let verdict =
        kit::client::verify_internal(&headers, s.config().internal_token.as_ref()).unwrap_or_else(|| {
            Err(ApiError::new(ErrorCode::InvalidInternalToken)
                .detail("this endpoint is for the platform's services"))
        });
    verdict?;
    Ok(Json(s.revocation_feed(q.since).await?))
}

/// Sign in with email and password.
///
/// 401 `invalid_credentials` (unknown email or wrong password alike); 403 `account_disabled`
/// (after a correct password); 429 `too_many_requests` per client address and per account.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = TokenResponse),
        r::Write, r::Forbidden, r::ServiceUnavailable,
    ))]
pub async fn login(
    State(s): State<AuthState>,
    ClientIp(ip): ClientIp,
    Json(req): Json<LoginRequest>,
) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(s.login(&req.email, &req.password, ip.as_deref()).await?.into()))
}

/// Exchange a refresh token for a new pair (the old token is consumed).
///
/// 401 `invalid_refresh_token`, `refresh_token_expired`, `session_expired` (the session reached
/// its absolute lifetime) or `refresh_token_reused` (the whole session is revoked); 403
/// `account_disabled`.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, description = "New token pair", body = TokenResponse),
        r::Write, r::Forbidden,
    ))]
pub async fn refresh(
    State(s): State<AuthState>,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<Json<TokenResponse>> {
    Ok(Json(s.refresh(&req.refresh_token).await?.into()))
}

/// Sign out: revoke the session (refresh-token family) of the given token.
///
/// The bearer token is optional; when present it must be valid and belong to the owner of
/// the refresh token (403 otherwise). Unknown tokens are accepted (idempotent).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = RefreshRequest,
    security((), ("bearer" = [])),
    responses(
        (status = 204, description = "Signed out"),
        r::Write, r::Forbidden,
    ))]
pub async fn logout(
    State(s): State<AuthState>,
    MaybeIdentity(caller): MaybeIdentity,
    Json(req): Json<RefreshRequest>,
) -> ApiResult<StatusCode> {
    s.logout(&req.refresh_token, caller.map(|c| c.user_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account", body = User),
        r::Always, r::NotFound,
    ))]
pub async fn me(State(s): State<AuthState>, id: Identity) -> ApiResult<Json<User>> {
    let user = s
        .store()
        .user_by_id(id.user_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the account no longer exists"))?;
    Ok(Json(user.into()))
}

/// List users (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "auth", security(("bearer" = [])), params(UserListQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        r::List, r::Admin,
    ))]
pub async fn list_users(
    State(s): State<AuthState>,
    id: Identity,
    Query(q): Query<UserListQuery>,
) -> ApiResult<Json<UserPage>> {
    id.require_admin()?;
    let page = PageParams { page: q.page, page_size: q.page_size }.validate()?;
    let role = q.role;
    if let Some(r) = &role {
        if !KNOWN_ROLES.contains(&r.as_str()) {
            return Err(ApiError::invalid_fields(vec![kit::problem::FieldError {
                field: "role".into(),
                message: format!("unknown role `{r}` (known: {})", KNOWN_ROLES.join(", ")),
            }]));
        }
    }
    let email = q.email.map(|e| e.trim().to_string()).filter(|e| !e.is_empty());
    let (rows, total) =
        s.store().list_users(&UserFilter { role, email }, page.limit(), page.offset()).await?;
    let p = Page::new(rows.into_iter().map(User::from).collect(), page, total);
    Ok(Json(UserPage {
        items: p.items,
        page: p.page,
        page_size: p.page_size,
        total: p.total,
        total_pages: p.total_pages,
    }))
}

/// One user (admin).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = User),
        r::Read, r::Admin, r::NotFound,
    ))]
pub async fn get_user(
    State(s): State<AuthState>,
    id: Identity,
    Path(user): Path<Uuid>,
) -> ApiResult<Json<User>> {
    id.require_admin()?;
    let row = s
        .store()
        .user_by_id(user)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user with id {user}")))?;
    Ok(Json(row.into()))
}

/// Replace a user's roles (admin). The user's current access tokens are refused within
/// seconds; a refresh gives tokens with the new roles.
///
/// 409 `cannot_demote_self`: an admin cannot remove their own admin role.
#[utoipa::path(put, path = "/api/v1/users/{id}/roles", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")), request_body = RolesRequest,
    responses(
        (status = 200, description = "The updated user", body = User),
        r::Write, r::Admin, r::NotFound, r::Conflict,
    ))]
pub async fn set_roles(
    State(s): State<AuthState>,
    id: Identity,
    Path(user): Path<Uuid>,
    Json(req): Json<RolesRequest>,
) -> ApiResult<Json<User>> {
    id.require_admin()?;
    Ok(Json(s.set_roles(id.user_id, user, &req.roles).await?.into()))
}

/// Disable a user (admin): they can no longer sign in, their refresh tokens are revoked and
/// their access tokens are refused within seconds.
///
/// 409 `cannot_disable_self`.
#[utoipa::path(post, path = "/api/v1/users/{id}/disable", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The updated user", body = User),
        r::Read, r::Admin, r::NotFound, r::Conflict,
    ))]
pub async fn disable_user(
    State(s): State<AuthState>,
    id: Identity,
    Path(user): Path<Uuid>,
) -> ApiResult<Json<User>> {
    id.require_admin()?;
    Ok(Json(s.set_disabled(id.user_id, user, true).await?.into()))
}

/// Enable a user again (admin).
#[utoipa::path(post, path = "/api/v1/users/{id}/enable", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The updated user", body = User),
        r::Read, r::Admin, r::NotFound,
    ))]
pub async fn enable_user(
    State(s): State<AuthState>,
    id: Identity,
    Path(user): Path<Uuid>,
) -> ApiResult<Json<User>> {
    id.require_admin()?;
    Ok(Json(s.set_disabled(id.user_id, user, false).await?.into()))
}

/// The public keys that verify access tokens (all active keys, current first).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "JSON Web Key Set", body = Jwks), r::Always))]
pub async fn jwks(State(s): State<AuthState>) -> impl IntoResponse {
    ([(axum::http::header::CACHE_CONTROL, "public, max-age=300")], axum::Json(s.jwks().clone()))
}

// ---------------------------------------------------------------------- router, OpenAPI

/// The auth routes, without common layers (the composer adds them and the `Verifier`).
pub fn router(state: AuthState) -> Router {
    Router::new()
        .route("/api/v1/auth/register", post(register))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/refresh", post(refresh))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/logout-all", post(logout_all))
        .route("/api/v1/auth/password", post(change_password))
        .route("/api/v1/auth/password-reset", post(request_password_reset))
        .route("/api/v1/auth/password-reset/confirm", post(confirm_password_reset))
        .route("/api/v1/auth/verify-email", post(verify_email))
        .route("/api/v1/auth/verify-email/resend", post(resend_verification))
        .route(kit::auth::REVOCATIONS_PATH, get(revocation_feed))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/users", get(list_users))
        .route("/api/v1/users/{id}", get(get_user))
        .route("/api/v1/users/{id}/roles", put(set_roles))
        .route("/api/v1/users/{id}/disable", post(disable_user))
        .route("/api/v1/users/{id}/enable", post(enable_user))
        .route("/.well-known/jwks.json", get(jwks))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(register, login, refresh, logout, logout_all, change_password, request_password_reset,
        confirm_password_reset, verify_email, resend_verification, me, list_users, get_user, set_roles,
        disable_user, enable_user, jwks),
    components(schemas(User, Role, RegisterRequest, LoginRequest, RefreshRequest, TokenResponse, RolesRequest, UserPage,
        Jwks, Accepted, ChangePasswordRequest, PasswordResetRequest, PasswordResetConfirm,
        VerifyEmailRequest)),
    modifiers(&BearerSecurity, &Problems),
    tags((name = "auth", description = "Accounts, sign-in, tokens and signing keys"))
)]
struct ApiDoc;

/// The OpenAPI document of the auth routes.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
