//! The ShopPlatform operator: a `ShopPlatform` resource (`platform.shop/v1alpha1`) becomes a
//! running shop. See `docs/operator.md`.
//!
//! - [`crd`]: the resource's spec and status (the CRD is generated from them);
//! - [`builders`]: desired state as pure functions;
//! - [`controller`]: reconcile, error policy and the controller loop;
//! - [`provision`]: per-service databases (PostgreSQL) and Kafka topics (admin API);
//! - [`kafka`]: the operator's small Kafka admin client (`kafka-protocol`; TLS, SASL);
//! - [`lease`]: leader election through a `coordination.k8s.io` Lease (ADR 0012);
//! - [`metrics`]: reconcile metrics and the `/metrics` + `/healthz` server;
//! - [`status`]: conditions and phase.

pub mod builders;
pub mod controller;
pub mod crd;
pub mod error;
pub mod kafka;
pub mod lease;
pub mod metrics;
pub mod names;
pub mod overrides;
pub mod provision;
pub mod rollout;
pub mod ssa;
pub mod status;
pub mod tls;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod scenarios;

pub use error::{Error, Result};

/// The CRD as YAML, exactly as checked in at `crds/shopplatforms.platform.shop.yaml`.
pub fn crd_yaml() -> String {
    serde_yaml::to_string(&crd::crd()).expect("CRD serializes")
}

/// Parses a ShopPlatform manifest (YAML) and fills what the API server would (namespace
/// `default` when unset, a placeholder uid) so it can be rendered offline.
pub fn load_sample(yaml: &str) -> Result<crd::ShopPlatform, String> {
    let mut sp: crd::ShopPlatform = serde_yaml::from_str(yaml).map_err(|e| e.to_string())?;
    sp.metadata.namespace.get_or_insert_with(|| "default".into());
    sp.metadata.uid.get_or_insert_with(|| "00000000-0000-0000-0000-000000000000".into());
    Ok(sp)
}
