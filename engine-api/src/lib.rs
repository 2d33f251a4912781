//! The Docker Engine API (v1.41, and newer clients' `/vX.Y/` paths where
//! the shapes agree) served over kiln's library crates, so that the
//! docker CLI, docker-compose and the SDKs drive kiln: `kiln system
//! service`. Each handler makes the library call the matching kiln
//! command makes; blocking calls run on tokio's blocking pool.
//!
//! - [`server`]: listeners (unix socket, loopback TCP), idle exit;
//! - [`router`]: the version prefix, paths to handlers;
//! - [`http`]: docker's errors, query strings, streamed and hijacked
//!   bodies, the multiplexed stream format;
//! - one module per endpoint group: [`system`], [`images`],
//!   [`containers`] (with [`create`] for the create body, [`attach`]
//!   for attach and logs, [`stats`]), [`exec`], [`build`], [`networks`],
//!   [`volumes`], [`archive`], [`events`].

// `/info`'s one big `json!`.
#![recursion_limit = "256"]

pub mod archive;
pub mod attach;
pub mod build;
pub mod containers;
pub mod create;
pub mod events;
pub mod exec;
pub mod http;
pub mod images;
pub mod networks;
pub mod router;
pub mod server;
pub mod state;
pub mod stats;
pub mod system;
pub mod volumes;

pub use server::{serve, Config, Listen};
pub use state::MonitorFn;

/// The API version served (docker 20.10's).
pub const API_VERSION: &str = "1.41";
/// The oldest version whose shapes these handlers give.
pub const MIN_API_VERSION: &str = "1.24";
