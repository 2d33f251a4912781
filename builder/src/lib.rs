//! Turns a parsed Dockerfile into images: stages, ARG/ENV scoping, ONBUILD,
//! `.dockerignore`, cache keys and layer creation. RUN steps go to the runner.

mod cache;
pub mod error;
pub mod stages;
mod steps;
pub use error::BuildError;
/// The former path of the build API.
pub use stages as build;
pub mod config;
pub mod context;
pub mod dockerignore;
