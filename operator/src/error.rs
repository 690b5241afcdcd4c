//! The operator's one error type.

use crate::provision::ProvisionError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kubernetes API call failed.
    #[error("{action} {kind} {name}: {}", describe(.source))]
    Kube {
        action: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    /// A referenced Secret (or one of its keys) is missing.
    #[error("secret {name}: key {key} is missing")]
    MissingSecret { name: String, key: String },
    /// Creating or dropping a database failed.
    #[error("database provisioning: {0}")]
    Database(#[from] ProvisionError),
    /// Creating or changing Kafka topics failed.
    #[error("kafka topic provisioning: {0}")]
    Kafka(String),
    /// The object cannot be reconciled as written (e.g. it has no namespace).
    #[error("invalid ShopPlatform: {0}")]
    InvalidSpec(String),
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// Label of the `reason` of `shop_operator_reconcile_failures_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { source: kube::Error::Api(s), .. } if s.code == 409 => "conflict",
            Error::Kube { .. } => "kube_api",
            Error::MissingSecret { .. } => "missing_secret",
            Error::Database(_) => "database",
            Error::Kafka(_) => "kafka",
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Finalizer(_) => "finalizer",
        }
    }

    /// The API server refused the request (403): a permission is missing.
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Error::Kube { source: kube::Error::Api(s), .. } if s.code == 403)
    }

    /// The condition reason of this error: `Forbidden`, `ApiError` or the step's own.
    pub fn reason(&self) -> &'static str {
        use crate::status::reasons;
        match self {
            e if e.is_forbidden() => reasons::FORBIDDEN,
            Error::Kube { .. } => reasons::API_ERROR,
            Error::Database(_) => reasons::PROVISIONING_FAILED,
            Error::Kafka(_) => reasons::PROVISIONING_FAILED,
            Error::MissingSecret { .. } => reasons::FAILED,
            Error::InvalidSpec(_) | Error::Finalizer(_) => reasons::FAILED,
        }
    }

    pub(crate) fn kube(
        action: &'static str,
        kind: &'static str,
        name: &str,
    ) -> impl FnOnce(kube::Error) -> Error {
        let name = name.to_string();
        move |source| Error::Kube { action, kind, name, source }
    }
}

/// The finalizer helper wraps our errors; unwrap them so metrics keep their reason.
impl From<kube::runtime::finalizer::Error<Error>> for Error {
    fn from(e: kube::runtime::finalizer::Error<Error>) -> Self {
        use kube::runtime::finalizer::Error as F;
        match e {
            F::ApplyFailed(e) | F::CleanupFailed(e) => e,
            other => Error::Finalizer(other.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kubernetes API error as a person reads it: the API server's message, code and reason (kube's
/// own text repeats the whole status).
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => format!("{} ({} {})", s.message, s.code, s.reason),
        other => other.to_string(),
    }
}
