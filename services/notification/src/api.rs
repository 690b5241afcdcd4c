//! HTTP handlers, the router and the OpenAPI document of the notification service.

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use kit::auth::Identity;
use kit::extract::{Json, Path, Query};
use kit::openapi::{responses as r, BearerSecurity, Problems};
use kit::pagination::{Page, PageParams};
use kit::problem::{ErrorCode, FieldError};
use kit::{ApiError, ApiResult};
use serde::Deserialize;
use utoipa::{IntoParams, OpenApi};
use uuid::Uuid;

use crate::model::*;
use crate::store::AdminFilter;
use crate::NotificationState;

/// The query of `GET /api/v1/notifications/admin/all`: the page and the filters (nothing else).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdminQuery {
    /// Page number, from 1 (default 1).
    #[param(minimum = 1, maximum = 4294967295_u64, default = 1)]
    pub page: Option<u32>,
    /// Items per page, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100, default = 20)]
    pub page_size: Option<u32>,
    /// Only notifications in this status.
    #[param(value_type = Option<Status>)]
    pub status: Option<String>,
    /// Only notifications of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<NotificationType>)]
    pub notification_type: Option<String>,
    /// Only notifications on this channel.
    #[param(value_type = Option<ChannelKind>)]
    pub channel: Option<String>,
}

fn parse_filter<T>(
    field: &str,
    v: Option<String>,
    parse: fn(&str) -> Option<T>,
    names: String,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let v = v?;
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
        r::List,
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
        r::Read, r::NotFound,
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
    params(AdminQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of notifications", body = Page<Notification>),
        r::List, r::Admin,
    )
)]
pub async fn list_all(
    State(st): State<NotificationState>,
    who: Identity,
    Query(q): Query<AdminQuery>,
) -> ApiResult<Json<Page<Notification>>> {
    who.require_admin()?;
    let pp = PageParams { page: q.page, page_size: q.page_size };
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
/// that failed because no address was known when it was planned has nothing to send (409
/// `notification_unaddressable`); a password-reset or verification email carried a single-use
/// link that is not kept (409 `notification_link_expired`); 409 `notification_not_failed` for any
/// other status.
#[utoipa::path(
    post, path = "/api/v1/notifications/{id}/resend", tag = "notifications",
    params(("id" = Uuid, Path, description = "Notification id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Queued again: the notification, now PENDING", body = Notification),
        r::Read, r::Admin, r::NotFound, r::Conflict,
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
            ErrorCode::NotificationUnaddressable,
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
            ErrorCode::NotificationLinkExpired,
            format!(
                "notification `{id}` carried a single-use link that is not kept: the user asks for a new one"
            ),
        ));
    }
    if !st.store.requeue_failed(id, kit::db::Timestamp::now()).await? {
        return Err(ApiError::conflict(
            ErrorCode::NotificationNotFailed,
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
    components(schemas(Notification, NotificationType, ChannelKind, Status, Page<Notification>)),
    modifiers(&BearerSecurity, &Problems),
    tags((name = "notifications", description = "Email/SMS/push notification history"))
)]
struct ApiDoc;

/// The OpenAPI document of the notification routes (tag `notifications`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
