//! Leader election through a `coordination.k8s.io/v1` `Lease` (ADR 0012): of several operator
//! replicas, only the holder of the Lease reconciles.
//!
//! - **Acquire**: the Lease is created when missing; otherwise it is taken over when it has no
//!   holder or its holder has not renewed it for `leaseDurationSeconds`. Expiry is measured on
//!   this process's monotonic clock from the moment it last *saw the Lease change* (its
//!   `resourceVersion`), never by comparing `renewTime` with the local wall clock, so clock skew
//!   between nodes cannot make two holders.
//! - Every write is a `replace` carrying the `resourceVersion` that was read: of two candidates
//!   taking over the same expired Lease, the API server accepts one and answers the other `409
//!   Conflict`.
//! - **Renew** every `retry_period`; when no renewal has succeeded for `renew_deadline` (shorter
//!   than the lease duration), or the Lease names another holder, the leader **steps down**:
//!   [`LeaderElector::hold`] returns and the process stops reconciling (the binary exits, its
//!   Deployment restarts it as a candidate). A leader whose renewals fail stops before another
//!   candidate can consider its Lease expired.
//! - **Release** on shutdown: the holder clears `holderIdentity` (with its `resourceVersion`), so
//!   a standby takes over at its next retry instead of after the lease duration.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Client;

/// Settings of the election (flags of `shop-operator run`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// Namespace of the Lease (the operator's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This process's identity (its pod name).
    pub identity: String,
    /// How long a Lease not renewed keeps its holder.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it steps down; below `lease_duration`.
    pub renew_deadline: Duration,
    /// Interval of the candidates' attempts and of the leader's renewals.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Checks the durations against each other (as client-go's elector does).
    pub fn validate(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err("the renew deadline must be shorter than the lease duration".into());
        }
        if self.retry_period.is_zero() || self.retry_period >= self.renew_deadline {
            return Err("the retry period must be shorter than the renew deadline".into());
        }
        if self.identity.is_empty() || self.name.is_empty() || self.namespace.is_empty() {
            return Err("the lease needs a namespace, a name and an identity".into());
        }
        Ok(())
    }
}

/// Why a leader stopped leading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// The Lease names another holder.
    TakenBy(String),
    /// No renewal succeeded within the renew deadline; the last error.
    RenewFailed(String),
}

impl std::fmt::Display for Lost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Lost::TakenBy(h) => write!(f, "the lease is held by {h}"),
            Lost::RenewFailed(e) => write!(f, "no renewal within the renew deadline: {e}"),
        }
    }
}

/// What one attempt found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// This process holds the Lease (acquired or renewed).
    Leading,
    /// Another holder whose Lease has not expired.
    HeldBy(String),
}

/// The elector of one process.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The Lease's `resourceVersion` as last seen, and when it was first seen.
    observed: Option<(String, Instant)>,
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

fn duration_secs(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        LeaderElector { api: Api::namespaced(client, &config.namespace), config, observed: None }
    }

    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// One acquire-or-renew attempt. API errors (other than a lost race) are returned.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Attempt, kube::Error> {
        let me = self.config.identity.clone();
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    labels: Some(
                        [("app.kubernetes.io/name".to_string(), "shop-operator".to_string())].into(),
                    ),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me.clone()),
                    lease_duration_seconds: Some(duration_secs(self.config.lease_duration)),
                    acquire_time: Some(now()),
                    renew_time: Some(now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(&created);
                    Ok(Attempt::Leading)
                }
                // Another candidate created it first.
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Attempt::HeldBy("(unknown)".into())),
                Err(e) => Err(e),
            };
        };
        self.observe(&lease);
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let duration =
            Duration::from_secs(u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0).max(1));
        let expired = self.observed.as_ref().is_some_and(|(_, since)| since.elapsed() >= duration);
        let mut new_spec = spec.clone();
        if holder == me {
            new_spec.renew_time = Some(now());
            new_spec.lease_duration_seconds = Some(duration_secs(self.config.lease_duration));
        } else if holder.is_empty() || expired {
            new_spec.holder_identity = Some(me.clone());
            new_spec.acquire_time = Some(now());
            new_spec.renew_time = Some(now());
            new_spec.lease_duration_seconds = Some(duration_secs(self.config.lease_duration));
            new_spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        } else {
            return Ok(Attempt::HeldBy(holder));
        }
        lease.spec = Some(new_spec);
        // `replace` sends the resourceVersion read above: a concurrent writer makes this a 409.
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(updated) => {
                self.observe(&updated);
                Ok(Attempt::Leading)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                Ok(Attempt::HeldBy(if holder.is_empty() { "(another candidate)".into() } else { holder }))
            }
            Err(e) => Err(e),
        }
    }

    fn observe(&mut self, lease: &Lease) {
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        if self.observed.as_ref().map(|(v, _)| v) != Some(&rv) {
            self.observed = Some((rv, Instant::now()));
        }
    }

    /// Waits until this process holds the Lease.
    pub async fn acquire(&mut self) {
        let mut last_holder = String::new();
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Leading) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired the lease: leading");
                    return;
                }
                Ok(Attempt::HeldBy(h)) => {
                    if h != last_holder {
                        tracing::info!(lease = %self.config.name, holder = %h, "the lease is held by another replica: standing by");
                        last_holder = h;
                    }
                }
                Err(e) => {
                    tracing::warn!(lease = %self.config.name, error = %e, "leader election attempt failed")
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews the Lease every retry period while leading; returns when leadership is lost.
    pub async fn hold(&mut self) -> Lost {
        let mut last_success = Instant::now();
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            let attempt = tokio::time::timeout(self.config.retry_period, self.try_acquire_or_renew()).await;
            match attempt {
                Ok(Ok(Attempt::Leading)) => last_success = Instant::now(),
                Ok(Ok(Attempt::HeldBy(h))) => return Lost::TakenBy(h),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "renewing the lease failed");
                    if last_success.elapsed() >= self.config.renew_deadline {
                        return Lost::RenewFailed(e.to_string());
                    }
                }
                Err(_) => {
                    tracing::warn!("renewing the lease timed out");
                    if last_success.elapsed() >= self.config.renew_deadline {
                        return Lost::RenewFailed("timed out".into());
                    }
                }
            }
            if last_success.elapsed() >= self.config.renew_deadline {
                return Lost::RenewFailed("renew deadline passed".into());
            }
        }
    }

    /// Gives the Lease up (clears the holder, guarded by the `resourceVersion`), when this
    /// process still holds it.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else { return };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.acquire_time = None;
        spec.renew_time = Some(now());
        spec.lease_duration_seconds = Some(1);
        lease.spec = Some(spec);
        match self.api.replace(&self.config.name, &PostParams::default(), &lease).await {
            Ok(_) => tracing::info!(lease = %self.config.name, "released the lease"),
            Err(e) => tracing::warn!(lease = %self.config.name, error = %e, "releasing the lease failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> LeaseConfig {
        LeaseConfig {
            namespace: "ops".into(),
            name: "shop-operator".into(),
            identity: "pod-a".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn durations_are_checked_against_each_other() {
        assert!(config().validate().is_ok());
        let c = LeaseConfig { renew_deadline: Duration::from_secs(15), ..config() };
        assert!(c.validate().is_err());
        let c = LeaseConfig { retry_period: Duration::from_secs(10), ..config() };
        assert!(c.validate().is_err());
        let c = LeaseConfig { identity: String::new(), ..config() };
        assert!(c.validate().is_err());
    }
}
