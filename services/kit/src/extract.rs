//! Extractors whose rejections are problem documents instead of axum's plain-text bodies.
//!
//! - malformed JSON → 400 `malformed_json`; wrong types or missing fields → 422
//!   `validation_failed` (with the offending path); no JSON content type → 415;
//! - a query string that does not parse → 400 `invalid_query`;
//! - a path parameter that does not parse (e.g. not a UUID) → 400 `invalid_path`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::problem::{ApiError, ErrorCode};

/// `axum::Json` with problem-document rejections. Also a response type.
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with problem-document rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with problem-document rejections.
#[derive(Debug, Clone, Copy, Default, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::JsonDataError(e) => {
                let text = e.body_text();
                // axum's text is "Failed to deserialize the JSON body into the target type: <path>: <msg>".
                let msg = text.split_once("target type: ").map(|(_, m)| m.to_string()).unwrap_or(text);
                let mut err = ApiError::validation(msg.clone());
                if let Some((field, why)) = msg.split_once(": ") {
                    if !field.contains(' ') {
                        err = err.field(field, why);
                    }
                }
                err
            }
            JsonRejection::JsonSyntaxError(e) => ApiError::malformed_json(e.body_text()),
            JsonRejection::MissingJsonContentType(_) => ApiError::unsupported_media_type(
                "expected a request body with `Content-Type: application/json`",
            ),
            JsonRejection::BytesRejection(e) => {
                let status = e.status();
                if status == StatusCode::PAYLOAD_TOO_LARGE {
                    crate::problem::for_status(status).detail("the request body is too large")
                } else {
                    ApiError::bad_request(e.body_text())
                }
            }
            other => ApiError::bad_request(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        let text = r.body_text();
        let msg = text.strip_prefix("Failed to deserialize query string: ").unwrap_or(&text).to_string();
        ApiError::new(ErrorCode::InvalidQuery).detail(msg)
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        match r {
            PathRejection::FailedToDeserializePathParams(e) => {
                ApiError::new(ErrorCode::InvalidPath).detail(e.body_text())
            }
            other => ApiError::internal(other.body_text()),
        }
    }
}

/// Parses an optional JSON body, for endpoints such as `POST …/cancel` whose body is a courtesy
/// (`{reason?}`): empty (or only whitespace), or a JSON `null`, gives `T::default()`; anything else gets the same
/// problems as [`Json`]: 415 without a JSON content type, 400 when it is not JSON, 422 when
/// its fields are wrong.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime_type::Essence>().ok())
        .is_some_and(|m| m.is_json());
    if json && body.trim_ascii() == b"null" {
        // The document describes these bodies as optional and nullable: `null` is "no body".
        return Ok(T::default());
    }
    if !json {
        return Err(ApiError::unsupported_media_type(
            "expected a request body with `Content-Type: application/json`",
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_data() {
            let msg = e.to_string();
            let mut err = ApiError::validation(msg.clone());
            if let Some((field, why)) = msg.split_once(": ") {
                if !field.contains(' ') {
                    err = err.field(field, why);
                }
            }
            err
        } else {
            ApiError::malformed_json(e.to_string())
        }
    })
}

/// The media type of a `Content-Type` value without its parameters, as axum's `Json` reads it.
mod mime_type {
    pub struct Essence(String);

    impl std::str::FromStr for Essence {
        type Err = ();
        fn from_str(s: &str) -> Result<Self, ()> {
            let essence = s.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            if essence.contains('/') {
                Ok(Essence(essence))
            } else {
                Err(())
            }
        }
    }

    impl Essence {
        /// `application/json` or `application/<anything>+json`.
        pub fn is_json(&self) -> bool {
            let Some((ty, sub)) = self.0.split_once('/') else { return false };
            ty == "application" && (sub == "json" || sub.ends_with("+json"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, HeaderMap, StatusCode};

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        amount: Option<i64>,
    }

    #[test]
    fn optional_bodies() {
        let mut h = HeaderMap::new();
        assert_eq!(optional_json::<Body>(&h, b"").unwrap().amount, None);
        assert_eq!(optional_json::<Body>(&h, b" \n").unwrap().amount, None);
        assert_eq!(optional_json::<Body>(&h, b"{}").unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        h.insert(header::CONTENT_TYPE, "application/json; charset=utf-8".parse().unwrap());
        assert_eq!(optional_json::<Body>(&h, b"{").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert_eq!(optional_json::<Body>(&h, b" null ").unwrap().amount, None);
        assert_eq!(
            optional_json::<Body>(&h, br#"{"amount":"x"}"#).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(
            optional_json::<Body>(&h, br#"{"other":1}"#).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        assert_eq!(optional_json::<Body>(&h, br#"{"amount":5}"#).unwrap().amount, Some(5));
        h.insert(header::CONTENT_TYPE, "application/merge-patch+json".parse().unwrap());
        assert_eq!(optional_json::<Body>(&h, br#"{"amount":5}"#).unwrap().amount, Some(5));
        h.insert(header::CONTENT_TYPE, "text/json".parse().unwrap());
        assert_eq!(optional_json::<Body>(&h, b"{}").unwrap_err().status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
