//! Cookie sessions for the admin console (ADR 0014): the browser never holds a token where a
//! script could read it.
//!
//! - `POST /api/v1/console/session` signs in through the auth service and answers with three
//!   `HttpOnly; SameSite=Strict` cookies: `shop_session` (the access token, sent with every
//!   request), `shop_refresh` (the refresh token, sent only to `/api/v1/console/session…`) and
//!   `shop_csrf` (a random value for this session). The console's CSRF token is that value; the
//!   page receives it in the answer body (and from `GET …/session`), keeps it in memory and
//!   sends it as `X-CSRF-Token` on every request that changes something.
//! - At the edge ([`crate::edge::authenticate`]) a request without `Authorization` but with a
//!   session cookie is authenticated with the cookie's token, which is then forwarded as a
//!   bearer token, so services see a normal caller. A state-changing request (anything but
//!   GET/HEAD/OPTIONS) must also come from this origin (`Sec-Fetch-Site: same-origin`, or an
//!   `Origin` naming this host) and carry the right `X-CSRF-Token`; otherwise 403 `csrf_failed`.
//!   Bearer-token callers are unaffected: a header a page cannot add is not an ambient
//!   credential.
//! - The console signs in admins only (there are no vendor rights to offer yet); anyone else
//!   is refused with 403 `console_admin_only` and their fresh session revoked.
//! - `POST …/session/refresh` exchanges the refresh cookie for a new pair (the auth service's
//!   rotation and reuse detection apply); `DELETE …/session` revokes the session and clears the
//!   cookies.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kit::client::{Call, ServiceClient};
use kit::openapi::responses as r;
use kit::problem::ErrorCode;
use kit::ApiError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The access-token cookie.
pub const SESSION_COOKIE: &str = "shop_session";
/// The refresh-token cookie (sent only to the session routes).
pub const REFRESH_COOKIE: &str = "shop_refresh";
/// The CSRF cookie: the value the page must echo in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "shop_csrf";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The session routes.
pub const SESSION_PATH: &str = "/api/v1/console/session";

/// What the session routes need.
#[derive(Clone)]
pub struct Sessions {
    /// The auth service (its router in one process, its URL apart).
    pub auth: Option<ServiceClient>,
    /// Verifies the session cookie's token for `GET …/session`.
    pub verifier: Option<kit::auth::Verifier>,
    /// Always mark cookies `Secure` (otherwise only when the request came over HTTPS, as
    /// `X-Forwarded-Proto: https` tells).
    pub secure_cookies: bool,
}

/// Cookie values of a request by name (the first of each name).
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// The request's `Cookie` header without the console's cookies (forwarded upstream).
pub fn strip_session_cookies(headers: &mut HeaderMap) {
    let rest: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split_once('=').map_or(*c, |(k, _)| k);
            !c.is_empty() && ![SESSION_COOKIE, REFRESH_COOKIE, CSRF_COOKIE].contains(&name)
        })
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !rest.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&rest.join("; ")) {
            headers.insert(header::COOKIE, v);
        }
    }
}

fn csrf_failed(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::CsrfFailed).detail(detail.to_string())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The request comes from a page of this origin: `Sec-Fetch-Site: same-origin` when the browser
/// sends it, and an `Origin` (when sent) whose host is this one (`Host`, or `X-Forwarded-Host`
/// behind a proxy that rewrites it).
pub fn check_same_origin(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if site.as_bytes() != b"same-origin" {
            return Err(csrf_failed("the request does not come from a page of this site"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("null");
        let authority = origin.split_once("://").map(|(_, a)| a).unwrap_or("");
        let hosts = [headers.get(header::HOST), headers.get("x-forwarded-host")];
        let matches = hosts
            .iter()
            .flatten()
            .filter_map(|h| h.to_str().ok())
            .any(|h| !authority.is_empty() && h.split(',').next().map(str::trim) == Some(authority));
        if !matches {
            return Err(csrf_failed("the request's Origin is not this site"));
        }
    }
    Ok(())
}

/// The CSRF check of a state-changing cookie request: this origin, and `X-CSRF-Token` equal to
/// the session's CSRF cookie.
pub fn check_csrf(headers: &HeaderMap) -> Result<(), ApiError> {
    check_same_origin(headers)?;
    let expected =
        cookie(headers, CSRF_COOKIE).ok_or_else(|| csrf_failed("no CSRF cookie: sign in again"))?;
    let given = headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| csrf_failed("the X-CSRF-Token header is missing"))?;
    if constant_time_eq(expected.as_bytes(), given.as_bytes()) {
        Ok(())
    } else {
        Err(csrf_failed("the X-CSRF-Token header does not match this session"))
    }
}

/// Whether a method changes state (and so needs the CSRF check).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

// ---------------------------------------------------------------------- bodies

/// Credentials of `POST /api/v1/console/session`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignIn {
    #[schema(example = "admin@example.com")]
    pub email: String,
    #[schema(example = "Admin123!")]
    pub password: String,
}

