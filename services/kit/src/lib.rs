//! `kit`: what several ShopPlatform services share, and nothing else.
//!
//! - [`config`]: typed configuration from environment variables and an optional TOML file.
//! - [`telemetry`]: `tracing` set-up (human or JSON logs).
//! - [`problem`]: RFC 9457 problem documents, the one error type of every HTTP handler.
//! - [`extract`]: JSON/query/path extractors whose rejections are problem documents.
//! - [`db`]: one store contract over PostgreSQL and SQLite, pools and migrations.
//! - [`auth`]: bearer-token (JWT) verification against public keys only.
//! - [`http`]: the common middleware stack, health endpoints, metrics, graceful shutdown.
//! - [`component`]: how a service describes itself to the composer (one description per service).
//! - [`contract`]: names shared by services, gateway and operator (services, ports, peers,
//!   subscriptions, env keys): the `shop-contract` crate, re-exported.

/// The `shop-contract` crate (services, ports, peers, subscriptions, env keys; its `events`
/// module is also [`events::contract`]).
pub use ::contract;

pub mod auth;
pub mod backoff;
pub mod client;
pub mod component;
pub mod config;
pub mod db;
pub mod events;
pub mod extract;
pub mod health;
pub mod http;
pub mod idempotency;
pub mod info;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod redis;
pub mod store;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;

pub use problem::{ApiError, ApiResult};
