//! Conditions, phase and the status a reconcile computes. Pure functions; the clock is passed in.

use crate::crd::{Condition, Phase, ShopPlatformStatus};

/// Condition types.
pub mod types {
    pub const READY: &str = "Ready";
    pub const SECRETS_READY: &str = "SecretsReady";
    pub const DATABASE_READY: &str = "DatabaseReady";
    pub const KAFKA_READY: &str = "KafkaReady";
    pub const MIGRATIONS_READY: &str = "MigrationsReady";
    pub const SERVICES_READY: &str = "ServicesReady";
}

/// Condition reasons.
pub mod reasons {
    pub const GENERATED: &str = "Generated";
    pub const AVAILABLE: &str = "Available";
    pub const PROVISIONED: &str = "Provisioned";
    pub const STARTING: &str = "Starting";
    pub const ADMIN_SECRET_MISSING: &str = "AdminSecretMissing";
    pub const PROVISIONING_FAILED: &str = "ProvisioningFailed";
    pub const NOT_REQUIRED: &str = "NotRequired";
    pub const PARTITIONS_NOT_DECREASED: &str = "PartitionsNotDecreased";
    pub const SUCCEEDED: &str = "Succeeded";
    pub const RUNNING: &str = "Running";
    pub const FAILED: &str = "Failed";
    pub const WAITING_FOR_DATABASE: &str = "WaitingForDatabase";
    pub const PROGRESSING: &str = "Progressing";
    /// A Deployment whose rollout fails: its pods crashloop, cannot pull their image or start,
    /// or it exceeded its progress deadline.
    pub const ROLLOUT_FAILED: &str = "RolloutFailed";
    /// A Deployment that was rolled out has fewer available pods than it wants.
    pub const UNAVAILABLE: &str = "Unavailable";
    /// A Kubernetes API request failed.
    pub const API_ERROR: &str = "ApiError";
    /// A Kubernetes API request was refused: the operator's role lacks a permission.
    pub const FORBIDDEN: &str = "Forbidden";
    pub const ALL_READY: &str = "AllReady";
    pub const NOT_READY: &str = "NotReady";
    pub const DELETING: &str = "Deleting";
}

/// A condition as computed by a reconcile, before transition times are settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub type_: &'static str,
    pub ok: Option<bool>,
    pub reason: &'static str,
    pub message: String,
}

impl Observed {
    pub fn new(
        type_: &'static str,
        ok: Option<bool>,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Observed { type_, ok, reason, message: message.into() }
    }

    fn status(&self) -> &'static str {
        match self.ok {
            Some(true) => "True",
            Some(false) => "False",
            None => "Unknown",
        }
    }
}

