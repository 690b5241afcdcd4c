//! The `shop` binary's library half: configuration, composition and cross-service seed data,
//! shared with its tests.

pub mod cli;
pub mod compose;
pub mod seed;
pub mod settings;