/// The signed-in console user.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionUser {
    pub id: String,
    pub email: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    pub roles: Vec<String>,
}

/// A console session as the page sees it: who, the CSRF token to echo, and when the access
/// token expires (the page refreshes before or when it does).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The signed-in user; `null` when the access token has expired (refresh, then ask again).
    pub user: Option<SessionUser>,
    /// Send it as `X-CSRF-Token` on every state-changing request.
    pub csrf_token: String,
    /// Seconds until the access token expires (0 when it has).
    pub expires_in: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    access_token: String,
    refresh_token: String,
    expires_in: u64,
    user: SessionUser,
}

// ---------------------------------------------------------------------- cookies

fn secure(s: &Sessions, headers: &HeaderMap) -> bool {
    s.secure_cookies
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.split(',').next().map(str::trim) == Some("https"))
}

fn set_cookie(res: &mut Response, name: &str, value: &str, path: &str, secure: bool) {
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if value.is_empty() {
        c.push_str("; Max-Age=0");
    }
    if secure {
        c.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&c) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

fn clear_cookies(res: &mut Response, secure: bool) {
    set_cookie(res, SESSION_COOKIE, "", "/", secure);
    set_cookie(res, REFRESH_COOKIE, "", SESSION_PATH, secure);
    set_cookie(res, CSRF_COOKIE, "", "/", secure);
}

fn new_csrf_token() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The answer to a successful sign-in or refresh: the view in the body, the cookies set.
fn established(t: TokenAnswer, csrf: String, secure: bool) -> Response {
    let view = SessionView { user: Some(t.user), csrf_token: csrf.clone(), expires_in: t.expires_in };
    let mut res = Json(view).into_response();
    set_cookie(&mut res, SESSION_COOKIE, &t.access_token, "/", secure);
    set_cookie(&mut res, REFRESH_COOKIE, &t.refresh_token, SESSION_PATH, secure);
    set_cookie(&mut res, CSRF_COOKIE, &csrf, "/", secure);
    res
}

/// A problem answer of the auth service, passed on as it is.
fn passed_on(reply: kit::client::Reply) -> Response {
    let mut res = (reply.status, reply.body).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kit::problem::PROBLEM_JSON));
    res
}

/// Headers for a call to the auth service on the browser's behalf: the request id and the
/// client's address appended to `X-Forwarded-For` (as the proxy does), for its throttles.
fn on_behalf(call: Call, headers: &HeaderMap, peer: Option<SocketAddr>) -> Call {
    let mut call = call;
    if let Some(v) = headers.get(kit::http::REQUEST_ID) {
        call = call.header(kit::http::REQUEST_ID, v.clone());
    }
    if let Some(ip) = peer.map(|p| p.ip()) {
        let xff = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(prev) => format!("{prev}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&xff) {
            call = call.header(header::HeaderName::from_static("x-forwarded-for"), v);
        }
    }
    call
}

fn auth(s: &Sessions) -> Result<&ServiceClient, ApiError> {
    s.auth.as_ref().ok_or_else(|| ApiError::unavailable("the auth service is not configured"))
}

/// Revokes a refresh token's session (best effort: the cookies go either way).
async fn revoke(s: &Sessions, refresh_token: &str, headers: &HeaderMap, peer: Option<SocketAddr>) {
    if let Ok(auth) = auth(s) {
        let call = on_behalf(
            Call::post("/api/v1/auth/logout", &serde_json::json!({ "refreshToken": refresh_token })),
            headers,
            peer,
        );
        if let Err(e) = auth.send(call).await {
            tracing::warn!(error = %e, "console sign-out: the session could not be revoked");
        }
    }
}

