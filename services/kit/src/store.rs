//! The error of every service's store, and its one mapping to problem documents.
//!
//! A store answers [`StoreError`]: no such row, a conflict with a code of its own, fields it
//! refuses, data that contradicts itself, an event or database failure — and, where a service
//! needs more than a code and a sentence, its own refusal `R` (the shortages of a stock
//! adjustment, a refund over what is left, a status change the lifecycle forbids), which says
//! itself what problem it is ([`Refusal`]). `From<StoreError<R>> for ApiError` is the only place
//! these become problem documents.

use crate::events::EventError;
use crate::problem::{ApiError, ErrorCode, FieldError};

/// What can go wrong in a store; `R` is the service's own refusal ([`NoRefusal`] when it has none).
#[derive(Debug, thiserror::Error)]
pub enum StoreError<R: Refusal = NoRefusal> {
    /// No such row; the text names it (`order 0190…`): 404.
    #[error("{0} not found")]
    NotFound(String),
    /// A conflict with the stored state, with a 409 code of [`ErrorCode`].
    #[error("{detail}")]
    Conflict { code: ErrorCode, detail: String },
    /// Values the store refuses, per field: 422 `validation_failed`.
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The service's own refusal: the problem it says it is.
    #[error("{0}")]
    Refused(R),
    /// Stored data that contradicts itself (a bug or a manual edit): 500, logged.
    #[error("{0}")]
    Corrupt(String),
    /// The outbox or inbox failed: 500, logged.
    #[error(transparent)]
    Events(#[from] EventError),
    /// The database failed: 503 when it does not answer, 500 otherwise.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A service's own refusal: what problem document it is.
pub trait Refusal: std::fmt::Debug + std::fmt::Display {
    fn problem(&self) -> ApiError;
}

/// The refusal of a store that has none of its own (no value of it exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRefusal {}

impl std::fmt::Display for NoRefusal {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {}
    }
}

impl Refusal for NoRefusal {
    fn problem(&self) -> ApiError {
        match *self {}
    }
}

impl<R: Refusal> From<StoreError<R>> for ApiError {
    fn from(e: StoreError<R>) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict { code, detail } => ApiError::conflict(code, detail),
            StoreError::Invalid(errors) => ApiError::invalid_fields(errors),
            StoreError::Refused(r) => r.problem(),
            StoreError::Corrupt(_) | StoreError::Events(_) => ApiError::internal(e),
            StoreError::Db(e) => ApiError::from(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[derive(Debug, thiserror::Error)]
    #[error("too few")]
    struct TooFew;

    impl Refusal for TooFew {
        fn problem(&self) -> ApiError {
            ApiError::conflict(ErrorCode::InsufficientStock, "too few")
        }
    }

    #[test]
    fn one_mapping_to_problems() {
        let status = |e: StoreError<TooFew>| ApiError::from(e).status;
        assert_eq!(status(StoreError::NotFound("order 1".into())), StatusCode::NOT_FOUND);
        let c = ApiError::from(StoreError::<NoRefusal>::Conflict {
            code: ErrorCode::DuplicateSku,
            detail: "taken".into(),
        });
        assert_eq!((c.status, c.code), (StatusCode::CONFLICT, ErrorCode::DuplicateSku));
        let invalid = ApiError::from(StoreError::<TooFew>::Invalid(vec![FieldError {
            field: "name".into(),
            message: "is required".into(),
        }]));
        assert_eq!((invalid.status, invalid.errors.len()), (StatusCode::UNPROCESSABLE_ENTITY, 1));
        let refused = ApiError::from(StoreError::Refused(TooFew));
        assert_eq!(refused.code, ErrorCode::InsufficientStock);
        let corrupt = ApiError::from(StoreError::<TooFew>::Corrupt("row 7 says -1 units".into()));
        assert_eq!(corrupt.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!corrupt.detail.unwrap_or_default().contains("row 7"), "details are logged, not sent");
        assert_eq!(status(StoreError::Db(sqlx::Error::PoolTimedOut)), StatusCode::SERVICE_UNAVAILABLE);
    }
}
