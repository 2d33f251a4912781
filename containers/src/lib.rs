//! From image to container, above `runner` and `image-store`, below the
//! CLI and the builder (whose RUN steps are containers too):
//!
//! - what a container sees: [`layers`] (the layer stack and its
//!   whiteout-aware `stat`), [`view`] (the one read-only overlay mount),
//!   [`mountpoints`] (stubs for mount points the image lacks), [`merged`]
//!   (the stack read as one tree, paths resolved inside its root);
//! - what it runs: [`spec`] (`ContainerSpec::from_image`, shared by
//!   `kiln run` and RUN), [`options`] (docker's `-v`/`--tmpfs`/`-e` syntax),
//!   [`mountopts`] (`-v`, `--mount`, `--volumes-from`), [`volumes`];
//! - what is kept of it: [`records`] (`kiln/containers/<id>/`), [`names`];
//! - what is done to it: [`run`] (create, foreground, detached with a
//!   monitor), [`control`] (list, signal, stop, remove, logs), [`attach`], [`commit`],
//!   [`export`], [`copy`] (`kiln cp`, `kiln diff`), [`health`] (probes), through a [`runtime`] (kiln's runner or runc); files
//!   written into a container or volume through [`rootwrite`];
//! - what killed kiln processes left: [`check`] (`system check` beyond
//!   the store, cgroup cleanup).

pub mod attach;
pub mod check;
pub mod commit;
pub mod control;
pub mod copy;
pub mod error;
pub mod exec;
pub mod export;
pub mod filters;
pub mod freeze;
pub mod health;
pub mod inspect;
pub mod layers;
pub mod logfile;
pub mod merged;
pub mod mountopts;
pub mod mountpoints;
pub mod names;
pub mod network;
pub mod options;
pub mod records;
pub mod restart;
pub mod rootwrite;
pub mod run;
pub mod runtime;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod stats;
pub mod summary;
pub mod top;
pub mod usage;
pub mod view;
pub mod volumes;

pub use error::{Error, Result};
pub use layers::LayerStack;
pub use records::{container_name, Container, Containers, State};