/// The TCP peer of the request, when known.
pub struct Peer(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0)))
    }
}

// ---------------------------------------------------------------------- handlers

/// Sign in to the admin console: the session travels in `HttpOnly` cookies; the body carries
/// the CSRF token the page must echo in `X-CSRF-Token`.
#[utoipa::path(
    post, path = "/api/v1/console/session", tag = "console", request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; `Set-Cookie`: shop_session, shop_refresh, shop_csrf", body = SessionView),
        r::Write, r::Forbidden,
    )
)]
pub async fn sign_in(
    State(s): State<Sessions>,
    Peer(peer): Peer,
    headers: HeaderMap,
    kit::extract::Json(creds): kit::extract::Json<SignIn>,
) -> Result<Response, ApiError> {
    check_same_origin(&headers)?;
    let auth = auth(&s)?;
    let reply = auth.send(on_behalf(Call::post("/api/v1/auth/login", &creds), &headers, peer)).await?;
    if !reply.status.is_success() {
        return Ok(passed_on(reply));
    }
    let t: TokenAnswer = reply.json("auth")?;
    if !t.user.roles.iter().any(|r| r == kit::auth::roles::ADMIN) {
        revoke(&s, &t.refresh_token, &headers, peer).await;
        return Err(ApiError::new(ErrorCode::ConsoleAdminOnly).detail(
            "the console is for administrators; this account has no admin role (vendor accounts have no \
             console rights yet)",
        ));
    }
    Ok(established(t, new_csrf_token(), secure(&s, &headers)))
}

/// The current console session: the user (while the access token is valid) and the CSRF token.
#[utoipa::path(
    get, path = "/api/v1/console/session", tag = "console",
    responses(
        (status = 200, description = "The session (`user` is null once the access token expired: refresh)", body = SessionView),
        r::Read,
    )
)]
pub async fn current(State(s): State<Sessions>, headers: HeaderMap) -> Result<Response, ApiError> {
    let no_session = || ApiError::new(ErrorCode::NoSession).detail("no console session: sign in");
    let (Some(csrf), true) = (
        cookie(&headers, CSRF_COOKIE),
        cookie(&headers, SESSION_COOKIE).is_some() || cookie(&headers, REFRESH_COOKIE).is_some(),
    ) else {
        return Err(no_session());
    };
    let csrf = csrf.to_string();
    let claims = match (cookie(&headers, SESSION_COOKIE), &s.verifier) {
        (Some(token), Some(v)) => match v.verify(token).await {
            Ok(c) => Some(c),
            Err(kit::auth::TokenError::Expired) => None,
            Err(kit::auth::TokenError::KeysUnavailable(e)) => return Err(ApiError::unavailable(e)),
            Err(_) => {
                let mut res = no_session().into_response();
                clear_cookies(&mut res, secure(&s, &headers));
                return Ok(res);
            }
        },
        (None, _) => None,
        (Some(_), None) => return Err(ApiError::unavailable("no token verifier in this gateway")),
    };
    let view = match claims {
        Some(c) => SessionView {
            expires_in: u64::try_from(c.exp - time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0),
            user: Some(SessionUser {
                id: c.sub.to_string(),
                email: c.email.unwrap_or_default(),
                first_name: None,
                last_name: None,
                roles: c.roles,
            }),
            csrf_token: csrf,
        },
        None => SessionView { user: None, csrf_token: csrf, expires_in: 0 },
    };
    Ok(Json(view).into_response())
}

