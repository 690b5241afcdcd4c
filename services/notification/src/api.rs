//! HTTP handlers, the router and the OpenAPI document of the notification service.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use kit::auth::Identity;
use kit::extract::{Json, Path, Query};
use kit::openapi::BearerSecurity;
use kit::pagination::{Page, PageParams};
use kit::problem::{FieldError, Problem};
use kit::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::model::*;
use crate::store::AdminFilter;
use crate::NotificationState;

/// Filters of `GET /api/v1/notifications/admin/all`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
pub struct AdminQuery {
    /// `PENDING`, `SENT` or `FAILED`.
    pub status: Option<String>,
    /// Notification type, e.g. `ORDER_CONFIRMATION`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub notification_type: Option<String>,
    /// `EMAIL`, `SMS` or `PUSH`.
    pub channel: Option<String>,
}

fn parse_filter<T>(
    field: &str,
    v: Option<String>,
    parse: fn(&str) -> Option<T>,
    names: String,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let v = v.map(|s| s.trim().to_ascii_uppercase()).filter(|s| !s.is_empty())?;
    let parsed = parse(&v);
    if parsed.is_none() {
        errors.push(FieldError { field: field.into(), message: format!("must be one of {names}") });
    }
    parsed
}

fn to_api(rows: Vec<NotificationRow>) -> ApiResult<Vec<Notification>> {
    rows.into_iter().map(|r| r.into_api().map_err(ApiError::internal)).collect()
}

/// List the caller's notifications, newest first.
#[utoipa::path(
    get, path = "/api/v1/notifications", tag = "notifications",
    params(PageParams),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the caller's notifications", body = Page<Notification>),
        (status = 400, description = "Unparseable query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid pagination", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_own(
    State(st): State<NotificationState>,
    who: Identity,
    Query(pp): Query<PageParams>,
) -> ApiResult<Json<Page<Notification>>> {
    let page = pp.validate()?;
    let (rows, total) = st.store.list_for_user(who.user_id, page).await?;
    Ok(Json(Page::new(to_api(rows)?, page, total)))
}

/// Get one of the caller's notifications (admins may read any).
#[utoipa::path(
    get, path = "/api/v1/notifications/{id}", tag = "notifications",
    params(("id" = Uuid, Path, description = "Notification id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The notification", body = Notification),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such notification, or someone else's", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get_one(
    State(st): State<NotificationState>,
    who: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Notification>> {
    let not_found = || ApiError::not_found(format!("notification `{id}` not found"));
    let row = st.store.get(id).await?.ok_or_else(not_found)?;
    let visible = match row.user_id {
        Some(owner) => who.can_see(owner),
        None => who.is_admin(),
    };
    if !visible {
        return Err(not_found());
    }
    row.into_api().map(Json).map_err(ApiError::internal)
}

/// List every notification (admin), filtered by status, type and channel.
#[utoipa::path(
    get, path = "/api/v1/notifications/admin/all", tag = "notifications",
    params(PageParams, AdminQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of notifications", body = Page<Notification>),
        (status = 400, description = "Unparseable query string", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid filter or pagination", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_all(
    State(st): State<NotificationState>,
    who: Identity,
    Query(pp): Query<PageParams>,
    Query(q): Query<AdminQuery>,
) -> ApiResult<Json<Page<Notification>>> {
    who.require_admin()?;
    let mut errors = Vec::new();
    let page = pp.validate().map_err(|e| errors.extend(e.errors)).ok();
    let filter = AdminFilter {
        status: parse_filter("status", q.status, Status::parse, Status::names(), &mut errors),
        notification_type: parse_filter(
            "type",
            q.notification_type,
            NotificationType::parse,
            NotificationType::names(),
            &mut errors,
        ),
        channel: parse_filter("channel", q.channel, ChannelKind::parse, ChannelKind::names(), &mut errors),
    };
    let Some(page) = page.filter(|_| errors.is_empty()) else {
        return Err(ApiError::invalid_fields(errors));
    };
    let (rows, total) = st.store.list_all(&filter, page).await?;
    Ok(Json(Page::new(to_api(rows)?, page, total)))
}

/// Send a FAILED notification again (admin): it becomes PENDING with its attempts counted
/// afresh, and the dispatcher takes it at once (and retries it as any other). A notification
/// that failed because no address was known when it was planned has nothing to send (409).
#[utoipa::path(
    post, path = "/api/v1/notifications/{id}/resend", tag = "notifications",
    params(("id" = Uuid, Path, description = "Notification id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Queued again: the notification, now PENDING", body = Notification),
        (status = 400, description = "Not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an admin", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such notification", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`notification_not_failed`: only FAILED notifications are sent again; `notification_unaddressable`: it never had a recipient; `notification_link_expired`: a password-reset or verification email (its link is not kept)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn resend(
    State(st): State<NotificationState>,
    who: Identity,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Notification>> {
    who.require_admin()?;
    let row = st
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("notification `{id}` not found")))?;
    if row.recipient.is_empty() {
        return Err(ApiError::conflict(
            "notification_unaddressable",
            format!(
                "notification `{id}` was never addressed ({}): there is nothing to send again",
                row.last_error.as_deref().unwrap_or("no recipient")
            ),
        ));
    }
    // A reset or verification link's token is erased when its message fails for good: sending
    // the message again would mail a dead link.
    if matches!(
        NotificationType::parse(&row.notification_type),
        Some(NotificationType::PasswordReset | NotificationType::EmailVerification)
    ) {
        return Err(ApiError::conflict(
            "notification_link_expired",
            format!(
                "notification `{id}` carried a single-use link that is not kept: the user asks for a new one"
            ),
        ));
    }
    if !st.store.requeue_failed(id, kit::db::Timestamp::now()).await? {
        return Err(ApiError::conflict(
            "notification_not_failed",
            format!("notification `{id}` is {}: only FAILED notifications are sent again", row.status),
        ));
    }
    st.wake_dispatcher();
    let row = st
        .store
        .get(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("notification `{id}` not found")))?;
    row.into_api().map(Json).map_err(ApiError::internal)
}

/// The notification routes (no common layers; the composer adds them and the `Verifier`).
pub fn router(state: NotificationState) -> Router {
    Router::new()
        .route("/api/v1/notifications", get(list_own))
        .route("/api/v1/notifications/admin/all", get(list_all))
        .route("/api/v1/notifications/{id}", get(get_one))
        .route("/api/v1/notifications/{id}/resend", axum::routing::post(resend))
        .route(crate::security::PATH, axum::routing::post(crate::security::security_mail))
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(list_own, get_one, list_all, resend),
    components(schemas(Notification, NotificationType, ChannelKind, Status, Page<Notification>, Problem, FieldError)),
    modifiers(&BearerSecurity),
    tags((name = "notifications", description = "Email/SMS/push notification history"))
)]
struct ApiDoc;

/// The OpenAPI document of the notification routes (tag `notifications`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