/// Conditions with `lastTransitionTime` kept from `previous` when the status value is unchanged.
pub fn settle(
    previous: &[Condition],
    observed: &[Observed],
    generation: Option<i64>,
    now: &str,
) -> Vec<Condition> {
    observed
        .iter()
        .map(|o| {
            let status = o.status().to_string();
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == o.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.to_string());
            Condition {
                type_: o.type_.to_string(),
                status,
                reason: o.reason.to_string(),
                message: o.message.clone(),
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect()
}

/// Reasons of a failure (phase Degraded), as opposed to something still starting.
pub fn is_failure(reason: &str) -> bool {
    matches!(
        reason,
        reasons::PROVISIONING_FAILED
            | reasons::FAILED
            | reasons::ROLLOUT_FAILED
            | reasons::UNAVAILABLE
            | reasons::API_ERROR
            | reasons::FORBIDDEN
    )
}

/// The `Ready` condition and the phase from the other conditions: Degraded on a failure, Pending
/// while waiting for the user, Ready when all is ready; otherwise Provisioning for a platform
/// that was never ready and Progressing for one that was (an upgrade, a configuration change).
pub fn summarize(observed: &[Observed], previous: Option<Phase>) -> (Observed, Phase) {
    let failed = observed.iter().find(|o| o.ok == Some(false) && is_failure(o.reason));
    let waiting_for_input = observed.iter().find(|o| o.reason == reasons::ADMIN_SECRET_MISSING);
    let not_ready = observed.iter().find(|o| o.ok != Some(true));
    match (failed, waiting_for_input, not_ready) {
        (Some(f), _, _) => (
            Observed::new(
                types::READY,
                Some(false),
                reasons::NOT_READY,
                format!("{}: {}", f.type_, f.message),
            ),
            Phase::Degraded,
        ),
        (None, Some(w), _) => (
            Observed::new(
                types::READY,
                Some(false),
                reasons::NOT_READY,
                format!("{}: {}", w.type_, w.message),
            ),
            Phase::Pending,
        ),
        (None, None, Some(n)) => {
            let phase = match previous {
                Some(Phase::Ready | Phase::Progressing | Phase::Degraded) => Phase::Progressing,
                _ => Phase::Provisioning,
            };
            (
                Observed::new(
                    types::READY,
                    Some(false),
                    reasons::PROGRESSING,
                    format!("{}: {}", n.type_, n.message),
                ),
                phase,
            )
        }
        (None, None, None) => (
            Observed::new(types::READY, Some(true), reasons::ALL_READY, "all services are ready"),
            Phase::Ready,
        ),
    }
}

/// Current time, RFC 3339 with second precision.
pub fn now() -> String {
    use k8s_openapi::jiff::{Timestamp, TimestampRound, Unit};
    Timestamp::now()
        .round(TimestampRound::new().smallest(Unit::Second))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Whether writing `new` over `old` would change anything.
pub fn changed(old: Option<&ShopPlatformStatus>, new: &ShopPlatformStatus) -> bool {
    old != Some(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_time_is_kept_while_status_holds() {
        let first =
            settle(&[], &[Observed::new(types::DATABASE_READY, Some(false), "Starting", "")], Some(1), "t1");
        assert_eq!(first[0].last_transition_time, "t1");
        let same =
            settle(&first, &[Observed::new(types::DATABASE_READY, Some(false), "Other", "m")], Some(2), "t2");
        assert_eq!(same[0].last_transition_time, "t1");
        assert_eq!(same[0].reason, "Other");
        let flipped = settle(
            &same,
            &[Observed::new(types::DATABASE_READY, Some(true), "Provisioned", "")],
            Some(2),
            "t3",
        );
        assert_eq!(flipped[0].last_transition_time, "t3");
    }

    #[test]
    fn phases() {
        let ok = |t| Observed::new(t, Some(true), reasons::AVAILABLE, "");
        let (ready, phase) = summarize(&[ok(types::SECRETS_READY), ok(types::SERVICES_READY)], None);
        assert_eq!((ready.ok, phase), (Some(true), Phase::Ready));
        let starting = Observed::new(types::SERVICES_READY, Some(false), reasons::PROGRESSING, "0/1");
        assert_eq!(summarize(std::slice::from_ref(&starting), None).1, Phase::Provisioning);
        assert_eq!(summarize(std::slice::from_ref(&starting), Some(Phase::Ready)).1, Phase::Progressing);
        assert_eq!(summarize(&[starting], Some(Phase::Degraded)).1, Phase::Progressing);
        let crashing =
            Observed::new(types::SERVICES_READY, Some(false), reasons::ROLLOUT_FAILED, "CrashLoopBackOff");
        assert_eq!(summarize(&[crashing], Some(Phase::Progressing)).1, Phase::Degraded);
        let lost = Observed::new(types::SERVICES_READY, Some(false), reasons::UNAVAILABLE, "0/1");
        assert_eq!(summarize(&[lost], Some(Phase::Ready)).1, Phase::Degraded);
        let forbidden = Observed::new(types::SERVICES_READY, Some(false), reasons::FORBIDDEN, "ingresses");
        assert_eq!(summarize(&[forbidden], None).1, Phase::Degraded);
        let failed = Observed::new(types::MIGRATIONS_READY, Some(false), reasons::FAILED, "job failed");
        assert_eq!(summarize(&[failed], None).1, Phase::Degraded);
        let waiting = Observed::new(types::DATABASE_READY, Some(false), reasons::ADMIN_SECRET_MISSING, "x");
        assert_eq!(summarize(&[waiting], None).1, Phase::Pending);
    }
}