/// Exchange the refresh cookie for a new session (the auth service's single-use rotation).
#[utoipa::path(
    post, path = "/api/v1/console/session/refresh", tag = "console",
    params(("X-CSRF-Token" = String, Header, description = "The session's CSRF token")),
    responses(
        (status = 200, description = "Refreshed; new cookies", body = SessionView),
        r::Read, r::Forbidden,
    )
)]
pub async fn refresh(
    State(s): State<Sessions>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_csrf(&headers)?;
    let secure = secure(&s, &headers);
    let gone = |mut res: Response| {
        clear_cookies(&mut res, secure);
        res
    };
    let Some(token) = cookie(&headers, REFRESH_COOKIE) else {
        return Ok(gone(
            ApiError::new(ErrorCode::NoSession).detail("no refresh cookie: sign in again").into_response(),
        ));
    };
    let auth = auth(&s)?;
    let call = Call::post("/api/v1/auth/refresh", &serde_json::json!({ "refreshToken": token }));
    let reply = auth.send(on_behalf(call, &headers, peer)).await?;
    if !reply.status.is_success() {
        return Ok(gone(passed_on(reply)));
    }
    let t: TokenAnswer = reply.json("auth")?;
    if !t.user.roles.iter().any(|r| r == kit::auth::roles::ADMIN) {
        revoke(&s, &t.refresh_token, &headers, peer).await;
        return Ok(gone(
            ApiError::new(ErrorCode::ConsoleAdminOnly)
                .detail("this account is no longer an administrator")
                .into_response(),
        ));
    }
    let csrf = cookie(&headers, CSRF_COOKIE).map(str::to_string).unwrap_or_else(new_csrf_token);
    Ok(established(t, csrf, secure))
}

/// Sign out: the session is revoked at the auth service and the cookies cleared.
#[utoipa::path(
    delete, path = "/api/v1/console/session", tag = "console",
    params(("X-CSRF-Token" = Option<String>, Header, description = "The session's CSRF token: required when the request carries a session cookie (without one there is nothing to sign out of)")),
    responses(
        (status = 204, description = "Signed out; the cookies are cleared"),
        r::Read, r::Forbidden,
    )
)]
pub async fn sign_out(
    State(s): State<Sessions>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if cookie(&headers, CSRF_COOKIE).is_some() {
        check_csrf(&headers)?;
    }
    if let Some(token) = cookie(&headers, REFRESH_COOKIE) {
        revoke(&s, token, &headers, peer).await;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    clear_cookies(&mut res, secure(&s, &headers));
    Ok(res)
}

/// The session routes.
pub fn routes(sessions: Sessions) -> Router {
    Router::new()
        .route(SESSION_PATH, get(current).post(sign_in).delete(sign_out))
        .route("/api/v1/console/session/refresh", post(refresh))
        .with_state(sessions)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn reads_and_strips_cookies() {
        let mut h = headers(&[("cookie", "a=1; shop_session=tok; b=2"), ("cookie", "shop_csrf=c")]);
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("tok"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("c"));
        assert_eq!(cookie(&h, "missing"), None);
        strip_session_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
        let mut only = headers(&[("cookie", "shop_session=x")]);
        strip_session_cookies(&mut only);
        assert!(!only.contains_key(header::COOKIE));
    }

    #[test]
    fn csrf_needs_this_origin_and_the_token() {
        let ok = headers(&[
            ("cookie", "shop_csrf=abc"),
            ("x-csrf-token", "abc"),
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert!(check_csrf(&ok).is_ok());
        let no_browser_headers = headers(&[("cookie", "shop_csrf=abc"), ("x-csrf-token", "abc")]);
        assert!(check_csrf(&no_browser_headers).is_ok(), "a non-browser client that knows the token");

        for bad in [
            headers(&[("cookie", "shop_csrf=abc"), ("x-csrf-token", "abd")]),
            headers(&[("cookie", "shop_csrf=abc")]),
            headers(&[("x-csrf-token", "abc")]),
            headers(&[("cookie", "shop_csrf=abc"), ("x-csrf-token", "abc"), ("sec-fetch-site", "same-site")]),
            headers(&[
                ("cookie", "shop_csrf=abc"),
                ("x-csrf-token", "abc"),
                ("host", "127.0.0.1:3000"),
                ("origin", "http://evil.example"),
            ]),
            headers(&[("cookie", "shop_csrf=abc"), ("x-csrf-token", "abc"), ("origin", "null")]),
        ] {
            let e = check_csrf(&bad).unwrap_err();
            assert_eq!((e.status, e.code), (StatusCode::FORBIDDEN, ErrorCode::CsrfFailed), "{bad:?}");
        }
        let proxied = headers(&[
            ("host", "gateway:8080"),
            ("x-forwarded-host", "shop.example"),
            ("origin", "https://shop.example"),
        ]);
        assert!(check_same_origin(&proxied).is_ok());
    }
}
