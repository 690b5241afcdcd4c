//! The `shop` binary's library half: configuration and composition, shared with its tests.

pub mod cli;
pub mod compose;
pub mod settings;
